"""The zero scorer: decoding with it equals decoding without an LM."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lmplug.scorers.base import Scorer


class ZeroScorer(Scorer):
    """Scores every word and token 0 (log 1): decoding with it equals decoding without an LM."""

    name = "zero"
    order = 1  # no history: every state is the same
    cheap_words = True

    def __init__(self, vocab_size: int = 1) -> None:
        self.vocab_size = vocab_size

    def init_state(self, batch_size: int) -> list[Any]:
        return [None] * batch_size

    def score_words(self, states, words):
        return np.zeros(len(words)), [None] * len(words)

    def final_score(self, states):
        return np.zeros(len(states))

    def batch_score(self, states):
        return torch.zeros(len(states), self.vocab_size)

    def advance(self, states, tokens):
        return [None] * len(states)
