"""The label set of a CTC acoustic model: blank, word boundaries, and how labels spell text.

Three styles, detected from the labels:

- **characters** with a word delimiter, ``" "`` or ``"|"`` (wav2vec2 style): a word ends at a
  delimiter; repeated or leading delimiters spell nothing.
- **sentencepiece** pieces: a label starting with ``▁`` starts a new word (and ends the previous
  one); no delimiter label.
- **tokens** of any kind (e.g. IPA phones) with a word-boundary label: ``"<wb>"`` when present,
  or any label given as ``word_delimiter``. A word ends at the boundary as with characters; a
  token spells its label (whitespace removed), so without a lexicon a word reads as its tokens
  run together. Words proper come from a pronunciation lexicon (:mod:`lmplug.ctc.lexicon`).

The blank is ``""``, ``"<pad>"``, ``"[pad]"``, ``"<blank>"``, ``"<b>"`` or ``"_"`` (when no other
blank is present), or given by index. Token labels may hold several of those names (hama's
phones have ``<pad>`` and ``<blank>``): then ``<blank>`` is the blank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmplug.errors import LmplugError

SPM_SPACE = "▁"
BLANK_NAMES = ("", "<pad>", "[pad]", "<blank>", "<b>", "[blank]")
UNK_TEXT = "⁇"
WORD_BOUNDARY = "<wb>"  # the word-boundary label that makes a label set token style (hama's phones)
TOKEN_BLANKS = ("<blank>", "[blank]")  # token style: the blank among several blank-like names


@dataclass(frozen=True)
class CTCLabels:
    """A normalized CTC label set.

    Attributes:
        labels: the labels as given, one per emission column.
        blank_id: column of the CTC blank.
        delimiter_id: column of the word delimiter (character style), else None.
        is_spm: sentencepiece style (``▁`` starts words).
        is_tokens: token style (any labels, e.g. phones, with a word-boundary label): words are
            spelled by a pronunciation lexicon, not by the labels' characters.
        text: (V,) what each label spells, ``▁``/delimiter/blank removed (object array of str).
        starts_word: (V,) bool, sentencepiece style: the label begins a new word.
        text_len: (V,) int, ``len(text)``.
    """

    labels: tuple[str, ...]
    blank_id: int
    delimiter_id: int | None
    is_spm: bool
    text: np.ndarray
    starts_word: np.ndarray
    text_len: np.ndarray
    is_tokens: bool = False

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def style(self) -> str:
        """``"characters"``, ``"sentencepiece"`` or ``"tokens"`` (see the module docstring)."""
        return "sentencepiece" if self.is_spm else "tokens" if self.is_tokens else "characters"

    def spell(self, tokens: Sequence[int]) -> str:
        """Text of a collapsed label sequence (no blanks), whitespace normalized."""
        if self.is_spm:
            s = "".join((" " if self.starts_word[t] else "") + self.text[t] for t in tokens)
        else:
            s = "".join(" " if t == self.delimiter_id else self.text[t] for t in tokens)
        return " ".join(s.split())


def build_labels(labels: Sequence[str] | CTCLabels, blank_id: int | None = None,
                 word_delimiter: str | None = None) -> CTCLabels:
    """Normalize a CTC label list (see the module docstring for the styles); a built
    :class:`CTCLabels` is returned as it is.

    Args:
        labels: one label per emission column.
        blank_id: the blank's column, when its label is not a recognized blank name.
        word_delimiter: the word-boundary label (default: ``"<wb>"`` if present, which makes the
            labels token style, else ``" "`` or ``"|"``). Any other label given here makes them
            token style too; ``" "`` or ``"|"`` given here are character style as detected.

    Raises:
        LmplugError: no blank, duplicates, a character set without a word delimiter, or a
            ``word_delimiter`` that is not a label (or is the blank).
    """
    if isinstance(labels, CTCLabels):  # already built: idempotent
        if blank_id is not None and blank_id != labels.blank_id:
            raise LmplugError(f"expected blank_id {labels.blank_id} of the given CTCLabels, found {blank_id}")
        found = labels.labels[labels.delimiter_id] if labels.delimiter_id is not None else None
        if word_delimiter is not None and word_delimiter != found:
            raise LmplugError(f"expected word_delimiter {found!r} of the given CTCLabels, found {word_delimiter!r}")
        return labels
    if isinstance(labels, str) or not hasattr(labels, "__iter__") or not all(isinstance(x, str) for x in labels):
        raise LmplugError(f"expected labels as a list of strings, found {type(labels).__name__}")
    labels = tuple(labels)
    if len(labels) < 2:
        raise LmplugError(f"expected at least 2 labels (a blank and a symbol), found {len(labels)}")
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise LmplugError(f"expected unique labels, found duplicates {dup[:5]}")
    if word_delimiter is not None and word_delimiter not in labels:
        raise LmplugError(f"expected the word_delimiter {word_delimiter!r} among the labels, found it missing "
                          f"from {list(labels)[:12]}...")
    if word_delimiter is None and WORD_BOUNDARY in labels:
        word_delimiter = WORD_BOUNDARY
    is_tokens = word_delimiter is not None and word_delimiter not in (" ", "|")
    if blank_id is None:
        cands = [i for i, x in enumerate(labels) if x.lower() in BLANK_NAMES]
        if not cands and "_" in labels:
            cands = [labels.index("_")]
        if len(cands) > 1 and is_tokens:  # hama: <pad> is a G2P symbol, <blank> the blank
            cands = [i for i in cands if labels[i].lower() in TOKEN_BLANKS] or cands
        if len(cands) != 1:
            raise LmplugError(
                f"expected exactly one CTC blank label among {list(BLANK_NAMES) + ['_']} (or blank_id=...), "
                f"found {len(cands)}: {[labels[i] for i in cands]} in labels {list(labels)[:12]}..."
            )
        blank_id = cands[0]
    elif not 0 <= blank_id < len(labels):
        raise LmplugError(f"expected blank_id in [0, {len(labels)}), found {blank_id}")
    if word_delimiter is not None and labels.index(word_delimiter) == blank_id:
        raise LmplugError(f"expected a word_delimiter other than the blank, found {word_delimiter!r} (column {blank_id})")
    is_spm = not is_tokens and any(x.startswith(SPM_SPACE) for i, x in enumerate(labels) if i != blank_id)
    V = len(labels)
    text = np.empty(V, dtype=object)
    starts = np.zeros(V, dtype=bool)
    delimiter_id = None
    for i, x in enumerate(labels):
        if i == blank_id:
            text[i] = ""
        elif x.lower() in ("<unk>", "[unk]"):
            text[i] = UNK_TEXT
            starts[i] = is_spm
        elif is_spm:
            starts[i] = x.startswith(SPM_SPACE)
            text[i] = x[1:] if starts[i] else x
        elif is_tokens:
            text[i] = "".join(x.split())
        else:
            text[i] = x
    if not is_spm:
        for d in ((word_delimiter,) if word_delimiter is not None else (" ", "|")):
            if d in labels and labels.index(d) != blank_id:
                delimiter_id = labels.index(d)
                text[delimiter_id] = ""
                break
        if delimiter_id is None:
            raise LmplugError(
                "expected a word delimiter label ' ' or '|' among character labels (or sentencepiece "
                f"labels starting with '▁', or a word boundary '{WORD_BOUNDARY}' among token labels), found none "
                f"in {list(labels)[:12]}..."
            )
    return CTCLabels(
        labels=labels,
        blank_id=blank_id,
        delimiter_id=delimiter_id,
        is_spm=is_spm,
        text=text,
        starts_word=starts,
        text_len=np.array([len(t) for t in text], dtype=np.int64),
        is_tokens=is_tokens,
    )
