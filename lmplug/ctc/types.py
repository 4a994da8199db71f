"""Public types of CTC decoding: the decoder's configuration, its result, and the feature names.

Both the decoder (:mod:`lmplug.ctc.decoder`) and the search engines (:mod:`lmplug.ctc.search`,
:mod:`lmplug.ctc.torch_search`) import this module; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from lmplug.constants import LM_PREFILTER

if TYPE_CHECKING:
    from lmplug.ctc.lexicon import Lexicon

WORDS = "words"  # feature: number of words (its weight is the word insertion bonus)
CTC = "ctc"  # feature: CTC log-probability (weight 1, fixed)
AVG_WORD_LEN = 6  # partial words longer than this get a proportionally larger OOV penalty


@dataclass(frozen=True)
class CTCDecoderConfig:
    """The decoder's parameters and their defaults (see :func:`lmplug.ctc.decoder.build_ctc_decoder`)."""

    mode: str = "word"  # "word": LMs score completed words (any labels); "token": labels are the LM's pieces
    beam_size: int = 16  # hypotheses kept per utterance after each frame
    nbest: int = 1  # hypotheses returned per utterance (at most beam_size)
    token_min_logp: float = -5.0  # labels below this log-prob in a frame are not expanded (the arg-max always is)
    token_top_k: int | None = 16  # at most this many labels expanded per frame (None: no limit)
    beam_prune_logp: float = -10.0  # drop hypotheses this far below the best of their utterance
    lm_prefilter: float = LM_PREFILTER  # word-score only the top lm_prefilter * beam_size prefixes per utterance
    partial_oov_logp: float = -10.0  # added (unweighted) to an open word that begins no known word; 0: off
    prune_history: bool | None = None  # recombine beams whose futures score alike (None: where exact)
    lexicon: bool | Lexicon = False  # True: spell only the first word scorer's words (characters); a Lexicon: its words
    implicit_boundaries: bool = False  # a Lexicon's word may also end where the next word's first token follows
    blank_id: int | None = None  # column of the blank when its label is not a recognized blank name
    history_words: int | None = None  # recombine unbounded-history scorers by their last N words (None: don't)
    lookahead: tuple[str, ...] = ()  # scorers whose prefix_scores guide pruning inside a word
    search: str = "numpy"  # "numpy" (on the host) or "torch" (tensor operations on the LM's device)
    compile: bool | str = False  # search="torch": torch.compile the frame step (a string: torch.compile's mode)


class CTCHypothesis(NamedTuple):
    """One decoded hypothesis.

    Attributes:
        text: the words, single-spaced.
        tokens: acoustic label ids of the collapsed path (no blanks, no repeats).
        word_frames: ``(start, end)`` emission frame indices per word of ``text`` (end exclusive).
        score: the fused score (what the beam search ranked by).
        scores: per-feature scores: ``"ctc"`` (log P_ctc, summed over merged paths), one entry
            per scorer (natural-log LM score incl. end of sentence), ``"words"`` (word count).
    """

    text: str
    tokens: list[int]
    word_frames: list[tuple[int, int]]
    score: float
    scores: dict[str, float]
