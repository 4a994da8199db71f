"""CTC prefix beam search with LM shallow fusion, batched over beams and utterances.

Entry point: :func:`build_ctc_decoder`. A hypothesis scores

    score = log P_ctc + sum_k weights[k] * score_k + weights["words"] * n_words

where ``score_k`` are natural-log scores of the named scorers (``lmplug.scorers``). Every
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
  the nodes that complete a word are scored in batched ``score_words`` calls per scorer per step
  for the whole batch (only nodes whose LM-free score ranks in the top ``lm_prefilter * beam_size``
  of their utterance). Where the scorers bound their word scores (``word_bounds``: the
  Transformer's first piece, read from its history's distribution with no forward), the search
  scores them in rounds, best bound first, until no bound reaches the score a beam needs to
  survive the frame; the rest could not survive and are never forwarded (the same beams as
  scoring them all). The Transformer answers each call with at most two batched forwards: one
  that computes the (lazy) states of the histories, one over the multi-piece words. Token mode (acoustic labels = the LM's
  sentencepiece pieces): the LM's next-token log-probs are read from each prefix's state, and
  the states of the new surviving prefixes come from one KV-cached forward per step.
- With n-gram scorers only (finite history), beams that agree on the open word, the last label
  and every scorer state are recombined after each frame (``prune_history``), as pyctcdecode's
  ``decode`` does, but by LM state rather than by the last n-1 words. ``history_words=N`` extends
  this to word scorers with an unbounded history (the Transformer): their state counts as the
  last N words, an approximation that frees beam slots held by variants of distant words.
- Word mode with ``lookahead``: a beam in the middle of a word would otherwise rank with no LM
  cost for that word, ahead of beams that have just paid for theirs. The named scorers'
  ``prefix_scores`` (weighted) give it an estimate instead, added to the pruning score only:
  the Transformer's probability that the next word begins with the letters so far (the
  word-initial pieces that fit them, read from the history's distribution, so no forward),
  KenLM's unigram mass of the vocabulary words that do. It is memoized per (history, open
  word) and replaced by the word's own score when the word ends.
- At the end every open word is closed, the end-of-sentence score added, and the n-best sorted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from lmplug.constants import COMPILE_MODES, SEARCHES
from lmplug.ctc.labels import CTCLabels, build_labels
from lmplug.ctc.lexicon import Lexicon, read_lexicon
from lmplug.ctc.plan import SearchPlan, prefix_tries, token_map
from lmplug.ctc.search import Search
from lmplug.ctc.torch_search import TorchSearch
from lmplug.ctc.types import AVG_WORD_LEN, CTC, WORDS, CTCDecoderConfig, CTCHypothesis
from lmplug.errors import EmissionsError, LmplugError, expect_number
from lmplug.scorers.base import Scorer

__all__ = ["AVG_WORD_LEN", "CTC", "WORDS", "CTCDecoder", "CTCDecoderConfig", "CTCHypothesis", "build_ctc_decoder",
           "greedy_decode", "search_variant"]

_D = CTCDecoderConfig  # the defaults


class CTCDecoder:
    """Batched CTC beam search with named scorers; build it with :func:`build_ctc_decoder`.

    Its parameters are a :class:`~lmplug.ctc.types.CTCDecoderConfig` (kept as ``config``; its
    fields also as attributes of the same names). It validates them and builds ``plan``, a frozen
    :class:`~lmplug.ctc.plan.SearchPlan` (rebuilt by :meth:`set_weights`), which each
    :meth:`decode` hands to its search engine (:class:`~lmplug.ctc.search.Search`, or
    :class:`~lmplug.ctc.torch_search.TorchSearch`): the engines read the plan, never the decoder.
    """

    def __init__(self, labels: CTCLabels, scorers: Mapping[str, Scorer], weights: Mapping[str, float],
                 config: CTCDecoderConfig | None = None, **options) -> None:
        """``config`` (default: ``CTCDecoderConfig()``) with ``options`` (its fields, e.g.
        ``beam_size=8``) replaced; its ``blank_id`` is the labels'."""
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(CTCDecoderConfig)})
        if unknown:
            raise LmplugError(f"expected CTCDecoderConfig fields as options, found unknown {unknown}")
        cfg = dataclasses.replace(config or CTCDecoderConfig(), **options)
        cfg = dataclasses.replace(cfg, lookahead=tuple(cfg.lookahead), blank_id=labels.blank_id)
        mode, beam_size, nbest, token_top_k = cfg.mode, cfg.beam_size, cfg.nbest, cfg.token_top_k
        lm_prefilter, history_words, lookahead = cfg.lm_prefilter, cfg.history_words, cfg.lookahead
        if mode not in ("word", "token"):
            raise LmplugError(f"expected mode 'word' or 'token', found {mode!r}")
        if beam_size < 1 or nbest < 1:
            raise LmplugError(f"expected beam_size >= 1 and nbest >= 1, found {beam_size} and {nbest}")
        for name, s in scorers.items():
            if name in (CTC, WORDS):
                raise LmplugError(f"scorer name {name!r} is reserved; expected another name")
            if not isinstance(s, Scorer):
                raise LmplugError(f"scorer {name!r}: expected an lmplug.scorers.base.Scorer, found {type(s).__name__}")
        self.config = cfg
        self.labels = labels
        self.scorers = dict(scorers)
        self.mode = mode
        self.beam_size = beam_size
        self.nbest = nbest
        self.token_min_logp = cfg.token_min_logp
        self.token_top_k = token_top_k
        self.beam_prune_logp = cfg.beam_prune_logp
        self.lm_prefilter = lm_prefilter
        self.partial_oov_logp = cfg.partial_oov_logp
        self.lexicon = cfg.lexicon
        self.implicit_boundaries = cfg.implicit_boundaries
        if not isinstance(cfg.lexicon, (bool, Lexicon)):
            raise LmplugError(f"expected lexicon True, False or a lmplug.ctc.lexicon.Lexicon, found "
                              f"{type(cfg.lexicon).__name__} (build_ctc_decoder also reads a path)")
        if isinstance(cfg.lexicon, Lexicon) and lookahead:
            raise LmplugError(f"lookahead scores open words by their letters: expected no lookahead with a "
                              f"pronunciation lexicon, found {list(lookahead)}")
        if token_top_k is not None:  # None: no limit
            expect_number("CTCDecoder", "token_top_k", token_top_k, integer=True, at_least=1)
        if history_words is not None and history_words < 1:
            raise LmplugError(f"expected history_words >= 1 (or None), found {history_words}")
        if not lm_prefilter > 0:
            raise LmplugError(f"expected lm_prefilter > 0 (a multiple of beam_size), found {lm_prefilter}")
        self.history_words = history_words
        finite = all(s.order is not None or history_words for s in scorers.values()) and not (
            mode == "token" and any(s.token_level for s in scorers.values()))
        # n-best lists: only an LM state keeps histories apart (without one, recombining would
        # leave one beam per open word and empty the list)
        default = nbest == 1 or any(s.order != 1 for s in scorers.values())
        self.prune_history = (default if cfg.prune_history is None else cfg.prune_history) and finite
        self.token_scorers = [n for n, s in self.scorers.items() if mode == "token" and s.token_level]
        self.word_scorers = [n for n in self.scorers if n not in self.token_scorers]
        self.lookahead_scorers = list(dict.fromkeys(lookahead))
        self.search = cfg.search
        self.compile = cfg.compile
        self._check_search()
        self._lm_tok = token_map(labels, self.scorers, self.token_scorers) if self.token_scorers else None
        if self._lm_tok is not None:
            self._lm_tok.setflags(write=False)
        for n in lookahead:
            if n not in self.word_scorers:
                raise LmplugError(f"lookahead: expected the name of a word-mode scorer ({self.word_scorers}), found {n!r}")
            if not self.scorers[n].has_prefix_scores:
                raise LmplugError(f"lookahead: expected a scorer with prefix_scores, found {n!r} "
                                  f"({type(self.scorers[n]).__name__}) without")
        self.set_weights(weights)

    def _check_search(self) -> None:
        """``search="torch"`` runs what :class:`~lmplug.ctc.torch_search.TorchSearch` implements."""
        if self.search not in SEARCHES:
            raise LmplugError(f"expected search in {SEARCHES}, found {self.search!r}")
        if self.compile not in (False, True, *COMPILE_MODES):
            raise LmplugError(f"expected compile True, False or a torch.compile mode {COMPILE_MODES}, found {self.compile!r}")
        if self.search == "numpy":
            if self.compile:
                raise LmplugError("compile=True: expected search='torch' (it compiles the device search), found 'numpy'")
            return
        from lmplug.scorers.transformer import TransformerScorer

        found = []
        if self.word_scorers:
            found.append(f"word-level scorers {self.word_scorers}")
        if len(self.token_scorers) > 1:
            found.append(f"{len(self.token_scorers)} token-level scorers")
        found += [f"scorer {n!r} is a {type(self.scorers[n]).__name__}" for n in self.token_scorers
                  if not isinstance(self.scorers[n], TransformerScorer)]
        if isinstance(self.lexicon, Lexicon):
            found.append("a pronunciation lexicon (lexicon over tokens needs search='numpy')")
        elif self.lexicon or self.lookahead_scorers or self.history_words is not None:
            found.append("lexicon, lookahead or history_words")
        if found:
            raise LmplugError(
                "search='torch' decodes with no scorers, or with one TransformerScorer in mode='token' "
                f"(sentencepiece labels = the LM's pieces); found {'; '.join(found)}; use search='numpy'")

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
        self.plan = self._make_plan()

    def _make_plan(self) -> SearchPlan:
        """The frozen plan the search engines read (its tries depend on the weights)."""
        return SearchPlan(
            labels=self.labels, scorers=MappingProxyType(dict(self.scorers)), word_scorers=tuple(self.word_scorers),
            token_scorers=tuple(self.token_scorers), lookahead_scorers=tuple(self.lookahead_scorers),
            weights=MappingProxyType(dict(self.weights)),
            tries=prefix_tries(self.labels, self.scorers, self.word_scorers, self.weights, self.lexicon,
                               self.partial_oov_logp),
            lm_tok=self._lm_tok, beam_size=self.beam_size, nbest=self.nbest, beam_prune_logp=self.beam_prune_logp,
            lm_prefilter=self.lm_prefilter, lexicon=bool(self.lexicon),
            implicit_boundaries=self.implicit_boundaries, prune_history=self.prune_history,
            history_words=self.history_words, compile=self.compile)

    # -- input --------------------------------------------------------------------------------

    def prepare(self, emissions, lengths=None, logits: bool = False) -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
        """What :meth:`decode` searches (:func:`prepare_emissions` with these labels)."""
        return prepare_emissions(emissions, lengths, logits, self.labels.size)

    def _steps(self, x: np.ndarray | torch.Tensor, lens: np.ndarray) -> dict[str, np.ndarray]:
        """Candidate labels per frame, with blank-only frames folded into blank runs.

        Returns arrays over (B, S) compressed steps: ``t`` frame index, ``ids``/``lp``/``ok`` (B, S, k)
        candidates, ``run`` summed blank log-prob of the skipped frames before the step, ``runlen``;
        plus ``n`` (B,) steps per utterance and ``tail`` (B,) blank log-prob after the last step.
        """
        B, _, V = x.shape
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
        x, lens = self.prepare(emissions, lengths, logits)
        if self.search == "torch":
            dev = (self.scorers[self.token_scorers[0]].device if self.token_scorers
                   else x.device if torch.is_tensor(x) else torch.device("cpu"))
            return TorchSearch(self.plan, self._steps(x, lens), len(lens), dev).run()
        return Search(self.plan, self._steps(x, lens), len(lens)).run()


def prepare_emissions(emissions, lengths, logits: bool, n_labels: int) -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
    """What a CTC search reads: the validated float32 log-probs (B, T, V) (numpy for CPU input, a
    tensor on its device else) and the lengths (B,) as int64.

    Args:
        emissions: (B, T, V) numpy array or torch tensor: log-probs, or logits with ``logits=True``.
        lengths: (B,) valid frames per utterance, or None (all T).
        logits: apply log-softmax.
        n_labels: V, the number of labels.

    Raises:
        EmissionsError: NaN or inf, or frames that are not log-probabilities (``logits=False``),
            naming the utterance's position in the batch and the frame.
        LmplugError: a wrong shape, dtype, vocabulary size or length.
    """
    if isinstance(emissions, np.ndarray):
        x = torch.from_numpy(emissions.copy() if any(st < 0 for st in emissions.strides) else emissions)  # a reversed view
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
    if V != n_labels:
        raise LmplugError(
            f"emissions shape is {tuple(x.shape)}, but the labels have {n_labels} entries; "
            f"expected the last dim to be {n_labels}"
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
        xn = (x if x.dtype in (torch.float16, torch.float32, torch.float64) else x.float()).numpy()  # bfloat16: no numpy
        xn = xn.astype(np.float32, copy=False)
        valid = np.arange(T)[None, :] < lens[:, None]  # (B, T)
        finite = np.isfinite(xn).all(-1) | ~valid
    else:
        x = x.float()
        valid_t = torch.arange(T, device=x.device)[None, :] < torch.as_tensor(lens, device=x.device)[:, None]
        finite = (torch.isfinite(x).all(-1) | ~valid_t).cpu().numpy()
    if not finite.all():
        b, t = np.argwhere(~finite)[0].tolist()
        raise EmissionsError(f"expected finite emissions, found NaN or inf in utterance {b} of the batch at frame {t}", b)
    if on_cpu:
        m = xn.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(xn - m).sum(-1, keepdims=True)))  # (B, T, 1)
        if logits:
            return xn - lse, lens
        off = np.where(valid, np.abs(lse[..., 0]), 0.0)  # (B, T)
        looks_prob = bool((xn[valid] >= 0).all())
    else:
        lse = torch.logsumexp(x, dim=-1, keepdim=True)
        if logits:
            return x - lse, lens
        off = torch.where(valid_t, lse[..., 0].abs(), 0.0).cpu().numpy()
        looks_prob = bool((x[valid_t] >= 0).all())
    b, t = np.unravel_index(int(off.argmax()), off.shape)
    if off[b, t] > 1e-2:
        raise EmissionsError(
            "expected log-probabilities (each frame log-sum-exp = 0), found frames off by up to "
            f"{off[b, t]:.3g} (utterance {b} of the batch, frame {t}); "
            + ("these look like probabilities: pass their log" if looks_prob
               else "pass logits=True (on the command line: --logits) for unnormalized scores"), int(b))
    return (xn if on_cpu else x), lens


def build_ctc_decoder(
    labels: Sequence[str],
    scorers: Mapping[str, Scorer] | None = None,
    weights: Mapping[str, float] | None = None,
    beam_size: int = _D.beam_size,
    mode: str = _D.mode,
    nbest: int = _D.nbest,
    token_min_logp: float = _D.token_min_logp,
    token_top_k: int | None = _D.token_top_k,
    beam_prune_logp: float = _D.beam_prune_logp,
    lm_prefilter: float = _D.lm_prefilter,
    partial_oov_logp: float = _D.partial_oov_logp,
    prune_history: bool | None = _D.prune_history,
    lexicon: bool | Lexicon | str | Path = _D.lexicon,
    implicit_boundaries: bool = _D.implicit_boundaries,
    blank_id: int | None = _D.blank_id,
    history_words: int | None = _D.history_words,
    lookahead: Sequence[str] = _D.lookahead,
    search: str = _D.search,
    compile: bool | str = _D.compile,
) -> CTCDecoder:
    """Build a batched CTC beam-search decoder with shallow fusion.

    The keyword arguments after ``weights`` are the fields of
    :class:`~lmplug.ctc.types.CTCDecoderConfig`, with its defaults
    (``build_ctc_decoder(labels, scorers, weights, **{f.name: getattr(config, f.name) for f in
    dataclasses.fields(config)})``).

    Args:
        labels: one label per emission column: characters with a word delimiter (``" "`` or
            ``"|"``), sentencepiece pieces (``▁``), or tokens such as phones with a word boundary
            ``"<wb>"`` (:func:`~lmplug.ctc.labels.build_labels`; a built ``CTCLabels`` names any
            other delimiter), and a blank (``""``, ``"<pad>"``, ``"<blank>"``...).
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
            on when every scorer has a finite history, also for n-best lists with at least one
            scorer: their 1-best then equals the ``nbest=1`` result (measured: turning it off
            for a KenLM 16-best list raised the 1-best's dev WER from 15.15% to 16.25% in the
            speech recipe). Off for n-best lists without scorers.
        lexicon: spell only words of a lexicon: other partial words and words get a
            prohibitive penalty (-1e4) instead of ``partial_oov_logp``, and are never LM-scored,
            as in torchaudio's lexicon decoder. Faster with a Transformer LM in word mode.
            ``True``: the first word scorer's vocabulary (``known_words()``), spelled in
            characters (character labels). A pronunciation :class:`~lmplug.ctc.lexicon.Lexicon`
            (or the path of a lexicon file, read over ``labels``): its words, spelled by their
            pronunciations in any labels (e.g. phones); the word scorers score the word, each
            homophone of a pronunciation is a candidate of its own, and hypotheses' ``text``
            holds the words. ``search="numpy"`` only; no ``lookahead``.
        implicit_boundaries: with a pronunciation lexicon, a word may also end where its
            pronunciation is complete and the next word's first token follows, with no word
            delimiter between them (phone models do not always emit one). Off by default: words
            end at the delimiter and at the end of the utterance. Without an LM it splits words
            into shorter ones for free (hama's phones on 300 ARCTIC recordings, word bonus -3:
            18.1% WER vs 16.2% off); with KenLM about even (15.3% vs 15.1%, dev-tuned weights).
        blank_id: index of the blank when its label is not one of the recognized names.
        history_words: word mode: recombine beams (``prune_history``) also with scorers of
            unbounded history (the Transformer), treating their state as the last this many
            words. Approximate (beams that differ only in older words keep only the best, so
            n-best lists come out shorter); None: such scorers turn recombination off.
        lookahead: word mode: names of scorers whose ``prefix_scores`` (times their weight)
            guide the search while a word is being spelled: the Transformer's probability that
            the next word begins with the letters so far, or KenLM's unigram mass of the words
            that do. It counts toward pruning only and is replaced by the word's own score when
            the word ends: final scores are unchanged, only which beams survive changes.
        search: ``"numpy"`` (the search on the host: every mode and scorer) or ``"torch"``: the
            same search as tensor operations on the LM's device (else the emissions'), with no
            per-frame transfer or synchronisation, for GPUs (:mod:`lmplug.ctc.torch_search`); no scorers,
            or one :class:`~lmplug.scorers.transformer.TransformerScorer` with ``mode="token"``.
        compile: ``search="torch"``: ``torch.compile`` its frame step and the LM's forward (a few
            hundred small tensor operations a frame fused into fewer kernels; the first decodes
            compile, which takes tens of seconds, once for static and once for dynamic shapes).
            A string is torch.compile's ``mode``: ``"reduce-overhead"`` also replays each frame as
            CUDA graphs on a GPU (shapes stay fixed between the KV cache's growths, at most one
            every 16 frames: one recording per cache size).

    Returns:
        a :class:`CTCDecoder`; call ``.decode(emissions, lengths)``.
    """
    options = locals()  # the arguments, the config's fields among them
    config = CTCDecoderConfig(**{f.name: options[f.name] for f in dataclasses.fields(CTCDecoderConfig)})
    if nbest > beam_size:
        raise LmplugError(f"expected nbest <= beam_size, found nbest={nbest} beam_size={beam_size}")
    lab = build_labels(labels, blank_id=blank_id)
    if isinstance(lexicon, (str, Path)):
        config = dataclasses.replace(config, lexicon=read_lexicon(lexicon, lab))
    return CTCDecoder(lab, dict(scorers or {}), dict(weights or {}), config)


def search_variant(name: str) -> dict:
    """``build_ctc_decoder`` keyword arguments of a search as benchmarks name it: ``"numpy"``,
    ``"torch"``, ``"torch+compile"`` or ``"torch+MODE"`` (a torch.compile mode, e.g. reduce-overhead)."""
    search, plus, comp = name.partition("+")
    if search not in SEARCHES or (plus and (search == "numpy" or comp not in ("compile", *COMPILE_MODES))):
        raise LmplugError(f"expected a search variant numpy, torch, torch+compile or torch+MODE (MODE in "
                          f"{COMPILE_MODES}), found {name!r}")
    return {"search": search, "compile": (True if comp == "compile" else comp) or False}


def greedy_decode(emissions, labels: Sequence[str] | CTCLabels, lengths=None) -> list[str]:
    """Best-path decoding (arg-max, collapse repeats, drop blanks) of (B, T, V) emissions."""
    lab = labels if isinstance(labels, CTCLabels) else build_labels(labels)
    best = emissions.argmax(-1).cpu().numpy() if torch.is_tensor(emissions) else np.asarray(emissions).argmax(-1)
    out = []
    for b in range(best.shape[0]):
        L = best.shape[1] if lengths is None else int(lengths[b])
        path = best[b, :L]
        keep = np.r_[True, path[1:] != path[:-1]] & (path != lab.blank_id)
        out.append(lab.spell([int(t) for t in path[keep]]))
    return out
