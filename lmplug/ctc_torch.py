"""The CTC beam search as tensor operations on one device (``build_ctc_decoder(search="torch")``).

The same search as :mod:`lmplug.ctc_search` (same hypotheses, candidates, merging, pruning and
scores; the test suite checks they agree), for what it supports: no scorers with any labels, or
one token-level Transformer scorer with sentencepiece labels (``mode="token"``). Everything the
host-side search keeps in a trie and in dicts lives here in fixed-shape tensors of ``(B, K)``
hypotheses (B utterances, K = beam size), so a frame is a few dozen tensor operations over the
whole batch with no transfer to the host and no synchronisation: on a GPU the host only queues
work. The LM's next-token log-probs of every hypothesis come from one KV-cached forward per frame
over all ``B * K`` rows (rows that did not extend their prefix pass a padding token).

Identities without a trie: a prefix is named by two 31-bit polynomial hashes of its labels (a
collision between two of the <= K * top_k candidates of one utterance and frame has probability
~1e-15); its open word by two hashes of the word's text (history recombination). Rows that hold
no hypothesis have score -inf and candidates that never merge with a real one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from lmplug.ctc_search import CTC, WORDS, CTCHypothesis

if TYPE_CHECKING:
    from lmplug.ctc import CTCDecoder

MOD = (2147483647, 2147483629)  # two primes below 2**31: the two hashes of a prefix / word
MUL = (1000003, 999983)  # their multipliers; MOD * MUL < 2**62, so int64 never overflows
KEY_MUL = 998244353  # folds the last label into the first prefix hash for the merge key
NEG = float("-inf")


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


def _merge(key: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge equal ``key``s of each row (B, M): ``(order, first, merged)`` where ``order`` sorts by
    key and, within a key, by ``score`` descending (so a group's first member is its most probable;
    ties: the earliest), ``first`` (B, M) marks that member in sorted position, and ``merged`` is
    the group's log-sum-exp of ``score`` (read back at every position of the group)."""
    by_score = torch.sort(score, dim=1, descending=True, stable=True)[1]
    ks, o = torch.sort(key.gather(1, by_score), dim=1, stable=True)
    order = by_score.gather(1, o)
    first = torch.ones_like(ks, dtype=torch.bool)
    first[:, 1:] = ks[:, 1:] != ks[:, :-1]
    group = first.long().cumsum(1) - 1
    return order, first, _segment_logsumexp(score.gather(1, order), group)


class TorchSearch:
    """State of one :meth:`CTCDecoder.decode` call with ``search="torch"``."""

    def __init__(self, dec: CTCDecoder, steps: dict[str, np.ndarray], B: int, device: torch.device) -> None:
        self.d, self.B, self.dev = dec, B, device
        lab = dec.labels
        self.K = dec.beam_size
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
        self.w_words = dec.weights[WORDS]
        self.lm_name = dec.token_scorers[0] if dec.token_scorers else None
        if self.lm_name is not None:
            sc = dec.scorers[self.lm_name]
            self.model, self.cfg = sc.model, sc.config
            self.w_lm = dec.weights[self.lm_name]
            self.lm_tok = torch.as_tensor(np.append(dec.lm_tok, -1), **dv)  # (V+1,) label -> LM piece

    # -- LM -------------------------------------------------------------------------------------

    @torch.inference_mode()
    def _lm_root(self, rows: int):
        """KV cache and next-token log-probs (rows, V_lm) after ``<s>``, one row per hypothesis."""
        m = self.model
        cache = m.empty_cache(1, self.dev)
        logits, cache = m(torch.full((1, 1), self.cfg.bos_id, dtype=torch.long, device=self.dev), cache)
        zero = torch.zeros(rows, dtype=torch.long, device=self.dev)
        return cache.select(zero), torch.log_softmax(logits[:, 0], dim=-1).index_select(0, zero)

    @torch.inference_mode()
    def _lm_advance(self, cache, dist, parent: torch.Tensor, tok: torch.Tensor, fwd: torch.Tensor):
        """Rows re-gathered from ``parent`` (B*K,); rows ``fwd`` append piece ``tok``: one forward."""
        from lmplug.scorer import _window

        cache, dist = cache.select(parent), dist.index_select(0, parent)
        if self.dev.type == "cpu" and not bool(fwd.any()):  # free to ask on the host
            return cache, dist
        if cache.length + 1 > self.cfg.block_size:  # the scorer's sliding window: block_size - 1 of history
            cache = _window(cache, self.cfg.block_size - 1)
        logits, cache = self.model(tok.clamp(min=0)[:, None], cache, token_mask=fwd[:, None])
        return cache, torch.where(fwd[:, None], torch.log_softmax(logits[:, 0], dim=-1), dist)

    # -- search ---------------------------------------------------------------------------------

    def run(self) -> list[list[CTCHypothesis]]:
        B, K, S, dev = self.B, self.K, self.S, self.dev
        i64 = dict(dtype=torch.long, device=dev)
        z = torch.zeros(B, K, **i64)
        h = {  # one (B, K) tensor per attribute of a hypothesis; buffers (B, K, S + 1)
            "ac": torch.full((B, K), NEG, dtype=torch.float64, device=dev), "last": z - 1,
            "h0": z, "h1": z, "w0": z, "w1": z, "plen": z, "nwords": z, "ws": z - 1, "ce": z - 1,
            "raw": torch.zeros(B, K, dtype=torch.float64, device=dev), "ntok": z, "nsp": z,
            "toks": torch.zeros(B, K, S + 1, **i64), "sps": torch.zeros(B, K, S + 1, **i64),
            "spe": torch.zeros(B, K, S + 1, **i64),
        }
        h["ac"][:, 0] = 0.0  # one hypothesis (the empty prefix) per utterance
        cache = dist = None
        if self.lm_name is not None:
            cache, dist = self._lm_root(B * K)
        step = self.step
        if self.d.compile:
            step = torch.compile(self.step)  # static shapes first; dims that change become dynamic
        for s in range(S):
            cur = {n: self.st[n][:, s] for n in ("ids", "lp", "ok", "t", "run", "runlen")}
            cur["act"] = self.st["n"] > s  # (B,) utterances still running
            h, parent, ext, tok = step(h, cur, dist)
            if self.lm_name is not None:
                flat = (torch.arange(B, device=dev)[:, None] * K + parent).reshape(-1)
                fwd = (ext & torch.isfinite(h["ac"])).reshape(-1)
                cache, dist = self._lm_advance(cache, dist, flat, self.lm_tok[tok].reshape(-1), fwd)
        return self.finish(h, dist)

    def step(self, h: dict[str, torch.Tensor], cur: dict[str, torch.Tensor], dist):
        """One compressed step (frame) ``cur`` (its slices of the steps: ``ids``/``lp``/``ok`` (B, k),
        ``t``/``run``/``runlen``/``act`` (B,)) for all hypotheses ``h``; returns the new ones, their
        parent rows, whether they extended their prefix, and the label they took."""
        d, B, K = self.d, self.B, self.K
        k = cur["ids"].shape[1]
        act = cur["act"]
        # 1. blank-only frames folded before this step
        ac = h["ac"] + cur["run"][:, None]
        last = torch.where(cur["runlen"][:, None] > 0, self.blank, h["last"])
        # 2. every hypothesis x its frame's candidate labels: (B, K, k)
        tok = cur["ids"][:, None, :].expand(B, K, k)
        ok = cur["ok"][:, None, :] & torch.isfinite(ac)[..., None]
        new_ac = ac[..., None] + cur["lp"][:, None, :]
        plen = h["plen"][..., None]
        is_blank = tok == self.blank
        is_rep = (tok == last[..., None]) & ~is_blank
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
        c = {"last": tok, "plen": c_plen, "nwords": h["nwords"][..., None] + completes.long()}
        for i in (0, 1):
            c[f"h{i}"] = torch.where(ext, _extend(h[f"h{i}"][..., None], tok, i), h[f"h{i}"][..., None])
            w = h[f"w{i}"][..., None]  # open word's text hash: restarted by an opening label
            grown = (torch.where(opens, 0, w) * self.tp[i][tok] + self.th[i][tok]) % MOD[i]
            c[f"w{i}"] = torch.where(ext, grown if self.spm else torch.where(completes, 0, grown), w)
        fused = self.w_words * c["nwords"].double()
        c["raw"] = h["raw"][..., None].expand(B, K, k)
        if self.lm_name is not None:
            lmp = dist.view(B, K, -1).gather(2, self.lm_tok[tok].clamp(min=0)).double()
            c["raw"] = c["raw"] + torch.where(ext, lmp, 0.0)
            fused = fused + self.w_lm * c["raw"]
        # word frame spans: a completed word's span is (open word start, last frame + 1)
        t = cur["t"][:, None, None]
        ws, ce = h["ws"][..., None], torch.where(is_rep, t + 1, h["ce"][..., None])
        c["done_ws"], c["done_ce"], c["completes"] = ws.expand(B, K, k), ce, completes
        if self.spm:
            c["ws"] = torch.where(opens, torch.where(tl > 0, t, -1), torch.where(ext & (ws < 0), t, ws))
            c["ce"] = torch.where(ext, t + 1, ce)
        else:
            c["ws"] = torch.where(opens, -1, torch.where(ext & (ws < 0), t, ws))
            c["ce"] = torch.where(ext & ~opens, t + 1, ce)
        c["ext"] = ext
        # 3. merge equal (prefix, last label) states; candidates outside the frame's labels never merge
        M = K * k
        key = ((c["h0"] * KEY_MUL + tok + 2) % MOD[0]) * 2**31 + c["h1"]
        key = torch.where(ok, key, -1 - torch.arange(M, device=self.dev).view(1, K, k))
        order, first, m_ac = _merge(key.reshape(B, M), torch.where(ok, new_ac, NEG).reshape(B, M))
        flat = {n: v.expand(B, K, k).reshape(B, M).gather(1, order) for n, v in c.items()}  # sorted order
        # 4. score and prune: outliers, then the best K per utterance
        total = torch.where(first, m_ac + fused.reshape(B, M).gather(1, order), NEG)
        best = total.max(1, keepdim=True).values
        total = torch.where(total >= best + d.beam_prune_logp, total, NEG)
        top_score, top = torch.topk(total, K, dim=1)  # (B, K), best first
        sel = {n: v.gather(1, top) for n, v in flat.items()}
        parent = order.gather(1, top) // k
        valid = torch.isfinite(top_score)
        if d.prune_history:  # keep the best of hypotheses with the same open word and last label
            same = ((sel["w0"][:, :, None] == sel["w0"][:, None, :]) & (sel["w1"][:, :, None] == sel["w1"][:, None, :])
                    & (sel["last"][:, :, None] == sel["last"][:, None, :]) & valid[:, None, :] & valid[:, :, None])
            valid = valid & ~(same & torch.ones(K, K, dtype=torch.bool, device=self.dev).tril(-1)).any(2)
        new = {n: sel[n] for n in ("last", "h0", "h1", "w0", "w1", "plen", "nwords", "raw", "ws", "ce")}
        new["ac"] = torch.where(valid, m_ac.gather(1, top), NEG)
        # token and span buffers follow their parents; extensions append
        ext, done = sel["ext"], sel["completes"]
        for n in ("toks", "sps", "spe"):
            new[n] = h[n].gather(1, parent[..., None].expand(B, K, self.S + 1))
        new["toks"].scatter_(2, h["ntok"].gather(1, parent)[..., None], torch.where(
            ext, sel["last"], new["toks"].gather(2, h["ntok"].gather(1, parent)[..., None])[..., 0])[..., None])
        nsp = h["nsp"].gather(1, parent)
        for n, v in (("sps", sel["done_ws"]), ("spe", sel["done_ce"])):
            new[n].scatter_(2, nsp[..., None], torch.where(done, v, new[n].gather(2, nsp[..., None])[..., 0])[..., None])
        new["ntok"] = h["ntok"].gather(1, parent) + ext.long()
        new["nsp"] = nsp + done.long()
        # finished utterances keep their hypotheses
        a2 = act[:, None]
        out = {n: torch.where(a2[..., None] if v.dim() == 3 else a2, v, h[n]) for n, v in new.items()}
        keep = torch.arange(K, device=self.dev).expand(B, K)
        return out, torch.where(a2, parent, keep), ext & a2, sel["last"]

    def finish(self, h: dict[str, torch.Tensor], dist) -> list[list[CTCHypothesis]]:
        """Close open words, add end-of-sentence scores, merge equal prefixes, sort the n-best."""
        d, B, K = self.d, self.B, self.K
        ac = h["ac"] + self.st["tail"][:, None]
        open_ = h["plen"] > 0
        nwords = h["nwords"] + open_.long()
        end = torch.full_like(h["h0"], self.END if self.spm else self.delim)  # what closes an open word
        f = [torch.where(open_, _extend(h[f"h{i}"], end, i), h[f"h{i}"]) for i in (0, 1)]
        raw = h["raw"]
        if self.lm_name is not None:
            raw = raw + dist[:, self.cfg.eos_id].view(B, K).double()
        valid = torch.isfinite(ac)
        key = torch.where(valid, f[0] * 2**31 + f[1], -1 - torch.arange(K, device=self.dev).expand(B, K))
        order, first, m_ac = _merge(key, torch.where(valid, ac, NEG))
        fused = self.w_words * nwords.double() + (self.w_lm * raw if self.lm_name is not None else 0.0)
        total = torch.where(first, m_ac + fused.gather(1, order), NEG)
        total, rank = torch.sort(total, dim=1, descending=True, stable=True)
        pick = order.gather(1, rank)[:, : d.nbest]
        cpu = {n: v.gather(1, pick).cpu().numpy() for n, v in (
            ("ws", h["ws"]), ("ce", h["ce"]), ("ntok", h["ntok"]), ("nsp", h["nsp"]), ("nwords", nwords), ("raw", raw))}
        bufs = {n: h[n].gather(1, pick[..., None].expand(B, pick.shape[1], self.S + 1)).cpu().numpy()
                for n in ("toks", "sps", "spe")}
        score = total[:, : d.nbest].cpu().numpy()
        ctc = m_ac.gather(1, rank)[:, : d.nbest].cpu().numpy()
        results: list[list[CTCHypothesis]] = [[] for _ in range(B)]
        for b in range(B):
            for j in range(pick.shape[1]):
                if not np.isfinite(score[b, j]):
                    break
                toks = bufs["toks"][b, j, : cpu["ntok"][b, j]].tolist()
                n = int(cpu["nsp"][b, j])
                spans = list(zip(bufs["sps"][b, j, :n].tolist(), bufs["spe"][b, j, :n].tolist()))
                if cpu["ws"][b, j] >= 0:
                    spans.append((int(cpu["ws"][b, j]), int(cpu["ce"][b, j])))
                scores = {CTC: float(ctc[b, j])}
                if self.lm_name is not None:
                    scores[self.lm_name] = float(cpu["raw"][b, j])
                scores[WORDS] = float(cpu["nwords"][b, j])
                results[b].append(CTCHypothesis(d.labels.spell(toks), toks, spans, float(score[b, j]), scores))
        return results
