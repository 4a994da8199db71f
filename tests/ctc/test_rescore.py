"""lmplug.ctc.rescore.tune_rescore_weights: the rescoring grid, called directly."""

from __future__ import annotations

import pytest

from lmplug.ctc.rescore import tune_rescore_weights
from lmplug.errors import LmplugError


class FixedScorer:
    """Sentence log-probs from a table (all a rescoring feature needs)."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score_sentences(self, texts):
        return [self.table[t] for t in texts]


NBEST = [[{"text": "a b", "scores": {"ctc": -2.0, "words": 2}}, {"text": "a c", "scores": {"ctc": -1.0, "words": 2}}],
         [{"text": "x", "scores": {"ctc": -1.0, "words": 1}}, {"text": "x y", "scores": {"ctc": -1.5, "words": 2}}]]
REFS = ["a b", "x"]
LM = FixedScorer({"a b": -1.0, "a c": -5.0, "x": -2.0, "x y": -2.0})


def test_grid_of_lm_weight_and_bonus():
    """score = ctc + w * lm + bonus * words: "a b" wins from w > 0.25, "x y" from bonus > 0.5."""
    r = tune_rescore_weights(NBEST, REFS, {"lm": LM}, [0.5, 1.0], [0.0, 1.0], fixed={"words": 0.0}, signature="t")
    assert r.lm_weights == [0.0, 0.5, 1.0]  # the first pass's ranking (lm 0) is always tried
    assert r.bonuses == [0.0, 1.0]
    assert r.grid == [pytest.approx(row) for row in [[1 / 3, 2 / 3], [0.0, 1 / 3], [0.0, 1 / 3]]]
    assert (r.weights, r.wer, r.lm_name, r.signature) == ({"words": 0.0, "lm": 0.5}, 0.0, "lm", "t")


def test_first_pass_bonus_and_fixed_weights_are_kept():
    nbest = [[{**h, "scores": {**h["scores"], "kenlm": 0.0}} for h in lst] for lst in NBEST]
    r = tune_rescore_weights(nbest, REFS, {"lm": LM}, [0.0, 1.0], [1.0, 0.0], fixed={"kenlm": 0.3, "words": 0.25})
    assert r.bonuses == [0.0, 0.25, 1.0]  # the first pass's bonus joins the (sorted) columns
    assert r.weights == {"kenlm": 0.3, "words": 0.0, "lm": 1.0} and r.wer == 0.0


def test_references_must_match_the_lists():
    with pytest.raises(LmplugError, match="expected one reference per n-best list"):
        tune_rescore_weights(NBEST, REFS[:1], {"lm": LM}, [1.0], [0.0])
