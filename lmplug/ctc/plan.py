"""What a search engine is handed: a frozen :class:`SearchPlan` the decoder builds.

The decoder (:mod:`lmplug.ctc.decoder`) validates its parameters and builds the plan; the search
engines (:mod:`lmplug.ctc.search`, :mod:`lmplug.ctc.torch_search`) read only the plan and the
frame candidates, never the decoder. Also here: how the plan's word tries and token map are built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from lmplug.ctc.labels import CTCLabels
from lmplug.ctc.lexicon import Lexicon
from lmplug.errors import LmplugError

if TYPE_CHECKING:
    from lmplug.scorers.base import Scorer


class PrefixTrie(NamedTuple):
    """A prefix automaton over the labels: of one word scorer's vocabulary spelled in characters,
    or of a pronunciation lexicon's token sequences.

    State 0 is the empty prefix; ``table[state, label]`` is the next state or -1 when no known
    word starts with the extended prefix; ``is_word[state]`` marks whole words. A pronunciation
    lexicon's trie also says which words each state spells (``homophones``): a word ends as one
    of them, not as the text of its labels.
    """

    scorer: str  # the scorer whose known_words() it spells ("lexicon": a pronunciation lexicon)
    table: np.ndarray  # (states, V+1) int32: next state, or -1
    oov_logp: float  # added (unweighted) to an open word that leaves the trie
    is_word: np.ndarray  # (states,) bool: the state spells a whole word
    homophones: np.ndarray | None = None  # (states, K) int32: ids into ``words`` a state spells, -1 padded
    words: tuple[str, ...] = ()  # a pronunciation lexicon's words
    n_homophones: np.ndarray | None = None  # (states,) int64: the words a state spells


@dataclass(frozen=True, eq=False)
class SearchPlan:
    """Everything a search engine reads from the decoder, fixed for one decode call.

    Scorers are kept by kind: ``word_scorers`` score completed words (``score_words``),
    ``token_scorers`` score every label (token mode), ``lookahead_scorers`` (word scorers) add
    ``prefix_scores`` to the pruning score of open words. ``scorers`` holds all of them in the
    order they were given (the order in which their weighted scores are summed).
    """

    labels: CTCLabels  # the acoustic label set
    scorers: Mapping[str, Scorer]  # every scorer by name (read-only)
    word_scorers: tuple[str, ...]  # names of scorers of completed words
    token_scorers: tuple[str, ...]  # names of token-level scorers (mode="token")
    lookahead_scorers: tuple[str, ...]  # names of word scorers whose prefix_scores guide pruning
    weights: Mapping[str, float]  # fusion weight per scorer and "words" (read-only)
    tries: tuple[PrefixTrie, ...]  # partial-word OOV penalty / lexicon automata (tries[0]: the lexicon's)
    lm_tok: np.ndarray | None  # (V+1,) acoustic label -> LM piece id (token mode; -1: none), else None
    beam_size: int  # hypotheses kept per utterance after each frame
    nbest: int  # hypotheses returned per utterance
    beam_prune_logp: float  # drop hypotheses this far below the best of their utterance
    lm_prefilter: float  # word-score only the top lm_prefilter * beam_size prefixes per utterance
    lexicon: bool  # tries[0] is a lexicon: words outside it are prohibitive
    implicit_boundaries: bool  # a pronunciation lexicon's words may also end without a delimiter
    prune_history: bool  # recombine beams whose futures score alike
    history_words: int | None  # unbounded-history scorers recombine by their last N words
    compile: bool | str  # search="torch": torch.compile the frame step (a string: its mode)


def token_map(labels: CTCLabels, scorers: Mapping[str, Scorer], token_scorers: Sequence[str]) -> np.ndarray:
    """Acoustic label id -> LM piece id (token mode), validating the vocabularies agree."""
    lab = labels
    if not lab.is_spm:
        raise LmplugError(
            "token mode needs sentencepiece acoustic labels (starting with '▁') equal to the LM's "
            f"pieces; found character labels {list(lab.labels)[:8]}...; use mode='word'"
        )
    maps = []
    for name in token_scorers:
        tok = getattr(scorers[name], "tokenizer", None)
        if tok is None:
            raise LmplugError(f"token mode: expected scorer {name!r} to have a sentencepiece tokenizer, found a "
                              f"{type(scorers[name]).__name__} without one; use mode='word'")
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


def prefix_tries(labels: CTCLabels, scorers: Mapping[str, Scorer], word_scorers: Sequence[str],
                 weights: Mapping[str, float], lexicon: bool | Lexicon, partial_oov_logp: float) -> tuple[PrefixTrie, ...]:
    """The plan's tries: a pronunciation :class:`~lmplug.ctc.lexicon.Lexicon`'s alone; else, for
    character labels, per weighted word scorer with a word list (and the lexicon's, whatever its
    weight) a :class:`PrefixTrie` of its words' letters (none for sentencepiece or token labels).

    A hypothesis whose open word starts no known word gets ``partial_oov_logp`` (unweighted,
    as pyctcdecode's ``unk_score_offset``), scaled up for words longer than ``AVG_WORD_LEN``.
    """
    if isinstance(lexicon, Lexicon):
        return (lexicon_trie(labels, lexicon, partial_oov_logp),)
    out: list[PrefixTrie] = []
    lab = labels
    if lab.is_spm or (lab.is_tokens and not lexicon):
        return ()
    if lab.is_tokens:
        raise LmplugError(
            "lexicon=True spells the word scorer's vocabulary in characters: expected character labels, found "
            f"token labels {list(lab.labels)[:8]}...; pass a pronunciation lexicon (lexicon=PATH or a "
            "lmplug.ctc.lexicon.Lexicon; on the command line --lexicon FILE)")
    char_id = {lab.text[i]: i for i in range(lab.size) if lab.text_len[i] == 1}
    for name in word_scorers:
        words = scorers[name].known_words()
        spells = lexicon and not out  # the lexicon: the first vocabulary, whatever its weight (tuning tries 0)
        if not words or not (spells or (partial_oov_logp != 0.0 and weights[name] != 0.0)):
            continue
        trans: list[dict[int, int]] = [{}]
        final: set[int] = set()
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
            final.add(st)
        table = np.full((len(trans), lab.size + 1), -1, dtype=np.int32)
        for st, d in enumerate(trans):
            for i, nxt in d.items():
                table[st, i] = nxt
        is_word = np.zeros(len(trans), dtype=bool)
        is_word[list(final)] = True
        table.setflags(write=False)
        is_word.setflags(write=False)
        out.append(PrefixTrie(name, table, partial_oov_logp, is_word))
    if lexicon and not out:
        raise LmplugError(
            "lexicon=True needs character labels and a word scorer with a vocabulary "
            "(Scorer.known_words(), e.g. KenLM unigrams); found none"
        )
    return tuple(out)


def lexicon_trie(labels: CTCLabels, lexicon: Lexicon, oov_logp: float) -> PrefixTrie:
    """The :class:`PrefixTrie` of a pronunciation lexicon over ``labels`` (which must be its own)."""
    lab = lexicon.labels
    if (lab.labels, lab.blank_id, lab.delimiter_id) != (labels.labels, labels.blank_id, labels.delimiter_id):
        raise LmplugError(
            f"expected a lexicon over the decoder's {labels.size} labels (blank {labels.blank_id}, delimiter "
            f"{labels.delimiter_id}), found one over {lab.size} labels (blank {lab.blank_id}, delimiter "
            f"{lab.delimiter_id}); read it with these labels")
    table, homophones, words = lexicon.trie()
    n_hom = (homophones >= 0).sum(1).astype(np.int64)
    is_word = n_hom > 0
    for arr in (table, homophones, n_hom, is_word):
        arr.setflags(write=False)
    return PrefixTrie("lexicon", table, oov_logp, is_word, homophones, words, n_hom)
