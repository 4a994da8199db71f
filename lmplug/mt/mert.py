"""Tune log-linear reranking weights for corpus BLEU: MERT-style coordinate ascent.

Along one weight ``w_d`` every hypothesis score is a line ``a + gamma * b`` (``b`` = the
hypothesis' value of feature d, ``a`` = the rest of its weighted sum). The hypothesis a sentence
picks, as a function of gamma, is read off the upper envelope of its lines; merging every
sentence's envelope breakpoints gives the 1-best of every sentence on every interval of gamma,
and summing sacrebleu's sufficient statistics (matches and totals per n-gram order, lengths)
over the sweep gives the exact corpus BLEU on each interval (Och 2003). The best interval's
midpoint becomes the new weight. Passes over all weights repeat until BLEU stops rising, from
the starting point and from random restarts; the best point wins. BLEU does not change when all
weights are scaled by a positive number, so the result is reported with L1 norm 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from lmplug.errors import LmplugError, expect_each_once
from lmplug.features import TunedWeights
from lmplug.mt.nbest import NBest, feature_names

N_STATS = 10  # sacrebleu BLEU: hyp_len, ref_len, matches 1-4, totals 1-4


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise LmplugError("BLEU needs sacrebleu: pip install 'lmplug[mt]' (sacrebleu==2.6.0)") from None
    return sacrebleu


def bleu_stats(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """sacrebleu's per-sentence BLEU statistics (N, 10); their sum gives corpus BLEU exactly."""
    if len(hypotheses) != len(references):
        raise LmplugError(f"expected one reference per hypothesis, found {len(references)} for {len(hypotheses)}")
    bleu = _sacrebleu().BLEU()
    return np.asarray(bleu._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=np.float64)


def bleu_signature() -> str:
    """sacrebleu's BLEU signature for one reference and default settings."""
    bleu = _sacrebleu().BLEU()
    bleu.corpus_score(["a"], [["a"]])
    return str(bleu.get_signature())


def bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0-100) from summed statistics (..., 10), smoothed as sacrebleu's default
    ``smooth:exp`` (the method its signature names): the k-th order with no match counts as
    1 / 2**k matches. So one missing 4-gram no longer makes BLEU 0 (and MERT's objective flat).
    0 when nothing matches or some order has no n-grams, as in sacrebleu."""
    hyp, ref = stats[..., 0], stats[..., 1]
    m, t = stats[..., 2:6], stats[..., 6:10]
    halvings = np.cumsum(m == 0, axis=-1)  # sacrebleu's smooth_mteval = 2**halvings
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(m > 0, 100.0 * m / t, 100.0 / (2.0 ** halvings * t))  # percent, as sacrebleu
        bp = np.where(hyp < ref, np.exp(1.0 - ref / hyp), 1.0)
        out = bp * np.exp(np.log(prec).mean(-1))
    valid = (t > 0).all(-1) & (m > 0).any(-1) & (hyp > 0)
    return np.where(valid & np.isfinite(out), out, 0.0)


def upper_envelope(slopes: np.ndarray, intercepts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper envelope of lines ``intercepts + gamma * slopes``.

    Returns:
        starts (E,) float, the gamma where each envelope segment begins (``starts[0] = -inf``),
        and lines (E,) int, the index of the line on top from there on. Among identical lines
        the earliest index wins, as in ``rerank_translations`` (first maximum).
    """
    # increasing slope; equal slopes: the highest intercept last (it replaces the others),
    # exact ties: the lowest index last
    order = sorted(range(len(slopes)), key=lambda j: (slopes[j], intercepts[j], -j))
    starts: list[float] = []
    lines: list[int] = []
    for j in order:
        b, a = slopes[j], intercepts[j]
        while lines:
            k = lines[-1]
            if slopes[k] == b:  # parallel: the later one in `order` is at least as high
                lines.pop()
                starts.pop()
                continue
            x = (intercepts[k] - a) / (b - slopes[k])
            if x <= starts[-1]:
                lines.pop()
                starts.pop()
                continue
            starts.append(x)
            lines.append(j)
            break
        else:
            starts.append(-math.inf)
            lines.append(j)
    return np.asarray(starts), np.asarray(lines, dtype=np.int64)


@dataclass
class LineSearchResult:
    gamma: float  # best value of the weight
    bleu: float  # corpus BLEU there
    low: float  # the interval of gamma with that BLEU
    high: float


def line_search(slopes: Sequence[np.ndarray], intercepts: Sequence[np.ndarray], stats: Sequence[np.ndarray],
                current: float | None = None, window: int = 0) -> LineSearchResult:
    """Exact search of one weight: the gamma maximizing corpus BLEU of the per-sentence argmax.

    Args:
        slopes, intercepts: per sentence, (n_i,) arrays: hypothesis score = intercept + gamma * slope.
        stats: per sentence, (n_i, 10) BLEU statistics of its hypotheses.
        current: the weight's present value; kept when it already lies in a best interval.
        window: choose the interval by its BLEU averaged with ``window`` intervals on each side
            (Cer et al. 2008): a wide plateau beats a narrow spike that a few sentences make.
            The reported ``bleu`` stays the interval's own.
    """
    base = np.zeros(N_STATS)
    events: list[tuple[float, np.ndarray]] = []
    for b, a, s in zip(slopes, intercepts, stats):
        starts, lines = upper_envelope(np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64))
        base += s[lines[0]]
        for k in range(1, len(lines)):
            events.append((float(starts[k]), s[lines[k]] - s[lines[k - 1]]))
    events.sort(key=lambda e: e[0])
    xs = np.asarray([e[0] for e in events])
    if len(events):
        cum = base + np.cumsum(np.stack([e[1] for e in events]), axis=0)
        last = np.r_[xs[1:] != xs[:-1], True]  # apply every switch at one gamma together
        bounds = xs[last]
        totals = np.vstack([base[None], cum[last]])
    else:
        bounds, totals = np.zeros(0), base[None]
    scores = bleu_from_stats(totals)  # interval i spans (bounds[i-1], bounds[i])
    lows = np.r_[-np.inf, bounds]
    highs = np.r_[bounds, np.inf]
    goal = _window_mean(scores, window) if window > 0 else scores
    best = float(goal.max())
    cands = np.flatnonzero(goal >= best - 1e-12)
    if current is not None:
        for i in cands:
            if lows[i] < current < highs[i]:
                return LineSearchResult(current, float(scores[i]), float(lows[i]), float(highs[i]))
    i = int(cands[0])
    lo, hi = float(lows[i]), float(highs[i])
    if math.isinf(lo) and math.isinf(hi):
        gamma = current if current is not None else 0.0
    elif math.isinf(lo):
        gamma = hi - max(1.0, abs(hi))
    elif math.isinf(hi):
        gamma = lo + max(1.0, abs(lo))
    else:
        gamma = 0.5 * (lo + hi)
    return LineSearchResult(gamma, float(scores[i]), lo, hi)


def _window_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``x[i-k : i+k+1]`` (clipped at the ends) for every i."""
    c = np.r_[0.0, np.cumsum(x)]
    i = np.arange(len(x))
    lo, hi = np.maximum(i - k, 0), np.minimum(i + k + 1, len(x))
    return (c[hi] - c[lo]) / (hi - lo)


@dataclass
class MertResult(TunedWeights):
    """Outcome of :func:`tune_weights`: ``weights`` (L1-normalized) and what they reached."""

    bleu: float  # dev corpus BLEU of the reranked 1-best
    signature: str  # the tuner's settings + sacrebleu's BLEU signature


def _feature_matrix(nbest: NBest, names: Sequence[str]) -> list[np.ndarray]:
    return [np.asarray([[e.scores[n] for n in names] for e in hyps], dtype=np.float64) for hyps in nbest]


def _corpus_bleu(X: list[np.ndarray], S: list[np.ndarray], w: np.ndarray) -> float:
    tot = np.zeros(N_STATS)
    for x, s in zip(X, S):
        tot += s[int(np.argmax(x @ w))]
    return float(bleu_from_stats(tot))


def _ascend(X: list[np.ndarray], S: list[np.ndarray], w: np.ndarray, max_passes: int, tol: float, window: int = 0
            ) -> tuple[np.ndarray, float]:
    """Coordinate ascent from ``w``: passes over the weights until BLEU rises by at most ``tol``
    (with ``window``, the smoothed objective: until a pass moves no weight)."""
    w = w.copy()
    bleu = _corpus_bleu(X, S, w)
    for _ in range(max_passes):
        start, moved = bleu, False
        for d in range(len(w)):
            rest = w.copy()
            rest[d] = 0.0
            res = line_search([x[:, d] for x in X], [x @ rest for x in X], S, current=float(w[d]), window=window)
            if window > 0:  # the smoothed choice is taken even when its own BLEU is a little lower
                moved |= res.gamma != w[d]
                w[d], bleu = res.gamma, res.bleu
            elif res.bleu > bleu + 1e-12:
                w[d], bleu = res.gamma, res.bleu
        converged = not moved if window > 0 else bleu - start <= tol
        if converged:
            break
    return w, bleu


def tune_weights(nbest: NBest, references: Sequence[str], features: Sequence[str] | None = None,
                 init: Mapping[str, float] | None = None, restarts: int = 20, seed: int = 1,
                 max_passes: int = 10, tol: float = 1e-4, progress: bool = True, window: int = 0) -> MertResult:
    """Find weights maximizing dev corpus BLEU (sacrebleu defaults) of the reranked 1-best.

    Args:
        nbest: dev n-best lists carrying every feature in ``features``.
        references: one per sentence of ``nbest``.
        features: the features to weight (default: all the lists carry).
        init: the first starting point (default: weight 1 on ``nmt_norm`` if present, else on the
            first feature); ``restarts`` more start from uniform random points in [-1, 1].
        window: smooth each line search over this many envelope intervals on each side
            (:func:`line_search`); 0 is plain MERT. The best start is the one of highest BLEU.
    """
    from tqdm import tqdm

    if len(references) != len(nbest):
        raise LmplugError(f"expected one reference per n-best sentence ({len(nbest)}), found {len(references)}")
    if window < 0:
        raise LmplugError(f"expected a smoothing window >= 0 (intervals on each side), found {window}")
    if restarts < 0:
        raise LmplugError(f"expected restarts >= 0 (random starting points besides the first), found {restarts}")
    carried = feature_names(nbest)
    names = list(features) if features else carried
    expect_each_once(names)
    unknown = sorted(set(names) - set(carried)) + sorted(set(init or {}) - set(names))
    if unknown:
        raise LmplugError(f"unknown features {unknown}; the n-best lists carry {carried} and tuning uses {names}")
    X = _feature_matrix(nbest, names)
    flat_refs = [references[i] for i, hyps in enumerate(nbest) for _ in hyps]
    flat = bleu_stats([e.text for hyps in nbest for e in hyps], flat_refs)
    S, pos = [], 0
    for hyps in nbest:
        S.append(flat[pos : pos + len(hyps)])
        pos += len(hyps)
    w0 = np.zeros(len(names))
    if init:
        for k, v in init.items():
            w0[names.index(k)] = v
    else:
        w0[names.index("nmt_norm") if "nmt_norm" in names else 0] = 1.0
    rng = np.random.default_rng(seed)
    starts = [w0] + [rng.uniform(-1, 1, len(names)) for _ in range(restarts)]
    best_w, best_bleu = w0, -1.0
    bar = tqdm(starts, desc="tune-rerank", unit="start", disable=not progress)
    for w in bar:
        w, bleu = _ascend(X, S, w, max_passes, tol, window)
        if bleu > best_bleu + 1e-12:
            best_w, best_bleu = w, bleu
        bar.set_postfix(bleu=f"{best_bleu:.2f}")
    bar.close()
    norm = float(np.abs(best_w).sum()) or 1.0
    weights = {n: float(v / norm) for n, v in zip(names, best_w)}
    sig = (f"tuner:mert|restarts:{restarts}|seed:{seed}|{f'window:{window}|' if window else ''}features:{','.join(names)}|"
           f"bleu:{bleu_signature()}")
    return MertResult(weights, best_bleu, sig)


def oracle_selection(nbest: NBest, references: Sequence[str], passes: int = 3) -> list[int]:
    """Per sentence the hypothesis index that (greedily) maximizes corpus BLEU: the n-best oracle.

    Starts from each list's first hypothesis and, sentence by sentence, swaps in the hypothesis
    that raises corpus BLEU most with the others fixed; repeats ``passes`` times.
    """
    if len(references) != len(nbest):
        raise LmplugError(f"expected one reference per n-best sentence ({len(nbest)}), found {len(references)}")
    flat_refs = [references[i] for i, hyps in enumerate(nbest) for _ in hyps]
    flat = bleu_stats([e.text for hyps in nbest for e in hyps], flat_refs)
    S, pos = [], 0
    for hyps in nbest:
        S.append(flat[pos : pos + len(hyps)])
        pos += len(hyps)
    pick = [0] * len(nbest)
    total = sum(s[0] for s in S)
    for _ in range(passes):
        changed = False
        for i, s in enumerate(S):
            cand = total - s[pick[i]] + s  # (n_i, 10)
            j = int(np.argmax(bleu_from_stats(cand)))
            if j != pick[i] and bleu_from_stats(cand[j]) > bleu_from_stats(total):
                total, pick[i], changed = cand[j], j, True
        if not changed:
            break
    return pick
