"""An n-gram model through the kenlm module as a scorer (word level)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmplug.ngram import LN10, arpa_unigrams, import_kenlm, load_kenlm, score_sentences_ngram
from lmplug.scorers.base import Scorer, prefix_span, words_signature

# per OOV word in fusion: pyctcdecode's unk_score_offset (-10 in log10) in natural log
KENLM_UNK_OFFSET = -10.0 * LN10


class KenLMScorer(Scorer):
    """An n-gram model through the ``kenlm`` module (ARPA or binary), word level.

    Scores are KenLM's log10 probabilities times ln(10). Scores of (state, word) pairs are cached
    across calls.

    The OOV rule (the one place it is written): a word outside the word list (``unigrams``)
    scores KenLM's own ``<unk>`` probability plus ``unk_offset`` (natural log), word by word
    (``score_words``) and in whole sentences (``score_sentences``) alike. The default is
    pyctcdecode's ``unk_score_offset`` (-10, which it adds to log10 scores: -23.03 in natural
    log), a fusion device that keeps a beam search from spelling unknown words. Sentence
    probabilities that are reported or reranked on (``lmplug ppl`` through
    :func:`lmplug.ngram.score_sentences_ngram`, the MT ``kenlm`` feature) take
    ``unk_offset=0``: KenLM's plain ``<unk>`` probability.

    Args:
        path: ``.arpa`` or KenLM binary file.
        unigrams: the LM's word list; when omitted, read from the ARPA file (or the ``.arpa``
            beside a binary). Without one, OOV words get no extra penalty (only KenLM's own
            ``<unk>`` probability) and decoders cannot penalize misspelled partial words.
        unk_offset: natural-log penalty added per OOV word (see above).
        name: feature name.
    """

    prefix_uses_state = False  # its look-ahead is unigram
    scores_empty_word = True  # "" is <unk>, as pyctcdecode's KenLM wrapper scores it
    cheap_words = True  # a word score is a table lookup (and cached)

    def __init__(self, path: str | Path, unigrams: Sequence[str] | None = None, unk_offset: float = KENLM_UNK_OFFSET,
                 name: str = "kenlm") -> None:
        p = Path(path)
        self.model = load_kenlm(p)
        self.path = str(p)
        self._State = import_kenlm().State
        self._given_unigrams = unigrams is not None  # else implied by the path
        if unigrams is None:  # an ARPA file, or the ARPA beside a binary (e.g. ngram5.bin + ngram5.arpa)
            unigrams = arpa_unigrams(p)
        self.unigrams = set(unigrams) if unigrams is not None else None
        self.unk_offset = float(unk_offset) if self.unigrams is not None else 0.0
        self.name = name
        self.order = self.model.order  # states depend on the last order - 1 words
        self._cache: dict[tuple[Any, str], tuple[float, Any]] = {}
        self._unigram_mass: tuple[list[str], np.ndarray, float] | None = None

    def signature(self) -> str:
        return (f"lm:kenlm|order:{self.order}|path:{self.path}"
                + (f"|unigrams:{words_signature(self.unigrams)}" if self._given_unigrams else "")
                + (f"|unk_offset:{self.unk_offset:g}" if self.unk_offset != KENLM_UNK_OFFSET else ""))

    def known_words(self) -> set[str] | None:
        return self.unigrams

    def init_state(self, batch_size: int) -> list[Any]:
        s = self._State()
        self.model.BeginSentenceWrite(s)
        return [s] * batch_size

    def score_words(self, states, words):
        out = np.empty(len(words))
        new = []
        cache, model, unis = self._cache, self.model, self.unigrams
        for i, (s, w) in enumerate(zip(states, words)):
            hit = cache.get((s, w))
            if hit is None:
                e = self._State()
                sc = model.BaseScore(s, w, e) * LN10
                if unis is not None and w not in unis:
                    sc += self.unk_offset
                hit = (sc, e)
                if len(cache) > 2_000_000:
                    cache.clear()
                cache[(s, w)] = hit
            out[i] = hit[0]
            new.append(hit[1])
        return out, new

    def final_score(self, states):
        e = self._State()
        return np.array([self.model.BaseScore(s, "</s>", e) * LN10 for s in states], dtype=np.float64)

    def score_sentences(self, texts: Sequence[str]) -> np.ndarray:
        """KenLM's own sentence score (:func:`~lmplug.ngram.score_sentences_ngram`) plus
        ``unk_offset`` per OOV word: what ``score_words`` and ``final_score`` sum to."""
        out = np.array([s.logprob for s in score_sentences_ngram(self.model, texts)], dtype=np.float64)
        if self.unk_offset:
            out += self.unk_offset * np.array([sum(w not in self.unigrams for w in t.split()) for t in texts])
        return out

    def prefix_scores(self, states, prefixes):
        """Unigram look-ahead (the state is not used): the log of the unigram probability mass of
        the vocabulary words that begin with the prefix (decoders' "smearing"), plus that of an
        out-of-vocabulary word as ``score_words`` gives it (``<unk>`` and ``unk_offset``); None
        without a word list."""
        if self.unigrams is None:
            return None
        if self._unigram_mass is None:  # sorted words, cumulative unigram probabilities, OOV mass
            words = sorted(self.unigrams)
            s, e = self._State(), self._State()
            self.model.NullContextWrite(s)
            probs = np.array([10.0 ** self.model.BaseScore(s, w, e) for w in words])
            unk = 10.0 ** self.model.BaseScore(s, "<unk>", e) * math.exp(self.unk_offset)
            self._unigram_mass = (words, np.concatenate([[0.0], np.cumsum(probs)]), unk)
        words, cum, unk = self._unigram_mass  # (decoders memoize the result per open word)
        spans = np.array([prefix_span(words, p) for p in prefixes], dtype=np.int64).reshape(-1, 2)
        return np.log(cum[spans[:, 1]] - cum[spans[:, 0]] + unk)
