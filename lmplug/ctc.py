"""CTC prefix beam search with LM shallow fusion, batched over beams and utterances.

Entry point: :func:`build_ctc_decoder`. A hypothesis scores

    score = log P_ctc + sum_k weights[k] * score_k + weights["words"] * n_words

where ``score_k`` are natural-log scores of the named scorers (``lmplug.scorer``). Every
hypothesis keeps its per-feature scores, so weights can be re-tuned on n-best lists.

How the search runs (all utterances of a batch in lock step):

- Hypotheses are (prefix, last emitted label) states, as in pyctcdecode: a prefix ending in a
  blank and the same prefix ending in its last label are separate beams, merged (log-sum-exp)
  when they meet. Beam 1 is therefore exactly greedy decoding.
- Per frame only labels with ``log p >= token_min_logp`` (and the arg-max) are expanded, at most
  ``token_top_k`` of them. Frames where only the blank survives are skipped: the blank's log-prob
  is added in bulk before the next frame that spells something.
- Prefixes live in one trie shared by all utterances; every array operation (expansion, merging,
  pruning) is a numpy operation over all hypotheses of the batch at once.
- LM scores attach to trie nodes, so each (history, word) is scored once per call. Word mode:
  a node that completes a word is scored by every scorer in ONE batched call per step for the
  whole batch (only nodes whose LM-free score ranks in the top ``lm_prefilter * beam_size`` of
  their utterance). Token mode (acoustic labels = the LM's sentencepiece pieces): the LM's
  next-token log-probs are read from each surviving prefix's state, and the states of the new
  surviving prefixes are computed by one KV-cached forward per step.
- At the end every open word is closed, the end-of-sentence score added, and the n-best sorted.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from lmplug.ctc_labels import CTCLabels, build_labels
from lmplug.errors import LmplugError
from lmplug.scorer import Scorer

WORDS = "words"  # feature: number of words (its weight is the word insertion bonus)
CTC = "ctc"  # feature: CTC log-probability (weight 1, fixed)
AVG_WORD_LEN = 6  # partial words longer than this get a proportionally larger OOV penalty


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


class _Nodes:
    """Growable per-node arrays of the prefix trie."""

    def __init__(self, scorer_names: Sequence[str], n_ptrie: int) -> None:
        self.n = 0
        self.cap = 0
        self.int_fields = ["parent", "tok", "key", "plen", "nwords", "hist", "pid"] + [f"cls:{s}" for s in scorer_names] + [f"pt{i}" for i in range(n_ptrie)]
        self.float_fields = ["fused", "ub", "ppen"] + [f"raw:{s}" for s in scorer_names]
        self.a: dict[str, np.ndarray] = {}
        self._grow(1024)

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self.cap)
        for f in self.int_fields:
            old = self.a.get(f)
            new = np.zeros(cap, dtype=np.int64)
            if old is not None:
                new[: self.n] = old[: self.n]
            self.a[f] = new
        for f in self.float_fields:
            old = self.a.get(f)
            new = np.zeros(cap, dtype=np.float64)
            if old is not None:
                new[: self.n] = old[: self.n]
            self.a[f] = new
        self.cap = cap

    def alloc(self, m: int) -> np.ndarray:
        if self.n + m > self.cap:
            self._grow(self.n + m)
        ids = np.arange(self.n, self.n + m)
        self.n += m
        return ids


class CTCDecoder:
    """Batched CTC beam search with named scorers; build it with :func:`build_ctc_decoder`."""

    def __init__(
        self,
        labels: CTCLabels,
        scorers: Mapping[str, Scorer],
        weights: Mapping[str, float],
        mode: str = "word",
        beam_size: int = 16,
        nbest: int = 1,
        token_min_logp: float = -5.0,
        token_top_k: int | None = 16,
        beam_prune_logp: float = -10.0,
        lm_prefilter: float = 2.0,
        partial_oov_logp: float = -10.0,
        prune_history: bool | None = None,
    ) -> None:
        if mode not in ("word", "token"):
            raise LmplugError(f"expected mode 'word' or 'token', found {mode!r}")
        if beam_size < 1 or nbest < 1:
            raise LmplugError(f"expected beam_size >= 1 and nbest >= 1, found {beam_size} and {nbest}")
        for name, s in scorers.items():
            if name in (CTC, WORDS):
                raise LmplugError(f"scorer name {name!r} is reserved; expected another name")
            if not isinstance(s, Scorer):
                raise LmplugError(f"scorer {name!r}: expected an lmplug.scorer.Scorer, found {type(s).__name__}")
        self.labels = labels
        self.scorers = dict(scorers)
        self.mode = mode
        self.beam_size = beam_size
        self.nbest = nbest
        self.token_min_logp = token_min_logp
        self.token_top_k = token_top_k
        self.beam_prune_logp = beam_prune_logp
        self.lm_prefilter = lm_prefilter
        self.partial_oov_logp = partial_oov_logp
        finite = all(s.finite_history for s in scorers.values()) and not (
            mode == "token" and any(s.token_level for s in scorers.values()))
        self.prune_history = (nbest == 1 if prune_history is None else prune_history) and finite
        self.token_scorers = [n for n, s in self.scorers.items() if mode == "token" and s.token_level]
        self.word_scorers = [n for n in self.scorers if n not in self.token_scorers]
        self.lm_tok = self._token_map() if self.token_scorers else None
        self.set_weights(weights)

    # -- configuration ------------------------------------------------------------------------

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replace the fusion weights (``{scorer name: w, "words": insertion bonus}``)."""
        allowed = set(self.scorers) | {WORDS}
        unknown = set(weights) - allowed
        missing = set(self.scorers) - set(weights)
        if unknown or missing:
            raise LmplugError(
                f"expected weights for scorers {sorted(self.scorers)} (and optionally '{WORDS}'), "
                f"found {sorted(weights)}" + (f"; unknown {sorted(unknown)}" if unknown else "")
                + (f"; missing {sorted(missing)}" if missing else "")
            )
        bad = {k: v for k, v in weights.items() if not math.isfinite(float(v))}
        if bad:
            raise LmplugError(f"expected finite weights, found {bad}")
        self.weights = {k: float(v) for k, v in weights.items()}
        self.weights.setdefault(WORDS, 0.0)
        self._ptries = self._build_ptries()

    def _token_map(self) -> np.ndarray:
        """Acoustic label id -> LM piece id (token mode), validating the vocabularies agree."""
        lab = self.labels
        if not lab.is_spm:
            raise LmplugError(
                "token mode needs sentencepiece acoustic labels (starting with '▁') equal to the LM's "
                f"pieces; found character labels {list(lab.labels)[:8]}...; use mode='word'"
            )
        maps = []
        for name in self.token_scorers:
            tok = self.scorers[name].tokenizer
            m = np.full(lab.size + 1, -1, dtype=np.int64)
            bad = []
            for i, x in enumerate(lab.labels):
                if i == lab.blank_id:
                    continue
                pid = tok.unk_id if x.lower() in ("<unk>", "[unk]") else tok.piece_to_id(x)
                if pid == tok.unk_id and x.lower() not in ("<unk>", "[unk]"):
                    bad.append(x)
                m[i] = pid
            if bad:
                raise LmplugError(
                    f"token mode: expected every acoustic label to be a piece of scorer {name!r}'s tokenizer, "
                    f"found {len(bad)} of {lab.size - 1} missing (e.g. {bad[:5]}); use mode='word'"
                )
            maps.append(m)
        if any(not np.array_equal(maps[0], m) for m in maps[1:]):
            raise LmplugError("token mode: expected all token-level scorers to share one tokenizer, found different ones")
        return maps[0]

    def _build_ptries(self) -> list[tuple[str, np.ndarray, float]]:
        """Per weighted word scorer with a word list: a prefix automaton over labels (char style).

        A hypothesis whose open word starts no known word gets ``partial_oov_logp`` (unweighted,
        as pyctcdecode's ``unk_score_offset``), scaled up for words longer than 6 characters.

        State 0 is the empty prefix; ``table[state, label]`` is the next state or -1 when no
        known word starts with the extended prefix.
        """
        out = []
        lab = self.labels
        if lab.is_spm:
            return out
        char_id = {lab.text[i]: i for i in range(lab.size) if lab.text_len[i] == 1}
        for name in self.word_scorers:
            s = self.scorers[name]
            words = s.known_words()
            if not words or self.partial_oov_logp == 0.0 or self.weights[name] == 0.0:
                continue
            trans: list[dict[int, int]] = [{}]
            for w in words:
                ids = [char_id.get(c) for c in w]
                if None in ids:
                    continue
                st = 0
                for i in ids:
                    nxt = trans[st].get(i)
                    if nxt is None:
                        nxt = len(trans)
                        trans[st][i] = nxt
                        trans.append({})
                    st = nxt
            table = np.full((len(trans), lab.size + 1), -1, dtype=np.int32)
            for st, d in enumerate(trans):
                for i, nxt in d.items():
                    table[st, i] = nxt
            out.append((name, table, self.partial_oov_logp))
        return out

    # -- input --------------------------------------------------------------------------------

    def _prepare(self, emissions, lengths, logits: bool) -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
        """Validate; float32 log-probs (B, T, V): numpy for CPU input, a tensor on its device else."""
        if isinstance(emissions, np.ndarray):
            x = torch.from_numpy(emissions)
        elif torch.is_tensor(emissions):
            x = emissions.detach()
        else:
            raise LmplugError(f"expected emissions as a numpy array or torch tensor, found {type(emissions).__name__}")
        if x.dim() != 3:
            hint = " (for one utterance pass emissions[None])" if x.dim() == 2 else ""
            raise LmplugError(f"expected emissions of shape (batch, time, vocab), found shape {tuple(x.shape)}{hint}")
        if not x.is_floating_point():
            raise LmplugError(f"expected floating-point emissions, found dtype {x.dtype}")
        B, T, V = x.shape
        if V != self.labels.size:
            raise LmplugError(
                f"emissions shape is {tuple(x.shape)}, but the labels have {self.labels.size} entries; "
                f"expected the last dim to be {self.labels.size}"
            )
        if B == 0 or T == 0:
            raise LmplugError(f"expected at least one utterance with at least one frame, found shape {tuple(x.shape)}")
        if lengths is None:
            lens = np.full(B, T, dtype=np.int64)
        else:
            lens = (lengths.detach().cpu().numpy() if torch.is_tensor(lengths) else np.asarray(lengths))
            if lens.shape != (B,) or not np.issubdtype(lens.dtype, np.integer):
                raise LmplugError(f"expected lengths as {B} integers, found shape {lens.shape} dtype {lens.dtype}")
            lens = lens.astype(np.int64)
            bad = np.flatnonzero((lens < 1) | (lens > T))
            if len(bad):
                raise LmplugError(
                    f"expected every length in [1, {T}] (zero-length utterances cannot be decoded), "
                    f"found {int(lens[bad[0]])} for utterance {int(bad[0])}"
                )
        on_cpu = x.device.type == "cpu"
        if on_cpu:  # numpy: single-threaded, no thread-pool wake-ups for these small ops
            xn = x.numpy().astype(np.float32, copy=False)
            valid = np.arange(T)[None, :] < lens[:, None]  # (B, T)
            finite = np.isfinite(xn).all(-1) | ~valid
        else:
            x = x.float()
            valid_t = torch.arange(T, device=x.device)[None, :] < torch.as_tensor(lens, device=x.device)[:, None]
            finite = (torch.isfinite(x).all(-1) | ~valid_t).cpu().numpy()
        if not finite.all():
            b, t = np.argwhere(~finite)[0].tolist()
            raise LmplugError(f"expected finite emissions, found NaN or inf in utterance {b} at frame {t}")
        if on_cpu:
            m = xn.max(-1, keepdims=True)
            lse = (m + np.log(np.exp(xn - m).sum(-1, keepdims=True)))  # (B, T, 1)
            if logits:
                return xn - lse, lens
            err = float(np.abs(lse[..., 0][valid]).max())
            looks_prob = bool((xn[valid] >= 0).all())
        else:
            lse = torch.logsumexp(x, dim=-1, keepdim=True)
            if logits:
                return x - lse, lens
            err = float(lse[..., 0][valid_t].abs().max())
            looks_prob = bool((x[valid_t] >= 0).all())
        if err > 1e-2:
            raise LmplugError(
                "expected log-probabilities (each frame log-sum-exp = 0), found frames off by up to "
                f"{err:.3g}; " + ("these look like probabilities: pass their log" if looks_prob
                                 else "pass logits=True for unnormalized scores")
            )
        return (xn if on_cpu else x), lens

    def _steps(self, x: np.ndarray | torch.Tensor, lens: np.ndarray) -> dict[str, np.ndarray]:
        """Candidate labels per frame, with blank-only frames folded into blank runs.

        Returns arrays over (B, S) compressed steps: ``t`` frame index, ``ids``/``lp``/``ok`` (B, S, k)
        candidates, ``run`` summed blank log-prob of the skipped frames before the step, ``runlen``;
        plus ``n`` (B,) steps per utterance and ``tail`` (B,) blank log-prob after the last step.
        """
        B, T, V = x.shape
        k = V if self.token_top_k is None else min(self.token_top_k, V)
        blank = self.labels.blank_id
        if isinstance(x, np.ndarray):
            ids = np.argpartition(-x, k - 1, axis=-1)[..., :k] if k < V else np.broadcast_to(np.arange(V), x.shape)
            lp = np.take_along_axis(x, ids, -1)
            o = np.argsort(-lp, axis=-1, kind="stable")
            lp, ids = np.take_along_axis(lp, o, -1), np.take_along_axis(ids, o, -1)  # (B, T, k), sorted
            lpb = x[..., blank]
        else:  # on the device, then only the candidates travel
            lp_t, ids_t = torch.topk(x, k, dim=-1)
            lp, ids, lpb = lp_t.cpu().numpy(), ids_t.cpu().numpy(), x[..., blank].cpu().numpy()
        ok = lp >= self.token_min_logp
        ok[..., 0] = True
        skip = (ok.sum(-1) == 1) & (ids[..., 0] == blank)  # (B, T)
        lpb = lpb.astype(np.float64)
        acts, runs, runlens, tails = [], [], [], []
        for b in range(B):
            L = int(lens[b])
            sk = skip[b, :L]
            act = np.flatnonzero(~sk)
            cs = np.concatenate([[0.0], np.cumsum(np.where(sk, lpb[b, :L], 0.0))])
            cc = np.concatenate([[0], np.cumsum(sk)])
            prev = np.concatenate([[0], act[:-1] + 1]) if len(act) else np.zeros(0, dtype=np.int64)
            acts.append(act)
            runs.append(cs[act] - cs[prev])
            runlens.append(cc[act] - cc[prev])
            tails.append(cs[L] - cs[act[-1] + 1] if len(act) else cs[L])
        n = np.array([len(a) for a in acts], dtype=np.int64)
        S = int(n.max()) if B else 0
        st = np.zeros((B, S), dtype=np.int64)
        run = np.zeros((B, S))
        runlen = np.zeros((B, S), dtype=np.int64)
        for b in range(B):
            st[b, : n[b]] = acts[b]
            run[b, : n[b]] = runs[b]
            runlen[b, : n[b]] = runlens[b]
        bi = np.arange(B)[:, None]
        return {
            "t": st, "ids": ids[bi, st].astype(np.int64), "lp": lp[bi, st].astype(np.float64), "ok": ok[bi, st] & (np.arange(S)[None, :, None] < n[:, None, None]),
            "run": run, "runlen": runlen, "n": n, "tail": np.array(tails, dtype=np.float64),
        }

    # -- the search ---------------------------------------------------------------------------

    def decode(self, emissions, lengths=None, logits: bool = False) -> list[list[CTCHypothesis]]:
        """Decode a batch.

        Args:
            emissions: (B, T, V) numpy array or torch tensor (CPU or CUDA): log-probs, or logits
                with ``logits=True``. V must equal the number of labels.
            lengths: (B,) valid frames per utterance (default: all T).
            logits: apply log-softmax first.

        Returns:
            per utterance, the n-best list (best first) of :class:`CTCHypothesis`.
        """
        x, lens = self._prepare(emissions, lengths, logits)
        return _Search(self, self._steps(x, lens), len(lens)).run()


class _Search:
    """State of one :meth:`CTCDecoder.decode` call (the trie, LM states, hypotheses)."""

    def __init__(self, dec: CTCDecoder, steps: dict[str, np.ndarray], B: int) -> None:
        self.d = dec
        self.st = steps
        self.B = B
        lab = dec.labels
        self.V = lab.size
        self.END = self.V  # virtual label closing an open word (sentencepiece style)
        self.blank = lab.blank_id
        self.delim = lab.delimiter_id if lab.delimiter_id is not None else -2
        self.starts = np.append(lab.starts_word, True)  # (V+1,)
        self.tlen = np.append(lab.text_len, 0)
        self.w = dec.weights
        self.nodes = _Nodes(list(dec.scorers), len(dec._ptries))
        self.children: dict[int, int] = {}
        self.partial: list[str] = [""]  # per node: the open word's text
        self.partial_ids: dict[str, int] = {"": 0}
        self.state_ids: dict[str, dict[Any, int]] = {n: {} for n in dec.scorers}
        # LM states: word scorers keyed by history node, token scorers keyed by node
        self.wstate: dict[str, dict[int, Any]] = {n: {} for n in dec.word_scorers}
        self.tstate: dict[str, dict[int, Any]] = {n: {} for n in dec.token_scorers}
        root = self.nodes.alloc(1)[0]
        a = self.nodes.a
        a["parent"][root] = -1
        a["tok"][root] = -1
        a["key"][root] = -1
        a["hist"][root] = root
        for n in dec.word_scorers:
            self.wstate[n][root] = dec.scorers[n].init_state(1)[0]
            if dec.prune_history:
                self.state_ids[n][self.wstate[n][root]] = 0
        for n in dec.token_scorers:
            self.tstate[n][root] = dec.scorers[n].init_state(1)[0]
        # word frame spans: a linked list shared between hypotheses
        self.sp_parent: list[int] = []
        self.sp_start: list[int] = []
        self.sp_end: list[int] = []

    # -- trie ---------------------------------------------------------------------------------

    def child_nodes(self, parents: np.ndarray, toks: np.ndarray) -> np.ndarray:
        """Trie children (created when new) of ``parents`` by ``toks``; (M,) -> (M,)."""
        if len(parents) == 0:
            return parents.copy()
        keys = parents * (self.V + 1) + toks
        uk, inv = np.unique(keys, return_inverse=True)
        get = self.children.get
        ids = np.fromiter((get(k, -1) for k in uk.tolist()), dtype=np.int64, count=len(uk))
        miss = ids < 0
        if miss.any():
            mk = uk[miss]
            new = self._create(mk // (self.V + 1), mk % (self.V + 1))
            ids[miss] = new
            self.children.update(zip(mk.tolist(), new.tolist()))
        return ids[inv]

    def attrs(self, par: np.ndarray, tok: np.ndarray) -> dict[str, np.ndarray]:
        """Attributes of the (possibly virtual) children ``tok`` of nodes ``par``, vectorized.

        ``fused`` is NaN where the child completes a word whose word-level score is pending; ``ub``
        is then its upper bound (the fused score without that word's LM score).
        """
        d, a, w = self.d, self.nodes.a, self.w
        pplen = a["plen"][par]
        if d.labels.is_spm:
            starts = self.starts[tok]
            completes = starts & (pplen > 0)
            plen = np.where(starts, self.tlen[tok], pplen + self.tlen[tok])
        else:
            completes = (tok == self.delim) | (tok == self.END)
            plen = np.where(completes, 0, pplen + self.tlen[tok])
        nwords = a["nwords"][par] + completes
        out = {"plen": plen, "nwords": nwords, "completes": completes}
        fused = w[WORDS] * nwords
        for name in d.scorers:
            raw = a[f"raw:{name}"][par]
            if name in d.token_scorers:  # exact token-level score from the parent's state
                raw = raw + self._token_scores(name, par, tok)
            out[f"raw:{name}"] = raw
            fused = fused + w[name] * raw
        out["ub"] = fused
        out["fused"] = np.where(completes, np.nan, fused) if d.word_scorers else fused
        ppen = np.zeros(len(par))
        for i, (name, table, offset) in enumerate(d._ptries):
            pst = a[f"pt{i}"][par]
            nst = np.where(completes, 0, np.where(pst < 0, -1, table[np.maximum(pst, 0), tok]))
            out[f"pt{i}"] = nst
            oov = (nst < 0) & (plen > 0)
            ppen += offset * oov * np.maximum(1.0, plen / AVG_WORD_LEN)
        out["ppen"] = ppen
        return out

    def _create(self, par: np.ndarray, tok: np.ndarray) -> np.ndarray:
        ids = self.nodes.alloc(len(par))
        a = self.nodes.a
        at = self.attrs(par, tok)
        a["parent"][ids] = par
        a["tok"][ids] = tok
        a["key"][ids] = par * (self.V + 1) + tok
        a["hist"][ids] = np.where(at.pop("completes"), ids, a["hist"][par])
        for k, v in at.items():
            a[k][ids] = v
        text, part = self.d.labels.text, self.partial
        if self.d.labels.is_spm:
            st = self.starts
            part.extend(("" if st[t] else part[p]) + (text[t] if t < self.V else "") for p, t in zip(par.tolist(), tok.tolist()))
        else:
            dl = self.delim
            part.extend("" if t == dl else part[p] + text[t] for p, t in zip(par.tolist(), tok.tolist()))
        if self.d.prune_history:
            pids = self.partial_ids
            a["pid"][ids] = [pids.setdefault(w, len(pids)) for w in part[-len(ids):]]
        return ids

    def _token_scores(self, name: str, par: np.ndarray, tok: np.ndarray) -> np.ndarray:
        """Token-level log-probs of ``tok`` after each parent prefix (END and unmapped: 0)."""
        out = np.zeros(len(par))
        lm_tok = np.append(self.d.lm_tok, -1)[tok] if self.d.lm_tok is not None else np.full(len(tok), -1)
        use = lm_tok >= 0
        if not use.any():
            return out
        states = self.tstate[name]
        out[use] = self.d.scorers[name].token_logprobs([states[p] for p in par[use].tolist()], lm_tok[use])
        return out

    def word_text(self, node: int) -> str:
        """The word a completing node closes (the parent's open partial word)."""
        return self.partial[int(self.nodes.a["parent"][node])]

    def score_pending(self, nodes: np.ndarray) -> None:
        """Word-score pending nodes: ONE batched call per word scorer for all of them."""
        if len(nodes) == 0:
            return
        a, d = self.nodes.a, self.d
        nodes = np.unique(nodes)
        par = a["parent"][nodes]
        hist = a["hist"][par].tolist()
        words = [self.word_text(int(n)) for n in nodes]
        fused = a["ub"][nodes].copy()
        for name in d.word_scorers:
            states = self.wstate[name]
            sc, new = d.scorers[name].score_words([states[h] for h in hist], words)
            a[f"raw:{name}"][nodes] += sc
            fused += self.w[name] * sc
            states.update(zip(nodes.tolist(), new))
            if d.prune_history:
                sid = self.state_ids[name]
                a[f"cls:{name}"][nodes] = [sid.setdefault(x, len(sid)) for x in new]
        a["fused"][nodes] = fused

    def advance_token_states(self, nodes: np.ndarray) -> None:
        """Token-level states of new surviving nodes: one forward per token scorer."""
        if not self.d.token_scorers or len(nodes) == 0:
            return
        a = self.nodes.a
        for name in self.d.token_scorers:
            states = self.tstate[name]
            need = [int(n) for n in np.unique(nodes) if int(n) not in states]
            if not need:
                continue
            par = a["parent"][need]
            toks = self.d.lm_tok[a["tok"][need]] if self.d.lm_tok is not None else None
            fwd = [i for i, t in enumerate(toks) if t >= 0]
            for i, t in enumerate(toks):
                if t < 0:  # a label the LM does not know: keep the parent's state
                    states[need[i]] = states[int(par[i])]
            if fwd:
                new = self.d.scorers[name].advance([states[int(par[i])] for i in fwd], [[int(toks[i])] for i in fwd])
                for i, s in zip(fwd, new):
                    states[need[i]] = s

    # -- search loop --------------------------------------------------------------------------

    def run(self) -> list[list[CTCHypothesis]]:
        st, d = self.st, self.d
        B = self.B
        a = self.nodes.a
        # hypotheses (flat over the batch)
        H = {
            "utt": np.arange(B), "node": np.zeros(B, dtype=np.int64), "last": np.full(B, -1, dtype=np.int64),
            "ac": np.zeros(B), "ws": np.full(B, -1, dtype=np.int64), "ce": np.full(B, -1, dtype=np.int64),
            "span": np.full(B, -1, dtype=np.int64),
        }
        done: list[dict[str, np.ndarray]] = []
        S = st["ids"].shape[1]
        for s in range(S + 1):
            fin = st["n"][H["utt"]] <= s
            if fin.any():
                done.append({k: v[fin] for k, v in H.items()})
                H = {k: v[~fin] for k, v in H.items()}
            if len(H["utt"]) == 0:
                break
            H = self.step(H, s)
        return self.finish({k: np.concatenate([h[k] for h in done]) for k in done[0]})

    def step(self, H: dict[str, np.ndarray], s: int) -> dict[str, np.ndarray]:
        """One emission frame for every active hypothesis of the batch."""
        st, d, a = self.st, self.d, self.nodes.a
        V, blank = self.V, self.blank
        utt = H["utt"]
        # 1. skipped blank-only frames before this step
        rl = st["runlen"][utt, s] > 0
        ac = H["ac"] + st["run"][utt, s]
        last = np.where(rl, blank, H["last"])
        # 2. expand every hypothesis by its frame's candidate labels
        ok = st["ok"][utt, s]  # (N, k)
        ph, ci = np.nonzero(ok)
        tok = st["ids"][utt, s][ph, ci]
        t = st["t"][utt[ph], s]
        new_ac = ac[ph] + st["lp"][utt, s][ph, ci]
        node = H["node"][ph]
        cutt = utt[ph]
        is_blank = tok == blank
        is_rep = (tok == last[ph]) & ~is_blank
        plen = a["plen"][node]
        noop = (tok == self.delim) & (plen == 0) & ~is_rep  # delimiter with no open word
        ext = ~(is_blank | is_rep | noop)
        if d.labels.is_spm:
            completes = ext & self.starts[tok] & (plen > 0)
        else:
            completes = ext & (tok == self.delim)
        # word frame spans
        ws, ce, span = H["ws"][ph], H["ce"][ph], H["span"][ph]
        ce = np.where(is_rep, t + 1, ce)
        if completes.any():
            m = int(completes.sum())
            sid = np.arange(len(self.sp_parent), len(self.sp_parent) + m)
            self.sp_parent.extend(span[completes].tolist())
            self.sp_start.extend(ws[completes].tolist())
            self.sp_end.extend(ce[completes].tolist())
            span = span.copy()
            span[completes] = sid
        if d.labels.is_spm:
            opens = ext & self.starts[tok]
            ws = np.where(opens, np.where(self.tlen[tok] > 0, t, -1), np.where(ext & (ws < 0), t, ws))
            ce = np.where(ext, t + 1, ce)
        else:
            isd = ext & (tok == self.delim)
            ws = np.where(isd, -1, np.where(ext & (ws < 0), t, ws))
            ce = np.where(ext & ~isd, t + 1, ce)
        # 3. merge equal (utterance, prefix, last label) states; a prefix is named by its trie
        #    key (parent * (V+1) + label), so new prefixes need no trie lookup yet
        pkey = np.where(ext, node * (V + 1) + tok, a["key"][node]) + 1
        key = (pkey * (V + 1) + tok) * self.B + cutt
        order = np.argsort(key, kind="stable")
        ks = key[order]
        first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        rep = order[first]
        m_ac = np.logaddexp.reduceat(new_ac[order], first)
        known = np.maximum.reduceat(np.where(ext, -1, node)[order], first)  # existing node or -1
        m_utt, m_par, m_tok = cutt[rep], node[rep], tok[rep]
        # 4. scores of the merged states; new prefixes get virtual attributes from their parent
        fused = np.empty(len(rep))
        ub = np.empty(len(rep))
        ppen = np.empty(len(rep))
        virt = known < 0
        kn = known[~virt]
        fused[~virt], ub[~virt], ppen[~virt] = a["fused"][kn], a["ub"][kn], a["ppen"][kn]
        if virt.any():
            at = self.attrs(m_par[virt], m_tok[virt])
            fused[virt], ub[virt], ppen[virt] = at["fused"], at["ub"], at["ppen"]
        pend = np.isnan(fused)
        if pend.any():  # word scores only for the most promising prefixes, in one batched call
            bound = m_ac + np.where(pend, ub, fused) + ppen
            top = self.top_per_utt(m_utt, bound, max(1, int(math.ceil(d.lm_prefilter * d.beam_size))))
            sel = np.zeros(len(bound), dtype=bool)
            sel[top] = True
            idx = np.flatnonzero(pend & sel)
            nv = idx[known[idx] < 0]
            known[nv] = self.child_nodes(m_par[nv], m_tok[nv])
            nodes = known[idx]
            self.score_pending(nodes[np.isnan(a["fused"][nodes])])
            fused[idx] = a["fused"][nodes]
            fused[np.isnan(fused)] = -np.inf
        total = m_ac + fused + ppen
        # 5. prune: drop outliers, keep the best beam_size per utterance
        best = np.full(self.B, -np.inf)
        np.maximum.at(best, m_utt, total)
        idx = np.flatnonzero(total >= best[m_utt] + d.beam_prune_logp)
        keep = idx[self.top_per_utt(m_utt[idx], total[idx], d.beam_size)]
        kn = known[keep]
        nv = kn < 0
        if nv.any():
            kn[nv] = self.child_nodes(m_par[keep][nv], m_tok[keep][nv])
        if d.prune_history:  # keep the best of beams whose futures score alike
            o = np.lexsort((-total[keep], m_utt[keep]))
            keep, kn = keep[o], kn[o]
            cols = [(m_utt[keep], self.B), (a["pid"][kn], len(self.partial_ids)), (m_tok[keep], V + 1)]
            cols += [(a[f"cls:{n}"][a["hist"][kn]], len(self.state_ids[n]) + 1) for n in d.word_scorers]
            if math.prod(float(c[1]) for c in cols) < 2.0**62:
                key = np.zeros(len(keep), dtype=np.int64)
                for c, size in cols:
                    key = key * size + c
                _, uniq = np.unique(key, return_index=True)
            else:
                _, uniq = np.unique(np.stack([c for c, _ in cols], 1), axis=0, return_index=True)
            uniq.sort()
            keep, kn = keep[uniq], kn[uniq]
        r = rep[keep]
        out = {"utt": m_utt[keep], "node": kn, "last": m_tok[keep], "ac": m_ac[keep],
               "ws": ws[r], "ce": ce[r], "span": span[r]}
        self.advance_token_states(kn[kn != m_par[keep]])
        return out

    @staticmethod
    def top_per_utt(utt: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
        """Indices of the ``k`` best scores of each utterance."""
        if len(score) <= k:
            return np.arange(len(score))
        # one sort: utterance major, score descending (scores are finite or -inf, |score| < 1e9)
        sc = np.where(np.isfinite(score), score, -1e9)
        order = np.argsort(utt * 4e9 - sc, kind="stable")
        us = utt[order]
        first = np.r_[0, np.flatnonzero(us[1:] != us[:-1]) + 1]
        starts = np.repeat(first, np.diff(np.r_[first, len(us)]))
        return order[(np.arange(len(us)) - starts) < k]

    def finish(self, H: dict[str, np.ndarray]) -> list[list[CTCHypothesis]]:
        """Close open words, add end-of-sentence scores, merge, and sort the n-best."""
        d, a, st = self.d, self.nodes.a, self.st
        utt, node = H["utt"], H["node"]
        ac = H["ac"] + st["tail"][utt]
        open_ = a["plen"][node] > 0
        end_tok = self.delim if not d.labels.is_spm else self.END
        fnode = node.copy()
        if open_.any():
            fnode[open_] = self.child_nodes(node[open_], np.full(int(open_.sum()), end_tok))
        # merge by (utterance, final prefix)
        key = fnode * self.B + utt
        order = np.argsort(key, kind="stable")
        ks = key[order]
        first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        rep = order[first]
        m_ac = np.logaddexp.reduceat(ac[order], first)
        m_node, m_utt = fnode[rep], utt[rep]
        pend = np.isnan(a["fused"][m_node])
        self.score_pending(m_node[pend])
        total = m_ac + a["fused"][m_node]
        raw = {name: a[f"raw:{name}"][m_node].copy() for name in d.scorers}
        for name in d.word_scorers:
            states = self.wstate[name]
            eos = d.scorers[name].final_score([states[h] for h in a["hist"][m_node].tolist()])
            raw[name] += eos
            total += self.w[name] * eos
        for name in d.token_scorers:
            states = self.tstate[name]
            tn = [int(a["parent"][n]) if a["tok"][n] == self.END else int(n) for n in m_node]
            eos = d.scorers[name].final_score([states[n] for n in tn])
            raw[name] += eos
            total += self.w[name] * eos
        keep = self.top_per_utt(m_utt, total, d.nbest)
        keep = keep[np.lexsort((-total[keep], m_utt[keep]))]
        results: list[list[CTCHypothesis]] = [[] for _ in range(self.B)]
        for i in keep.tolist():
            r = rep[i]
            n = int(m_node[i])
            toks = []
            while n > 0:
                tk = int(a["tok"][n])
                if tk != self.END:
                    toks.append(tk)
                n = int(a["parent"][n])
            toks.reverse()
            if toks and toks[-1] == self.delim and open_[r]:
                toks.pop()  # the delimiter that closed the last word was not emitted
            spans = []
            sp = int(H["span"][r])
            while sp >= 0:
                spans.append((self.sp_start[sp], self.sp_end[sp]))
                sp = self.sp_parent[sp]
            spans.reverse()
            if H["ws"][r] >= 0:
                spans.append((int(H["ws"][r]), int(H["ce"][r])))
            scores = {CTC: float(m_ac[i]), **{k: float(v[i]) for k, v in raw.items()},
                      WORDS: float(a["nwords"][m_node[i]])}
            results[int(m_utt[i])].append(
                CTCHypothesis(d.labels.spell(toks), toks, spans, float(total[i]), scores)
            )
        return results


def build_ctc_decoder(
    labels: Sequence[str],
    scorers: Mapping[str, Scorer] | None = None,
    weights: Mapping[str, float] | None = None,
    beam_size: int = 16,
    mode: str = "word",
    nbest: int = 1,
    token_min_logp: float = -5.0,
    token_top_k: int | None = 16,
    beam_prune_logp: float = -10.0,
    lm_prefilter: float = 2.0,
    partial_oov_logp: float = -10.0,
    prune_history: bool | None = None,
    blank_id: int | None = None,
) -> CTCDecoder:
    """Build a batched CTC beam-search decoder with shallow fusion.

    Args:
        labels: one label per emission column: characters with a word delimiter (``" "`` or
            ``"|"``) or sentencepiece pieces (``▁``), and a blank (``""``, ``"<pad>"``, ``"<blank>"``...).
        scorers: named scorers, e.g. ``{"lm": TransformerScorer(load_lm(dir))}``.
        weights: one weight per scorer, plus optionally ``"words"`` (word insertion bonus), e.g.
            ``{"lm": 0.5, "words": 1.0}``.
        beam_size: hypotheses kept per utterance after each frame.
        mode: ``"word"`` (any labels; LMs score completed words) or ``"token"`` (labels are the
            token-level LM's sentencepiece pieces; the LM scores every token).
        nbest: hypotheses returned per utterance (at most ``beam_size``).
        token_min_logp: labels below this log-prob in a frame are not expanded (the arg-max
            always is).
        token_top_k: at most this many labels per frame (None: no limit).
        beam_prune_logp: drop hypotheses this far below the best of their utterance.
        lm_prefilter: word scores are computed only for prefixes ranked in the top
            ``lm_prefilter * beam_size`` of their utterance before the LM score.
        partial_oov_logp: added (unweighted) to a hypothesis whose open word begins no word of a
            weighted word scorer's vocabulary (``Scorer.known_words``); 0 disables it.
        prune_history: after each frame keep only the best of beams with the same open word,
            last label and scorer states (exact for the best path when every scorer has a finite
            history, e.g. KenLM or none; frees beam slots like pyctcdecode's ``decode``). Default:
            on when ``nbest == 1`` and every scorer has a finite history.
        blank_id: index of the blank when its label is not one of the recognized names.

    Returns:
        a :class:`CTCDecoder`; call ``.decode(emissions, lengths)``.
    """
    scorers = dict(scorers or {})
    weights = dict(weights or {})
    if nbest > beam_size:
        raise LmplugError(f"expected nbest <= beam_size, found nbest={nbest} beam_size={beam_size}")
    return CTCDecoder(
        build_labels(labels, blank_id=blank_id), scorers, weights, mode=mode, beam_size=beam_size, nbest=nbest,
        token_min_logp=token_min_logp, token_top_k=token_top_k, beam_prune_logp=beam_prune_logp,
        lm_prefilter=lm_prefilter, partial_oov_logp=partial_oov_logp, prune_history=prune_history,
    )


def greedy_decode(emissions, labels: Sequence[str] | CTCLabels, lengths=None) -> list[str]:
    """Best-path decoding (arg-max, collapse repeats, drop blanks) of (B, T, V) emissions."""
    lab = labels if isinstance(labels, CTCLabels) else build_labels(labels)
    x = torch.as_tensor(emissions) if not torch.is_tensor(emissions) else emissions
    best = x.argmax(-1).cpu().numpy()
    out = []
    for b in range(best.shape[0]):
        L = best.shape[1] if lengths is None else int(lengths[b])
        path = best[b, :L]
        keep = np.r_[True, path[1:] != path[:-1]] & (path != lab.blank_id)
        out.append(lab.spell([int(t) for t in path[keep]]))
    return out
