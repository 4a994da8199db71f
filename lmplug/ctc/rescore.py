"""Second pass: rescore CTC n-best lists with any scorer, rerank by named feature weights, and
tune those weights on a grid (:func:`tune_rescore_weights`).

Each hypothesis carries its features (``scores``: ``"ctc"``, first-pass LM scores, ``"words"``);
rescoring adds one feature per new scorer (a whole-sentence natural-log score, ``</s>``
included) and re-sorts by ``sum_k weights[k] * scores[k]`` (``"ctc"`` weighs 1 unless given).
Because features are kept, weights can be re-tuned on n-best lists without running any model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lmplug.ctc.decoder import CTC, WORDS, CTCHypothesis
from lmplug.ctc.tune import TuneResult, word_error_rate
from lmplug.errors import LmplugError
from lmplug.features import weighted_total
from lmplug.scorers.base import Scorer


def as_hypothesis(h: Any) -> CTCHypothesis:
    """A :class:`CTCHypothesis` from ours, a dict with its fields, or a pyctcdecode output beam.

    pyctcdecode's ``decode_beams`` gives ``(text, lm_state, [(word, (start, end)), ...],
    logit_score, combined_score)``; its ``logit_score`` becomes the ``"ctc"`` feature.
    """
    if isinstance(h, CTCHypothesis):
        return h
    if isinstance(h, dict):
        scores = dict(h.get("scores") or {})
        scores.setdefault(WORDS, float(len(h["text"].split())))
        return CTCHypothesis(h["text"], list(h.get("tokens", [])), [tuple(x) for x in h.get("word_frames", [])],
                             float(h.get("score", scores.get(CTC, 0.0))), scores)
    if isinstance(h, (tuple, list)) and len(h) == 5 and isinstance(h[0], str):
        text, _, word_frames, logit_score, combined = h
        return CTCHypothesis(text, [], [tuple(f) for _, f in word_frames], float(combined),
                             {CTC: float(logit_score), WORDS: float(len(text.split()))})
    raise LmplugError(
        "expected a CTCHypothesis, a dict with 'text' (and 'scores'), or a pyctcdecode beam "
        f"(text, state, frames, logit_score, score); found {type(h).__name__}"
    )


def rerank(nbest: Sequence[Sequence[Any]], weights: Mapping[str, float]) -> list[list[CTCHypothesis]]:
    """Re-sort n-best lists by ``sum_k weights[k] * scores[k]`` over stored features.

    Raises:
        LmplugError: a weighted feature is missing from some hypothesis.
    """
    w = {CTC: 1.0, **weights}
    out = []
    for lst in nbest:
        hyps = [as_hypothesis(h) for h in lst]
        new = []
        for h in hyps:
            missing = [k for k in w if k not in h.scores]
            if missing:
                raise LmplugError(f"expected features {sorted(w)} on every hypothesis, found {sorted(h.scores)} "
                                  f"(missing {missing}) for {h.text!r}")
            new.append(h._replace(score=weighted_total(h.scores, w)))
        out.append(sorted(new, key=lambda h: -h.score))
    return out


def rescore_nbest(
    nbest: Sequence[Sequence[Any]],
    scorers: Mapping[str, Scorer],
    weights: Mapping[str, float],
) -> list[list[CTCHypothesis]]:
    """Add each scorer's sentence score as a feature, then :func:`rerank` by ``weights``.

    Args:
        nbest: per utterance, hypotheses (ours, dicts, or pyctcdecode beams).
        scorers: new features, e.g. ``{"lm2": TransformerScorer(load_lm(dir))}``; a name that a
            hypothesis already has is overwritten.
        weights: weights of any features, e.g. ``{"lm2": 0.6, "words": 1.0}``.

    Returns:
        per utterance, hypotheses with the new features, best first.
    """
    lists = [[as_hypothesis(h) for h in lst] for lst in nbest]
    flat = [h for lst in lists for h in lst]
    texts = [h.text for h in flat]
    feats = {name: s.score_sentences(texts) for name, s in scorers.items()}
    i = 0
    out = []
    for lst in lists:
        new = []
        for h in lst:
            new.append(h._replace(scores={**h.scores, **{k: float(v[i]) for k, v in feats.items()}}))
            i += 1
        out.append(new)
    return rerank(out, weights)


def tune_rescore_weights(
    nbest: Sequence[Sequence[Any]],
    references: Sequence[str],
    scorers: Mapping[str, Scorer],
    lm_weights: Sequence[float],
    bonuses: Sequence[float],
    fixed: Mapping[str, float] | None = None,
    signature: str = "",
) -> TuneResult:
    """Grid-search the rescoring weight of ``scorers["lm"]`` x the word bonus on WER.

    The features are computed once (:func:`rescore_nbest`); each grid point only reranks. Weight
    0 of the LM (the first pass's own ranking) is always a candidate, and so is the first pass's
    word bonus ``fixed["words"]``.

    Args:
        nbest: per utterance, hypotheses (ours, dicts, or pyctcdecode beams).
        references: per utterance, the reference text.
        scorers: the new feature ``"lm"`` (and any others, weighed by ``fixed``).
        lm_weights, bonuses: the grid's rows and columns.
        fixed: weights of the other features (the first pass's, e.g. ``{"kenlm": 0.5, "words": 1}``).
        signature: what the numbers belong to, stored in the result.

    Returns:
        the weights of the lowest WER (the first such grid point), with the WER grid.
    """
    if len(references) != len(nbest):
        raise LmplugError(f"expected one reference per n-best list ({len(nbest)}), found {len(references)}")
    base = dict(fixed or {})
    scored = rescore_nbest(nbest, scorers, {**base, "lm": 0.0})
    lm_w = list(lm_weights) if 0.0 in lm_weights else [0.0, *lm_weights]
    bon = sorted([*bonuses, base["words"]]) if "words" in base and base["words"] not in bonuses else list(bonuses)
    grid = np.zeros((len(lm_w), len(bon)))
    for a, w in enumerate(lm_w):
        for b, bonus in enumerate(bon):
            best = rerank(scored, {**base, "lm": w, "words": bonus})
            grid[a, b] = word_error_rate(references, [h[0].text for h in best])
    a, b = np.unravel_index(int(np.argmin(grid)), grid.shape)
    return TuneResult({**base, "lm": float(lm_w[a]), "words": float(bon[b])}, float(grid[a, b]), "lm",
                      lm_w, bon, grid.tolist(), signature)
