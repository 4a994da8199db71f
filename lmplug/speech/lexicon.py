"""Pronunciation lexicons for a phone CTC front-end: each word's phones from hama's own G2P.

``phone_lexicon(words, tokens)`` runs hama's grapheme-to-phoneme model (``hama.G2PModel``, the
model shipped in the same wheel as the phone CTC model of :class:`~lmplug.speech.frontends.HamaPhones`)
over a word list and keeps the pronunciations whose every phone is a label of the acoustic model
(``tokens``, e.g. ``HamaPhones().tokens``), so a CTC lexicon decoder can spell them. The G2P's
output vocabulary is the phone model's labels without ``<wb>`` and ``<blank>``; words it maps to
anything else are skipped and counted: special symbols (``<unk>``, ``<pad>``...), an empty output,
or one that reached the G2P's output limit (32 symbols: likely cut short).

For some English words (3.5% of a Gutenberg vocabulary: "ago", "became", "particular"...) the G2P
switches to a non-English mode that separates phones by spaces (``a ɣ ̞ o``). The phone model
emits such phones too (``p a ɾ t ̪ i k u l a ɾ`` for "particular" in real recordings), never the
space, so by default the spaces are dropped and the pronunciation kept (``spaced``: the words).

``lmplug make-lexicon`` writes the result in the format :func:`lmplug.ctc.lexicon.read_lexicon`
reads. Measured: about 30 ms per word on one CPU thread (hama 1.7.0; the 35,830 words of the
Gutenberg 5-gram: 18 min).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from lmplug.errors import LmplugError

SPECIAL_TOKENS = ("<pad>", "<sos>", "<eos>", "<unk>", "<blank>", "<wb>", "<b>", "[pad]", "[unk]")
SKIP_REASONS = ("empty", "truncated", "outside")  # why a word has no pronunciation (see the module docstring)


@dataclass(frozen=True)
class PhoneLexicon:
    """Pronunciations of a word list, and the words G2P could not give one.

    Attributes:
        pronunciations: word -> its pronunciations (each a tuple of phone labels), in word-list order.
        skipped: reason (one of ``SKIP_REASONS``) -> the words skipped for it.
        spaced: words kept whose G2P output separated phones by spaces (dropped).
        seconds: G2P time over the whole list (one thread).
    """

    pronunciations: dict[str, list[tuple[str, ...]]]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    spaced: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        """Counts and speed, for a log line: words kept, skipped per reason, ms per word."""
        n = len(self.pronunciations) + sum(len(v) for v in self.skipped.values())
        return {"words": len(self.pronunciations), "spaced": len(self.spaced),
                **{f"skipped_{k}": len(v) for k, v in self.skipped.items()},
                "g2p_ms_per_word": round(1000 * self.seconds / max(n, 1), 2)}


def load_g2p():
    """hama's G2P model (the package is imported lazily; missing, it fails with the install command)."""
    from lmplug.speech.frontends import _require

    return _require("hama").G2PModel()


def spelling_tokens(tokens: Sequence[str]) -> frozenset[str]:
    """The labels a pronunciation may use: ``tokens`` without blanks, word boundaries, special
    ``<...>`` symbols and whitespace."""
    return frozenset(t for t in tokens if t.strip() == t and t and t.lower() not in SPECIAL_TOKENS)


def phone_lexicon(words: Iterable[str], tokens: Sequence[str], g2p=None,
                  progress: Callable[[int], None] | None = None, drop_spaces: bool = True) -> PhoneLexicon:
    """Pronunciations of ``words`` over the phone labels ``tokens`` from hama's G2P.

    Args:
        words: the words (repeats are looked up once), e.g. a KenLM model's unigrams.
        tokens: the acoustic model's labels (``HamaPhones().tokens``); a pronunciation keeps only
            if every phone is one of them (see :func:`spelling_tokens`).
        g2p: a ``hama.G2PModel`` (default: :func:`load_g2p`); anything with ``predict(word)``
            returning an object with ``alignments[i].phoneme`` and ``max_output_len``.
        progress: called with 1 after each word (a progress bar's ``update``).
        drop_spaces: keep G2P output whose phones are separated by spaces, without the spaces
            (False: skip such words as "outside").

    Returns:
        a :class:`PhoneLexicon`: one pronunciation per word kept, the skipped words by reason.
    """
    allowed = spelling_tokens(tokens)
    if not allowed:
        raise LmplugError(f"expected phone labels to spell pronunciations with, found none in {list(tokens)[:12]}")
    g2p = g2p if g2p is not None else load_g2p()
    limit = int(getattr(g2p, "max_output_len", 0)) or None
    prons: dict[str, list[tuple[str, ...]]] = {}
    skipped: dict[str, list[str]] = {k: [] for k in SKIP_REASONS}
    spaced: list[str] = []
    seen: set[str] = set()
    t0 = time.perf_counter()
    for word in words:
        if word in seen:
            continue
        seen.add(word)
        phones = tuple(a.phoneme for a in g2p.predict(word).alignments)
        full = len(phones)
        if drop_spaces and any(not p.strip() for p in phones):
            phones = tuple(p for p in phones if p.strip())
            if phones:
                spaced.append(word)
        if not phones:
            skipped["empty"].append(word)
        elif limit is not None and full >= limit:
            skipped["truncated"].append(word)
        elif not allowed.issuperset(phones):
            skipped["outside"].append(word)
        else:
            prons[word] = [phones]
        if progress is not None:
            progress(1)
    kept = [w for w in spaced if w in prons]
    return PhoneLexicon(prons, skipped, kept, time.perf_counter() - t0)
