"""Batched sentence scoring and perplexity, for any LM that yields ``SentenceScore``s.

Every sentence is scored as ``log P(w_1 .. w_n </s> | <s>)`` in natural log. Perplexity per
word divides by words + end-of-sentence, the footing on which a Transformer LM and an n-gram
compare (``perplexity``).

The long-sentence rule (the one place it is written): sentences longer than the model's context
are scored with a sliding window: each window re-reads up to half a context of preceding tokens
and scores only its new tokens, so every token is predicted with at least ``block_size // 2``
tokens of history (or all of it); nothing is truncated. Every whole-sentence score goes through
:func:`score_sentences`: ``lmplug ppl``, ``TransformerScorer.score_sentences`` (CTC n-best
rescoring) and the MT ``lm`` feature. Only incremental scoring inside a beam search
(``TransformerScorer.score_words``) differs: its KV cache slides token by token, keeping as much
history as the context holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from lmplug.checkpoint import LanguageModel
from lmplug.errors import LmplugError


@dataclass(frozen=True)
class SentenceScore:
    logprob: float  # natural-log probability of the words and </s>
    n_tokens: int  # predicted units (model tokens incl. </s>; for n-grams: words + </s>)
    n_words: int  # whitespace-separated words
    n_oov: int = 0  # words the LM has no entry for (n-grams only)


def perplexity(scores: Sequence[SentenceScore]) -> dict:
    """Corpus totals and perplexities: per token and per word (words + </s> per sentence)."""
    if not scores:
        raise LmplugError("no sentences scored: expected at least one")
    lp = sum(s.logprob for s in scores)
    n_tok = sum(s.n_tokens for s in scores)
    n_words = sum(s.n_words for s in scores)
    n_sent = len(scores)
    return {
        "logprob": lp,
        "sentences": n_sent,
        "words": n_words,
        "tokens": n_tok,
        "oov": sum(s.n_oov for s in scores),
        "ppl_token": math.exp(-lp / n_tok),
        "ppl_word": math.exp(-lp / (n_words + n_sent)),
    }


def _token_logprobs(lm: LanguageModel, seqs: list[list[int]]) -> list[torch.Tensor]:
    """Per-target log-probs for right-padded full sequences (input = seq[:-1], target = seq[1:])."""
    device = lm.device
    T = max(len(s) for s in seqs) - 1
    x = torch.zeros(len(seqs), T, dtype=torch.long)
    y = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s) - 1] = torch.tensor(s[:-1])
        y[i, : len(s) - 1] = torch.tensor(s[1:])
    logits, _ = lm.model(x.to(device))  # (B, T, V); causal, so right padding never leaks left
    lp = torch.log_softmax(logits, dim=-1).gather(-1, y.to(device).unsqueeze(-1)).squeeze(-1).cpu()
    return [lp[i, : len(s) - 1] for i, s in enumerate(seqs)]


@torch.inference_mode()
def _score_long(lm: LanguageModel, seq: list[int]) -> float:
    """Sliding-window log-prob of a sequence longer than the context (see module docstring)."""
    block = lm.config.block_size
    stride = max(1, block // 2)
    total, scored = 0.0, 1  # position 0 (<s>) is context only
    while scored < len(seq):
        end = min(len(seq), scored + stride if scored > 1 else block + 1)
        start = max(0, end - block - 1)
        lp = _token_logprobs(lm, [seq[start:end]])[0]
        total += float(lp[scored - start - 1 :].sum())
        scored = end
    return total


@torch.inference_mode()
def score_sentences(
    lm: LanguageModel, sentences: Iterable[str], batch_tokens: int = 16384, progress: bool = False
) -> list[SentenceScore]:
    """Score sentences in length-sorted batches of at most ``batch_tokens`` (padded) tokens.

    Returns one ``SentenceScore`` per input sentence, in input order.
    """
    from tqdm import tqdm

    sentences = list(sentences)  # any iterable (a generator, an open file) is read once
    tok = lm.tokenizer
    encoded = tok.encode_batch(sentences)
    seqs = [[tok.bos_id, *ids, tok.eos_id] for ids in encoded]
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out: list[float] = [0.0] * len(seqs)
    block = lm.config.block_size
    long = [i for i in order if len(seqs[i]) - 1 > block]
    short = [i for i in order if len(seqs[i]) - 1 <= block]
    bar = tqdm(total=len(seqs), disable=not progress, desc="score", unit="sent")
    for i in long:
        out[i] = _score_long(lm, seqs[i])
        bar.update(1)
    pos = 0
    while pos < len(short):
        width = len(seqs[short[pos]]) - 1
        n = max(1, batch_tokens // max(1, width))
        batch = short[pos : pos + n]
        for i, lp in zip(batch, _token_logprobs(lm, [seqs[i] for i in batch])):
            out[i] = float(lp.sum())
        pos += n
        bar.update(len(batch))
    bar.close()
    return [SentenceScore(out[i], len(seqs[i]) - 1, len(s.split())) for i, s in enumerate(sentences)]
