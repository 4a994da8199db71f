"""``search="torch"`` (lmplug.ctc.torch_search) is the numpy search as tensor operations: same n-best lists."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ctc_helpers import SENTENCES, one_thread, tiny_lm

from lmplug.ctc.decoder import build_ctc_decoder, greedy_decode, search_variant
from lmplug.errors import LmplugError
from lmplug.scorers.transformer import TransformerScorer
from lmplug.scorers.zero import ZeroScorer
from lmplug.ctc.simulate import char_labels, pad_batch, simulate_emissions, text_to_char_ids

single_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return tiny_lm(tmp_path_factory.mktemp("lm"), steps=80, seed=0)


def assert_same(a, b, rtol: float = 1e-9, atol: float = 1e-9) -> None:
    """Same n-best lists: texts, tokens, word frames exactly; scores within tolerance."""
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert [(h.text, h.tokens, h.word_frames) for h in x] == [(h.text, h.tokens, h.word_frames) for h in y], i
        for h, g in zip(x, y):
            assert h.scores.keys() == g.scores.keys()
            np.testing.assert_allclose([h.score, *h.scores.values()], [g.score, *g.scores.values()], rtol=rtol, atol=atol)


def spm_setup(lm, n: int = 1, seed: int = 0, confusion: float = 0.5):
    """Sentencepiece labels (blank + the LM's pieces) and simulated emissions of SENTENCES."""
    tok = lm.tokenizer
    labels = ["<blank>"] + tok.pieces()
    ids = [[i + 1 for i in tok.encode(t)] for t in SENTENCES * n]
    return labels, simulate_emissions(ids, labels, seed=seed, confusion=confusion)


@pytest.mark.parametrize("nbest,prune_history", [(1, None), (4, None), (4, True), (1, False)])
@pytest.mark.parametrize("delimiter", [" ", "|"])
def test_equals_numpy_search_without_scorers(nbest, prune_history, delimiter):
    labels = char_labels(SENTENCES, delimiter=delimiter)
    em = simulate_emissions([text_to_char_ids(t, labels) for t in SENTENCES * 4], labels, seed=3, confusion=0.6)
    x, lens = pad_batch(em)  # lengths differ: utterances finish at different steps
    kw = dict(beam_size=8, nbest=nbest, prune_history=prune_history)
    want = build_ctc_decoder(labels, {}, {"words": 0.4}, **kw).decode(x, lens)
    got = build_ctc_decoder(labels, {}, {"words": 0.4}, search="torch", **kw).decode(x, lens)
    assert_same(want, got)
    assert sum(len(h) for h in got) >= len(got) * (nbest if prune_history is not True else 1)


def test_equals_numpy_search_on_random_emissions_and_beam_1_is_greedy():
    rng = np.random.default_rng(0)
    labels = ["", " ", "a", "b", "c", "d", "e"]
    z = rng.normal(size=(6, 25, len(labels))) * rng.uniform(0.5, 4, size=(6, 1, 1))
    x = (z - np.log(np.exp(z).sum(-1, keepdims=True))).astype(np.float32)
    lens = rng.integers(1, 26, size=6)
    for beam in (1, 5):
        kw = dict(beam_size=beam, nbest=beam, token_top_k=None, token_min_logp=-8.0)
        got = build_ctc_decoder(labels, **kw, search="torch").decode(x, lens)
        assert_same(build_ctc_decoder(labels, **kw).decode(x, lens), got)
    assert [h[0].text for h in got] != greedy_decode(x, labels, lens)  # beam 5 finds other answers
    greedy = build_ctc_decoder(labels, beam_size=1, token_top_k=None, search="torch").decode(x, lens)
    assert [h[0].text for h in greedy] == greedy_decode(x, labels, lens)


def test_equals_numpy_search_with_spm_labels_and_no_scorer(lm):
    labels, em = spm_setup(lm, n=2, seed=1)
    x, lens = pad_batch(em)
    for nbest in (1, 3):
        kw = dict(beam_size=8, nbest=nbest)
        assert_same(build_ctc_decoder(labels, **kw).decode(x, lens),
                    build_ctc_decoder(labels, **kw, search="torch").decode(x, lens))


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_equals_numpy_search_with_transformer_in_token_mode(lm, weight):
    labels, em = spm_setup(lm, n=2)
    x, lens = pad_batch(em)
    sc = TransformerScorer(lm)
    kw = dict(beam_size=8, nbest=4, mode="token")
    w = {"lm": weight, "words": 0.3}
    want = build_ctc_decoder(labels, {"lm": sc}, w, **kw).decode(x, lens)
    sc = TransformerScorer(lm)  # its work counters: this search's forwards only
    dec = build_ctc_decoder(labels, {"lm": sc}, w, search="torch", **kw)
    got = dec.decode(x, lens)
    assert_same(want, got, rtol=1e-5, atol=1e-4)  # float32 LM forwards of differently shaped batches
    work = sc.work
    # on the host, eager: the LM runs over the rows with a new token only (on a device: over all B*K)
    assert 0 < work["forwards"] and 0 < work["tokens"] == work["padded_tokens"] == work["rows"] < 8 * len(em) * work["forwards"]
    correct = sum(h[0].text == t for h, t in zip(got, SENTENCES * 2))
    assert correct >= (6 if weight else 0)
    for e, hyps in zip(em[:3], got):  # each alone: the same
        assert [h.text for h in dec.decode(e[None])[0]] == [h.text for h in hyps]


def test_compiled_gives_the_same_n_best(lm):
    """``compile=True`` (torch.compile of the frame step and the LM's forward; ~1 minute to
    compile on 2 CPU cores), token mode with the Transformer."""
    labels, em = spm_setup(lm, n=2)
    x, lens = pad_batch(em)
    sc = TransformerScorer(lm)
    kw = dict(beam_size=8, nbest=3, mode="token")
    w = {"lm": 1.0, "words": 0.3}
    assert_same(build_ctc_decoder(labels, {"lm": sc}, w, **kw).decode(x, lens),
                build_ctc_decoder(labels, {"lm": sc}, w, search="torch", compile=True, **kw).decode(x, lens),
                rtol=1e-5, atol=1e-4)
    with pytest.raises(LmplugError, match="compile=True: expected search='torch'"):
        build_ctc_decoder(labels, compile=True)
    with pytest.raises(LmplugError, match="expected compile True, False or a torch.compile mode"):
        build_ctc_decoder(labels, search="torch", compile="fastest")


def test_search_variants_name_decoder_arguments():
    assert search_variant("numpy") == {"search": "numpy", "compile": False}
    assert search_variant("torch+compile") == {"search": "torch", "compile": True}
    assert search_variant("torch+reduce-overhead") == {"search": "torch", "compile": "reduce-overhead"}
    for bad in ("gpu", "numpy+compile", "torch+fast", "torch+"):
        with pytest.raises(LmplugError, match="expected a search variant"):
            search_variant(bad)


@pytest.mark.parametrize("all_rows", [False, True])
def test_context_slides_past_block_size_like_the_scorer(lm, all_rows, monkeypatch):
    """Utterances longer than the LM's block_size (32 pieces): the same sliding window; on the host
    the LM runs over the rows with a new token only, or (``all_rows``) as on a device, over all."""
    if all_rows:
        from lmplug.ctc.torch_search import TorchSearch

        monkeypatch.setattr(TorchSearch, "_lm_forward_rows", TorchSearch._lm_forward)
    tok = lm.tokenizer
    labels = ["<blank>"] + tok.pieces()
    long = [" ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(2)]
    ids = [[i + 1 for i in tok.encode(t)] for t in long]
    assert min(len(i) for i in ids) > lm.config.block_size
    x, lens = pad_batch(simulate_emissions(ids, labels, seed=2, confusion=0.3))
    sc = TransformerScorer(lm)
    kw = dict(beam_size=4, nbest=2, mode="token")
    assert_same(build_ctc_decoder(labels, {"lm": sc}, {"lm": 0.8}, **kw).decode(x, lens),
                build_ctc_decoder(labels, {"lm": sc}, {"lm": 0.8}, search="torch", **kw).decode(x, lens),
                rtol=1e-5, atol=1e-4)


def test_refuses_what_it_does_not_run(lm):
    labels = char_labels(SENTENCES)
    with pytest.raises(LmplugError, match="expected search in"):
        build_ctc_decoder(labels, search="gpu")
    with pytest.raises(LmplugError, match=r"word-level scorers \['lm'\].*use search='numpy'"):
        build_ctc_decoder(labels, {"lm": TransformerScorer(lm)}, {"lm": 1.0}, search="torch")  # word mode
    spm, _ = spm_setup(lm)
    with pytest.raises(LmplugError, match="is a ZeroScorer"):
        build_ctc_decoder(spm, {"z": ZeroScorer()}, {"z": 1.0}, mode="token", search="torch")
    with pytest.raises(LmplugError, match="2 token-level scorers"):
        sc = TransformerScorer(lm)
        build_ctc_decoder(spm, {"a": sc, "b": sc}, {"a": 1.0, "b": 1.0}, mode="token", search="torch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_equals_numpy_search_on_cpu(lm, tmp_path):
    from lmplug.checkpoint import LanguageModel

    labels, em = spm_setup(lm, n=4)
    x, lens = pad_batch(em)
    w = {"lm": 1.0, "words": 0.3}
    kw = dict(beam_size=8, nbest=4, mode="token")
    want = build_ctc_decoder(labels, {"lm": TransformerScorer(lm)}, w, **kw).decode(x, lens)
    gpu_lm = LanguageModel(model=copy.deepcopy(lm.model).cuda(), tokenizer=lm.tokenizer, config=lm.config, path=lm.path)
    got = build_ctc_decoder(labels, {"lm": TransformerScorer(gpu_lm)}, w, search="torch", **kw).decode(
        torch.from_numpy(x).cuda(), lens)
    assert_same(want, got, rtol=1e-4, atol=1e-3)
    # utterances past block_size: the LM cache grows several times, its bound read without waiting
    long = [[i + 1 for i in lm.tokenizer.encode(" ".join(SENTENCES[i:] + SENTENCES[:i]))] for i in range(3)]
    x, lens = pad_batch(simulate_emissions(long, labels, seed=2, confusion=0.3))
    want = build_ctc_decoder(labels, {"lm": TransformerScorer(lm)}, w, **kw).decode(x, lens)
    got = build_ctc_decoder(labels, {"lm": TransformerScorer(gpu_lm)}, w, search="torch", **kw).decode(
        torch.from_numpy(x).cuda(), lens)
    assert_same(want, got, rtol=1e-4, atol=1e-3)
