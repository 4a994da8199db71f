"""Named features shared by speech and translation: the weights parser, weights files, totals."""

from __future__ import annotations

import json

import pytest

from lmplug.errors import LmplugError
from lmplug.features import TunedWeights, parse_weights, read_weights_file, weighted_total


@pytest.mark.parametrize("spec, expected", [
    ("lm=0.5,words=1", {"lm": 0.5, "words": 1.0}),
    (" lm = -2 , ,kenlm=1e-1", {"lm": -2.0, "kenlm": 0.1}),
    ("", {}),
])
def test_parse_weights_table(spec, expected):
    assert parse_weights(spec) == expected


@pytest.mark.parametrize("spec", ["lm", "lm=x", "lm=nan", "lm=inf,words=1"])
def test_parse_weights_rejects(spec):
    with pytest.raises(LmplugError, match="expected weights as name=value"):
        parse_weights(spec)


def test_weights_file_round_trip_and_checks(tmp_path):
    TunedWeights({"lm": 0.25, "words": -1.0}).save(tmp_path / "w.json")
    assert read_weights_file(tmp_path / "w.json") == {"lm": 0.25, "words": -1.0}
    (tmp_path / "flat.json").write_text(json.dumps({"nmt": 1}))
    assert read_weights_file(tmp_path / "flat.json") == {"nmt": 1.0}
    (tmp_path / "bad.json").write_text(json.dumps({"weights": {"lm": "high"}}))
    with pytest.raises(LmplugError, match=r"bad.json.lm: expected a number, found 'high'"):
        read_weights_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(LmplugError, match="expected a JSON object of name: weight"):
        read_weights_file(tmp_path / "list.json")
    with pytest.raises(LmplugError, match="weights file not found"):
        read_weights_file(tmp_path / "none.json")


def test_weighted_total_uses_only_weighted_features():
    assert weighted_total({"ctc": -3.0, "lm": -10.0, "words": 4.0}, {"lm": 0.5, "words": 1.0}) == -1.0
    with pytest.raises(KeyError):
        weighted_total({"ctc": -3.0}, {"lm": 1.0})


def test_tuning_results_share_the_base():
    from lmplug import TuneResult
    from lmplug.mt.mert import MertResult

    assert issubclass(TuneResult, TunedWeights) and issubclass(MertResult, TunedWeights)
    assert TuneResult is not MertResult and TuneResult.__name__ != MertResult.__name__
