"""A pronunciation lexicon: each word's spellings as sequences of CTC labels, and its file format.

A :class:`Lexicon` lets the CTC decoder spell words from any token set (e.g. phones): the search
walks a trie of the pronunciations and, at a word boundary, hands the *word* (not its tokens) to
the word scorers. Several words may share a pronunciation (homophones: each one is a candidate,
ranked by the scorers) and a word may have several pronunciations (each one reaches it).

The file format is torchaudio's / flashlight's: one pronunciation a line, the word, a tab, the
tokens separated by spaces (``their<TAB>ð ɛ ɹ``). A word repeats on a line of its own for each
further pronunciation. A trailing word-delimiter token (``hello<TAB>h e l l o |`` in
flashlight's character lexicons) is dropped; empty lines are skipped.

Character labels need no file: ``lexicon=True`` spells the words of the first word scorer's
vocabulary letter by letter (:func:`lmplug.ctc.plan.prefix_tries`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from lmplug.ctc.labels import CTCLabels, build_labels
from lmplug.errors import LmplugError


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Words and their pronunciations over one CTC label set.

    Attributes:
        labels: the label set the pronunciations index.
        entries: word -> its pronunciations, each a tuple of label ids (no blank, no delimiter),
            in first-seen order; read-only.
        source: where it came from (a file path, or ``"<memory>"``), for signatures and errors.
    """

    labels: CTCLabels
    entries: Mapping[str, tuple[tuple[int, ...], ...]]
    source: str = "<memory>"

    @property
    def words(self) -> tuple[str, ...]:
        """The words, in first-seen order."""
        return tuple(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, word: object) -> bool:
        return word in self.entries

    def __getitem__(self, word: str) -> tuple[tuple[str, ...], ...]:
        """The pronunciations of ``word`` as label strings."""
        return tuple(tuple(self.labels.labels[t] for t in p) for p in self.entries[word])

    def signature(self) -> str:
        """``lexicon:<source>|words:N|prons:M|sha:<12 hex>`` (the hash covers every entry)."""
        h = hashlib.sha256()
        for w, prons in self.entries.items():
            for p in prons:
                h.update(f"{w}\t{' '.join(self.labels.labels[t] for t in p)}\n".encode())
        n = sum(len(p) for p in self.entries.values())
        return f"lexicon:{self.source}|words:{len(self.entries)}|prons:{n}|sha:{h.hexdigest()[:12]}"

    def trie(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """The pronunciation trie as arrays.

        Returns:
            ``table`` (states, V+1) int32: next state of ``(state, label)``, -1 where no
            pronunciation continues so (state 0: the empty prefix); ``homophones`` (states, K)
            int32: ids into ``words`` of the words a state spells completely, -1 padded (K: the
            most words one pronunciation has, at least 1); ``words``.
        """
        words = self.words
        trans: list[dict[int, int]] = [{}]
        ends: dict[int, list[int]] = {}
        for wid, w in enumerate(words):
            for pron in self.entries[w]:
                st = 0
                for t in pron:
                    nxt = trans[st].get(t)
                    if nxt is None:
                        nxt = trans[st][t] = len(trans)
                        trans.append({})
                    st = nxt
                if wid not in ends.setdefault(st, []):
                    ends[st].append(wid)
        table = np.full((len(trans), self.labels.size + 1), -1, dtype=np.int32)
        for st, d in enumerate(trans):
            for t, nxt in d.items():
                table[st, t] = nxt
        homophones = np.full((len(trans), max([1] + [len(v) for v in ends.values()])), -1, dtype=np.int32)
        for st, ids in ends.items():
            homophones[st, : len(ids)] = ids
        return table, homophones, words


def build_lexicon(pronunciations: Mapping[str, Iterable[Sequence[str]]], labels: Sequence[str] | CTCLabels,
                  source: str = "<memory>") -> Lexicon:
    """A :class:`Lexicon` from ``{word: [pronunciation, ...]}``, each pronunciation a sequence of labels.

    Raises:
        LmplugError: a sentencepiece label set, an empty word or pronunciation, or a token that is
            not a label, is the blank, or is the word delimiter.
    """
    lab, index = _label_index(labels)
    entries: dict[str, list[tuple[int, ...]]] = {}
    for word, prons in pronunciations.items():
        for pron in (prons if not isinstance(prons, str) else [prons]):
            if isinstance(pron, str):
                raise LmplugError(f"lexicon word {word!r}: expected a pronunciation as a sequence of labels, found the "
                                  f"string {pron!r} (split it into tokens)")
            _add(entries, word, list(pron), lab, index, where=f"lexicon word {word!r}")
    return _finish(entries, lab, source)


def read_lexicon(path: str | Path, labels: Sequence[str] | CTCLabels) -> Lexicon:
    """Read a lexicon file (``word<TAB>tok tok tok``, one pronunciation a line) over ``labels``.

    Raises:
        LmplugError: a missing or empty file, or a bad line (named ``file:line``): no tab-separated
            pronunciation, an unknown token (naming the label set), the blank, a delimiter inside
            a pronunciation.
    """
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"lexicon not found: expected a file (word<TAB>tokens, one pronunciation a line) at {p}")
    lab, index = _label_index(labels)
    entries: dict[str, list[tuple[int, ...]]] = {}
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            word, tab, rest = line.partition("\t")
            if not tab:  # flashlight files may separate the word by a space
                word, _, rest = line.strip().partition(" ")
            word = word.strip()
            if not word or not rest.split():
                raise LmplugError(f"{p}:{n}: expected 'word<TAB>tok tok ...' (a word and a non-empty pronunciation), "
                                  f"found {line!r}")
            _add(entries, word, rest.split(), lab, index, where=f"{p}:{n}")
    if not entries:
        raise LmplugError(f"{p}: expected at least one 'word<TAB>tok tok ...' line, found none")
    return _finish(entries, lab, str(p))


def write_lexicon(path: str | Path, pronunciations: Mapping[str, Iterable[Sequence[str]]]) -> int:
    """Write ``{word: [pronunciation, ...]}`` in the format :func:`read_lexicon` reads (atomically);
    returns the number of lines."""
    from lmplug.files import write_lines

    lines = []
    for word, prons in pronunciations.items():
        if not word or any(c.isspace() for c in word):
            raise LmplugError(f"expected lexicon words without whitespace, found {word!r}")
        for pron in prons:
            if not pron or any(not t or any(c.isspace() for c in t) for t in pron):
                raise LmplugError(f"lexicon word {word!r}: expected a non-empty pronunciation of tokens without "
                                  f"whitespace, found {list(pron)}")
            lines.append(f"{word}\t{' '.join(pron)}")
    write_lines(str(path), lines)
    return len(lines)


def _label_index(labels: Sequence[str] | CTCLabels) -> tuple[CTCLabels, dict[str, int]]:
    """The built labels a lexicon may index, and label -> column."""
    lab = build_labels(labels)
    if lab.is_spm:
        raise LmplugError("a pronunciation lexicon needs labels with a word delimiter (characters, or tokens with "
                          f"'<wb>'), found sentencepiece labels (their '▁' marks words): {list(lab.labels)[:8]}...")
    return lab, {x: i for i, x in enumerate(lab.labels)}


def _add(entries: dict[str, list[tuple[int, ...]]], word: str, tokens: list[str], lab: CTCLabels,
         index: dict[str, int], where: str) -> None:
    """Check ``tokens`` against ``lab`` and add them to ``entries[word]`` (once); ``where`` names the
    entry in errors."""
    if not word or any(c.isspace() for c in word):
        raise LmplugError(f"{where}: expected a word without whitespace, found {word!r}")
    delim = lab.labels[lab.delimiter_id] if lab.delimiter_id is not None else None
    if tokens and tokens[-1] == delim:  # flashlight's character lexicons end words with "|"
        tokens = tokens[:-1]
    if not tokens:
        raise LmplugError(f"{where}: expected a non-empty pronunciation for {word!r}, found none")
    ids = []
    for t in tokens:
        i = index.get(t)
        if i is None:
            raise LmplugError(f"{where}: unknown token {t!r} in the pronunciation of {word!r}: expected one of the "
                              f"labels ({lab.size}, {lab.style} style) {_preview(lab)}")
        if i == lab.blank_id or i == lab.delimiter_id:
            kind = "blank" if i == lab.blank_id else "word delimiter"
            raise LmplugError(f"{where}: expected the pronunciation of {word!r} to spell labels other than the "
                              f"{kind}, found {t!r}")
        ids.append(i)
    prons = entries.setdefault(word, [])
    if tuple(ids) not in prons:
        prons.append(tuple(ids))


def _preview(lab: CTCLabels) -> str:
    shown = [x for i, x in enumerate(lab.labels) if i not in (lab.blank_id, lab.delimiter_id)]
    return f"{shown[:16]}" + ("..." if len(shown) > 16 else "")


def _finish(entries: dict[str, list[tuple[int, ...]]], lab: CTCLabels, source: str) -> Lexicon:
    if not entries:
        raise LmplugError(f"{source}: expected at least one word in the lexicon, found none")
    return Lexicon(lab, MappingProxyType({w: tuple(p) for w, p in entries.items()}), source)
