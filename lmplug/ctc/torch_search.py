"""The CTC beam search as tensor operations on one device (``build_ctc_decoder(search="torch")``).

The same search as :mod:`lmplug.ctc.search` (same hypotheses, candidates, merging, pruning and
scores; the test suite checks they agree), for what it supports: no scorers with any labels, or
one token-level Transformer scorer with sentencepiece labels (``mode="token"``). Everything the
host-side search keeps in a trie and in dicts lives here in fixed-shape tensors of ``(B, K)``
hypotheses (B utterances, K = beam size), so a frame is a fixed sequence of ~150 small tensor
operations (~300 with a 4-layer LM; gpu_check's decode_profile counts them) over the whole batch,
with no transfer to the host and no synchronisation: on a GPU the host only queues work. The LM's
next-token log-probs of every hypothesis come from one KV-cached forward per frame over all
``B * K`` rows (rows that did not extend their prefix pass a masked token; on the host, eager, over
the rows that did only, ~1/4 of them: shapes that change cost nothing there), written in place into
a cache whose columns are allocated ahead (:meth:`lmplug.model.TransformerLM.forward_slot`). A
row's tokens are packed from column 0 (``<s>``), so the cache needs as many columns as the
longest prefix has tokens, not as many as there are frames: it grows by ``GROW`` columns when the
next ``GROW`` frames could overflow it, which the frame loop sees without waiting for the device
(the count of tokens is read from a copy started ``GROW`` frames earlier). Every shape is fixed
between growths, so ``compile="reduce-overhead"`` replays frames as CUDA graphs (one recording per
cache size).

Identities without a trie: a prefix is named by two 31-bit polynomial hashes of its labels (a
collision between two of the <= K * top_k candidates of one utterance and frame has probability
~1e-15); its open word by two hashes of the word's text (history recombination). Rows that hold
no hypothesis have score -inf and candidates that never merge with a real one.
"""

from __future__ import annotations

import numpy as np
import torch

from lmplug.ctc.plan import SearchPlan
from lmplug.ctc.types import CTC, WORDS, CTCHypothesis

MOD = (2147483647, 2147483629)  # two primes below 2**31: the two hashes of a prefix / word
MUL = (1000003, 999983)  # their multipliers; MOD * MUL < 2**62, so int64 never overflows
KEY_MUL = 998244353  # folds the last label into the first prefix hash for the merge key
NEG = float("-inf")
GROW = 16  # frames between the LM cache's size checks, and the columns it grows by
# a hypothesis' int fields (h["i"][..., j]); a candidate's, selected in one gather: the first nine
# of INT, then what the buffers and the LM need
INT = ("last", "h0", "h1", "w0", "w1", "plen", "nwords", "ws", "ce", "ntok", "nsp")
CAND = INT[:-2] + ("done_ws", "done_ce", "ext", "completes")


def _extend(h: torch.Tensor, tok: torch.Tensor, i: int) -> torch.Tensor:
    """Hash ``i`` of a label sequence ``h`` extended by ``tok``."""
    return (h * MUL[i] + tok + 1) % MOD[i]


def _text_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per text: its polynomial hashes (two) and ``MUL ** len`` (two), for appending texts."""
    h = np.zeros((2, len(texts)), dtype=np.int64)
    p = np.ones((2, len(texts)), dtype=np.int64)
    for j, s in enumerate(texts):
        for i in range(2):
            for c in s:
                h[i, j] = (int(h[i, j]) * MUL[i] + ord(c) + 1) % MOD[i]
                p[i, j] = int(p[i, j]) * MUL[i] % MOD[i]
    return h, p


def _segment_logsumexp(x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """log-sum-exp of ``x`` (B, M) over equal ``group`` ids (B, M) in [0, M), read back per element."""
    mx = torch.full_like(x, NEG).scatter_reduce(1, group, x, "amax", include_self=True).gather(1, group)
    safe = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    s = torch.zeros_like(x).scatter_add(1, group, torch.exp(x - safe)).gather(1, group)
    return torch.log(s) + safe


def _merge(h0: torch.Tensor, h1: torch.Tensor, score: torch.Tensor,
           valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge the members of each row (B, M) with equal hashes ``(h0, h1)``; members not ``valid``
    merge with nothing and score -inf. Returns ``(order, first, merged)``: ``order`` sorts by key
    and, within a key, by score descending (a group's first member is its most probable; ties:
    the earliest), ``first`` (B, M) marks that member in sorted position, and ``merged`` is the
    group's log-sum-exp of ``score`` (read back at every position of the group)."""
    unique = -1 - torch.arange(h0.shape[1], device=h0.device)  # negative: never a hash
    key = torch.where(valid, h0 * 2**31 + h1, unique)
    score = torch.where(valid, score, NEG)
    by_score = torch.sort(score, dim=1, descending=True, stable=True)[1]
    ks, o = torch.sort(key.gather(1, by_score), dim=1, stable=True)
    order = by_score.gather(1, o)
    first = torch.ones_like(ks, dtype=torch.bool)
    first[:, 1:] = ks[:, 1:] != ks[:, :-1]
    group = first.long().cumsum(1) - 1
    return order, first, _segment_logsumexp(score.gather(1, order), group)


class TorchSearch:
    """State of one :meth:`CTCDecoder.decode` call with ``search="torch"``."""

    def __init__(self, plan: SearchPlan, steps: dict[str, np.ndarray], B: int, device: torch.device) -> None:
        self.plan, self.B, self.dev = plan, B, device
        lab = plan.labels
        self.K = plan.beam_size
        self.spm = lab.is_spm
        self.blank = lab.blank_id
        self.delim = lab.delimiter_id if lab.delimiter_id is not None else -2
        self.END = lab.size  # virtual label closing an open word
        dv = dict(device=device)
        self.st = {k: torch.as_tensor(v).to(**dv) for k, v in steps.items()}
        self.S = int(steps["ids"].shape[1])
        self.starts = torch.as_tensor(np.append(lab.starts_word, True), **dv)
        self.tlen = torch.as_tensor(np.append(lab.text_len, 0), **dv)
        th, tp = _text_hashes(list(lab.text) + [""])
        self.th, self.tp = torch.as_tensor(th, **dv), torch.as_tensor(tp, **dv)  # (2, V+1)
        self.w_words = plan.weights[WORDS]
        self.lm_name = plan.token_scorers[0] if plan.token_scorers else None
        if self.lm_name is not None:
            sc = plan.scorers[self.lm_name]
            self.model, self.cfg = sc.model, sc.config
            self.w_lm = plan.weights[self.lm_name]
            self.lm_tok = torch.as_tensor(np.append(plan.lm_tok, -1), **dv)  # (V+1,) label -> LM piece
            self._lm_step = self._compiled(self._lm_forward)
            self.forwards, self.rows, self.new_tokens = 0, 0, torch.zeros((), dtype=torch.long, device=device)
            self._seen = None  # (frame, its max(positions) on its way to the host, event): _lm_reserve
            self._spare = None  # the cache the last LM step read: the next one gathers into it (eager)

    def _compiled(self, fn):
        """``fn`` as ``compile`` asks: itself, or torch.compiled (in a mode). Static shapes first; dims
        that change between calls (a new batch's length or size) become dynamic."""
        if not self.plan.compile:
            return fn
        return torch.compile(fn, mode=None if self.plan.compile is True else self.plan.compile)

    # -- LM -------------------------------------------------------------------------------------

    @torch.inference_mode()
    def _lm_root(self, rows: int):
        """KV cache (rows; column 0 holds ``<s>``, ``GROW`` more are free) and next-token log-probs
        (rows, V_lm) after ``<s>``, one row per hypothesis."""
        m = self.model
        logits, c = m(torch.full((1, 1), self.cfg.bos_id, dtype=torch.long, device=self.dev), m.empty_cache(1, self.dev))
        zero = torch.zeros(rows, dtype=torch.long, device=self.dev)
        return c.reserve(1 + GROW).select(zero), torch.log_softmax(logits[:, 0], dim=-1).index_select(0, zero)

    @torch.inference_mode()  # like every other cache tensor (else torch.compile recompiles)
    def _lm_reserve(self, cache, s: int):
        """``cache`` with room for frames ``s .. s + GROW - 1``: each adds at most one token a row,
        written at column ``positions`` (<s> and the tokens so far), so ``max(positions) + GROW``
        columns do. On the host the maximum is read now; on a device, from a copy started at an
        earlier check if it has landed (no waiting), plus one token a frame since; else ``s + 1``."""
        most = s + 1
        if self.dev.type == "cpu":
            most = int(cache.positions.max())
        elif self.dev.type == "cuda":
            if self._seen is not None and self._seen[2].query():
                s0, seen, _ = self._seen
                most = min(most, int(seen) + s - s0)
            seen = torch.empty((), dtype=torch.long, pin_memory=True)
            seen.copy_(cache.positions.max(), non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._seen = (s, seen, done)
        need = most + GROW
        return cache.reserve(-(-need // GROW) * GROW + 1) if need > cache.length else cache

    def _lm_forward(self, cache, dist, parent: torch.Tensor, tok: torch.Tensor, fwd: torch.Tensor, spare=None):
        """Rows re-gathered from ``parent`` (B*K,) (into ``spare``'s tensors if given); rows ``fwd``
        append piece ``tok`` at their next column: one forward, fixed shapes (what ``compile=True``
        compiles, with the frame step)."""
        cache, dist = cache.select(parent, out=spare), dist.index_select(0, parent)
        slot = cache.positions.clamp(max=cache.length - 1)  # _lm_reserve keeps it below the length
        logits, cache = self.model.forward_slot(tok.clamp(min=0)[:, None], cache, slot, fwd[:, None],
                                                window=self.cfg.block_size)  # the scorer's sliding context
        return cache, torch.where(fwd[:, None], torch.log_softmax(logits[:, 0], dim=-1), dist)

    def _lm_forward_rows(self, cache, dist, parent: torch.Tensor, tok: torch.Tensor, fwd: torch.Tensor, spare=None):
        """What :meth:`_lm_forward` computes, with the LM run over the rows ``fwd`` only (on a host,
        where shapes that change every frame cost nothing; ~1/4 of the rows extend their prefix in a
        frame): their caches gathered, extended, and their new columns written back."""
        cache, dist = cache.select(parent, out=spare), dist.index_select(0, parent)
        rows = fwd.nonzero()[:, 0]
        if len(rows) == 0:
            return cache, dist
        sub = cache.select(rows)
        slot = sub.positions.clamp(max=cache.length - 1)
        logits, sub = self.model.forward_slot(tok.index_select(0, rows).clamp(min=0)[:, None], sub, slot,
                                              torch.ones(len(rows), 1, dtype=torch.bool, device=rows.device),
                                              window=self.cfg.block_size)
        r = torch.arange(len(rows), device=rows.device)
        for full, new in zip(cache.keys + cache.values, sub.keys + sub.values):  # (B, nh, L, hs)
            full[rows, :, slot] = new[r, :, slot]
        cache.valid[rows, slot] = True
        cache.positions[rows] += 1
        return cache, dist.index_copy(0, rows, torch.log_softmax(logits[:, 0], dim=-1))

    @torch.inference_mode()
    def _lm_advance(self, cache, dist, parent: torch.Tensor, tok: torch.Tensor, fwd: torch.Tensor):
        spare = None
        if not self.plan.compile:  # eager: two caches take turns, the last frame's input receives this frame's rows
            spare, self._spare = self._spare, cache
            spare = spare if spare is not None and spare.length == cache.length else None
        if self.dev.type == "cpu":  # free to ask on the host
            n = int(fwd.sum())
            self.forwards, self.new_tokens = self.forwards + (n > 0), self.new_tokens + n
            if not self.plan.compile:
                self.rows += n
                return self._lm_forward_rows(cache, dist, parent, tok, fwd, spare)
            if n == 0:
                return cache.select(parent, out=spare), dist.index_select(0, parent)
        else:
            self.forwards += 1
            self.new_tokens += fwd.sum()  # on the device: read once, at the end
        self.rows += len(fwd)
        return self._lm_step(cache, dist, parent, tok, fwd, spare)

    # -- search ---------------------------------------------------------------------------------

    def run(self) -> list[list[CTCHypothesis]]:
        B, K, S, dev = self.B, self.K, self.S, self.dev
        h = {  # hypotheses: "i" (B, K, len(INT)) int fields, "f" (B, K, 2) ac and raw, "buf" (B, K, 3, S+1)
            "i": torch.zeros(B, K, len(INT), dtype=torch.long, device=dev),
            "f": torch.zeros(B, K, 2, dtype=torch.float64, device=dev),
            "buf": torch.zeros(B, K, 3, S + 1, dtype=torch.long, device=dev),
        }
        for n in ("last", "ws", "ce"):
            h["i"][..., INT.index(n)] = -1
        h["f"][:, 1:, 0] = NEG  # one hypothesis (the empty prefix) per utterance
        cache = dist = None
        if self.lm_name is not None:
            cache, dist = self._lm_root(B * K)
        step = self._compiled(self.step)
        row0 = torch.arange(B, device=dev)[:, None] * K  # (B, 1): first LM row of each utterance
        graphs = self.plan.compile == "reduce-overhead"
        for s in range(S):
            if graphs:  # the last frame's outputs are this frame's inputs (CUDA graph trees' loop idiom)
                torch.compiler.cudagraph_mark_step_begin()
            cur = {n: self.st[n][:, s] for n in ("ids", "lp", "ok", "t", "run", "runlen")}
            cur["act"] = self.st["n"] > s  # (B,) utterances still running
            h, parent, ext, tok = step(h, cur, dist)
            if self.lm_name is not None:
                if s % GROW == 0:
                    cache = self._lm_reserve(cache, s)
                flat = (row0 + parent).reshape(-1)
                fwd = (ext & torch.isfinite(h["f"][..., 0])).reshape(-1)
                cache, dist = self._lm_advance(cache, dist, flat, self.lm_tok[tok].reshape(-1), fwd)
        if self.lm_name is not None:  # the scorer's work counters (lmplug decode --stats)
            w = self.plan.scorers[self.lm_name].work
            w["forwards"] += self.forwards
            w["rows"] += self.rows
            w["tokens"] += int(self.new_tokens)
            w["padded_tokens"] += self.rows
        return self.finish(h, dist)

    def step(self, h: dict[str, torch.Tensor], cur: dict[str, torch.Tensor], dist):
        """One compressed step (frame) ``cur`` (its slices of the steps: ``ids``/``lp``/``ok`` (B, k),
        ``t``/``run``/``runlen``/``act`` (B,)) for all hypotheses ``h``; returns the new ones, their
        parent rows, whether they extended their prefix, and the label they took."""
        c, ok, new_ac, raw, fused = self._candidates(h, cur, dist)
        m_ac, top, pick, sel, valid = self._merge_and_prune(c, ok, new_ac, fused)
        sv = {n: sel[..., j] for j, n in enumerate(CAND)}
        if self.plan.prune_history:
            valid = self._recombine(sv, valid)
        parent = pick // cur["ids"].shape[1]
        new = self._survivors(h, sel, sv, parent, m_ac, top, pick, raw, valid)
        return self._hold_finished(h, new, cur["act"], parent, sv)

    def _candidates(self, h: dict[str, torch.Tensor], cur: dict[str, torch.Tensor], dist):
        """Every hypothesis x its frame's candidate labels, (B, K, k), after the blank-only frames
        folded before this step. Returns the candidates' int fields ``c`` (by name, the fields of
        ``CAND``), whether they take part (``ok``), their CTC log-prob, raw LM score and fused
        score (without the CTC part)."""
        B, K = self.B, self.K
        k = cur["ids"].shape[1]
        hi = {n: h["i"][..., j, None] for j, n in enumerate(INT)}  # (B, K, 1) views
        ac = h["f"][..., 0] + cur["run"][:, None]
        last = torch.where(cur["runlen"][:, None, None] > 0, self.blank, hi["last"])
        tok = cur["ids"][:, None, :].expand(B, K, k)
        ok = cur["ok"][:, None, :] & torch.isfinite(ac)[..., None]
        new_ac = ac[..., None] + cur["lp"][:, None, :]
        plen = hi["plen"]
        is_blank = tok == self.blank
        is_rep = (tok == last) & ~is_blank
        noop = (tok == self.delim) & (plen == 0) & ~is_rep  # a delimiter with no open word
        ext = ~(is_blank | is_rep | noop)
        tl = self.tlen[tok]
        if self.spm:
            opens = ext & self.starts[tok]
            completes = opens & (plen > 0)
            c_plen = torch.where(ext, torch.where(opens, tl, plen + tl), plen)
        else:
            opens = ext & (tok == self.delim)  # the delimiter closes the word (and opens none)
            completes = opens
            c_plen = torch.where(ext, torch.where(completes, 0, plen + tl), plen)
        c = {"last": tok, "plen": c_plen, "nwords": hi["nwords"] + completes.long()}
        for i in (0, 1):
            c[f"h{i}"] = torch.where(ext, _extend(hi[f"h{i}"], tok, i), hi[f"h{i}"])
            w = hi[f"w{i}"]  # open word's text hash: restarted by an opening label
            grown = (torch.where(opens, 0, w) * self.tp[i][tok] + self.th[i][tok]) % MOD[i]
            c[f"w{i}"] = torch.where(ext, grown if self.spm else torch.where(completes, 0, grown), w)
        fused = self.w_words * c["nwords"].double()
        raw = h["f"][..., 1, None].expand(B, K, k)
        if self.lm_name is not None:
            lmp = dist.view(B, K, -1).gather(2, self.lm_tok[tok].clamp(min=0)).double()
            raw = raw + torch.where(ext, lmp, 0.0)
            fused = fused + self.w_lm * raw
        # word frame spans: a completed word's span is (open word start, last frame + 1)
        t = cur["t"][:, None, None]
        ws, ce = hi["ws"], torch.where(is_rep, t + 1, hi["ce"])
        c["done_ws"], c["done_ce"], c["ext"], c["completes"] = ws, ce, ext.long(), completes.long()
        if self.spm:
            c["ws"] = torch.where(opens, torch.where(tl > 0, t, -1), torch.where(ext & (ws < 0), t, ws))
            c["ce"] = torch.where(ext, t + 1, ce)
        else:
            c["ws"] = torch.where(opens, -1, torch.where(ext & (ws < 0), t, ws))
            c["ce"] = torch.where(ext & ~opens, t + 1, ce)
        return c, ok, new_ac, raw, fused

    def _merge_and_prune(self, c: dict[str, torch.Tensor], ok: torch.Tensor, new_ac: torch.Tensor,
                         fused: torch.Tensor):
        """Merge equal (prefix, last label) candidates (those outside the frame's labels never
        merge), drop outliers, keep the best K per utterance. Returns the merged CTC log-probs
        (B, M) in merge order, the kept positions in it ``top`` (B, K) (best first), their
        candidate indices ``pick`` into (K, k), their ``CAND`` fields ``sel`` (B, K, len(CAND)) and
        whether they hold a hypothesis (``valid``)."""
        B, K = self.B, self.K
        k = c["last"].shape[-1]
        M = K * k
        with_last = (c["h0"] * KEY_MUL + c["last"] + 2) % MOD[0]  # the last label folded into the first hash
        order, first, m_ac = _merge(with_last.reshape(B, M), c["h1"].expand(B, K, k).reshape(B, M),
                                    new_ac.reshape(B, M), ok.reshape(B, M))
        total = torch.where(first, m_ac + fused.reshape(B, M).gather(1, order), NEG)
        best = total.max(1, keepdim=True).values
        total = torch.where(total >= best + self.plan.beam_prune_logp, total, NEG)
        top_score, top = torch.topk(total, K, dim=1)  # (B, K), best first
        pick = order.gather(1, top)  # candidate index in (K, k) of each new hypothesis
        sel = torch.stack([c[n].expand(B, K, k) for n in CAND], -1).reshape(B, M, len(CAND)).gather(
            1, pick[..., None].expand(B, K, len(CAND)))  # (B, K, len(CAND)), in one gather
        return m_ac, top, pick, sel, torch.isfinite(top_score)

    def _recombine(self, sv: dict[str, torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
        """``prune_history``: of the kept hypotheses with the same open word and last label, only
        the best stays ``valid``."""
        K = self.K
        same = valid[:, None, :] & valid[:, :, None]
        for n in ("w0", "w1", "last"):
            same = same & (sv[n][:, :, None] == sv[n][:, None, :])
        return valid & ~(same & torch.ones(K, K, dtype=torch.bool, device=self.dev).tril(-1)).any(2)

    def _survivors(self, h, sel, sv, parent, m_ac, top, pick, raw, valid) -> dict[str, torch.Tensor]:
        """The new hypotheses: their fields, scores, and token / span buffers. Tokens and spans
        follow their parents; a new token / finished span goes at the first free place (written
        for every row: past a row's count nothing is read)."""
        B, K = self.B, self.K
        ntok, nsp = h["i"][..., INT.index("ntok")].gather(1, parent), h["i"][..., INT.index("nsp")].gather(1, parent)
        buf = h["buf"].gather(1, parent[..., None, None].expand(B, K, 3, self.S + 1))
        buf[:, :, 0].scatter_(2, ntok[..., None], sv["last"][..., None])
        buf[:, :, 1:].scatter_(3, nsp[..., None, None].expand(B, K, 2, 1), sel[..., CAND.index("done_ws"):][..., :2, None])
        return {
            "i": torch.cat([sel[..., : len(INT) - 2], (ntok + sv["ext"])[..., None], (nsp + sv["completes"])[..., None]], -1),
            "f": torch.stack([torch.where(valid, m_ac.gather(1, top), NEG),
                              raw.reshape(B, -1).gather(1, pick)], -1),
            "buf": buf,
        }

    def _hold_finished(self, h, new, act: torch.Tensor, parent: torch.Tensor, sv):
        """Utterances that have finished (``act`` False) keep their hypotheses (their own rows,
        no extension); returns what :meth:`step` returns."""
        B, K = self.B, self.K
        a = act[:, None]
        out = {n: torch.where(a.view(B, 1, *[1] * (v.dim() - 2)), v, h[n]) for n, v in new.items()}
        keep = torch.arange(K, device=self.dev).expand(B, K)
        return out, torch.where(a, parent, keep), sv["ext"].bool() & a, sv["last"]

    def finish(self, h: dict[str, torch.Tensor], dist) -> list[list[CTCHypothesis]]:
        """Close open words, add end-of-sentence scores, merge equal prefixes, sort the n-best."""
        plan, B, K = self.plan, self.B, self.K
        hi = {n: h["i"][..., j] for j, n in enumerate(INT)}
        ac = h["f"][..., 0] + self.st["tail"][:, None]
        open_ = hi["plen"] > 0
        nwords = hi["nwords"] + open_.long()
        end = torch.full_like(hi["h0"], self.END if self.spm else self.delim)  # what closes an open word
        f = [torch.where(open_, _extend(hi[f"h{i}"], end, i), hi[f"h{i}"]) for i in (0, 1)]
        raw = h["f"][..., 1]
        if self.lm_name is not None:
            raw = raw + dist[:, self.cfg.eos_id].view(B, K).double()
        order, first, m_ac = _merge(f[0], f[1], ac, torch.isfinite(ac))
        fused = self.w_words * nwords.double() + (self.w_lm * raw if self.lm_name is not None else 0.0)
        total = torch.where(first, m_ac + fused.gather(1, order), NEG)
        total, rank = torch.sort(total, dim=1, descending=True, stable=True)
        pick = order.gather(1, rank)[:, : plan.nbest]
        cpu = {n: v.gather(1, pick).cpu().numpy() for n, v in (
            ("ws", hi["ws"]), ("ce", hi["ce"]), ("ntok", hi["ntok"]), ("nsp", hi["nsp"]), ("nwords", nwords), ("raw", raw))}
        bufs = h["buf"].gather(1, pick[..., None, None].expand(B, pick.shape[1], 3, self.S + 1)).cpu().numpy()
        score = total[:, : plan.nbest].cpu().numpy()
        ctc = m_ac.gather(1, rank)[:, : plan.nbest].cpu().numpy()
        results: list[list[CTCHypothesis]] = [[] for _ in range(B)]
        for b in range(B):
            for j in range(pick.shape[1]):
                if not np.isfinite(score[b, j]):
                    break
                toks = bufs[b, j, 0, : cpu["ntok"][b, j]].tolist()
                n = int(cpu["nsp"][b, j])
                spans = list(zip(bufs[b, j, 1, :n].tolist(), bufs[b, j, 2, :n].tolist()))
                if cpu["ws"][b, j] >= 0:
                    spans.append((int(cpu["ws"][b, j]), int(cpu["ce"][b, j])))
                scores = {CTC: float(ctc[b, j])}
                if self.lm_name is not None:
                    scores[self.lm_name] = float(cpu["raw"][b, j])
                scores[WORDS] = float(cpu["nwords"][b, j])
                results[b].append(CTCHypothesis(plan.labels.spell(toks), toks, spans, float(score[b, j]), scores))
        return results
