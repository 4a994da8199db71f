"""The numpy search's prefix trie: growable per-node arrays, the (parent, edge) -> child table, and
the copies of candidates that close a pronunciation lexicon's word once per homophone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmplug.ctc.plan import PrefixTrie


class Nodes:
    """Growable per-node arrays of the prefix trie."""

    def __init__(self, scorer_names: Sequence[str], n_ptrie: int) -> None:
        self.n = 0
        self.cap = 0
        self.int_fields = ["parent", "tok", "key", "plen", "nwords", "hist", "pid", "oov"] + [f"cls:{s}" for s in scorer_names] + [f"pt{i}" for i in range(n_ptrie)]
        self.float_fields = ["fused", "ub", "ppen"] + [f"raw:{s}" for s in scorer_names]
        self.a: dict[str, np.ndarray] = {}
        self._grow(1024)

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self.cap)
        for fields, dtype in ((self.int_fields, np.int64), (self.float_fields, np.float64)):
            for f in fields:
                new = np.zeros(cap, dtype=dtype)
                if f in self.a:
                    new[: self.n] = self.a[f][: self.n]
                self.a[f] = new
        self.cap = cap

    def alloc(self, m: int) -> np.ndarray:
        if self.n + m > self.cap:
            self._grow(self.n + m)
        ids = np.arange(self.n, self.n + m)
        self.n += m
        return ids


class ChildTable:
    """``(parent, label) -> child`` id map (-1: no child yet), vectorized.

    A dense ``(parents, labels)`` array for character-size label sets (one fancy-index per
    lookup), a dict keyed by ``parent * n_labels + label`` for large (sentencepiece) ones.
    """

    DENSE_MAX = 256  # labels; 500k parents x 256 x int32 = 0.5 GB at worst

    def __init__(self, n_labels: int) -> None:
        self.L = n_labels
        self.table = np.full((1024, n_labels), -1, dtype=np.int32) if n_labels <= self.DENSE_MAX else None
        self.map: dict[int, int] = {}

    def get(self, par: np.ndarray, tok: np.ndarray) -> np.ndarray:
        if self.table is not None:
            out = np.full(len(par), -1, dtype=np.int64)
            inside = par < len(self.table)
            out[inside] = self.table[par[inside], tok[inside]]
            return out
        get = self.map.get
        return np.fromiter((get(k, -1) for k in (par * self.L + tok).tolist()), dtype=np.int64, count=len(par))

    def set(self, par: np.ndarray, tok: np.ndarray, child: np.ndarray) -> None:
        if self.table is None:
            self.map.update(zip((par * self.L + tok).tolist(), child.tolist()))
            return
        need = int(par.max()) + 1
        if need > len(self.table):
            grown = np.full((max(need, 2 * len(self.table)), self.L), -1, dtype=np.int32)
            grown[: len(self.table)] = self.table
            self.table = grown
        self.table[par, tok] = child

    def get_or_add(self, par: np.ndarray, tok: np.ndarray, make) -> np.ndarray:
        """Children of ``(par, tok)``; missing ones get ids from ``make(parents, labels)``, called
        once with each missing pair once."""
        ids = self.get(par, tok)
        miss = ids < 0
        if miss.any():
            uk, inv = np.unique(par[miss] * self.L + tok[miss], return_inverse=True)
            mp, mt = uk // self.L, uk % self.L
            new = np.asarray(make(mp, mt), dtype=np.int64)
            self.set(mp, mt, new)
            ids[miss] = new[inv]
        return ids


class Edges:
    """Trie edge labels. Without a pronunciation lexicon an edge is its label (``E`` of them, the
    virtual END included); with one, an edge that closes a lexicon word also names which of the
    words its pronunciation spells: ``edge = label + E * code``, ``code`` 0 for an ordinary edge,
    ``homophone + 1`` for a closing one (see :mod:`lmplug.ctc.search`).
    """

    def __init__(self, n_labels: int, lexicon: PrefixTrie | None, implicit: bool) -> None:
        self.E = n_labels  # labels, END included
        self.lex = lexicon  # the pronunciation lexicon's trie (with homophones), or None
        self.implicit = lexicon is not None and implicit  # words also end at the next word's first token
        self.L = self.E * (1 + (lexicon.homophones.shape[1] if lexicon is not None else 0))  # edge labels

    def split(self, edge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label, code) of edges (M,)."""
        if self.lex is None:
            return edge, np.zeros(len(edge), dtype=np.int64)
        return edge % self.E, edge // self.E

    def homophones(self, states: np.ndarray, where: np.ndarray) -> np.ndarray:
        """(M,) how many lexicon words the open words in lexicon ``states`` spell (0 where not ``where``)."""
        return np.where(where & (states >= 0), self.lex.n_homophones[np.maximum(states, 0)], 0)

    def words(self, states: np.ndarray, codes: np.ndarray) -> list[str]:
        """The lexicon words closing edges ``codes`` (>= 1) pick after open words in ``states``."""
        return [self.lex.words[k] for k in self.lex.homophones[states, codes - 1].tolist()]

    @staticmethod
    def copies(k: np.ndarray, closing: np.ndarray, opening: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of M candidates repeated once per lexicon word they may close, and each copy's code.

        Args:
            k: (M,) how many words (homophones) each candidate's open word spells.
            closing: (M,) the candidate closes its word: ``k`` copies, codes 1..k.
            opening: (M,) the candidate may also close its word before opening the next one:
                ``1 + k`` copies, code 0 (it extends the word) then 1..k. Others: one copy, code 0.

        Returns:
            ``idx`` (N,) the candidate of each copy and ``code`` (N,) its code.
        """
        reps = np.where(closing, k, 1 + np.where(opening, k, 0))
        idx = np.repeat(np.arange(len(k)), reps)
        return idx, np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps) + closing[idx]
