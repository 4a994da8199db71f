"""What speech and translation share: hypotheses with named feature scores, feature weights (how
users type them, how tuners save them), and the weighted total a reranker or a decoder ranks by.

A CTC hypothesis (:class:`lmplug.ctc.types.CTCHypothesis`) and an MT n-best entry
(:class:`lmplug.mt.nbest.NBestEntry`) are both a :class:`Hypothesis`: a text and its
``scores: dict[str, float]``. Weights are ``dict[str, float]`` keyed by the same names, so they
can be re-tuned on stored scores without running any model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from lmplug.errors import LmplugError, expect_number
from lmplug.files import read_json


class Hypothesis(Protocol):
    """What every n-best hypothesis has: its text and its named feature scores."""

    text: str
    scores: dict[str, float]


def weighted_total(scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """``sum(weights[k] * scores[k])`` over the weighted features (each must be in ``scores``)."""
    return sum(w * scores[k] for k, w in weights.items())


def parse_weights(spec: str) -> dict[str, float]:
    """``"lm=0.5,words=1"`` -> ``{"lm": 0.5, "words": 1.0}`` (finite values; empty parts skipped)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, eq, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            eq = ""
        if not eq or not math.isfinite(out[name.strip()]):
            raise LmplugError(f"expected weights as name=value[,name=value] with finite values, found {part!r} in {spec!r}")
    return out


def read_weights_file(path: str | Path) -> dict[str, float]:
    """Weights from a JSON file: a tuner's result (its ``"weights"`` object, as
    :meth:`TunedWeights.save` writes it) or a flat ``{name: weight}`` object."""
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"weights file not found: expected a JSON file at {p}")
    obj = read_json(p)
    obj = obj.get("weights", obj) if isinstance(obj, dict) else obj
    if not isinstance(obj, dict):
        raise LmplugError(f"{p}: expected a JSON object of name: weight (or a 'weights' object), found {str(obj)[:80]}")
    for k, v in obj.items():
        expect_number(str(p), k, v)  # "<file>.<name>: expected a number, found ..." (booleans, NaN, inf too)
    return {str(k): float(v) for k, v in obj.items()}


@dataclass
class TunedWeights:
    """The base of what a weight tuner returns: the chosen weights, plus (in subclasses) the dev
    metric they reached and the grid or search that found them: :class:`lmplug.ctc.tune.TuneResult`
    (CTC grid search, WER) and :class:`lmplug.mt.mert.MertResult` (MERT, BLEU)."""

    weights: dict[str, float]

    def save(self, path: str | Path) -> None:
        """All fields as JSON (``read_weights_file`` reads the weights back)."""
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
