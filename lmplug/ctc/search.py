"""The search state of one :meth:`lmplug.ctc.decoder.CTCDecoder.decode` call: trie, LM states, hypotheses.

It reads a :class:`~lmplug.ctc.plan.SearchPlan` (never the decoder). All hypotheses of all utterances of a batch are rows of flat numpy arrays; each frame is a few
array operations over all of them (see the algorithm notes in :mod:`lmplug.ctc.decoder`).

With a pronunciation lexicon (``tries[0]`` has ``homophones``) an edge that closes a word names
the homophone it picks (:class:`~lmplug.ctc.trie.Edges`): each homophone is a prefix of its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lmplug.ctc.plan import SearchPlan
from lmplug.ctc.trie import ChildTable, Edges, Nodes
from lmplug.ctc.types import AVG_WORD_LEN, CTC, WORDS, CTCHypothesis

LEXICON_PENALTY = -1e4  # lexicon mode: per word (or partial word) outside the vocabulary
BOUND_SLACK = 1e-4  # word bounds within this of the survival score are scored (float32 rounding)


class Search:
    """State of one :meth:`CTCDecoder.decode` call (the trie, LM states, hypotheses)."""

    RELEASE_EVERY = 4  # steps between releases of LM states no hypothesis can use

    def __init__(self, plan: SearchPlan, steps: dict[str, np.ndarray], B: int) -> None:
        self.plan = plan
        self.st = steps
        self.B = B
        lab = plan.labels
        self.V = lab.size
        self.END = self.V  # virtual label closing an open word (sentencepiece style)
        self.blank = lab.blank_id
        self.delim = lab.delimiter_id if lab.delimiter_id is not None else -2
        self.starts = np.append(lab.starts_word, True)  # (V+1,)
        self.tlen = np.append(lab.text_len, 0)
        self.w = plan.weights
        self.nodes = Nodes(list(plan.scorers), len(plan.tries))
        # a pronunciation lexicon: its trie (tries[0]); edges name the homophone a closing edge picks
        self.lex = plan.tries[0] if plan.tries and plan.tries[0].homophones is not None else None
        self.edges = Edges(self.V + 1, self.lex, plan.implicit_boundaries)
        self.children = ChildTable(self.edges.L)
        # open (partial) words: node attribute "pid" indexes ``partial``, one entry per distinct text
        self.partial: list[str] = [""]
        self.partial_ids: dict[str, int] = {"": 0}
        self.partial_children = ChildTable(self.V + 1)  # (pid, label) -> pid
        self.state_ids: dict[str, dict[Any, int]] = {n: {} for n in plan.scorers}
        # scorers recombined by their last ``history_words`` words: context id -> word tuple
        self.contexts: dict[str, list[tuple[str, ...]]] = {
            n: [()] for n in plan.word_scorers if plan.history_words and plan.scorers[n].order is None}
        # LM states: word scorers keyed by history node, token scorers keyed by node
        self.wstate: dict[str, dict[int, Any]] = {n: {} for n in plan.word_scorers}
        self.tstate: dict[str, dict[int, Any]] = {n: {} for n in plan.token_scorers}
        # look-ahead scores of open words: history node << 32 | pid -> log-prob
        self.lookahead_by_hist: dict[str, dict[int, float]] = {n: {} for n in plan.lookahead_scorers}
        self.lookahead_by_pid: dict[str, np.ndarray] = {}  # pid -> log-prob (NaN: not yet), state-free ones
        root = self.nodes.alloc(1)[0]
        a = self.nodes.a
        a["parent"][root] = -1
        a["tok"][root] = -1
        a["key"][root] = -1
        a["hist"][root] = root
        for n in plan.word_scorers:
            self.wstate[n][root] = plan.scorers[n].init_state(1)[0]
            if plan.prune_history:
                self.state_ids[n][() if n in self.contexts else self.wstate[n][root]] = 0
        for n in plan.token_scorers:
            self.tstate[n][root] = plan.scorers[n].init_state(1)[0]
        # word frame spans: a linked list shared between hypotheses
        self.sp_parent: list[int] = []
        self.sp_start: list[int] = []
        self.sp_end: list[int] = []

    # -- trie ---------------------------------------------------------------------------------

    def child_nodes(self, parents: np.ndarray, toks: np.ndarray) -> np.ndarray:
        """Trie children (created when new) of ``parents`` by ``toks``; (M,) -> (M,)."""
        return self.children.get_or_add(parents, toks, self._create)

    def partial_word_ids(self, par: np.ndarray, edge: np.ndarray) -> np.ndarray:
        """Partial-word ids ("pid") of the children ``edge`` of nodes ``par``."""
        tok, code = self.edges.split(edge)
        if self.plan.labels.is_spm:  # a word-initial piece opens a new word; END closes it
            base = np.where(self.starts[tok], 0, self.nodes.a["pid"][par])
            closes = tok == self.END
        else:  # a lexicon word closed before ``tok``: tok opens the next word
            base = np.where(code > 0, 0, self.nodes.a["pid"][par])
            closes = (tok == self.delim) | (tok == self.END)
        ids = np.zeros(len(par), dtype=np.int64)  # a closed word leaves the empty one (id 0)
        opened = ~closes
        ids[opened] = self.partial_children.get_or_add(base[opened], tok[opened], self._new_partial_words)
        return ids

    def _new_partial_words(self, base: np.ndarray, tok: np.ndarray) -> list[int]:
        """Ids of the open words ``partial[base] + text[tok]`` (new texts get new ids)."""
        text, part, pids = self.plan.labels.text, self.partial, self.partial_ids
        out = []
        for b, t in zip(base.tolist(), tok.tolist()):
            w = part[b] + text[t]
            i = pids.setdefault(w, len(pids))
            if i == len(part):
                part.append(w)
            out.append(i)
        return out

    def attrs(self, par: np.ndarray, edge: np.ndarray) -> dict[str, np.ndarray]:
        """Attributes of the (possibly virtual) children ``edge`` of nodes ``par``, vectorized.

        ``fused`` is NaN where the child completes a word whose word-level score is pending; ``ub``
        is then its upper bound (the fused score without that word's LM score).
        """
        plan, a, w = self.plan, self.nodes.a, self.w
        tok, code = self.edges.split(edge)
        pplen = a["plen"][par]
        opens = np.zeros(len(par), dtype=bool)  # closes a lexicon word and opens the next with tok
        if plan.labels.is_spm:
            starts = self.starts[tok]
            completes = starts & (pplen > 0)
            plen = np.where(starts, self.tlen[tok], pplen + self.tlen[tok])
        else:
            ends = (tok == self.delim) | (tok == self.END)
            completes = ends | (code > 0)
            opens = completes & ~ends
            plen = np.where(completes, np.where(opens, self.tlen[tok], 0), pplen + self.tlen[tok])
        nwords = a["nwords"][par] + completes
        out = {"plen": plen, "nwords": nwords, "completes": completes}
        ppen = np.zeros(len(par))
        oov = a["oov"][par]
        oov_now = np.zeros(len(par), dtype=bool)
        for i, trie in enumerate(plan.tries):
            table, offset, is_word = trie.table, trie.oov_logp, trie.is_word
            pst = a[f"pt{i}"][par]
            nst = np.where(completes, np.where(opens, table[0, tok], 0),
                           np.where(pst < 0, -1, table[np.maximum(pst, 0), tok]))
            out[f"pt{i}"] = nst
            bad = (nst < 0) & (plen > 0)
            if plan.lexicon and i == 0:  # words outside the lexicon: prohibitive, cumulative
                oov_now = completes & ((pst < 0) | ~is_word[np.maximum(pst, 0)])
                oov = oov + oov_now
                ppen += LEXICON_PENALTY * bad
            else:
                ppen += offset * bad * np.maximum(1.0, plen / AVG_WORD_LEN)
        if plan.lookahead_scorers:  # open words: the look-ahead of the word they begin
            out["pid"] = pid = self.partial_word_ids(par, edge)
            opened = ~completes & (plen > 0)
            if opened.any():
                for name in plan.lookahead_scorers:
                    ppen[opened] += w[name] * self.prefix_scores(name, a["hist"][par[opened]], pid[opened])
        out["ppen"] = ppen
        out["oov"] = oov
        fused = w[WORDS] * nwords + LEXICON_PENALTY * oov
        for name in plan.scorers:
            raw = a[f"raw:{name}"][par]
            if name in plan.token_scorers:  # exact token-level score from the parent's state
                raw = raw + self._token_scores(name, par, edge)
            out[f"raw:{name}"] = raw
            fused = fused + w[name] * raw
        out["ub"] = fused
        # pending word scores; lexicon mode never LM-scores an out-of-lexicon word
        out["fused"] = np.where(completes & ~oov_now, np.nan, fused) if plan.word_scorers else fused
        return out

    def _create(self, par: np.ndarray, edge: np.ndarray) -> np.ndarray:
        ids = self.nodes.alloc(len(par))
        a = self.nodes.a
        at = self.attrs(par, edge)
        a["parent"][ids] = par
        a["tok"][ids] = self.edges.split(edge)[0]
        a["key"][ids] = par * self.edges.L + edge
        a["hist"][ids] = np.where(at.pop("completes"), ids, a["hist"][par])
        if "pid" not in at:
            at["pid"] = self.partial_word_ids(par, edge)
        for k, v in at.items():
            a[k][ids] = v
        return ids

    def _token_scores(self, name: str, par: np.ndarray, tok: np.ndarray) -> np.ndarray:
        """Token-level log-probs of ``tok`` after each parent prefix (END and unmapped: 0)."""
        out = np.zeros(len(par))
        lm_tok = np.append(self.plan.lm_tok, -1)[tok] if self.plan.lm_tok is not None else np.full(len(tok), -1)
        use = lm_tok >= 0
        if not use.any():
            return out
        states = self.tstate[name]
        out[use] = self.plan.scorers[name].token_logprobs([states[p] for p in par[use].tolist()], lm_tok[use])
        return out

    def word_text(self, node: int) -> str:
        """The word a completing node closes (the parent's open partial word, or the lexicon word
        its edge picks)."""
        return self.closed_words(np.array([node]))[0]

    def closed_words(self, nodes: np.ndarray) -> list[str]:
        """The words completing ``nodes`` close: the parents' open partial words, or with a
        pronunciation lexicon the homophone each edge picks (an out-of-lexicon word: its labels)."""
        a = self.nodes.a
        par = a["parent"][nodes]
        words = [self.partial[i] for i in a["pid"][par].tolist()]
        if self.lex is not None:
            code = self.edges.split(a["key"][nodes] - par * self.edges.L)[1]
            pick = np.flatnonzero(code > 0)
            for i, w in zip(pick.tolist(), self.edges.words(a["pt0"][par[pick]], code[pick])):
                words[i] = w
        return words

    def path_words(self, node: int) -> list[str]:
        """The words closed on the path from the root to ``node``, in order."""
        a, out = self.nodes.a, []
        while node > 0:
            if a["hist"][node] == node:
                out.append(self.word_text(node))
            node = int(a["parent"][node])
        return out[::-1]

    def score_pending(self, nodes: np.ndarray) -> None:
        """Word-score pending nodes: ONE batched call per word scorer for all of them."""
        if len(nodes) == 0:
            return
        a, plan = self.nodes.a, self.plan
        nodes = np.unique(nodes)
        par = a["parent"][nodes]
        hist = a["hist"][par].tolist()
        words = self.closed_words(nodes)
        fused = a["ub"][nodes].copy()
        for name in plan.word_scorers:
            states = self.wstate[name]
            sc, new = plan.scorers[name].score_words(self.word_states(name, hist), words)
            a[f"raw:{name}"][nodes] += sc
            fused += self.w[name] * sc
            states.update(zip(nodes.tolist(), new))
            if plan.prune_history:
                sid = self.state_ids[name]
                keys = (self._contexts(name, a[f"cls:{name}"][a["hist"][par]].tolist(), words)
                        if name in self.contexts else new)  # the last history_words words, or the state
                a[f"cls:{name}"][nodes] = [sid.setdefault(x, len(sid)) for x in keys]
        a["fused"][nodes] = fused

    def _contexts(self, name: str, prev: list[int], words: list[str]) -> list[tuple[str, ...]]:
        """Word tuples after appending ``words`` to the contexts with ids ``prev``; new ones get the
        next ids in ``state_ids`` (assigned by the caller), so ``contexts[name][id]`` is the tuple."""
        ctx, n, sid = self.contexts[name], self.plan.history_words, self.state_ids[name]
        out = [(ctx[p] + (w,))[-n:] for p, w in zip(prev, words)]
        ctx.extend(dict.fromkeys(c for c in out if c not in sid))  # in first-seen order, as setdefault
        return out

    def prefix_scores(self, name: str, hist: np.ndarray, pid: np.ndarray) -> np.ndarray:
        """``Scorer.prefix_scores`` of open words ``pid`` after history nodes ``hist`` (memoized
        by (history, pid), or by pid in an array for scorers whose look-ahead ignores the state)."""
        scorer = self.plan.scorers[name]
        if not scorer.prefix_uses_state:
            table = self.lookahead_by_pid.get(name, np.zeros(0))
            if len(table) < len(self.partial):  # grown geometrically
                more = max(len(self.partial), 2 * len(table)) - len(table)
                table = self.lookahead_by_pid[name] = np.concatenate([table, np.full(more, np.nan)])
            todo = np.unique(pid[np.isnan(table[pid])])
            if len(todo):
                sc = scorer.prefix_scores([None] * len(todo), [self.partial[p] for p in todo.tolist()])
                table[todo] = sc if sc is not None else 0.0
            return table[pid]
        memo = self.lookahead_by_hist[name]
        uk, inv = np.unique((hist.astype(np.int64) << 32) | pid, return_inverse=True)  # node, pid < 2**31
        get = memo.get
        out = np.fromiter((get(k, np.nan) for k in uk.tolist()), dtype=np.float64, count=len(uk))
        todo = np.flatnonzero(np.isnan(out))
        if len(todo):
            keys = uk[todo]
            states = self.word_states(name, (keys >> 32).tolist())
            sc = scorer.prefix_scores(states, [self.partial[p] for p in (keys & 0xFFFFFFFF).tolist()])
            out[todo] = sc if sc is not None else 0.0
            memo.update(zip(keys.tolist(), out[todo].tolist()))
        return out[inv]

    def word_states(self, name: str, hist: list[int]) -> list[Any]:
        """Word-scorer states of history nodes, recomputing any released earlier (rare)."""
        states = self.wstate[name]
        missing = sorted({h for h in hist if h not in states})
        if missing:
            a = self.nodes.a
            prev = self.word_states(name, [int(a["hist"][a["parent"][h]]) for h in missing])
            _, new = self.plan.scorers[name].score_words(prev, [self.word_text(h) for h in missing])
            states.update(zip(missing, new))
        return [states[h] for h in hist]

    def release(self, nodes: np.ndarray) -> None:
        """Keep only the LM states that hypotheses on ``nodes`` can still use; let scorers re-pack.
        A word scorer also keeps the states of the words just after those nodes (their children in
        the trie): a hypothesis that dropped such a word may take it again while its parent lives,
        and its state would cost a forward of its own to recompute."""
        a = self.nodes.a
        for name, keep in [(n, a["hist"][nodes]) for n in self.plan.word_scorers] + [(n, nodes) for n in self.plan.token_scorers]:
            table = self.wstate[name] if name in self.wstate else self.tstate[name]
            if name in self.wstate and table:
                held = np.fromiter(table, dtype=np.int64, count=len(table))
                keep = np.concatenate([keep, held[np.isin(a["parent"][held], nodes)]])
            keys = [k for k in set(keep.tolist()) | {0} if k in table]
            vals = self.plan.scorers[name].compact([table[k] for k in keys])
            table.clear()
            table.update(zip(keys, vals))

    def advance_token_states(self, nodes: np.ndarray) -> None:
        """Token-level states of new surviving nodes: one forward per token scorer."""
        if not self.plan.token_scorers or len(nodes) == 0:
            return
        a = self.nodes.a
        for name in self.plan.token_scorers:
            states = self.tstate[name]
            need = [int(n) for n in np.unique(nodes) if int(n) not in states]
            if not need:
                continue
            par = a["parent"][need]
            toks = self.plan.lm_tok[a["tok"][need]] if self.plan.lm_tok is not None else None
            fwd = [i for i, t in enumerate(toks) if t >= 0]
            for i, t in enumerate(toks):
                if t < 0:  # a label the LM does not know: keep the parent's state
                    states[need[i]] = states[int(par[i])]
            if fwd:
                new = self.plan.scorers[name].advance([states[int(par[i])] for i in fwd], [[int(toks[i])] for i in fwd])
                for i, s in zip(fwd, new):
                    states[need[i]] = s

    # -- search loop --------------------------------------------------------------------------

    def run(self) -> list[list[CTCHypothesis]]:
        """Step through the frames; hypotheses of finished utterances wait for :meth:`finish`."""
        st, B = self.st, self.B
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
            if self.plan.scorers and s % self.RELEASE_EVERY == 0:
                self.release(np.concatenate([H["node"]] + [h["node"] for h in done]))
        return self.finish({k: np.concatenate([h[k] for h in done]) for k in done[0]})

    def step(self, H: dict[str, np.ndarray], s: int) -> dict[str, np.ndarray]:
        """One emission frame (compressed step ``s``) for every active hypothesis of the batch."""
        c = self._candidates(H, s)
        self._word_spans(H, c)
        m = self._merge(c)
        total = self._fused_scores(m)
        keep, kn = self._prune(m, total)
        if self.plan.prune_history:
            keep, kn = self._recombine(m, total, keep, kn)
        r = m["rep"][keep]
        out = {"utt": m["utt"][keep], "node": kn, "last": m["tok"][keep], "ac": m["ac"][keep],
               "ws": c["ws"][r], "ce": c["ce"][r], "span": c["span"][r]}
        self.advance_token_states(kn[kn != m["par"][keep]])
        return out

    def _candidates(self, H: dict[str, np.ndarray], s: int) -> dict[str, np.ndarray]:
        """Every hypothesis extended by each candidate label of its frame, after adding the skipped
        blank-only frames before step ``s``.

        Returns flat (M,) arrays over the candidates: ``ph`` the hypothesis row, ``utt``, ``node``
        (the hypothesis' prefix), ``tok`` the label, ``t`` the frame, ``ac`` the CTC log-prob,
        ``is_rep`` (repeats the last label), ``ext`` (extends the prefix), ``completes`` (closes a word),
        ``edge`` (the trie edge an extension takes; with a pronunciation lexicon a candidate
        that closes a lexicon word comes once per homophone, see :meth:`_homophones`).
        """
        st, a, blank = self.st, self.nodes.a, self.blank
        utt = H["utt"]
        rl = st["runlen"][utt, s] > 0
        ac = H["ac"] + st["run"][utt, s]
        last = np.where(rl, blank, H["last"])
        ok = st["ok"][utt, s]  # (N, k)
        ph, ci = np.nonzero(ok)
        tok = st["ids"][utt, s][ph, ci]
        node = H["node"][ph]
        is_blank = tok == blank
        is_rep = (tok == last[ph]) & ~is_blank
        plen = a["plen"][node]
        noop = (tok == self.delim) & (plen == 0) & ~is_rep  # delimiter with no open word
        ext = ~(is_blank | is_rep | noop)
        c = {"ph": ph, "utt": utt[ph], "node": node, "tok": tok, "t": st["t"][utt[ph], s],
             "ac": ac[ph] + st["lp"][utt, s][ph, ci], "is_rep": is_rep, "ext": ext, "edge": tok}
        if self.plan.labels.is_spm:
            c["completes"] = ext & self.starts[tok] & (plen > 0)
        elif self.lex is not None:
            c = self._homophones(c, plen)
        else:
            c["completes"] = ext & (tok == self.delim)
        return c

    def _homophones(self, c: dict[str, np.ndarray], plen: np.ndarray) -> dict[str, np.ndarray]:
        """Candidates ``c`` that close a lexicon word, once per word their open word spells: the
        delimiter after a whole word closes it as each of its homophones; with ``implicit``
        boundaries a token after a whole word both extends it (code 0) and closes it as each
        homophone, opening the next word. Every other candidate stays as it is (code 0)."""
        tok, ext = c["tok"], c["ext"]
        k = self.edges.homophones(self.nodes.a["pt0"][c["node"]], ext & (plen > 0))
        isd = tok == self.delim
        closing = isd & (k > 0)  # no code-0 copy: a whole word at the delimiter is never out of the lexicon
        opening = ~isd & self.edges.implicit
        if not closing.any() and not (opening & (k > 0)).any():
            c["completes"] = ext & isd
            return c
        idx, code = self.edges.copies(k, closing, opening)
        c = {key: v[idx] for key, v in c.items()}
        c["edge"] = c["tok"] + self.edges.E * code
        c["completes"] = c["ext"] & ((c["tok"] == self.delim) | (code > 0))
        return c

    def _word_spans(self, H: dict[str, np.ndarray], c: dict[str, np.ndarray]) -> None:
        """Word frame spans of the candidates ``c`` (adds ``ws`` open word's first frame, ``ce``
        its end, ``span`` the last finished word's entry); completed words join the span list."""
        ph, tok, t, ext, completes = c["ph"], c["tok"], c["t"], c["ext"], c["completes"]
        ws, ce, span = H["ws"][ph], H["ce"][ph], H["span"][ph]
        ce = np.where(c["is_rep"], t + 1, ce)
        if completes.any():
            m = int(completes.sum())
            sid = np.arange(len(self.sp_parent), len(self.sp_parent) + m)
            self.sp_parent.extend(span[completes].tolist())
            self.sp_start.extend(ws[completes].tolist())
            self.sp_end.extend(ce[completes].tolist())
            span = span.copy()
            span[completes] = sid
        if self.plan.labels.is_spm:
            opens = ext & self.starts[tok]
            ws = np.where(opens, np.where(self.tlen[tok] > 0, t, -1), np.where(ext & (ws < 0), t, ws))
            ce = np.where(ext, t + 1, ce)
        else:
            isd = ext & (tok == self.delim)
            opens = completes & ~isd  # a lexicon word closed before tok, which opens the next
            ws = np.where(isd, -1, np.where(ext & ((ws < 0) | opens), t, ws))
            ce = np.where(ext & ~isd, t + 1, ce)
        c["ws"], c["ce"], c["span"] = ws, ce, span

    def _merge(self, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Merge candidates with equal (utterance, prefix, last label) (log-sum-exp of ``ac``).

        A prefix is named by its trie key (parent * edges.L + edge), so new prefixes need no trie
        lookup yet. The merged state keeps the word frames of its most probable member
        (``rep``, an index into the candidates). Returns (G,) arrays over the merged states:
        ``rep``, ``ac``, ``known`` (the existing trie node, or -1), ``utt``, ``par``, ``tok``, ``edge``.
        """
        V, a = self.V, self.nodes.a
        node, tok, ext, new_ac = c["node"], c["tok"], c["ext"], c["ac"]
        pkey = np.where(ext, node * self.edges.L + c["edge"], a["key"][node]) + 1
        key = (pkey * (V + 1) + tok) * self.B + c["utt"]
        order = np.lexsort((-new_ac, key))
        ks = key[order]
        first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        rep = order[first]
        return {"rep": rep, "ac": np.logaddexp.reduceat(new_ac[order], first),
                "known": np.maximum.reduceat(np.where(ext, -1, node)[order], first),
                "utt": c["utt"][rep], "par": node[rep], "tok": tok[rep], "edge": c["edge"][rep]}

    def _fused_scores(self, m: dict[str, np.ndarray]) -> np.ndarray:
        """Total score (G,) of the merged states: CTC + fused scorer scores + look-ahead.

        New prefixes get virtual attributes from their parent; word scores are computed only for
        the most promising prefixes (``lm_prefilter * beam_size`` per utterance), in one batched
        call, which makes trie nodes of them (``m["known"]`` is updated); the others score -inf.
        """
        plan, a = self.plan, self.nodes.a
        known, m_ac = m["known"], m["ac"]
        fused = np.empty(len(known))
        ub = np.empty(len(known))
        ppen = np.empty(len(known))
        virt = known < 0
        kn = known[~virt]
        fused[~virt], ub[~virt], ppen[~virt] = a["fused"][kn], a["ub"][kn], a["ppen"][kn]
        if virt.any():
            at = self.attrs(m["par"][virt], m["edge"][virt])
            fused[virt], ub[virt], ppen[virt] = at["fused"], at["ub"], at["ppen"]
        pend = np.isnan(fused)
        if pend.any():
            bound = m_ac + np.where(pend, ub, fused) + ppen
            top = self.top_per_utt(m["utt"], bound, max(1, math.ceil(plan.lm_prefilter * plan.beam_size)))
            sel = np.zeros(len(bound), dtype=bool)
            sel[top] = True
            idx = np.flatnonzero(pend & sel)
            nv = idx[known[idx] < 0]
            known[nv] = self.child_nodes(m["par"][nv], m["edge"][nv])
            fused[pend] = -np.inf
            self._score_ranking(m["utt"], m_ac + ppen, fused, idx, known[idx])
        return m_ac + fused + ppen

    def _score_ranking(self, utt: np.ndarray, base: np.ndarray, fused: np.ndarray, idx: np.ndarray,
                       nodes: np.ndarray) -> None:
        """Word-score the pending trie ``nodes`` of merged states ``idx`` that can still survive
        :meth:`_prune`, and write their fused scores into ``fused`` (the others stay -inf).

        Where every word scorer gives :meth:`word_bounds`, in rounds: the beam's worth of pending
        states with the best bounds (``base + bound``) per utterance is scored exactly, which
        raises the score a state needs to be kept (its utterance's ``beam_size``-th best, and
        its best plus ``beam_prune_logp``); it stops when no bound reaches that score. A state
        left unscored could not have been kept, so the beams are those of scoring them all.
        """
        a, plan = self.nodes.a, self.plan
        opt = self.word_bounds(nodes)
        todo = np.ones(len(idx), dtype=bool)
        while todo.any():
            pick = np.flatnonzero(todo)
            if opt is not None:
                need = self.survival_floor(utt, base + fused)[utt[idx[pick]]] - BOUND_SLACK
                pick = pick[base[idx[pick]] + opt[pick] >= need]
                if not len(pick):
                    return
                pick = pick[self.top_per_utt(utt[idx[pick]], opt[pick] + base[idx[pick]], plan.beam_size)]
            self.score_pending(nodes[pick][np.isnan(a["fused"][nodes[pick]])])
            todo[pick] = False
            done = ~np.isnan(a["fused"][nodes])  # a node pending in several utterances is scored once
            fused[idx[done]] = a["fused"][nodes[done]]
            todo &= ~done

    def survival_floor(self, utt: np.ndarray, total: np.ndarray) -> np.ndarray:
        """(B,): per utterance the total a merged state needs to survive :meth:`_prune` given
        ``total`` so far (-inf: unknown yet): the ``beam_size``-th best, and the best plus
        ``beam_prune_logp``."""
        k = self.plan.beam_size
        best = np.full(self.B, -np.inf)
        np.maximum.at(best, utt, total)
        top = self.top_per_utt(utt, total, k)
        kth = np.full(self.B, np.inf)
        np.minimum.at(kth, utt[top], total[top])
        kth[np.bincount(utt[top], minlength=self.B) < k] = -np.inf
        return np.maximum(kth, best + self.plan.beam_prune_logp)

    def word_bounds(self, nodes: np.ndarray) -> np.ndarray | None:
        """Upper bounds of the fused scores of pending ``nodes``: ``ub`` plus each word scorer's
        weighted :meth:`~lmplug.scorers.base.Scorer.word_bounds` (a ``cheap_words`` scorer's:
        its scores). None where bounding pays nothing (every weighted word scorer is cheap) or
        cannot be done (a scorer gives no bound, or has a negative weight)."""
        a, plan = self.nodes.a, self.plan
        weighted = [n for n in plan.word_scorers if self.w[n] != 0]
        if all(plan.scorers[n].cheap_words for n in weighted) or any(self.w[n] < 0 for n in weighted):
            return None
        uniq, inv = np.unique(nodes, return_inverse=True)
        out = a["ub"][uniq].copy()
        hist = a["hist"][a["parent"][uniq]].tolist()
        words = self.closed_words(uniq)
        for name in weighted:
            scorer, states = plan.scorers[name], self.word_states(name, hist)
            b = scorer.score_words(states, words)[0] if scorer.cheap_words else scorer.word_bounds(states, words)
            if b is None:
                return None
            out += self.w[name] * b
        return out[inv]

    def _prune(self, m: dict[str, np.ndarray], total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop outliers (``beam_prune_logp`` below their utterance's best), keep the best
        ``beam_size`` per utterance. Returns their indices into ``m`` and their trie nodes (made now
        for new prefixes)."""
        plan, utt = self.plan, m["utt"]
        best = np.full(self.B, -np.inf)
        np.maximum.at(best, utt, total)
        idx = np.flatnonzero(total >= best[utt] + plan.beam_prune_logp)
        keep = idx[self.top_per_utt(utt[idx], total[idx], plan.beam_size)]
        kn = m["known"][keep]
        nv = kn < 0
        if nv.any():
            kn[nv] = self.child_nodes(m["par"][keep][nv], m["edge"][keep][nv])
        return keep, kn

    def _recombine(self, m: dict[str, np.ndarray], total: np.ndarray, keep: np.ndarray,
                   kn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``prune_history``: of the kept beams whose futures score alike (same utterance, open
        word, last label and word-scorer state classes), keep only the best."""
        a, utt, tok = self.nodes.a, m["utt"], m["tok"]
        o = np.lexsort((-total[keep], utt[keep]))
        keep, kn = keep[o], kn[o]
        cols = [(utt[keep], self.B), (a["pid"][kn], len(self.partial_ids)), (tok[keep], self.V + 1)]
        cols += [(a[f"cls:{n}"][a["hist"][kn]], len(self.state_ids[n]) + 1) for n in self.plan.word_scorers]
        if self.lex is not None:  # tokens run together may read alike: the lexicon state tells them apart
            cols.append((a["pt0"][kn] + 1, len(self.lex.table) + 1))
        if math.prod(float(c[1]) for c in cols) < 2.0**62:
            key = np.zeros(len(keep), dtype=np.int64)
            for c, size in cols:
                key = key * size + c
            _, uniq = np.unique(key, return_index=True)
        else:
            _, uniq = np.unique(np.stack([c for c, _ in cols], 1), axis=0, return_index=True)
        uniq.sort()
        return keep[uniq], kn[uniq]

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
        plan, a, st = self.plan, self.nodes.a, self.st
        end_tok = self.delim if not plan.labels.is_spm else self.END
        end = np.full(len(H["node"]), end_tok)
        if self.lex is not None:  # an open lexicon word closes as each of its homophones
            k = self.edges.homophones(a["pt0"][H["node"]], a["plen"][H["node"]] > 0)
            idx, code = self.edges.copies(k, k > 0, np.zeros(len(k), dtype=bool))
            H = {key: v[idx] for key, v in H.items()}
            end = end_tok + self.edges.E * code
        utt, node = H["utt"], H["node"]
        ac = H["ac"] + st["tail"][utt]
        open_ = a["plen"][node] > 0
        fnode = node.copy()
        if open_.any():
            fnode[open_] = self.child_nodes(node[open_], end[open_])
        # merge by (utterance, final prefix), keeping the word frames of the most probable member
        key = fnode * self.B + utt
        order = np.lexsort((-ac, key))
        ks = key[order]
        first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        rep = order[first]
        m_ac = np.logaddexp.reduceat(ac[order], first)
        m_node, m_utt = fnode[rep], utt[rep]
        pend = np.isnan(a["fused"][m_node])
        self.score_pending(m_node[pend])
        total = m_ac + a["fused"][m_node]
        raw = {name: a[f"raw:{name}"][m_node].copy() for name in plan.scorers}
        for name in plan.word_scorers:
            eos = plan.scorers[name].final_score(self.word_states(name, a["hist"][m_node].tolist()))
            raw[name] += eos
            total += self.w[name] * eos
        for name in plan.token_scorers:
            states = self.tstate[name]
            tn = [int(a["parent"][n]) if a["tok"][n] == self.END else int(n) for n in m_node]
            eos = plan.scorers[name].final_score([states[n] for n in tn])
            raw[name] += eos
            total += self.w[name] * eos
        keep = self.top_per_utt(m_utt, total, plan.nbest)
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
            text = " ".join(self.path_words(int(m_node[i]))) if self.lex is not None else plan.labels.spell(toks)
            results[int(m_utt[i])].append(CTCHypothesis(text, toks, spans, float(total[i]), scores))
        return results
