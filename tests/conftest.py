"""Shared fixtures: a tiny tokenizer and a tiny randomly initialised LM, built in seconds."""

from __future__ import annotations

import pytest
import torch

from lmplug.model import LMConfig, TransformerLM
from lmplug.tokenizer import train_tokenizer

SENTENCES = [
    "in the beginning god created the heaven and the earth",
    "and the earth was without form and void",
    "and darkness was upon the face of the deep",
    "and the spirit of god moved upon the face of the waters",
    "and god said let there be light and there was light",
    "and god saw the light that it was good",
    "and god divided the light from the darkness",
    "and god called the light day and the darkness he called night",
    "the lord is my shepherd i shall not want",
    "he maketh me to lie down in green pastures",
    "he leadeth me beside the still waters",
    "the quick brown fox jumps over the lazy dog",
]


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return SENTENCES * 20


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("tok") / "tok.model"
    return train_tokenizer(corpus, path, vocab_size=80)


@pytest.fixture(scope="session")
def tiny_model(tokenizer) -> TransformerLM:
    torch.manual_seed(0)
    cfg = LMConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.0)
    return TransformerLM(cfg).eval()
