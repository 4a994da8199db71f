"""lmplug.ctc.io: the n-best and reference readers (file:line errors)."""

from __future__ import annotations

import json
import re

import pytest

from lmplug.ctc.io import read_ctc_nbest, read_references
from lmplug.errors import LmplugError


def test_nbest_rows_with_nan_or_without_text_are_refused(tmp_path):
    good = {"id": "u0", "nbest": [{"text": "a b", "score": -1.0, "scores": {"ctc": -1.0, "words": 2}}]}
    bad_rows = [({"id": "u1", "nbest": [{"text": "a", "score": float("nan")}]}, "score = nan"),
                ({"id": "u1", "nbest": [{"score": -2.0}]}, "expected hypotheses with a 'text' string"),
                ({"id": "u1", "nbest": [{"text": "a", "scores": {"ctc": "x"}}]}, "scores.ctc = 'x'"),
                ({"id": "u1", "nbest": [{"text": "a", "scores": [1]}]}, "expected hypotheses with a 'text' string"),
                ({"id": "u1", "nbest": []}, "expected 'nbest' as a non-empty list of hypotheses, found []"),
                ({"id": "u1", "nbest": 5}, "expected 'nbest' as a non-empty list of hypotheses, found 5")]
    for row, message in bad_rows:
        p = tmp_path / "nb.jsonl"
        p.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(LmplugError, match=re.escape(f"{p}:2: ") + ".*" + re.escape(message)):
            read_ctc_nbest(str(p))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(LmplugError, match="expected at least one n-best list"):
        read_ctc_nbest(str(tmp_path / "empty.jsonl"))
    p.write_text(json.dumps(good) + "\n")
    assert read_ctc_nbest(str(p)) == (["u0"], [good["nbest"]])


def test_nbest_rows_need_an_id_and_unique_ids(tmp_path):
    p = tmp_path / "nb.jsonl"
    p.write_text('{"id": "u0", "text": "a"}\n{"text": "b"}\n')
    with pytest.raises(LmplugError, match=re.escape(f"{p}:2: expected a JSON object with an 'id'")):
        read_ctc_nbest(str(p))
    p.write_text('{"id": "u0", "text": "a"}\n{"id": "u0", "text": "b"}\n')
    with pytest.raises(LmplugError, match="u0"):
        read_ctc_nbest(str(p))
    p.write_text('{"id": 7, "text": "a b", "score": -1.5}\n')
    assert read_ctc_nbest(str(p)) == (["7"], [[{"text": "a b", "score": -1.5, "scores": {}}]])


def test_references_in_the_order_of_the_ids(tmp_path):
    p = tmp_path / "refs.jsonl"
    p.write_text('{"id": "b", "text": "bee"}\n{"id": "a", "text": "ay", "emissions": "a.npy"}\n')
    assert read_references(str(p), ["a", "b"]) == ["ay", "bee"]
    with pytest.raises(LmplugError, match=re.escape(f"{p}: expected a reference 'text' string for every n-best id, "
                                                    "found none for ['c']")):
        read_references(str(p), ["a", "c"])
    p.write_text('{"id": "a", "text": "ay"}\n{"text": "bee"}\n')
    with pytest.raises(LmplugError, match=re.escape(f"{p}:2: expected a JSON object with an 'id'")):
        read_references(str(p), ["a"])
