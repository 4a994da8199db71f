"""Shared fixtures: a tiny tokenizer and a tiny randomly initialised LM, built in seconds; a fake
Multi30k folder (the real one is never in the repository)."""

from __future__ import annotations

import random

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


def _write_fake_multi30k(root) -> None:
    """Multi30k's layout with its exact line counts (``root/task1/train.en`` ...): made-up
    sentences over a 600-word vocabulary, German and French a word-by-word cipher of the English
    (a translation a tiny model can learn)."""
    from lmplug.mt.multi30k import multi30k_files

    rng = random.Random(0)
    vocab = ["".join(rng.choice("abcdefghijklmnoprstuvwyz") for _ in range(rng.randint(2, 7))) for _ in range(600)]
    cipher = {lang: {w: w[::-1] + suffix for w in vocab} for lang, suffix in (("de", "en"), ("fr", "e"))}
    cache: dict[int, list[str]] = {}
    for rel, n in multi30k_files().items():
        lang = rel.rsplit(".", 1)[1]
        if n not in cache:
            cache[n] = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 10))) for _ in range(n)]
        en = cache[n]
        text = en if lang == "en" else [" ".join(cipher[lang][w] for w in s.split()) for s in en]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("".join(s + "\n" for s in text), encoding="utf-8")


@pytest.fixture(scope="session")
def fake_multi30k(tmp_path_factory):
    """A folder laid out as Multi30k (task1/, task2/) with its line counts, for ``--from``."""
    root = tmp_path_factory.mktemp("fake_multi30k")
    _write_fake_multi30k(root)
    return root
