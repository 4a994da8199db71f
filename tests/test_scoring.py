import math

import pytest
import torch

from lmplug.checkpoint import LanguageModel
from lmplug.errors import LmplugError
from lmplug.scoring import SentenceScore, perplexity, score_sentences


@pytest.fixture()
def lm(tiny_model, tokenizer):
    return LanguageModel(tiny_model, tokenizer, tiny_model.config)


@torch.no_grad()
def reference_logprob(lm: LanguageModel, text: str) -> float:
    """One sentence, one unbatched forward, summed by hand."""
    tok = lm.tokenizer
    seq = [tok.bos_id, *tok.encode(text), tok.eos_id]
    logits, _ = lm.model(torch.tensor([seq[:-1]]))
    lp = torch.log_softmax(logits[0], -1)
    return float(sum(lp[i, t] for i, t in enumerate(seq[1:])))


def test_batched_equals_one_at_a_time(lm, corpus):
    fits = lambda s: len(lm.tokenizer.encode(s)) + 1 <= lm.config.block_size  # noqa: E731
    sents = [s for s in corpus[:12] if fits(s)] + ["god", "the waters"]
    assert len(sents) >= 8
    batched = score_sentences(lm, sents, batch_tokens=64)
    for s, sc in zip(sents, batched):
        assert sc.logprob == pytest.approx(reference_logprob(lm, s), abs=1e-4)
        assert sc.n_tokens == len(lm.tokenizer.encode(s)) + 1
        assert sc.n_words == len(s.split())
    assert score_sentences(lm, (s for s in sents), batch_tokens=64) == batched  # any iterable, read once


def test_long_sentence_uses_sliding_window(lm):
    block = lm.config.block_size
    text = " ".join(["and god saw the light that it was good"] * 12)
    n = len(lm.tokenizer.encode(text)) + 1
    assert n > 2 * block
    (sc,) = score_sentences(lm, [text])
    assert sc.n_tokens == n and math.isfinite(sc.logprob) and sc.logprob < 0
    # a sentence that fits is scored exactly as before (same path as the reference)
    short = "and god saw the light"
    assert score_sentences(lm, [short])[0].logprob == pytest.approx(reference_logprob(lm, short), abs=1e-4)


def test_sliding_window_equals_full_when_window_covers_everything(lm, tiny_model):
    """With a context as long as the sentence, the sliding path must agree with one forward."""
    from lmplug.scoring import _score_long

    tok = lm.tokenizer
    text = "and god saw the light that it was good and god divided the light"
    seq = [tok.bos_id, *tok.encode(text), tok.eos_id]
    assert len(seq) - 1 <= lm.config.block_size
    assert _score_long(lm, seq) == pytest.approx(reference_logprob(lm, text), abs=1e-4)


@pytest.mark.parametrize(
    "scores, ppl_word, ppl_token",
    [
        ([SentenceScore(-math.log(10) * 3, 3, 2)], 10.0, 10.0),
        ([SentenceScore(-2.0, 4, 1), SentenceScore(-2.0, 4, 1)], math.exp(4 / 4), math.exp(4 / 8)),
    ],
)
def test_perplexity_table(scores, ppl_word, ppl_token):
    res = perplexity(scores)
    assert res["ppl_word"] == pytest.approx(ppl_word)
    assert res["ppl_token"] == pytest.approx(ppl_token)


def test_perplexity_empty():
    with pytest.raises(LmplugError, match="at least one"):
        perplexity([])
