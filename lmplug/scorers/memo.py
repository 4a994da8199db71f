"""A memo in front of a word-level scorer: each (word history, next word) reaches it once.

Tuning a CTC decoder (:func:`lmplug.ctc.tune.tune_ctc_weights`) decodes the same dev emissions
once per grid point, and at every point the beam search asks its word scorers for much the same
(history, next word) scores again. :class:`MemoScorer` keeps every score it has answered in a trie
of word histories (one node per history since ``<s>``, or per last ``order - 1`` words of an
n-gram scorer): the word scores, the end-of-sentence scores, the word bounds and the look-ahead
scores. Only what no earlier call asked for reaches the wrapped scorer, so the Transformer's
forwards shrink with every grid point decoded by the same process.

A :class:`MemoState` holds its word history and the wrapped scorer's state of it, or of an
ancestor: a hit (a score found in the trie) needs no inner state, and the state it returns keeps
its parent's. A miss whose history was reached by hits rebuilds the inner state by replaying the
words since that ancestor, in one ``inner.advance_words`` call for all the states of the call
that lack theirs (the Transformer: one forward).

Scores equal the wrapped scorer's up to float rounding (a replayed Transformer state is computed
in another batch of rows than the one the unwrapped decode would use), and the decoded texts are
the same (``tests/scorers/test_memo.py``, ``tools/bench_tune.py``). The signature is the wrapped
scorer's: a memoized tuning reads and writes the same grid journal.

Word level only (no ``batch_score``/``advance``): a decoder in token mode would use a memoized
Transformer as a word scorer, so wrap word scorers only (:func:`lmplug.ctc.tune.memoize_word_scorers`).
The memo holds about ``max_entries`` entries at most (trie edges and look-ahead scores): past
that, the next call first drops the look-ahead scores (most entries, cheapest to lose), or
empties the whole trie, whose old states find their nodes again by their words
(:meth:`MemoScorer.stats` counts hits, misses, replays and clears).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmplug.constants import MEMO_MAX_ENTRIES
from lmplug.errors import expect_number
from lmplug.scorers.base import Scorer

NAN = float("nan")


class MemoState:
    """A word history and the wrapped scorer's state of its first ``depth`` words (``base``).

    Immutable as a value: ``words`` and ``key`` never change. ``base``/``depth`` (the inner state,
    filled in when a miss needs it: ``depth == len(words)``) and ``node``/``gen`` (its trie node,
    found again after the memo empties its trie) are memo slots, as the Transformer's lazy states.
    States with the same ``key`` (the history as the scorer's ``order`` sees it) are equal.
    """

    __slots__ = ("base", "depth", "gen", "key", "node", "words")

    def __init__(self, words: tuple[str, ...], key: tuple[str, ...], node: int, gen: int, base: Any, depth: int) -> None:
        self.words = words  # every word since <s>
        self.key = key  # what the scores depend on: words, or the last order - 1 of them
        self.node = node  # trie node of key in the memo's generation gen
        self.gen = gen
        self.base = base  # the inner state after words[:depth]
        self.depth = depth

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoState) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


class MemoScorer(Scorer):
    """Any word-level scorer behind a memo of its scores (see the module docstring).

    Args:
        inner: the scorer to memoize (its ``name``, ``order``, vocabulary, signature and flags are
            this scorer's too).
        max_entries: entries (history edges and look-ahead scores) held before the memo drops
            some; about 200 bytes each.

    Raises:
        TypeError: ``inner`` is not a :class:`~lmplug.scorers.base.Scorer` (or is a MemoScorer).
        LmplugError: ``max_entries`` is not a positive integer.
    """

    def __init__(self, inner: Scorer, max_entries: int = MEMO_MAX_ENTRIES) -> None:
        if not isinstance(inner, Scorer) or isinstance(inner, MemoScorer):
            raise TypeError(f"MemoScorer: expected a Scorer to wrap (not a MemoScorer), found {type(inner).__name__}")
        expect_number("MemoScorer", "max_entries", max_entries, integer=True, at_least=1)
        self.inner = inner
        self.max_entries = max_entries
        self.name = inner.name
        self.order = inner.order
        self.prefix_uses_state = inner.prefix_uses_state
        self.scores_empty_word = inner.scores_empty_word
        self.cheap_words = inner.cheap_words
        self._key_len = None if inner.order is None else max(inner.order - 1, 0)  # None: the whole history
        self._root: Any = None  # the inner scorer's state after <s>
        self._counts = dict.fromkeys(("word_hits", "word_misses", "final_hits", "final_misses", "bound_hits",
                                      "bound_misses", "prefix_hits", "prefix_misses", "replayed_words", "clears"), 0)
        self._gen = 0
        self._clear()

    # -- the trie -----------------------------------------------------------------------------

    def _clear(self) -> None:
        """An empty trie (node 0: the empty history) of a new generation."""
        self._gen += 1
        self._child: dict[tuple[int, str], int] = {}  # (node, word) -> the node of history + word
        self._score = array("d", [NAN])  # per node: log P(its last word | its parent's history); NaN: not yet
        self._bound = array("d", [NAN])  # per node: the inner scorer's word bound of that word
        self._final = array("d", [NAN])  # per node: log P(</s> | its history)
        self._prefix: dict[tuple[int, str], float] = {}  # (node, open word) -> look-ahead score

    def _entries(self) -> int:
        return len(self._child) + len(self._prefix)

    def _keep_bounded(self) -> None:
        """Past ``max_entries`` (checked between calls, so a call's nodes stay valid within it):
        drop the look-ahead scores where they hold most entries (they are most of them, and the
        cheapest to lose: no forward once a history's state is rebuilt), else empty the trie."""
        if self._entries() <= self.max_entries:
            return
        if len(self._prefix) > self.max_entries // 2:
            self._prefix = {}
        else:
            self._clear()
        self._counts["clears"] += 1

    def _edge(self, node: int, word: str) -> int:
        """The node of ``node``'s history + ``word`` (created when new)."""
        child = self._child.get((node, word))
        if child is None:
            child = self._child[(node, word)] = len(self._score)
            for a in (self._score, self._bound, self._final):
                a.append(NAN)
        return child

    def _node(self, s: MemoState) -> int:
        """The trie node of a state's key (walked again from the root after a clear)."""
        if s.gen != self._gen:
            node = 0
            for w in s.key:
                node = self._edge(node, w)
            s.node, s.gen = node, self._gen
        return s.node

    def _extend(self, s: MemoState, word: str, edge: int, base: Any, depth: int) -> MemoState:
        """The state after ``word`` (trie edge ``edge`` from ``s``'s node), on inner state ``base``
        of its first ``depth`` words."""
        words = s.words + (word,)
        if self._key_len is None:
            return MemoState(words, words, edge, self._gen, base, depth)
        key = words[max(0, len(words) - self._key_len):]
        if len(key) == len(s.key) + 1:  # nothing dropped: the edge's node is the key's
            return MemoState(words, key, edge, self._gen, base, depth)
        return MemoState(words, key, -1, -1, base, depth)  # its node is found when first used

    def _materialize(self, states: Sequence[MemoState]) -> list[Any]:
        """The inner states of ``states``: those lacking one replay their words since their
        ``base`` in ONE ``inner.advance_words`` call (states with the same base and words share a
        row); the result is kept on the state."""
        groups: dict[tuple[int, tuple[str, ...]], list[MemoState]] = {}
        for s in {id(s): s for s in states}.values():
            if s.depth < len(s.words):
                groups.setdefault((id(s.base), s.words[s.depth:]), []).append(s)
        if groups:
            rows = list(groups.values())
            after = self.inner.advance_words([g[0].base for g in rows], [g[0].words[g[0].depth:] for g in rows])
            self._counts["replayed_words"] += sum(len(k[1]) for k in groups)
            for g, a in zip(rows, after):
                for s in g:
                    s.base, s.depth = a, len(s.words)
        return [s.base for s in states]

    def _lookup(self, values: Sequence[float], keys: Sequence[Any], what: str) -> tuple[np.ndarray, dict[Any, list[int]]]:
        """``values`` as (N,) float64 (NaN: missing), and the positions of the missing ones by key;
        counts ``what``'s hits and misses."""
        out = np.array(values, dtype=np.float64).reshape(-1)
        miss: dict[Any, list[int]] = {}
        for i in np.flatnonzero(np.isnan(out)).tolist():
            miss.setdefault(keys[i], []).append(i)
        n_miss = sum(len(v) for v in miss.values())
        self._counts[f"{what}_hits"] += len(out) - n_miss
        self._counts[f"{what}_misses"] += n_miss
        return out, miss

    def _ask_inner(self, method, miss: dict[Any, list[int]], states: Sequence[MemoState],
                   extra: Sequence[Any] | None = None) -> list[float] | None:
        """``method`` of the inner scorer (``final_score``, ``word_bounds``, ``prefix_scores``) for
        the first row of each missing key, on their inner states (and their ``extra`` rows, the
        method's second argument): a value per key, in ``miss`` order, or None where the inner
        scorer gives none."""
        if not miss:
            return []
        first = [rows[0] for rows in miss.values()]
        inner = self._materialize([states[i] for i in first])
        got = method(inner) if extra is None else method(inner, [extra[i] for i in first])
        return None if got is None else np.asarray(got, dtype=np.float64).reshape(-1).tolist()

    # -- the Scorer interface -----------------------------------------------------------------

    def init_state(self, batch_size: int) -> list[MemoState]:
        self._keep_bounded()
        if self._root is None:
            self._root = self.inner.init_state(1)[0]
        return [MemoState((), (), 0, self._gen, self._root, 0)] * batch_size

    def score_words(self, states: Sequence[MemoState], words: Sequence[str]) -> tuple[np.ndarray, list[MemoState]]:
        """Hits from the trie; the misses in ONE ``inner.score_words`` call (after replaying the
        histories that lack an inner state), each (history, word) once."""
        self._keep_bounded()
        edges = [self._edge(self._node(s), w) for s, w in zip(states, words)]
        out, miss = self._lookup([self._score[e] for e in edges], edges, "word")
        new: list[Any] = [None] * len(words)
        for i, (s, w, e) in enumerate(zip(states, words, edges)):
            if e not in miss:
                new[i] = self._extend(s, w, e, s.base, s.depth)
        if miss:
            first = [rows[0] for rows in miss.values()]
            sc, after = self.inner.score_words(self._materialize([states[i] for i in first]), [words[i] for i in first])
            for (e, rows), x, a in zip(miss.items(), np.asarray(sc, dtype=np.float64).tolist(), after):
                self._score[e] = x
                for i in rows:
                    out[i] = x
                    new[i] = self._extend(states[i], words[i], e, a, len(states[i].words) + 1)
        return out, new

    def final_score(self, states: Sequence[MemoState]) -> np.ndarray:
        self._keep_bounded()
        nodes = [self._node(s) for s in states]
        out, miss = self._lookup([self._final[n] for n in nodes], nodes, "final")
        for (node, rows), x in zip(miss.items(), self._ask_inner(self.inner.final_score, miss, states) or ()):
            self._final[node] = x
            out[rows] = x
        return out

    def word_bounds(self, states: Sequence[MemoState], words: Sequence[str]) -> np.ndarray | None:
        """The exact score where the memo has it (the tightest bound), else the inner scorer's
        bound (memoized too); None when the inner scorer gives none."""
        if type(self.inner).word_bounds is Scorer.word_bounds:
            return None
        self._keep_bounded()
        edges = [self._edge(self._node(s), w) for s, w in zip(states, words)]
        exact = [self._score[e] for e in edges]
        out, miss = self._lookup([x if x == x else self._bound[e] for x, e in zip(exact, edges)], edges, "bound")
        got = self._ask_inner(self.inner.word_bounds, miss, states, words)
        if got is None:
            return None
        for (e, rows), x in zip(miss.items(), got):
            self._bound[e] = x
            out[rows] = x
        return out

    def prefix_scores(self, states: Sequence[Any], prefixes: Sequence[str]) -> np.ndarray | None:
        """The inner scorer's look-ahead, memoized by (history, open word); a look-ahead that
        ignores the states (``prefix_uses_state`` False, KenLM's) goes straight through."""
        if not self.has_prefix_scores:
            return None
        if not self.prefix_uses_state:
            return self.inner.prefix_scores(states, prefixes)
        self._keep_bounded()
        keys = [(self._node(s), p) for s, p in zip(states, prefixes)]
        out, miss = self._lookup([self._prefix.get(k, NAN) for k in keys], keys, "prefix")
        got = self._ask_inner(self.inner.prefix_scores, miss, states, prefixes)
        if got is None:
            return None
        for (k, rows), x in zip(miss.items(), got):
            self._prefix[k] = x
            out[rows] = x
        return out

    @property
    def has_prefix_scores(self) -> bool:
        return self.inner.has_prefix_scores

    def compact(self, states: Sequence[MemoState]) -> list[MemoState]:
        """The inner scorer's ``compact`` over the inner states the states hold (their own or an
        ancestor's); states whose inner state it re-packed are replaced by copies on the new one."""
        bases = list({id(s.base): s.base for s in states}.values())
        remap = {id(old): new for old, new in zip(bases, self.inner.compact(bases)) if new is not old}
        if not remap:
            return list(states)
        return [MemoState(s.words, s.key, s.node, s.gen, remap[id(s.base)], s.depth) if id(s.base) in remap else s
                for s in states]

    def known_words(self) -> set[str] | None:
        return self.inner.known_words()

    def signature(self) -> str:
        """The wrapped scorer's: the memo changes no score (grid journals stay valid)."""
        return self.inner.signature()

    def score_sentences(self, texts: Sequence[str]) -> np.ndarray:
        """The wrapped scorer's own whole-sentence scores (not memoized)."""
        return self.inner.score_sentences(texts)

    def stats(self) -> dict[str, int]:
        """Counts so far: hits and misses of word scores, end-of-sentence scores, word bounds and
        look-ahead scores; words replayed to rebuild inner states; clears; entries now held."""
        return {**self._counts, "entries": self._entries()}
