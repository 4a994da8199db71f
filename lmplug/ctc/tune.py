"""Tune the LM weight and the word insertion bonus of a CTC decoder on dev WER.

A grid search that re-decodes the dev set for every (LM weight, bonus) pair (the beam search
depends on the weights, so n-best reranking alone would be biased toward the first pass).
Writes the chosen weights (JSON, with the WER grid and a signature) and a WER heatmap (PNG).

Each finished grid point can be written to a :class:`GridJournal` (one JSON line), so an
interrupted tuning resumes where it stopped; a :class:`ParallelGrid` decodes grid points in
worker processes (one decoder each), for machines with more cores than one decode uses.
:func:`memoize_word_scorers` puts the costly word scorers (the Transformer in word mode) behind a
:class:`~lmplug.scorers.memo.MemoScorer`, so the grid points a process decodes share their scores.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmplug.ctc.decoder import WORDS, CTCDecoder
from lmplug.constants import MEMO_MAX_ENTRIES
from lmplug.errors import LmplugError
from lmplug.features import TunedWeights
from lmplug.scorers.base import Scorer
from lmplug.scorers.memo import MemoScorer


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER with jiwer (total edits / total reference words)."""
    try:
        import jiwer
    except ImportError:
        raise LmplugError("WER needs jiwer: expected it installed, found none; run `pip install jiwer==4.0.0`") from None
    if len(references) != len(hypotheses):
        raise LmplugError(f"expected as many hypotheses as references, found {len(hypotheses)} and {len(references)}")
    return float(jiwer.wer(list(references), list(hypotheses)))


@dataclass
class TuneResult(TunedWeights):
    """Outcome of :func:`tune_ctc_weights` (``lmplug.TuneResult``).

    Attributes:
        weights: the chosen weights, e.g. ``{"lm": 0.5, "words": 1.0}``.
        wer: dev WER at the chosen weights.
        lm_name: the tuned scorer.
        lm_weights: grid rows.
        bonuses: grid columns.
        grid: WER per (lm weight, bonus), shape (len(lm_weights), len(bonuses)); with an outer
            scorer, the slice at its chosen weight.
        signature: decoder settings and scorer signatures the numbers belong to.
        outer_name: a second scorer whose weight was searched in an outer loop ("" if none).
        outer_weights: its candidate weights.
        outer_wer: the best dev WER of the inner grid at each of them.
    """

    wer: float
    lm_name: str
    lm_weights: list[float]
    bonuses: list[float]
    grid: list[list[float]] = field(default_factory=list)
    signature: str = ""
    outer_name: str = ""
    outer_weights: list[float] = field(default_factory=list)
    outer_wer: list[float] = field(default_factory=list)


def memoize_word_scorers(scorers: Mapping[str, Scorer | None], mode: str,
                         max_entries: int = MEMO_MAX_ENTRIES) -> dict[str, Scorer | None]:
    """``scorers`` with every costly word scorer behind a :class:`~lmplug.scorers.memo.MemoScorer`
    (build the tuning's decoder from them: its grid points then share the scores).

    A scorer is memoized where a decoder in ``mode`` scores words with it (not a token-level
    scorer in token mode, which must stay token level) and where its words are not
    ``cheap_words`` already (KenLM's table lookups); the others, and ``None`` (pyctcdecode's
    own KenLM), are returned as they are. The signatures do not change.
    """
    return {n: MemoScorer(s, max_entries)
            if isinstance(s, Scorer) and not s.cheap_words and not (mode == "token" and s.token_level) else s
            for n, s in scorers.items()}


def decode_texts(decoder: CTCDecoder, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Best texts of pre-batched ``(emissions (B, T, V), lengths (B,))``."""
    return [h[0].text for x, lens in batches for h in decoder.decode(x, lens)]


def tuning_signature(decoder: CTCDecoder, n: int) -> str:
    """Decoder settings and scorer signatures of a tuning run over ``n`` dev utterances (not the
    weights: they are what is tuned)."""
    return "|".join([f"beam:{decoder.beam_size}", f"token_min_logp:{decoder.token_min_logp:g}", f"mode:{decoder.mode}",
                     f"history_words:{decoder.history_words}", f"oov_penalty:{decoder.partial_oov_logp:g}",
                     f"lookahead:{','.join(decoder.lookahead_scorers)}"]
                    + ([f"lm_prefilter:{decoder.lm_prefilter:g}"] if hasattr(decoder, "lm_prefilter") else [])
                    + _lexicon_signature(decoder)
                    + [f"n:{n}"]
                    + [decoder.scorers[s].signature() for s in decoder.scorers])


def _lexicon_signature(decoder: CTCDecoder) -> list[str]:
    """``["lexicon"]`` for a character lexicon, a pronunciation lexicon's signature (with its word
    boundaries), or nothing."""
    lex = getattr(decoder, "lexicon", False)
    if not lex:
        return []
    if lex is True:
        return ["lexicon"]
    return [lex.signature(), f"implicit_boundaries:{decoder.implicit_boundaries}"]


def dev_fingerprint(batches: Sequence[tuple[Any, Any]], references: Sequence[str]) -> str:
    """Short hash of the dev emissions (values and lengths) and references."""
    h = hashlib.sha1()
    for x, lens in batches:
        for a in (x, lens):
            a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    h.update("\n".join(references).encode("utf-8"))
    return h.hexdigest()[:16]


def _weights_key(weights: dict[str, float]) -> str:
    return json.dumps({k: float(weights[k]) for k in sorted(weights)})


class GridJournal:
    """Dev WERs of finished grid points, one JSON line each, so an interrupted tuning resumes.

    A line is reused only under the same ``key`` (:func:`tuning_signature` plus
    :func:`dev_fingerprint`: same decoder settings, scorers and dev data) and the same weights
    of every scorer; lines of other runs in the file are kept but not used. A last line cut off
    by an interruption is dropped; a malformed line elsewhere is an error naming it.
    """

    def __init__(self, path: str | Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.done: dict[str, float] = {}
        if not self.path.is_file():
            return
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines and lines[-1]:  # no newline after the last line: its write was interrupted
            try:
                json.loads(lines[-1])
            except ValueError:
                lines = lines[:-1]  # cut off: dropped
            self.path.write_text("".join(line + "\n" for line in lines if line), encoding="utf-8")
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                k, w, wer = row["key"], row["weights"], float(row["wer"])
            except (ValueError, KeyError, TypeError) as e:
                raise LmplugError(f"{self.path}:{no}: expected a JSON line with key, weights and wer, found "
                                  f"{line[:80]!r} ({e}); delete the file (or pass --restart) to tune from scratch") from None
            if k == key:
                self.done[_weights_key(w)] = wer

    def get(self, weights: dict[str, float]) -> float | None:
        return self.done.get(_weights_key(weights))

    def add(self, weights: dict[str, float], wer: float) -> None:
        self.done[_weights_key(weights)] = wer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"key": self.key, "weights": {k: float(v) for k, v in weights.items()}, "wer": wer}) + "\n")
            f.flush()
            os.fsync(f.fileno())


class SerialGrid:
    """Decodes grid points one after the other with ``decoder``."""

    def __init__(self, decoder: CTCDecoder, batches: Sequence[tuple[np.ndarray, np.ndarray]], references: Sequence[str]) -> None:
        self.decoder, self.batches, self.references = decoder, batches, references

    def run(self, points: Sequence[dict[str, float]]) -> Iterator[tuple[int, float]]:
        """``(index into points, dev WER)`` as each point finishes."""
        for i, weights in enumerate(points):
            self.decoder.set_weights(weights)
            yield i, word_error_rate(self.references, decode_texts(self.decoder, self.batches))


_WORKER: SerialGrid | None = None


def _worker_init(make: Callable[[], tuple[CTCDecoder, Sequence, Sequence[str]]], threads: int) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(threads)
    _WORKER = SerialGrid(*make())


def _worker_wer(weights: dict[str, float]) -> float:
    return next(_WORKER.run([weights]))[1]


class ParallelGrid:
    """Decodes grid points in ``jobs`` worker processes, each with its own decoder from ``make()``
    (a picklable callable returning ``(decoder, batches, references)``; spawned processes, so
    nothing is shared) and ``threads`` torch threads. Use as a context manager."""

    def __init__(self, make: Callable[[], tuple[CTCDecoder, Sequence, Sequence[str]]], jobs: int, threads: int = 1) -> None:
        if jobs < 1:
            raise LmplugError(f"expected at least 1 job, found {jobs}")
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_init, initargs=(make, threads))

    def run(self, points: Sequence[dict[str, float]]) -> Iterator[tuple[int, float]]:
        futures = {self.pool.submit(_worker_wer, w): i for i, w in enumerate(points)}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    yield futures[f], f.result()
        finally:
            for f in pending:
                f.cancel()

    def __enter__(self) -> ParallelGrid:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def tune_ctc_weights(
    decoder: CTCDecoder,
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    references: Sequence[str],
    lm_weights: Sequence[float],
    bonuses: Sequence[float],
    lm_name: str | None = None,
    progress: Callable[[float, float, float], None] | None = None,
    outer: tuple[str, Sequence[float]] | None = None,
    journal: str | Path | None = None,
    grid_runner: SerialGrid | ParallelGrid | None = None,
) -> TuneResult:
    """Grid-search the weight of scorer ``lm_name`` and the insertion bonus for dev WER.

    Args:
        decoder: a decoder holding the scorer (its other weights stay as they are).
        batches: dev emissions as ``(emissions (B, T, V), lengths (B,))`` batches.
        references: dev transcripts, in batch order.
        lm_weights: candidate weights of ``lm_name``.
        bonuses: candidate word insertion bonuses.
        lm_name: the scorer to tune (default: the decoder's only scorer).
        progress: called with ``(lm_weight, bonus, wer)`` after each grid point (also for points
            taken from the journal).
        outer: ``(name, weights)`` of a second scorer searched in an outer loop (e.g. KenLM's
            weight under the Transformer's in "both fused"): the whole grid is searched at each.
        journal: a :class:`GridJournal` file: finished points are appended to it, and points it
            already holds for the same decoder settings, scorers and dev data are not decoded again.
        grid_runner: what decodes the grid points (default: :class:`SerialGrid` with ``decoder``;
            a :class:`ParallelGrid` must build the same decoder and dev data in its workers).

    Returns:
        the best point (ties: smaller weights first, outer weight first) and its grid. The decoder
        is left at the best weights.
    """
    names = list(decoder.scorers)
    if lm_name is None:
        if len(names) != 1:
            raise LmplugError(f"expected lm_name= naming one of the scorers {names}, found none")
        lm_name = names[0]
    if lm_name not in names:
        raise LmplugError(f"expected lm_name among the decoder's scorers {names}, found {lm_name!r}")
    if not lm_weights or not bonuses:
        raise LmplugError(f"expected non-empty grids, found {len(lm_weights)} LM weights and {len(bonuses)} bonuses")
    oname, ovals = outer if outer is not None else ("", [None])
    if outer is not None:
        if oname not in decoder.scorers or oname == lm_name:
            raise LmplugError(f"expected the outer scorer among the decoder's scorers {names} and not "
                              f"the tuned one ({lm_name!r}), found {oname!r}")
        if not ovals:
            raise LmplugError(f"expected outer weights for {oname!r}, found none")
    base = dict(decoder.weights)
    sig = tuning_signature(decoder, len(references))
    book = GridJournal(journal, f"{sig}|dev:{dev_fingerprint(batches, references)}") if journal else None
    points = [{**base, **({oname: float(v)} if outer is not None else {}), lm_name: float(w), WORDS: float(b)}
              for v in ovals for w in lm_weights for b in bonuses]
    wers = np.full(len(points), np.nan)
    todo = []
    for i, p in enumerate(points):
        got = book.get(p) if book else None
        if got is None:
            todo.append(i)
        else:
            wers[i] = got
            if progress:
                progress(p[lm_name], p[WORDS], got)
    runner = grid_runner or SerialGrid(decoder, batches, references)
    for k, wer in runner.run([points[i] for i in todo]):
        p = points[todo[k]]
        wers[todo[k]] = wer
        if book:
            book.add(p, wer)
        if progress:
            progress(p[lm_name], p[WORDS], wer)
    cube = wers.reshape(len(ovals), len(lm_weights), len(bonuses))
    k = int(np.argmin(wers))  # the first best point: smaller weights first
    best = points[k]
    o, i, j = np.unravel_index(k, cube.shape)
    decoder.set_weights(best)
    result = TuneResult(best, float(cube[o, i, j]), lm_name, [float(x) for x in lm_weights], [float(x) for x in bonuses],
                        cube[o].tolist(), sig)
    if outer is not None:
        result.outer_name, result.outer_weights = oname, [float(v) for v in ovals]
        result.outer_wer = [float(cube[k].min()) for k in range(len(ovals))]
    return result


def plot_wer_heatmap(result: TuneResult, path: str | Path) -> None:
    """Write the WER grid as a heatmap PNG (matplotlib, Agg backend), best point marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LmplugError("the heatmap needs matplotlib: expected it installed, found none; run `pip install matplotlib`") from None
    g = np.array(result.grid) * 100
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(result.bonuses), 1.0 + 0.6 * len(result.lm_weights)))
    im = ax.imshow(g, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(result.bonuses)), [f"{b:g}" for b in result.bonuses])
    ax.set_yticks(range(len(result.lm_weights)), [f"{w:g}" for w in result.lm_weights])
    ax.set_xlabel("word insertion bonus")
    ax.set_ylabel(f"weight of {result.lm_name}")
    for (i, j), v in np.ndenumerate(g):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                color="white" if v > g.min() + 0.6 * (np.ptp(g) or 1) else "black")
    i, j = np.unravel_index(int(np.argmin(g)), g.shape)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    at = f", {result.outer_name} {result.weights[result.outer_name]:g}" if result.outer_name else ""
    ax.set_title(f"dev WER % (best {g.min():.2f}{at})")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
