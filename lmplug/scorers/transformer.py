"""The Transformer LM as a scorer: token and word level, KV-cached, batched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lmplug import scoring
from lmplug.errors import LmplugError
from lmplug.scorers.base import Scorer, prefix_span, words_signature


# --------------------------------------------------------------------------------------------
# Transformer LM


class TransformerState:
    """One row of a KV cache plus the next-token log-probs it predicts (immutable)."""

    __slots__ = ("cache", "lacum", "n_tokens", "row", "table")

    def __init__(self, cache, row: int, table: torch.Tensor, n_tokens: int) -> None:
        self.cache = cache  # KVCache holding this row (shared with sibling states)
        self.row = row
        self.table = table  # (rows, V) next-token log-probs of the cache's rows (shared)
        self.n_tokens = n_tokens  # tokens seen so far, <s> included
        self.lacum: np.ndarray | None = None  # memoized cumulative word-initial probs (prefix_scores)

    @property
    def logp(self) -> torch.Tensor:
        """(V,) natural-log next-token distribution."""
        return self.table[self.row]


class WordEndState(TransformerState):
    """A :class:`TransformerState` right after a word scored by ``score_words(word_end=True)``:
    its word score already holds the log-probability that a word ends here, which the next
    word's (or the end of sentence's) score divides out again."""

    __slots__ = ("bmass",)

    def __init__(self, cache, row: int, table: torch.Tensor, n_tokens: int) -> None:
        super().__init__(cache, row, table, n_tokens)
        self.bmass: float | None = None  # memoized TransformerScorer.boundary_logmass


class PendingState:
    """A :class:`TransformerState` plus tokens not yet run through the model (lazy).

    Word scoring needs the model only for the second and later pieces of a word; the state after
    the word is computed when it is first used (scoring the next word, or the end of sentence),
    so hypotheses that die before then cost nothing more.
    """

    __slots__ = ("base", "mat", "tokens")

    def __init__(self, base: TransformerState, tokens: list[int]) -> None:
        self.base = base
        self.tokens = tokens
        self.mat: TransformerState | None = None  # memoized materialization


def _gather_cache(model, states: Sequence[TransformerState], max_len):
    """One KVCache with a row per state: each source cache's rows copied once into place, right
    aligned, without the columns none of them attends to (the rows of a shorter or sparser
    source get invalid columns on the left)."""
    from lmplug.model import KVCache

    groups: dict[int, tuple[Any, list[int], list[int]]] = {}
    for i, s in enumerate(states):
        g = groups.setdefault(id(s.cache), (s.cache, [], []))
        g[1].append(s.row)
        g[2].append(i)
    if len(groups) == 1:
        cache, rows, _ = next(iter(groups.values()))
        if rows == list(range(cache.batch_size)):  # the whole cache, in order: no copy
            return _window(cache.compact(), max_len)
    parts = []  # (cache, rows, columns or None: all, valid (r, l), output positions)
    for cache, rows, pos in groups.values():
        dev = cache.valid.device
        idx = torch.tensor(rows, dtype=torch.long, device=dev)
        valid = cache.valid.index_select(0, idx)
        used = valid.any(0)
        cols = None if bool(used.all()) else used.nonzero().squeeze(1)
        parts.append((cache, idx, cols, valid if cols is None else valid.index_select(1, cols),
                      torch.tensor(pos, dtype=torch.long, device=dev)))
    first = parts[0][0]
    N, L = len(states), max(p[3].shape[1] for p in parts)
    shape = (N, first.keys[0].shape[1], L, first.keys[0].shape[3])  # (N, nh, L, hs)
    keys = [first.keys[0].new_zeros(shape) for _ in first.keys]
    values = [first.values[0].new_zeros(shape) for _ in first.values]
    valid = first.valid.new_zeros(N, L)
    positions = first.positions.new_empty(N)
    for cache, idx, cols, v, pos in parts:
        n = v.shape[1]
        for dst, src in zip(keys + values, cache.keys + cache.values):
            src = src.index_select(0, idx)
            dst.narrow(2, L - n, n).index_copy_(0, pos, src if cols is None else src.index_select(2, cols))
        valid.narrow(1, L - n, n).index_copy_(0, pos, v)
        positions.index_copy_(0, pos, cache.positions.index_select(0, idx))
    return _window(KVCache(keys, values, valid, positions), max_len)


def _window(cache, max_len):
    """Each row attends to at most its last ``max_len`` tokens (an int, or a (B,) tensor: one limit
    per row). Exact per row whatever the column layout (``KVCache.trim`` cuts columns, which rows
    with padding holes share unevenly)."""
    from lmplug.model import KVCache

    v = cache.valid
    limit = torch.as_tensor(max_len, device=v.device).reshape(-1, 1)  # (1, 1) or (B, 1)
    if cache.length <= int(limit.min()):
        return cache
    from_right = v.flip(1).long().cumsum(1).flip(1)  # valid tokens at or after each column
    keep = v & (from_right <= limit)
    if bool((keep == v).all()):
        return cache
    return KVCache(cache.keys, cache.values, keep, cache.positions).compact()


def _length_groups(lengths: Sequence[int], call_cost: int | None) -> list[list[int]]:
    """Positions of ``lengths`` (tokens per row of a forward) as one group, or as two (the shorter
    and the longer rows, each in original order) where padding every row to the longest costs
    more padded tokens than the split plus ``call_cost`` (what one more forward costs, in tokens;
    None: never split)."""
    n = len(lengths)
    ls = np.asarray(lengths)
    order = np.argsort(ls, kind="stable")
    srt = ls[order]
    if call_cost is None or n < 2 or srt[0] == srt[-1]:
        return [list(range(n))]
    k = np.arange(1, n)  # the first k sorted rows form the short group
    cost = k * srt[k - 1] + (n - k) * srt[-1] + call_cost
    best = int(np.argmin(cost))
    if cost[best] >= n * srt[-1]:
        return [list(range(n))]
    return [sorted(order[: best + 1].tolist()), sorted(order[best + 1 :].tolist())]


class TransformerScorer(Scorer):
    """A :class:`~lmplug.checkpoint.LanguageModel` as a KV-cached, batched scorer.

    Every call runs ONE forward for all its states: the rows of their caches are gathered into
    one batch, the new tokens are right-padded, and each state keeps its row of the result. The
    context slides past ``block_size`` (oldest tokens dropped; RoPE keeps distances exact).

    Args:
        lm: a loaded LM (``lmplug.checkpoint.load_lm``).
        name: feature name for this scorer's scores.
        max_batch: most rows per forward (larger calls are split).
        vocabulary: known words (e.g. the words of the LM's training text). Optional; word-mode
            decoding then penalizes partial words that start none of them, as with KenLM's
            unigrams, which keeps misspelled words from filling the beam.
        word_end: word scores are probabilities of COMPLETE words: ``log P(pieces of w | h)``
            plus ``log P(a word ends after w)`` (the mass of word-initial pieces and ``</s>``
            after it) minus the same term at ``h``. Without it a word's score also counts every
            longer word it begins ("the" gets the mass of "there"), which favours short words
            during the search; a whole sentence within ``block_size`` scores the same either way
            (past it the terms are taken in sliding contexts and no longer cancel). Costs a
            forward over every scored word's last piece (states are not lazy).
        unk_offset: natural-log penalty added to the word score of a word outside ``vocabulary``
            (word mode; as KenLM's ``unk_offset``). The LM spells any string from its pieces, and
            at 0 the AM's misspellings ("asmentwelser...") cost only their pieces' probability.
            One offset per word favours merging misspellings into one run-on word; the decoder's
            length-scaled ``partial_oov_logp`` was the better lever on dev (recipes/asr_ctc_fusion/NOTES.md).
    """

    CPU_CALL_COST = 32  # padded tokens one more forward costs on CPU (cache gathering, per-call work)

    def __init__(self, lm, name: str = "lm", max_batch: int = 1024, vocabulary: Sequence[str] | None = None,
                 word_end: bool = True, unk_offset: float = 0.0) -> None:
        self.lm = lm
        self.model = lm.model.eval()
        self.tokenizer = lm.tokenizer
        self.config = lm.config
        self.name = name
        self.max_batch = max_batch
        self.vocab_size = self.config.vocab_size
        self._word_ids: dict[str, list[int]] = {}
        self._root: TransformerState | None = None
        self.vocabulary = set(vocabulary) if vocabulary is not None else None
        if unk_offset and self.vocabulary is None:
            raise LmplugError(f"unk_offset {unk_offset}: expected a vocabulary to tell OOV words, found none")
        self.unk_offset = float(unk_offset)
        self.word_end = word_end
        self._boundary: torch.Tensor | None = None
        self._initial: tuple[torch.Tensor, list[str], dict[str, int]] | None = None
        self._prefix_index: dict[str, int] = {}  # look-ahead prefix -> its row of the arrays below
        self._prefix_lo = np.zeros(0, dtype=np.int64)  # see _prefix_rows
        self._prefix_hi = np.zeros(0, dtype=np.int64)
        self._prefix_short = np.zeros((0, 1), dtype=np.int64)
        # the model's work so far (``lmplug decode --stats`` reports it): forward calls, rows,
        # new tokens, and tokens as padded (rows x the longest row of each call: attention's
        # layout; every other layer runs on the new tokens only)
        self.work = {"forwards": 0, "rows": 0, "tokens": 0, "padded_tokens": 0}

    def known_words(self) -> set[str] | None:
        return self.vocabulary

    @property
    def device(self) -> torch.device:
        return self.model.wte.weight.device

    def signature(self) -> str:
        return (self.lm.signature() + (f"|unk_offset:{self.unk_offset:g}" if self.unk_offset else "")
                + ("" if self.word_end else "|word_end:false")
                + (f"|vocabulary:{words_signature(self.vocabulary)}" if self.vocabulary is not None else ""))

    def word_ids(self, word: str) -> list[int]:
        """Piece ids of one word (cached); sentencepiece adds the leading ``▁``."""
        ids = self._word_ids.get(word)
        if ids is None:
            ids = self.tokenizer.encode(word)
            if not ids:
                raise LmplugError(f"expected a non-empty word to score, found {word!r}")
            self._word_ids[word] = ids
        return ids

    @torch.inference_mode()
    def _forward(self, states: Sequence[TransformerState], tokens: Sequence[Sequence[int]]):
        """Append ``tokens[i]`` to ``states[i]``: returns the new states, the log-probs after
        every new token (n, V), packed row after row (padding is never computed: the model's
        ``packed`` forward), and where each row's tokens start in them (N,)."""
        n = len(states)
        T = max(len(t) for t in tokens)
        dev = self.device
        w = self.work
        w["forwards"] += 1
        w["rows"] += n
        w["tokens"] += sum(len(t) for t in tokens)
        w["padded_tokens"] += n * T
        idx = torch.zeros(n, T, dtype=torch.long)
        mask = torch.zeros(n, T, dtype=torch.bool)
        for i, t in enumerate(tokens):
            idx[i, : len(t)] = torch.as_tensor(t, dtype=torch.long)
            mask[i, : len(t)] = True
        idx, mask = idx.to(dev), mask.to(dev)
        # each row keeps block_size minus ITS new tokens of history (not minus the longest in the
        # batch: a hypothesis' score must not depend on what it is decoded with)
        lens = torch.tensor([len(t) for t in tokens])
        cache = _gather_cache(self.model, states, (self.config.block_size - lens).clamp(min=1))
        logits, new_cache = self.model(idx, cache, token_mask=mask, packed=True)
        logp = torch.log_softmax(logits, dim=-1)  # (n, V): the valid tokens, row after row
        starts = (lens.cumsum(0) - lens).to(dev)  # (N,)
        last = logp.index_select(0, starts + lens.to(dev) - 1)  # (N, V)
        new = [TransformerState(new_cache, i, last, s.n_tokens + len(t)) for i, (s, t) in enumerate(zip(states, tokens))]
        return new, logp, starts

    def _root_state(self) -> TransformerState:
        if self._root is None:
            cache = self.model.empty_cache(1)
            empty = TransformerState(cache, 0, torch.zeros(1, self.vocab_size, device=self.device), 0)
            self._root = self._forward([empty], [[self.config.bos_id]])[0][0]
        return self._root

    def init_state(self, batch_size: int) -> list[TransformerState]:
        return [self._root_state()] * batch_size

    @staticmethod
    def _by_table(states: Sequence[TransformerState], keep: Sequence[int]):
        """``(table, positions, rows)`` per shared log-prob table of ``states[i]``, ``i in keep``."""
        groups: dict[int, tuple[torch.Tensor, list[int], list[int]]] = {}
        for i in keep:
            s = states[i]
            g = groups.setdefault(id(s.table), (s.table, [], []))
            g[1].append(i)
            g[2].append(s.row)
        return groups.values()

    def _run(self, states: Sequence[TransformerState], tokens: Sequence[Sequence[int]]):
        """:meth:`_forward` in chunks of ``max_batch`` rows: (new states, [(logp, starts)])."""
        out: list[TransformerState] = []
        parts = []
        for a in range(0, len(states), self.max_batch):
            new, logp, starts = self._forward(states[a : a + self.max_batch], tokens[a : a + self.max_batch])
            out.extend(new)
            parts.append((logp, starts))
        return out, parts

    def materialize(self, states: Sequence[Any]) -> list[TransformerState]:
        """Computed states for possibly lazy ones: ONE batched forward for all pending tokens."""
        todo = {id(s): s for s in states if isinstance(s, PendingState) and s.mat is None}
        if todo:
            ps = list(todo.values())
            new, _ = self._run([p.base for p in ps], [p.tokens for p in ps])
            for p, n in zip(ps, new):
                p.mat = n
        return [s.mat if isinstance(s, PendingState) else s for s in states]

    @torch.inference_mode()
    def batch_score(self, states: Sequence[Any]) -> torch.Tensor:
        states = self.materialize(states)
        return torch.stack([s.logp for s in states]) if states else torch.zeros(0, self.vocab_size, device=self.device)

    @torch.inference_mode()
    def token_logprobs(self, states, tokens):
        """Gathers from each forward's log-prob table directly (no (N, V) copy)."""
        states = self.materialize(states)
        out = np.zeros(len(states))
        for table, pos, rows in self._by_table(states, range(len(states))):
            dev = table.device
            toks = [int(tokens[i]) for i in pos]
            out[pos] = table[torch.tensor(rows, device=dev), torch.tensor(toks, device=dev)].double().cpu().numpy()
        return out

    @torch.inference_mode()
    def advance(self, states, tokens):
        return self._run(self.materialize(states), tokens)[0]

    @torch.inference_mode()
    def advance_words(self, states, words):
        """The states after ``words[i]`` in ONE forward over all their pieces (the states
        ``score_words`` would leave, computed rather than lazy). Rows whose history and words
        pass ``block_size`` go word by word (the default), as the context slides word by word."""
        out = list(states)
        ids = [[t for w in ws for t in self.word_ids(w)] for ws in words]
        todo = [i for i, t in enumerate(ids) if t]
        base = dict(zip(todo, self.materialize([states[i] for i in todo])))
        fits = [i for i in todo if base[i].n_tokens + len(ids[i]) <= self.config.block_size]
        if fits:
            new, _ = self._run([base[i] for i in fits], [ids[i] for i in fits])
            for i, a in zip(fits, new):
                out[i] = WordEndState(a.cache, a.row, a.table, a.n_tokens) if self.word_end else a
        slide = sorted(set(todo) - set(fits))
        if slide:
            for i, st in zip(slide, Scorer.advance_words(self, [base[i] for i in slide], [words[i] for i in slide])):
                out[i] = st
        return out

    @torch.inference_mode()
    def compact(self, states, min_use: float = 0.5):
        """Copy the rows of sparsely used caches into one new cache, so that caches whose other
        rows belonged to dropped hypotheses can be freed (KV memory stays ~ live states)."""
        core: list[TransformerState] = []
        for st in states:
            if isinstance(st, PendingState):
                core.append(st.base)
                if st.mat is not None:
                    core.append(st.mat)
            else:
                core.append(st)
        rows: dict[int, set[int]] = {}
        size: dict[int, int] = {}
        for st in core:
            rows.setdefault(id(st.cache), set()).add(st.row)
            size[id(st.cache)] = st.cache.batch_size
        sparse = {c for c, r in rows.items() if size[c] > 8 and len(r) < min_use * size[c]}
        if not sparse:
            return list(states)
        uniq: dict[tuple[int, int], TransformerState] = {}
        for st in core:
            if id(st.cache) in sparse:
                uniq.setdefault((id(st.cache), st.row), st)
        olds = list(uniq.values())
        cache = _gather_cache(self.model, olds, 10**9)
        table = torch.stack([st.logp for st in olds])
        remap = {k: type(st)(cache, i, table, st.n_tokens) for i, (k, st) in enumerate(uniq.items())}

        def m(st: TransformerState) -> TransformerState:
            return remap.get((id(st.cache), st.row), st)

        out: list[Any] = []
        for st in states:
            if isinstance(st, PendingState):
                p = PendingState(m(st.base), st.tokens)
                p.mat = m(st.mat) if st.mat is not None else None
                out.append(p)
            else:
                out.append(m(st))
        return out

    def boundary_logmass(self, states: Sequence[TransformerState]) -> np.ndarray:
        """``log P(next piece starts a word or is </s>)`` per :class:`WordEndState`; 0 for others."""
        out = np.zeros(len(states))
        if self._boundary is None:  # ids of the word-initial pieces and </s>, ascending
            mask = torch.zeros(self.vocab_size, dtype=torch.bool, device=self.device)
            mask[self._word_initial()[0]] = True
            mask[self.config.eos_id] = True
            self._boundary = mask.nonzero().squeeze(1)
        ends = [i for i, s in enumerate(states) if isinstance(s, WordEndState)]
        todo = [i for i in ends if states[i].bmass is None]  # each state's once: it is asked again
        for table, pos, rows in self._by_table(states, todo):  # index_select: ~3x a boolean mask's speed
            sub = table.index_select(0, torch.tensor(rows, device=table.device)).index_select(1, self._boundary)
            for i, v in zip(pos, torch.logsumexp(sub.float(), dim=-1).double().cpu().tolist()):
                states[i].bmass = v
        out[ends] = [states[i].bmass for i in ends]
        return out

    def _word_initial(self) -> tuple[torch.Tensor, list[str], dict[str, int]]:
        """The word-initial ("▁...") pieces in order of their text: ids, texts without the "▁",
        and each text's position (cached)."""
        if self._initial is None:
            pieces = sorted((p[1:], i) for i, p in enumerate(map(self.tokenizer.id_to_piece, range(self.vocab_size)))
                            if p.startswith("\u2581"))
            self._initial = (torch.tensor([i for _, i in pieces], dtype=torch.long, device=self.device),
                             [t for t, _ in pieces], {t: k for k, (t, _) in enumerate(pieces)})
        return self._initial

    def _prefix_rows(self, prefixes: Sequence[str]) -> np.ndarray:
        """Rows of ``prefixes`` in the prefix table (new prefixes added): the word-initial pieces
        (by position in :meth:`_word_initial` order) that can begin a word spelled ``prefix...``,
        as ``_prefix_lo``/``_prefix_hi`` (the range of pieces whose text starts with the prefix)
        and ``_prefix_short`` (the pieces that are shorter prefixes of it, "▁" alone included, in
        order of length; -1 padded)."""
        get = self._prefix_index.get
        rows = np.fromiter((get(p, -1) for p in prefixes), dtype=np.int64, count=len(prefixes))
        miss = np.flatnonzero(rows < 0)
        if len(miss):
            _, texts, pos = self._word_initial()
            new = list(dict.fromkeys(prefixes[i] for i in miss.tolist()))
            n0 = len(self._prefix_index)
            if n0 + len(new) > len(self._prefix_lo):  # grown geometrically
                cap = max(n0 + len(new), 2 * len(self._prefix_lo), 1024)
                width = 1 + max(map(len, texts), default=0)  # at most one shorter piece per length
                self._prefix_lo = np.resize(self._prefix_lo, cap)
                self._prefix_hi = np.resize(self._prefix_hi, cap)
                short = np.full((cap, width), -1, dtype=np.int64)
                short[:n0] = self._prefix_short[:n0]
                self._prefix_short = short
            for r, prefix in enumerate(new, n0):
                self._prefix_lo[r], self._prefix_hi[r] = prefix_span(texts, prefix)
                shorter = [pos[prefix[:k]] for k in range(len(prefix)) if prefix[:k] in pos]
                self._prefix_short[r, : len(shorter)] = shorter
                self._prefix_index[prefix] = r
            rows[miss] = [self._prefix_index[prefixes[i]] for i in miss.tolist()]
        return rows

    @torch.inference_mode()
    def prefix_scores(self, states, prefixes):
        """Sums the next-piece probabilities of every word-initial piece compatible with the
        prefix (from a cumulative sum over the pieces in text order, computed once per state and
        kept on it), less the word-boundary mass at the state as ``score_words(word_end=True)``
        does; at least ``log 1e-30``."""
        if not states:
            return np.zeros(0)
        states = self.materialize(states)
        index: dict[int, int] = {}
        inv = np.array([index.setdefault(id(s), len(index)) for s in states], dtype=np.int64)
        uniq = list({id(s): s for s in states}.values())  # in order of first appearance, as index
        order = self._word_initial()[0]
        todo = [k for k, s in enumerate(uniq) if s.lacum is None]
        for table, pos, rows in self._by_table(uniq, todo):
            sub = table.index_select(0, torch.tensor(rows, device=table.device)).index_select(1, order)
            cum = np.cumsum(sub.double().exp().cpu().numpy(), axis=1)
            for k, c in zip(pos, np.concatenate([np.zeros((len(rows), 1)), cum], axis=1)):
                uniq[k].lacum = c
        cum = np.stack([s.lacum for s in uniq])  # (U, pieces + 1)
        rows = self._prefix_rows(prefixes)
        out = cum[inv, self._prefix_hi[rows]] - cum[inv, self._prefix_lo[rows]]
        short = self._prefix_short[rows]  # (N, width)
        if (short[:, 0] >= 0).any():  # + the probabilities of the pieces that are shorter prefixes
            add = np.zeros(len(states))
            for piece in short.T:  # summed in order of length, one piece per row at a time
                has = np.flatnonzero(piece >= 0)
                if not len(has):
                    break
                row, piece = inv[has], piece[has]
                add[has] += cum[row, piece + 1] - cum[row, piece]
            out += add
        return np.log(np.maximum(out, 1e-30)) - self.boundary_logmass(uniq)[inv]

    @torch.inference_mode()
    def word_bounds(self, states, words):
        """The part of each word score read from the state alone, with no forward
        (:meth:`_first_piece_scores`). The rest of the score (the later pieces' log-probs, the
        word-end mass after the word) is at most 0, so this bounds ``score_words`` from above."""
        return self._first_piece_scores(self.materialize(states), words)

    def _first_piece_scores(self, states: Sequence[TransformerState], words: Sequence[str]) -> np.ndarray:
        """The first piece's log-prob of each word and its ``unk_offset``, less the word-boundary
        mass at the state with ``word_end``: (N,) float64."""
        scores = self.token_logprobs(states, [self.word_ids(w)[0] for w in words])
        if self.unk_offset:
            scores += self._unk_offsets(words)
        return scores - self.boundary_logmass(states) if self.word_end else scores

    @torch.inference_mode()
    def score_words(self, states, words):
        """Word log-probs: the first piece from the state's distribution (:meth:`_first_piece_scores`),
        the others from ONE forward over the multi-piece words; the states after the words stay
        lazy (unless ``word_end``: then the forward covers every word and adds its word-end mass)."""
        states = self.materialize(states)
        ids = [self.word_ids(w) for w in words]
        scores = self._first_piece_scores(states, words)
        if self.word_end:
            after, later = self._forward_pieces(states, ids, range(len(ids)), full=True)
            new = [WordEndState(a.cache, a.row, a.table, a.n_tokens) for a in after]
            return scores + later + self.boundary_logmass(new), new
        multi = [r for r, i in enumerate(ids) if len(i) > 1]
        new: list[Any] = [PendingState(s, [i[0]]) for s, i in zip(states, ids)]
        if multi:
            after, later = self._forward_pieces(states, ids, multi, full=False)
            scores[multi] += later
            for a, r in zip(after, multi):
                new[r] = PendingState(a, [ids[r][-1]])
        return scores, new

    def _forward_pieces(self, states, ids: list[list[int]], rows: Sequence[int], full: bool):
        """The pieces of words ``ids[r]`` (all of them, or all but the last) after ``states[r]``,
        ``r in rows``, in one forward, or on CPU two (shorter and longer words) where padding every
        row to the longest word would cost more (:func:`_length_groups`): (states after them,
        summed log-probs of pieces 2.. (len(rows),))."""
        rows = list(rows)
        lens = [len(ids[r]) - (0 if full else 1) for r in rows]
        after: list[Any] = [None] * len(rows)
        out = np.zeros(len(rows))
        for group in _length_groups(lens, self.CPU_CALL_COST if self.device.type == "cpu" else None):
            sub = [rows[i] for i in group]
            new, parts = self._run([states[r] for r in sub], [ids[r] if full else ids[r][:-1] for r in sub])
            k = 0
            for logp, starts in parts:  # piece j+1 is predicted at the row's position j
                n = len(starts)
                words = [ids[r] for r in sub[k : k + n]]
                npred = [len(w) - 1 for w in words]
                if sum(npred):
                    row = np.repeat(np.arange(n), npred)
                    pos = starts.cpu().numpy()[row] + np.concatenate([np.arange(m) for m in npred])
                    tgt = np.fromiter((p for w in words for p in w[1:]), dtype=np.int64)
                    lp = logp[torch.as_tensor(pos, device=logp.device), torch.as_tensor(tgt, device=logp.device)]
                    out[group[k : k + n]] = np.bincount(row, weights=lp.double().cpu().numpy(), minlength=n)
                k += n
            for i, st in zip(group, new):
                after[i] = st
        return after, out

    @torch.inference_mode()
    def final_score(self, states):
        if not states:
            return np.zeros(0)
        states = self.materialize(states)
        return self.token_logprobs(states, [self.config.eos_id] * len(states)) - self.boundary_logmass(states)

    def score_sentences(self, texts: Sequence[str], batch_tokens: int = 16384, progress: bool = False) -> np.ndarray:
        """Whole-sentence log-probs (``<s>`` ... ``</s>``) by :func:`lmplug.scoring.score_sentences`,
        the one sentence path (``lmplug ppl`` and the MT ``lm`` feature use it too; its module
        docstring gives the rule for sentences longer than ``block_size``), plus ``unk_offset``
        per word outside ``vocabulary``. Within ``block_size`` this equals the sum of
        ``score_words`` and ``final_score``."""
        out = np.array([s.logprob for s in scoring.score_sentences(self.lm, texts, batch_tokens=batch_tokens, progress=progress)],
                       dtype=np.float64)
        if self.unk_offset:
            out += [self._unk_offsets(t.split()).sum() for t in texts]
        return out

    def _unk_offsets(self, words: Sequence[str]) -> np.ndarray:
        """``unk_offset`` for each word outside the vocabulary, 0 for the others."""
        return self.unk_offset * np.array([w not in self.vocabulary for w in words], dtype=np.float64)
