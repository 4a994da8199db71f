"""One scorer interface for every language model lmplug plugs into a decoder.

A scorer returns natural-log probabilities and nothing else: fusion weights are applied by the
decoder (``lmplug.ctc.decoder``) or the reranker, never here. Every method is batched over ``N`` states;
a state is an opaque, immutable object (share it freely between beams).

Two granularities, as in ESPnet's ``batch_score``:

- token level (scorers that implement ``batch_score``: :class:`TransformerScorer`, the zero
  scorer): ``batch_score(states)`` gives the next-token log-probs ``(N, V)`` over the scorer's own
  vocabulary, ``advance`` appends tokens;
- word level (every scorer): ``score_words(states, words)`` gives ``log P(word | state)`` and the
  states after the words. For the Transformer this is the sum of the word's sentencepiece piece
  log-probs (sentencepiece never merges across spaces, so summing over words is exact).

``final_score(states)`` is ``log P(</s> | state)``. ``score_sentences(texts)`` scores whole
sentences (``<s>`` context, ``</s>`` included): CTC n-best rescoring and the MT reranker's LM
features both call it. The rest are optional hooks with defaults: ``token_logprobs`` (partial
scoring of given tokens, ESPnet's ``score_partial``), ``prefix_scores`` (look-ahead),
``word_bounds`` (a cheap upper bound of ``score_words``, so a decoder scores exactly only the words
that can still rank), ``advance_words`` (states after several words, scores not needed: a memo
rebuilding states it skipped), ``compact`` (memory), ``known_words``, ``signature``.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def words_signature(words) -> str:
    """A word list in a signature: its size and a short hash of its sorted words."""
    words = sorted(set(words))
    text = "\n".join(words)
    return f"{len(words)}:{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}"


class Scorer:
    """Base class. A new scorer implements three methods: ``init_state``, ``score_words``,
    ``final_score`` (word level), and ``batch_score`` + ``advance`` to be token level too; the other
    eight (``token_logprobs``, ``prefix_scores``, ``word_bounds``, ``advance_words``, ``compact``,
    ``known_words``, ``signature``, ``score_sentences``) have working defaults that a scorer overrides
    for speed or features.

    Attributes:
        name: short default feature name (``"lm"``, ``"kenlm"``, ...).
        order: the n-gram order: a state depends on the last ``order - 1`` words only, states are
            hashable and equal states score every future alike, so a decoder may keep only the
            best of beams that share one; 1: every state is the same (``ZeroScorer``, which must
            not make a decoder recombine every n-best hypothesis into one); None (the default):
            unbounded history (a neural LM).
        prefix_uses_state: ``prefix_scores`` depends on the states (False: on the prefix only,
            so a decoder may memoize it by prefix).
        scores_empty_word: ``score_words`` takes ``""`` (KenLM: as ``<unk>``, which pyctcdecode's
            own KenLM wrapper relies on); False: the empty word is no word.
        cheap_words: ``score_words`` costs no more than a bound would (KenLM's table lookups): a
            decoder that bounds word scores (``word_bounds``) takes such a scorer's scores as
            they are, and bounds nothing when every word scorer is cheap.
    """

    name: str = "lm"
    order: int | None = None  # n-gram order (1: no history); None: unbounded (neural)
    prefix_uses_state: bool = True  # False: prefix_scores ignores the states (decoders memoize by prefix)
    scores_empty_word: bool = False  # score_words([""]) is defined (KenLM's <unk>)
    cheap_words: bool = False  # score_words is as cheap as a bound (KenLM, the zero scorer)

    @property
    def token_level(self) -> bool:
        """Whether ``batch_score``/``advance`` are available (the scorer implements ``batch_score``)."""
        return type(self).batch_score is not Scorer.batch_score

    @property
    def has_prefix_scores(self) -> bool:
        """Whether ``prefix_scores`` is implemented (a decoder's ``lookahead`` needs it)."""
        return type(self).prefix_scores is not Scorer.prefix_scores

    def init_state(self, batch_size: int) -> list[Any]:
        """States of ``batch_size`` empty sentences (after ``<s>``)."""
        raise NotImplementedError

    def score_words(self, states: Sequence[Any], words: Sequence[str]) -> tuple[np.ndarray, list[Any]]:
        """``log P(words[i] | states[i])`` as float64 ``(N,)``, and the extended states."""
        raise NotImplementedError

    def final_score(self, states: Sequence[Any]) -> np.ndarray:
        """``log P(</s> | states[i])`` as float64 ``(N,)``."""
        raise NotImplementedError

    def batch_score(self, states: Sequence[Any]) -> torch.Tensor:
        """Next-token log-probs ``(N, V)`` (token-level scorers only)."""
        raise NotImplementedError(f"{type(self).__name__} is not a token-level scorer")

    def advance(self, states: Sequence[Any], tokens: Sequence[Sequence[int]]) -> list[Any]:
        """States after appending ``tokens[i]`` (ids of the scorer's vocabulary) to ``states[i]``."""
        raise NotImplementedError(f"{type(self).__name__} is not a token-level scorer")

    def token_logprobs(self, states: Sequence[Any], tokens: Sequence[int]) -> np.ndarray:
        """``log P(tokens[i] | states[i])`` as float64 ``(N,)`` (token-level scorers only)."""
        if not len(states):
            return np.zeros(0)
        lp = self.batch_score(states)
        return lp[torch.arange(len(states), device=lp.device), torch.as_tensor(tokens, device=lp.device)].double().cpu().numpy()

    def prefix_scores(self, states: Sequence[Any], prefixes: Sequence[str]) -> np.ndarray | None:
        """Look-ahead for word mode: ``log P(the next word begins with prefixes[i] | states[i])``,
        on the footing of ``score_words`` (an estimate of the coming word's score for a decoder's
        pruning), as float64 ``(N,)``; None when the scorer has none (the default)."""
        return None

    def word_bounds(self, states: Sequence[Any], words: Sequence[str]) -> np.ndarray | None:
        """Upper bounds of ``score_words(states, words)[0]`` as float64 ``(N,)``, cheaper than the
        scores themselves (a decoder word-scores exactly only the words whose bound could still
        rank among its beams); None when the scorer has none (the default: every word is scored)."""
        return None

    def advance_words(self, states: Sequence[Any], words: Sequence[Sequence[str]]) -> list[Any]:
        """The states ``score_words`` leaves after the words ``words[i]`` (in order) follow
        ``states[i]``, their scores not needed (a memo rebuilding the states of histories whose
        scores it kept). Default: one batched ``score_words`` per word position."""
        return self._by_position(states, words)[0]

    def compact(self, states: Sequence[Any]) -> list[Any]:
        """The same states, possibly re-packed to free memory; a decoder calls it with the states
        it still holds (everything else may be released). Default: unchanged."""
        return list(states)

    def known_words(self) -> set[str] | None:
        """The word vocabulary (the decoder penalizes partial words outside it), or None."""
        return None

    def signature(self) -> str:
        return f"scorer:{type(self).__name__}"

    def score_sentences(self, texts: Sequence[str]) -> np.ndarray:
        """``log P(text + </s>)`` per text, float64 ``(N,)``; words split on whitespace."""
        states, total = self._by_position(self.init_state(len(texts)), [t.split() for t in texts])
        return total + self.final_score(states)

    def _by_position(self, states: Sequence[Any], words: Sequence[Sequence[str]]) -> tuple[list[Any], np.ndarray]:
        """``score_words`` over ``words[i]`` after ``states[i]``, one batched call per word
        position: the states after the words and the summed scores (N,)."""
        states = list(states)
        total = np.zeros(len(states))
        for j in range(max((len(w) for w in words), default=0)):
            rows = [i for i, w in enumerate(words) if j < len(w)]
            sc, new = self.score_words([states[i] for i in rows], [words[i][j] for i in rows])
            for i, st, x in zip(rows, new, sc):
                states[i] = st
                total[i] += x
        return states, total


def prefix_span(texts: Sequence[str], prefix: str) -> tuple[int, int]:
    """``[lo, hi)``: the positions of the sorted ``texts`` that begin with ``prefix``."""
    if not prefix:
        return 0, len(texts)
    return bisect.bisect_left(texts, prefix), bisect.bisect_left(texts, prefix[:-1] + chr(ord(prefix[-1]) + 1))
