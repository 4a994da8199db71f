"""Second pass: rescore CTC n-best lists with any scorer, and rerank by named feature weights.

Each hypothesis carries its features (``scores``: ``"ctc"``, first-pass LM scores, ``"words"``);
rescoring adds one feature per new scorer (a whole-sentence natural-log score, ``</s>``
included) and re-sorts by ``sum_k weights[k] * scores[k]`` (``"ctc"`` weighs 1 unless given).
Because features are kept, weights can be re-tuned on n-best lists without running any model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lmplug.ctc.decoder import CTC, WORDS, CTCHypothesis
from lmplug.errors import LmplugError
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
            new.append(h._replace(score=sum(v * h.scores[k] for k, v in w.items())))
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
