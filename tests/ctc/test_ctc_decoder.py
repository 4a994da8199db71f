"""CTC beam search: equivalences (greedy, pyctcdecode, batch == alone), LM fusion, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from ctc_helpers import SENTENCES, ambiguous_emission, one_thread, tiny_arpa, tiny_lm

from lmplug.ctc.decoder import CTCHypothesis, build_ctc_decoder, greedy_decode
from lmplug.ctc.labels import build_labels
from lmplug.errors import LmplugError
from lmplug.scorers.kenlm import KenLMScorer
from lmplug.scorers.transformer import TransformerScorer
from lmplug.scorers.zero import ZeroScorer
from lmplug.ctc.simulate import char_labels, pad_batch, simulate_emissions, text_to_char_ids

LABELS = ["", " ", "a", "b", "c", "d", "e"]

single_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def random_logprobs(rng, T: int, V: int, scale: float) -> np.ndarray:
    x = rng.normal(size=(T, V)) * scale
    return x - np.log(np.exp(x).sum(1, keepdims=True))


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return tiny_lm(tmp_path_factory.mktemp("lm"), steps=80, seed=0)


@pytest.fixture(scope="module")
def kenlm_scorer(tmp_path_factory):
    pytest.importorskip("kenlm", reason="kenlm module not installed (pip install kenlm==0.3.0)")
    path = tiny_arpa(tmp_path_factory.mktemp("arpa"))
    if path is None:
        pytest.skip("lmplz not found next to sys.executable or on PATH (KenLM binaries; see tools/setup.sh)")
    return KenLMScorer(path)


# ---------------------------------------------------------------- equivalences without an LM


def test_beam_1_equals_greedy():
    rng = np.random.default_rng(0)
    dec = build_ctc_decoder(LABELS, beam_size=1, token_top_k=None)
    for _ in range(100):
        x = random_logprobs(rng, int(rng.integers(1, 30)), len(LABELS), float(rng.uniform(0.5, 4)))
        assert dec.decode(x[None])[0][0].text == greedy_decode(x[None], LABELS)[0]


def test_no_lm_equals_pyctcdecode_on_random_emissions():
    pyctcdecode = pytest.importorskip("pyctcdecode")
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    rng = np.random.default_rng(1)
    ref = pyctcdecode.build_ctcdecoder(LABELS)
    ours = build_ctc_decoder(LABELS, beam_size=8, token_top_k=None, prune_history=False)
    n, same = 300, 0
    for _ in range(n):
        x = random_logprobs(rng, int(rng.integers(3, 30)), len(LABELS), float(rng.uniform(1, 4)))
        same += ref.decode_beams(x, beam_width=8)[0][0] == ours.decode(x[None])[0][0].text
    assert same >= 0.99 * n, f"{same}/{n} agree"


def test_no_lm_equals_pyctcdecode_on_peaky_emissions():
    pyctcdecode = pytest.importorskip("pyctcdecode")
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    labels = char_labels(SENTENCES)
    em = simulate_emissions([text_to_char_ids(t, labels) for t in SENTENCES * 8], labels, seed=3, confusion=0.4)
    ref = pyctcdecode.build_ctcdecoder(labels)
    ours = build_ctc_decoder(labels, beam_size=16, prune_history=False)
    x, lens = pad_batch(em)
    got = [h[0].text for h in ours.decode(x, lens)]
    want = [ref.decode_beams(e, beam_width=16)[0][0] for e in em]
    assert sum(a == b for a, b in zip(got, want)) >= 0.99 * len(em)


def test_batch_equals_each_alone_and_numpy_equals_torch(kenlm_scorer):
    labels = char_labels(SENTENCES)
    em = simulate_emissions([text_to_char_ids(t, labels) for t in SENTENCES * 2], labels, seed=4, confusion=0.4)
    x, lens = pad_batch(em)
    dec = build_ctc_decoder(labels, {"kenlm": kenlm_scorer}, {"kenlm": 0.5, "words": 0.5}, beam_size=8, nbest=3)
    batch = dec.decode(x, lens)
    assert dec.decode(torch.from_numpy(x), torch.from_numpy(lens)) == batch
    for e, hyps in zip(em, batch):
        alone = dec.decode(e[None])[0]
        assert [h.text for h in alone] == [h.text for h in hyps]
        np.testing.assert_allclose([h.score for h in alone], [h.score for h in hyps], rtol=1e-9)


def test_device_path_equals_numpy_path():
    """The tensor path (what CUDA input takes) gives the same candidates as the numpy path."""
    rng = np.random.default_rng(5)
    dec = build_ctc_decoder(LABELS, beam_size=4)
    x = np.stack([random_logprobs(rng, 20, len(LABELS), 3.0) for _ in range(3)]).astype(np.float32)
    lens = np.array([20, 7, 13])
    a = dec._steps(x, lens)
    b = dec._steps(torch.from_numpy(x), lens)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], err_msg=k)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_input_decodes_like_cpu():
    rng = np.random.default_rng(6)
    dec = build_ctc_decoder(LABELS, beam_size=4)
    x = torch.from_numpy(np.stack([random_logprobs(rng, 25, len(LABELS), 3.0) for _ in range(4)]).astype(np.float32))
    assert dec.decode(x.cuda()) == dec.decode(x)


def test_logits_flag_equals_log_softmax():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(2, 15, len(LABELS))) * 3 + 5.0
    dec = build_ctc_decoder(LABELS, beam_size=4, nbest=2)
    lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert [[h.text for h in n] for n in dec.decode(z, logits=True)] == [[h.text for h in n] for n in dec.decode(lp)]


def test_zero_scorer_changes_nothing():
    rng = np.random.default_rng(8)
    x = np.stack([random_logprobs(rng, 20, len(LABELS), 2.0) for _ in range(4)])
    plain = build_ctc_decoder(LABELS, beam_size=6, nbest=4).decode(x)
    zero = build_ctc_decoder(LABELS, {"z": ZeroScorer()}, {"z": 1.0}, beam_size=6, nbest=4).decode(x)
    assert [[h.text for h in n] for n in plain] == [[h.text for h in n] for n in zero]  # the n-best lists too


def test_emissions_of_any_float_dtype_and_layout(tmp_path):
    """float16/64, bfloat16 tensors and reversed or transposed numpy views decode like float32."""
    rng = np.random.default_rng(9)
    x = np.stack([random_logprobs(rng, 20, len(LABELS), 2.0) for _ in range(3)]).astype(np.float32)
    dec = build_ctc_decoder(LABELS, beam_size=4)
    want = [h[0].text for h in dec.decode(x)]
    rev = np.ascontiguousarray(x[::-1])[::-1]  # a view with a negative stride
    fortran = np.asfortranarray(x)
    for e in (x.astype(np.float64), torch.from_numpy(x).double(), rev, fortran):
        assert [h[0].text for h in dec.decode(e)] == want
    bf16 = torch.from_numpy(x).bfloat16()  # rounded: log-probs off by up to ~1e-2, within the check's tolerance
    assert len(dec.decode(bf16)) == 3
    assert greedy_decode(rev, LABELS) == greedy_decode(x, LABELS)
    for bad in (0, -1, 2.5):
        with pytest.raises(LmplugError, match="CTCDecoder.token_top_k: expected an integer >= 1"):
            build_ctc_decoder(LABELS, token_top_k=bad)


# ---------------------------------------------------------------- fusion


def test_kenlm_flips_the_answer_only_with_weight(kenlm_scorer):
    labels = char_labels(SENTENCES, delimiter="|")
    x = ambiguous_emission("the cat sat on the mat", labels, frame_of=20, wrong="o")  # "mat" -> "mot"
    for w, want in ((0.0, "the cat sat on the mot"), (1.0, "the cat sat on the mat")):
        dec = build_ctc_decoder(labels, {"kenlm": kenlm_scorer}, {"kenlm": w}, beam_size=8)
        assert dec.decode(x[None])[0][0].text == want


def test_transformer_word_mode_flips_the_answer_only_with_weight(lm):
    labels = char_labels(SENTENCES, delimiter=" ")
    x = ambiguous_emission("the dog ate the bone", labels, frame_of=6, wrong="t")  # "dog" -> "dot"
    sc = TransformerScorer(lm)
    for w, want in ((0.0, "the dot ate the bone"), (1.0, "the dog ate the bone")):
        dec = build_ctc_decoder(labels, {"lm": sc}, {"lm": w}, beam_size=8)
        assert dec.decode(x[None])[0][0].text == want


def test_transformer_token_mode_flips_and_batches(lm):
    tok = lm.tokenizer
    labels = ["<blank>"] + tok.pieces()
    ids = [[i + 1 for i in tok.encode(t)] for t in SENTENCES]
    em = simulate_emissions(ids, labels, seed=0, confusion=0.5)
    x, lens = pad_batch(em)
    sc = TransformerScorer(lm)
    plain = build_ctc_decoder(labels, {"lm": sc}, {"lm": 0.0}, beam_size=8, mode="token").decode(x, lens)
    dec = build_ctc_decoder(labels, {"lm": sc}, {"lm": 1.0}, beam_size=8, mode="token", nbest=2)
    fused = dec.decode(x, lens)
    correct_plain = sum(h[0].text == t for h, t in zip(plain, SENTENCES))
    correct_fused = sum(h[0].text == t for h, t in zip(fused, SENTENCES))
    assert correct_fused > correct_plain and correct_fused >= 4
    for e, hyps in zip(em, fused):  # batch == alone, LM included
        assert [h.text for h in dec.decode(e[None])[0]] == [h.text for h in hyps]


def test_hypothesis_fields_are_consistent(kenlm_scorer):
    labels = char_labels(SENTENCES)
    em = simulate_emissions([text_to_char_ids(t, labels) for t in SENTENCES], labels, seed=9)
    x, lens = pad_batch(em)
    w = {"kenlm": 0.7, "words": 0.3}
    dec = build_ctc_decoder(labels, {"kenlm": kenlm_scorer}, w, beam_size=8, nbest=4)
    for hyps, T in zip(dec.decode(x, lens), lens):
        assert isinstance(hyps[0], CTCHypothesis)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            s = h.scores
            assert h.score == pytest.approx(s["ctc"] + 0.7 * s["kenlm"] + 0.3 * s["words"])
            assert len(h.word_frames) == len(h.text.split()) == s["words"]
            assert all(0 <= a < b <= T for a, b in h.word_frames)
            assert [a for a, _ in h.word_frames] == sorted(a for a, _ in h.word_frames)
            assert dec.labels.spell(h.tokens) == h.text


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "emissions, lengths, match",
    [
        (np.zeros((5, 7)), None, r"expected emissions of shape \(batch, time, vocab\), found shape \(5, 7\)"),
        (np.zeros((1, 5, 6)), None, r"labels have 7 entries; expected the last dim to be 7"),
        (np.zeros((1, 5, 7), dtype=np.int64), None, "expected floating-point emissions"),
        (np.full((1, 5, 7), np.nan), None, "expected finite emissions, found NaN or inf in utterance 0 of the batch at frame 0"),
        (np.full((2, 5, 7), -np.log(7)), [5, 0], r"expected every length in \[1, 5\].*found 0 for utterance 1"),
        (np.zeros((1, 5, 7)), None, "expected log-probabilities"),
        (np.full((2, 5, 7), -np.log(7)) + (np.arange(5) == 2)[None, :, None] * np.array([[0.0], [1.0]])[..., None],
         None, r"off by up to 1 \(utterance 1 of the batch, frame 2\)"),
        (np.full((1, 5, 7), 1 / 7), None, "look like probabilities"),
        ("abc", None, "expected emissions as a numpy array or torch tensor"),
    ],
)
def test_bad_emissions_say_expected_and_found(emissions, lengths, match):
    dec = build_ctc_decoder(LABELS, beam_size=2)
    with pytest.raises(LmplugError, match=match):
        dec.decode(emissions, lengths)


def test_inf_in_a_later_frame_is_caught():
    x = np.full((1, 5, 7), -np.log(7))
    x[0, 3, 2] = np.inf
    with pytest.raises(LmplugError, match="frame 3"):
        build_ctc_decoder(LABELS).decode(x)


def test_bad_labels_and_weights(lm):
    with pytest.raises(LmplugError, match="expected exactly one CTC blank"):
        build_ctc_decoder(["a", "b", " "])
    with pytest.raises(LmplugError, match="expected a word delimiter"):
        build_ctc_decoder(["", "a", "b"])
    with pytest.raises(LmplugError, match="duplicates"):
        build_ctc_decoder(["", " ", "a", "a"])
    with pytest.raises(LmplugError, match="expected labels as a list of strings, found int"):
        build_ctc_decoder(7)
    built = build_labels(LABELS)  # an already-built label set is taken as it is
    assert build_ctc_decoder(built).labels is built
    with pytest.raises(LmplugError, match="expected blank_id 0"):
        build_labels(built, blank_id=2)
    sc = TransformerScorer(lm)
    with pytest.raises(LmplugError, match=r"missing \['lm'\]"):
        build_ctc_decoder(LABELS, {"lm": sc}, {"words": 1.0})
    with pytest.raises(LmplugError, match=r"unknown \['lmm'\]"):
        build_ctc_decoder(LABELS, {"lm": sc}, {"lm": 1.0, "lmm": 1.0})
    with pytest.raises(LmplugError, match="token mode needs sentencepiece"):
        build_ctc_decoder(LABELS, {"lm": sc}, {"lm": 1.0}, mode="token")
    with pytest.raises(LmplugError, match="expected every acoustic label to be a piece"):
        build_ctc_decoder(["<blank>", "▁zzq", "▁xxv"], {"lm": sc}, {"lm": 1.0}, mode="token")


@pytest.mark.parametrize("mode", ["word", "token"])
def test_releasing_and_repacking_lm_states_changes_nothing(lm, monkeypatch, mode):
    from lmplug.ctc.search import Search

    tok = lm.tokenizer
    if mode == "token":
        labels = ["<blank>"] + tok.pieces()
        ids = [[i + 1 for i in tok.encode(t)] for t in SENTENCES]
    else:
        labels = char_labels(SENTENCES)
        ids = [text_to_char_ids(t, labels) for t in SENTENCES]
    x, lens = pad_batch(simulate_emissions(ids, labels, seed=13, confusion=0.4))
    vocab = sorted({w for s in SENTENCES for w in s.split()})
    dec = build_ctc_decoder(labels, {"lm": TransformerScorer(lm, vocabulary=vocab)}, {"lm": 0.8, "words": 0.5},
                            beam_size=8, nbest=4, mode=mode)
    monkeypatch.setattr(Search, "RELEASE_EVERY", 10**9)
    kept = dec.decode(x, lens)
    monkeypatch.setattr(Search, "RELEASE_EVERY", 1)
    released = dec.decode(x, lens)
    for a, b in zip(kept, released):
        assert [h.text for h in a] == [h.text for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=1e-4)


def test_word_bounds_spare_forwards_and_change_no_hypothesis(lm, kenlm_scorer, monkeypatch):
    """Word-scoring only the words whose bound can still rank (Search._score_ranking) keeps the
    beams of scoring every pending word: same n-best lists and scores, fewer LM rows."""
    labels = char_labels(SENTENCES)
    ids = [text_to_char_ids(t, labels) for t in SENTENCES * 2]
    x, lens = pad_batch(simulate_emissions(ids, labels, seed=17, confusion=0.6))
    vocab = sorted({w for s in SENTENCES for w in s.split()})

    def run(scorers, weights, **kw):
        sc = TransformerScorer(lm, vocabulary=vocab, unk_offset=-2.0)
        dec = build_ctc_decoder(labels, {**scorers, "lm": sc}, weights, beam_size=4, nbest=3, **kw)
        return dec.decode(x, lens), sc.work["rows"]

    for scorers, weights, kw in (({}, {"lm": 0.8, "words": 0.5}, {}),
                                 ({}, {"lm": 0.8, "words": 0.5}, {"lookahead": ["lm"], "history_words": 1}),
                                 ({"kenlm": kenlm_scorer}, {"kenlm": 0.3, "lm": 0.6, "words": 1.0}, {})):
        bounded, rows = run(scorers, weights, **kw)
        with monkeypatch.context() as m:
            m.setattr(TransformerScorer, "word_bounds", lambda self, states, words: None)
            every, rows_every = run(scorers, weights, **kw)
        assert rows < rows_every, kw
        for a, b in zip(bounded, every):
            assert [h.text for h in a] == [h.text for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=1e-4)


def test_history_words_recombines_only_unbounded_scorers(lm, kenlm_scorer):
    labels = char_labels(SENTENCES)
    ids = [text_to_char_ids(t, labels) for t in SENTENCES * 2]
    x, lens = pad_batch(simulate_emissions(ids, labels, seed=15, confusion=0.5))
    vocab = sorted({w for s in SENTENCES for w in s.split()})
    both = {"kenlm": kenlm_scorer, "lm": TransformerScorer(lm, vocabulary=vocab)}
    w = {"kenlm": 0.3, "lm": 0.6, "words": 1.0}

    def run(scorers, weights, h):
        return build_ctc_decoder(labels, scorers, weights, beam_size=6, nbest=3, history_words=h).decode(x, lens)

    # n-gram scorers recombine by their own state already: the setting changes nothing
    kw = {"kenlm": 0.5, "words": 0.5}
    assert run({"kenlm": kenlm_scorer}, kw, 1) == run({"kenlm": kenlm_scorer}, kw, None)
    # a context longer than any sentence is exact: distinct prefixes never share it
    exact, none = run(both, w, 100), run(both, w, None)
    for a, b in zip(exact, none):
        assert [h.text for h in a] == [h.text for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=1e-4)
    # one word of context: beams differing only in older words keep only the best one (fewer
    # n-best entries survive); the hypotheses stay consistent (total = CTC + weighted scores)
    one = run(both, w, 1)
    assert sum(map(len, one)) < sum(map(len, none))
    for hyps in one:
        assert hyps and [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            assert h.score == pytest.approx(h.scores["ctc"] + sum(w[k] * h.scores[k] for k in w), abs=1e-6)
    with pytest.raises(LmplugError, match="expected history_words >= 1"):
        build_ctc_decoder(labels, both, w, history_words=0)


def test_lookahead_guides_pruning_only(lm, kenlm_scorer):
    labels = char_labels(SENTENCES)
    ids = [text_to_char_ids(t, labels) for t in SENTENCES]
    x, lens = pad_batch(simulate_emissions(ids, labels, seed=16, confusion=0.5))
    vocab = sorted({w for s in SENTENCES for w in s.split()})
    both = {"kenlm": kenlm_scorer, "lm": TransformerScorer(lm, vocabulary=vocab)}
    w = {"kenlm": 0.3, "lm": 0.6, "words": 1.0}

    def run(beam, la, nbest=1):
        return build_ctc_decoder(labels, both, w, beam_size=beam, nbest=nbest, beam_prune_logp=-1e9,
                                 lookahead=la).decode(x, lens)

    # a wide beam (and no approximate recombination, whose choice among beams the look-ahead may
    # change): the same best hypotheses and scores either way
    wide = run(200, ())
    for la in (["lm"], ["kenlm"], ["lm", "kenlm"]):
        for a, b in zip(run(200, la), wide):
            assert [h.text for h in a] == [h.text for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-6, atol=1e-6)
    # a narrow beam: totals are still the plain weighted sums (the look-ahead is never counted)
    for hyps in run(3, ["lm", "kenlm"], nbest=3):
        for h in hyps:
            assert h.score == pytest.approx(h.scores["ctc"] + sum(w[k] * h.scores[k] for k in w), abs=1e-6)
    with pytest.raises(LmplugError, match="expected the name of a word-mode scorer"):
        build_ctc_decoder(labels, both, w, lookahead=["kenlm5"])
    with pytest.raises(LmplugError, match="expected a scorer with prefix_scores, found 'z'"):
        build_ctc_decoder(labels, {"z": ZeroScorer()}, {"z": 1.0}, lookahead=["z"])


def test_lexicon_mode_spells_only_known_words(kenlm_scorer):
    labels = char_labels(SENTENCES)
    em = simulate_emissions([text_to_char_ids(t, labels) for t in SENTENCES * 2], labels, seed=14, confusion=0.5)
    x, lens = pad_batch(em)
    known = kenlm_scorer.known_words()
    w = {"kenlm": 0.5, "words": 0.5}
    open_vocab = build_ctc_decoder(labels, {"kenlm": kenlm_scorer}, w, beam_size=8).decode(x, lens)
    lex = build_ctc_decoder(labels, {"kenlm": kenlm_scorer}, w, beam_size=8, lexicon=True).decode(x, lens)
    def oov(hyps):
        return sum(len(set(h[0].text.split()) - known) for h in hyps)

    assert oov(lex) <= oov(open_vocab)
    for h in lex:  # an unknown word only when no spelling in the lexicon survived the beam
        assert set(h[0].text.split()) <= known or h[0].score < -1e3
    assert sum(h[0].text == t for h, t in zip(lex, SENTENCES * 2)) >= sum(
        h[0].text == t for h, t in zip(open_vocab, SENTENCES * 2))
    with pytest.raises(LmplugError, match="lexicon=True needs"):
        build_ctc_decoder(labels, {"z": ZeroScorer()}, {"z": 1.0}, lexicon=True)
    # the lexicon does not depend on the LM's weight (tune-ctc builds its decoder at weight 0)
    off = build_ctc_decoder(labels, {"kenlm": kenlm_scorer}, {"kenlm": 0.0, "words": 0.5}, beam_size=8, lexicon=True)
    for h in off.decode(x, lens):
        assert set(h[0].text.split()) <= known or h[0].score < -1e3
