"""n-best I/O: round trips in both formats, and every malformed input refused with file:line."""

from __future__ import annotations

import json

import pytest

from lmplug.errors import LmplugError
from lmplug.mt.nbest import NBestEntry, feature_names, parse_features, read_nbest, write_nbest


def _write(tmp_path, text: str, name: str = "x.nbest"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_moses_read_fields_and_multi_valued_features(tmp_path):
    p = _write(tmp_path, "0 ||| ein Hund ||| nmt= -1.5 TM0= -0.25 -3 ||| -1.25\n"
                         "0 |||  ein   Hund läuft ||| nmt= -2 TM0= 1 2 ||| -2\n"
                         "1 ||| ja ||| nmt= -0.5 TM0= 0 0\n")
    nb = read_nbest(p, n_sources=2)
    assert [len(h) for h in nb] == [2, 1]
    assert nb[0][0] == NBestEntry(0, "ein Hund", {"nmt": -1.5, "TM0_0": -0.25, "TM0_1": -3.0}, -1.25)
    assert nb[0][1].text == "ein Hund läuft"  # whitespace collapsed
    assert nb[1][0].total is None
    assert feature_names(nb) == ["nmt", "TM0_0", "TM0_1"]


@pytest.mark.parametrize("fmt_name", ["x.nbest", "x.jsonl"])
def test_round_trip(tmp_path, fmt_name):
    nb = [[NBestEntry(0, "a b", {"nmt": -1.0, "lm": -2.5}, -0.5), NBestEntry(0, "a", {"nmt": -3.0, "lm": 0.1}, None)],
          [NBestEntry(1, "ç é", {"nmt": 1e-20, "lm": 123456.789}, 3.0)]]
    p = tmp_path / fmt_name
    write_nbest(p, nb)
    assert read_nbest(p, n_sources=2) == nb


def test_jsonl_lines(tmp_path):
    p = tmp_path / "x.jsonl"
    write_nbest(p, [[NBestEntry(0, "hallo", {"nmt": -1.0}, -1.0)]])
    assert json.loads(p.read_text()) == {"id": 0, "text": "hallo", "scores": {"nmt": -1.0}, "total": -1.0}


MOSES_ERRORS = [
    ("0 ||| a ||| f= 1 ||| 0\n0 ||| b\n", 2, "expected 'id ||| hypothesis ||| features [||| total]' (3 or 4 fields), found 2 fields"),
    ("x ||| a ||| f= 1\n", 1, "expected a sentence id (a non-negative integer), found 'x'"),
    ("0 |||   ||| f= 1\n", 1, "expected a non-empty hypothesis, found an empty one"),
    ("0 ||| a ||| f= 1\n2 ||| b ||| f= 1\n", 2, "expected id 1, found 2 (no hypotheses for id 1)"),
    ("1 ||| a ||| f= 1\n", 1, "expected id 0, found 1 (no hypotheses for id 0)"),
    ("0 ||| a ||| f= 1\n1 ||| b ||| f= 1\n0 ||| c ||| f= 1\n", 3, "expected id 1 or 2, found 0 (ids out of order)"),
    ("0 ||| a ||| f= abc\n", 1, "expected a number for feature 'f', found 'abc'"),
    ("0 ||| a ||| 1.5 f= 2\n", 1, "expected 'name=' before the first feature value, found '1.5'"),
    ("0 ||| a ||| f= g= 1\n", 1, "expected a value after feature 'f=', found none"),
    ("0 ||| a ||| f= 1 f= 2\n", 1, "feature 'f' appears twice"),
    ("0 ||| a ||| f= 1 ||| nan\n", 1, "expected a finite number for the total score, found 'nan'"),
    ("0 ||| a ||| f= 1 ||| inf\n", 1, "expected a finite number for the total score, found 'inf'"),
    ("0 ||| a ||| f= -inf\n", 1, "expected a finite number for feature 'f', found '-inf'"),
    ("0 ||| a ||| TM0= 1 Infinity\n", 1, "expected a finite number for feature 'TM0', found 'Infinity'"),
    ("0 ||| a ||| f= NaN\n", 1, "expected a finite number for feature 'f', found 'NaN'"),
    ("\u00b2 ||| a ||| f= 1\n", 1, "expected a sentence id (a non-negative integer), found '\u00b2'"),
    ("\u0663 ||| a ||| f= 1\n", 1, "expected a sentence id (a non-negative integer), found '\u0663'"),
    ("0 ||| a ||| f= 1 ||| -\n", 1, "expected a number for the total score, found '-'"),
    ("0 ||| a ||| f= 1\n\n", 2, "expected an n-best entry, found an empty line"),
]


@pytest.mark.parametrize("text,line,message", MOSES_ERRORS)
def test_moses_errors(tmp_path, text, line, message):
    p = _write(tmp_path, text)
    with pytest.raises(LmplugError) as e:
        read_nbest(p)
    assert str(e.value) == f"{p}:{line}: {message}"


JSONL_ERRORS = [
    ('{"id": 0, "text": "a"\n', "expected a JSON object, found invalid JSON (Expecting ',' delimiter)"),
    ('[0, "a"]\n', "expected a JSON object, found list"),
    ('{"text": "a"}\n', "expected keys 'id' and 'text', missing ['id']"),
    ('{"id": -1, "text": "a"}\n', "expected 'id' to be a non-negative integer, found -1"),
    ('{"id": 0, "text": " "}\n', "expected a non-empty hypothesis in 'text', found ' '"),
    ('{"id": 0, "text": "a", "scores": {"f": "1"}}\n', "expected a number for feature 'f', found '1'"),
    ('{"id": 0, "text": "a", "extra": 1}\n', "unexpected keys ['extra']; expected id, text, scores, total"),
    ('{"id": 0, "text": "a", "scores": {"f": Infinity}}\n', "expected a finite number for feature 'f', found inf"),
    ('{"id": 0, "text": "a", "scores": {"f": -Infinity}}\n', "expected a finite number for feature 'f', found -inf"),
    ('{"id": 0, "text": "a", "scores": {"f": NaN}}\n', "expected a finite number for feature 'f', found nan"),
    ('{"id": 0, "text": "a", "scores": {"f": 1' + "0" * 400 + '}}\n',
     "expected a finite number for feature 'f', found 1" + "0" * 400),
    ('{"id": 0, "text": "a", "total": NaN}\n', "expected a finite number for 'total', found nan"),
    ('{"id": 0, "text": "a", "total": -Infinity}\n', "expected a finite number for 'total', found -inf"),
    ('{"id": 0, "text": "a", "total": "1"}\n', "expected a number for 'total', found '1'"),
]


@pytest.mark.parametrize("text,message", JSONL_ERRORS)
def test_jsonl_errors(tmp_path, text, message):
    p = _write(tmp_path, text, "x.jsonl")
    with pytest.raises(LmplugError) as e:
        read_nbest(p)
    assert str(e.value) == f"{p}:1: {message}"


def test_source_count_mismatch_and_empty_file(tmp_path):
    p = _write(tmp_path, "0 ||| a ||| f= 1\n1 ||| b ||| f= 1\n")
    with pytest.raises(LmplugError, match=r"expected hypotheses for 3 source sentences \(ids 0..2\), found ids 0..1"):
        read_nbest(p, n_sources=3)
    with pytest.raises(LmplugError, match="found an empty file"):
        read_nbest(_write(tmp_path, "", "e.nbest"))
    with pytest.raises(LmplugError, match="n-best file not found"):
        read_nbest(tmp_path / "missing.nbest")


def test_write_refuses_bad_lists(tmp_path):
    with pytest.raises(LmplugError, match="sentence 1 has no hypotheses"):
        write_nbest(tmp_path / "a.nbest", [[NBestEntry(0, "a")], []])
    with pytest.raises(LmplugError, match="sentence 0 holds an entry with id 3; expected id 0"):
        write_nbest(tmp_path / "a.nbest", [[NBestEntry(3, "a")]])
    with pytest.raises(LmplugError, match="contains '\\|\\|\\|'"):
        write_nbest(tmp_path / "a.nbest", [[NBestEntry(0, "a ||| b")]])
    assert parse_features("a= 1 b= -2.5") == {"a": 1.0, "b": -2.5}


def test_feature_missing_on_some_hypotheses(tmp_path):
    p = _write(tmp_path, "0 ||| a ||| f= 1 g= 2\n0 ||| b ||| f= 1\n")
    with pytest.raises(LmplugError, match="feature 'g' is on 1 of 2 hypotheses"):
        feature_names(read_nbest(p))
