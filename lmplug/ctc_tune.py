"""Tune the LM weight and the word insertion bonus of a CTC decoder on dev WER.

A grid search that re-decodes the dev set for every (LM weight, bonus) pair (the beam search
depends on the weights, so n-best reranking alone would be biased toward the first pass).
Writes the chosen weights (JSON, with the WER grid and a signature) and a WER heatmap (PNG).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lmplug.ctc import WORDS, CTCDecoder
from lmplug.errors import LmplugError


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
class TuneResult:
    """Outcome of :func:`tune_ctc_weights`.

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

    weights: dict[str, float]
    wer: float
    lm_name: str
    lm_weights: list[float]
    bonuses: list[float]
    grid: list[list[float]] = field(default_factory=list)
    signature: str = ""
    outer_name: str = ""
    outer_weights: list[float] = field(default_factory=list)
    outer_wer: list[float] = field(default_factory=list)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def decode_texts(decoder: CTCDecoder, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Best texts of pre-batched ``(emissions (B, T, V), lengths (B,))``."""
    return [h[0].text for x, lens in batches for h in decoder.decode(x, lens)]


def tune_ctc_weights(
    decoder: CTCDecoder,
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    references: Sequence[str],
    lm_weights: Sequence[float],
    bonuses: Sequence[float],
    lm_name: str | None = None,
    progress: Callable[[float, float, float], None] | None = None,
    outer: tuple[str, Sequence[float]] | None = None,
) -> TuneResult:
    """Grid-search the weight of scorer ``lm_name`` and the insertion bonus for dev WER.

    Args:
        decoder: a decoder holding the scorer (its other weights stay as they are).
        batches: dev emissions as ``(emissions (B, T, V), lengths (B,))`` batches.
        references: dev transcripts, in batch order.
        lm_weights: candidate weights of ``lm_name``.
        bonuses: candidate word insertion bonuses.
        lm_name: the scorer to tune (default: the decoder's only scorer).
        progress: called with ``(lm_weight, bonus, wer)`` after each grid point.
        outer: ``(name, weights)`` of a second scorer searched in an outer loop (e.g. KenLM's
            weight under the Transformer's in "both fused"): the whole grid is searched at each.

    Returns:
        the best point (ties: smaller weights first) and its grid. The decoder is left at the
        best weights.
    """
    if outer is not None:
        return _tune_outer(decoder, batches, references, lm_weights, bonuses, lm_name, progress, outer)
    names = list(decoder.scorers)
    if lm_name is None:
        if len(names) != 1:
            raise LmplugError(f"expected lm_name= naming one of the scorers {names}, found none")
        lm_name = names[0]
    if lm_name not in names:
        raise LmplugError(f"expected lm_name among the decoder's scorers {names}, found {lm_name!r}")
    if not lm_weights or not bonuses:
        raise LmplugError(f"expected non-empty grids, found {len(lm_weights)} LM weights and {len(bonuses)} bonuses")
    base = dict(decoder.weights)
    grid = np.zeros((len(lm_weights), len(bonuses)))
    for i, w in enumerate(lm_weights):
        for j, b in enumerate(bonuses):
            decoder.set_weights({**base, lm_name: float(w), WORDS: float(b)})
            grid[i, j] = word_error_rate(references, decode_texts(decoder, batches))
            if progress:
                progress(float(w), float(b), float(grid[i, j]))
    i, j = np.unravel_index(int(np.argmin(grid)), grid.shape)
    best = {**base, lm_name: float(lm_weights[i]), WORDS: float(bonuses[j])}
    decoder.set_weights(best)
    sig = "|".join([f"beam:{decoder.beam_size}", f"token_min_logp:{decoder.token_min_logp:g}", f"mode:{decoder.mode}",
                    f"history_words:{decoder.history_words}",
                    f"oov_penalty:{decoder.partial_oov_logp:g}", f"lookahead:{','.join(decoder.lookahead_scorers)}", f"n:{len(references)}"]
                   + [decoder.scorers[n].signature() for n in names])
    return TuneResult(best, float(grid[i, j]), lm_name, [float(x) for x in lm_weights], [float(x) for x in bonuses],
                      grid.tolist(), sig)


def _tune_outer(decoder, batches, references, lm_weights, bonuses, lm_name, progress, outer) -> TuneResult:
    """:func:`tune_ctc_weights` at every weight of the outer scorer; the best point overall."""
    name, values = outer
    if name not in decoder.scorers or name == lm_name:
        raise LmplugError(f"expected the outer scorer among the decoder's scorers {list(decoder.scorers)} and not "
                          f"the tuned one ({lm_name!r}), found {name!r}")
    if not values:
        raise LmplugError(f"expected outer weights for {name!r}, found none")
    base = dict(decoder.weights)
    best, per_value = None, []
    for v in values:
        decoder.set_weights({**base, name: float(v)})
        r = tune_ctc_weights(decoder, batches, references, lm_weights, bonuses, lm_name, progress)
        per_value.append(r.wer)
        if best is None or r.wer < best.wer:
            best = r
    decoder.set_weights(best.weights)
    best.outer_name, best.outer_weights, best.outer_wer = name, [float(v) for v in values], per_value
    return best


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
