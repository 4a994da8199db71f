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
    """A token sequence's context in a :class:`~lmplug.model.KVPool` plus the next-token
    log-probs it predicts (immutable, but for where its context is stored: see
    :meth:`TransformerScorer._migrate`)."""

    __slots__ = ("ctx", "lacum", "n_tokens", "pool", "row", "table")

    def __init__(self, pool, ctx: np.ndarray, row: int, table: torch.Tensor, n_tokens: int) -> None:
        self.pool = pool  # the KVPool holding the context's keys and values
        self.ctx = ctx  # (<= block_size,) int64 slots of the context in ``pool``, oldest first
        self.row = row
        self.table = table  # (rows, V) next-token log-probs of the forward that made it (shared)
        self.n_tokens = n_tokens  # tokens seen so far, <s> included (the next rotary position)
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

    def __init__(self, pool, ctx: np.ndarray, row: int, table: torch.Tensor, n_tokens: int) -> None:
        super().__init__(pool, ctx, row, table, n_tokens)
        self.bmass: float | None = None  # memoized TransformerScorer.boundary_logmass

    @classmethod
    def of(cls, st: TransformerState) -> "WordEndState":
        return cls(st.pool, st.ctx, st.row, st.table, st.n_tokens)


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


class TransformerScorer(Scorer):
    """A :class:`~lmplug.checkpoint.LanguageModel` as a KV-cached, batched scorer.

    Every call runs ONE forward for all its states. The keys and values of every token the
    scorer has run live in a :class:`~lmplug.model.KVPool` (a state is the list of its context's
    slots there: states that share a history share its slots, and extending one copies nothing);
    a forward reads each row's slots for attention only, every other layer runs on the new
    tokens alone. A full pool is replaced by a new one, into which the states still in use move
    when they are next used (or when the decoder calls :meth:`compact`). The context slides past
    ``block_size`` (oldest tokens dropped; RoPE keeps distances exact).

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

    POOL_BYTES = 128 * 2**20  # keys and values of one KVPool (a new one when full; see _pool_for)

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
        self._pool = None  # the KVPool new tokens go to (lmplug.model.KVPool)
        c = self.config
        self.pool_tokens = max(4096, self.POOL_BYTES // (2 * c.n_layer * c.n_embd * self.model.wte.weight.element_size()))

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
        every new token (n, V), packed row after row (padding is never computed), and where each
        row's tokens start in them (N,).

        The new tokens' keys and values go to the current :class:`~lmplug.model.KVPool` (the
        states' contexts are moved there first if they are elsewhere); each row attends to its
        context's last ``block_size`` minus ITS new tokens (not minus the longest in the batch: a
        hypothesis' score must not depend on what it is decoded with)."""
        from lmplug.model import Pack

        n = len(states)
        lens = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
        T, total = int(lens.max()), int(lens.sum())
        w = self.work
        w["forwards"] += 1
        w["rows"] += n
        w["tokens"] += total
        w["padded_tokens"] += n * T
        pool = self._pool_for(states, total)
        dev = self.device
        keep = np.maximum(self.config.block_size - lens, 1)
        hist = [s.ctx[-k:] if len(s.ctx) > k else s.ctx for s, k in zip(states, keep.tolist())]
        hlen = np.fromiter(map(len, hist), dtype=np.int64, count=n)
        H = int(hlen.max())
        start = pool.alloc(total)
        first = start + np.cumsum(lens) - lens  # each row's first new slot
        index = np.zeros((n, H + T), dtype=np.int64)  # slot 0: padding
        for i, h in enumerate(hist):
            index[i, : len(h)] = h
        cols = np.arange(T)
        is_new = cols[None, :] < lens[:, None]  # (n, T): the row's new tokens (token_mask)
        index[:, H:] = np.where(is_new, first[:, None] + cols[None, :], 0)
        mask = np.concatenate([np.broadcast_to((np.arange(H)[None, :] < hlen[:, None])[:, None, :], (n, T, H)),
                               (cols[None, :, None] >= cols[None, None, :]) & is_new[:, None, :]], axis=2)
        ids = np.fromiter((t for tk in tokens for t in tk), dtype=np.int64, count=total)
        pos = np.repeat(np.array([s.n_tokens for s in states], dtype=np.int64) - first, lens) + np.arange(start, start + total)
        pack = Pack.of(torch.from_numpy(is_new).to(dev))
        logits = self.model.forward_pooled(torch.from_numpy(ids).to(dev), torch.from_numpy(pos).to(dev), pool, start,
                                           torch.from_numpy(index).to(dev), torch.from_numpy(mask[:, None]).to(dev), pack)
        logp = torch.log_softmax(logits, dim=-1)  # (n, V): the valid tokens, row after row
        starts = torch.from_numpy(first - start).to(dev)  # (N,)
        last = logp.index_select(0, starts + torch.from_numpy(lens).to(dev) - 1)  # (N, V)
        new = [TransformerState(pool, np.concatenate([h, np.arange(f, f + m)]), i, last, s.n_tokens + m)
               for i, (s, h, f, m) in enumerate(zip(states, hist, first.tolist(), lens.tolist()))]
        return new, logp, starts

    def _pool_for(self, states: Sequence[TransformerState], need: int):
        """The pool a forward of ``states`` plus ``need`` new tokens writes into: the current one,
        or a new one when it lacks room, with every state's context moved into it first."""
        from lmplug.model import KVPool

        pool = self._pool
        outside = [s for s in states if s.pool is not pool]
        moving = sum(len(s.ctx) for s in outside)
        if pool is None or pool.free < need + moving:
            moving = sum(len(s.ctx) for s in states)
            cap = max(self.pool_tokens, 2 * (need + moving) + 1)
            pool = self._pool = KVPool(self.config, cap, self.device, self.model.wte.weight.dtype)
            outside = list(states)
        self._migrate(outside)
        return pool

    def _migrate(self, states: Sequence[TransformerState]) -> None:
        """Move the contexts of ``states`` that live in an older pool into the current one, IN
        PLACE (one copy per slot however many states share it), so old pools can be freed."""
        uniq = list({id(s): s for s in states}.values())  # a state listed twice moves once
        by_pool: dict[int, tuple[Any, list[TransformerState]]] = {}
        for s in uniq:
            if s.pool is not self._pool and len(s.ctx):
                by_pool.setdefault(id(s.pool), (s.pool, []))[1].append(s)
        for old, group in by_pool.values():
            slots = np.unique(np.concatenate([s.ctx for s in group]))
            start = self._pool.copy_from(old, torch.from_numpy(slots).to(self.device))
            for s in group:
                s.ctx = start + np.searchsorted(slots, s.ctx)
        for s in uniq:
            s.pool = self._pool

    def _root_state(self) -> TransformerState:
        if self._root is None:
            empty = TransformerState(self._pool, np.zeros(0, dtype=np.int64), 0, torch.zeros(1, self.vocab_size, device=self.device), 0)
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
                out[i] = WordEndState.of(a) if self.word_end else a
        slide = sorted(set(todo) - set(fits))
        if slide:
            for i, st in zip(slide, Scorer.advance_words(self, [base[i] for i in slide], [words[i] for i in slide])):
                out[i] = st
        return out

    @torch.inference_mode()
    def compact(self, states):
        """Move the contexts of ``states`` (the live ones) out of older pools into the current
        one, in place, so that pools only dropped states still use can be freed (KV memory stays
        ~ live states plus one pool); the same states are returned."""
        core: list[TransformerState] = []
        for st in states:
            if isinstance(st, PendingState):
                core.append(st.base)
                if st.mat is not None:
                    core.append(st.mat)
            else:
                core.append(st)
        old = [st for st in core if st.pool is not self._pool]
        if old and self._pool is not None:
            self._pool_for(old, 0)
        return list(states)

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
            new = [WordEndState.of(a) for a in after]
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
        ``r in rows``, in one forward (rows padded to the longest word only in attention):
        (states after them, summed log-probs of pieces 2.. (len(rows),))."""
        rows = list(rows)
        after, parts = self._run([states[r] for r in rows], [ids[r] if full else ids[r][:-1] for r in rows])
        out = np.zeros(len(rows))
        k = 0
        for logp, starts in parts:  # piece j+1 is predicted at the row's position j
            n = len(starts)
            words = [ids[r] for r in rows[k : k + n]]
            npred = [len(w) - 1 for w in words]
            if sum(npred):
                row = np.repeat(np.arange(n), npred)
                pos = starts.cpu().numpy()[row] + np.concatenate([np.arange(m) for m in npred])
                tgt = np.fromiter((p for w in words for p in w[1:]), dtype=np.int64)
                lp = logp[torch.as_tensor(pos, device=logp.device), torch.as_tensor(tgt, device=logp.device)]
                out[k : k + n] = np.bincount(row, weights=lp.double().cpu().numpy(), minlength=n)
            k += n
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
