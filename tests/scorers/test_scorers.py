"""Scorers: KV-cached == recomputed, batched == one at a time, KenLM == kenlm's own sentence score."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ctc_helpers import SENTENCES, one_thread, tiny_arpa, tiny_lm

from lmplug.errors import LmplugError
from lmplug.ngram import arpa_unigrams
from lmplug.scorers.base import Scorer
from lmplug.scorers.kenlm import KenLMScorer
from lmplug.scorers.transformer import TransformerScorer
from lmplug.scorers.zero import ZeroScorer

single_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return tiny_lm(tmp_path_factory.mktemp("lm"), steps=0, seed=1)


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    path = tiny_arpa(tmp_path_factory.mktemp("arpa"))
    if path is None:
        pytest.skip("lmplz not found next to sys.executable or on PATH (KenLM binaries; see tools/setup.sh)")
    pytest.importorskip("kenlm", reason="kenlm module not installed (pip install kenlm==0.3.0)")
    return path


def test_kv_cached_word_scores_equal_full_forward(lm):
    sc = TransformerScorer(lm)
    texts = SENTENCES + ["cat mat dog fish the a", "zebra"]
    full = sc.score_sentences(texts)  # plain causal forward over <s> ... </s>
    cached = Scorer.score_sentences(sc, texts)  # word by word through the KV cache, batched
    np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-4)


def test_word_end_scores_are_complete_word_probabilities(lm):
    """word_end: log P(pieces | h) + log P(word ends | h.w) - log P(word ends | h), the end mass
    read off a full forward; the sentence total is the plain one."""
    words = "the cat sat on the mat".split()
    tok = lm.tokenizer
    ids = [lm.config.bos_id] + tok.encode(" ".join(words))
    with torch.inference_mode():
        ref = torch.log_softmax(lm.model(torch.tensor([ids]))[0][0], -1)  # (T, V)
    ends = torch.tensor([tok.id_to_piece(i).startswith("\u2581") for i in range(lm.config.vocab_size)])
    ends[lm.config.eos_id] = True
    totals = {}
    for word_end in (False, True):
        sc = TransformerScorer(lm, word_end=word_end)
        st, got = sc.init_state(1), []
        for w in words:
            x, st = sc.score_words(st, [w])
            got.append(float(x[0]))
        totals[word_end] = sum(got) + float(sc.final_score(st)[0])
        if word_end:
            pos, expect, prev_end = 0, [], 0.0
            for w in words:
                n = len(sc.word_ids(w))
                lp = sum(float(ref[pos + j, ids[pos + j + 1]]) for j in range(n))
                pos += n
                end = float(torch.logsumexp(ref[pos][ends], 0))
                expect.append(lp + end - prev_end)
                prev_end = end
            np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-4)
    assert totals[True] == pytest.approx(totals[False], abs=1e-3)


def test_token_states_equal_full_forward(lm):
    sc = TransformerScorer(lm)
    ids = [lm.config.bos_id] + lm.tokenizer.encode(SENTENCES[2])
    with torch.inference_mode():
        ref = torch.log_softmax(lm.model(torch.tensor([ids]))[0][0], -1)  # (T, V)
    state = sc.init_state(1)[0]
    for j in range(1, len(ids)):
        torch.testing.assert_close(sc.batch_score([state])[0], ref[j - 1], rtol=1e-4, atol=1e-4)
        state = sc.advance([state], [[ids[j]]])[0]
    torch.testing.assert_close(sc.batch_score([state])[0], ref[-1], rtol=1e-4, atol=1e-4)


def test_batched_states_of_different_lengths_equal_one_at_a_time(lm):
    sc = TransformerScorer(lm)
    root = sc.init_state(1)[0]
    # states from different caches and lengths, scored together and alone
    a = sc.advance([root], [lm.tokenizer.encode("the cat sat")])[0]
    b = sc.advance([root, root], [lm.tokenizer.encode("a"), lm.tokenizer.encode("we sat on the mat and")])
    states = [a, b[0], b[1], root]
    words = ["mat", "dog", "ate", "fish"]
    together, new = sc.score_words(states, words)
    alone = np.array([sc.score_words([s], [w])[0][0] for s, w in zip(states, words)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(sc.final_score(new), [sc.final_score([s])[0] for s in new], rtol=1e-5, atol=1e-4)


def test_context_slides_past_block_size(lm):
    sc = TransformerScorer(lm)
    long = " ".join(SENTENCES * 4)  # far more than block_size=32 tokens
    assert len(lm.tokenizer.encode(long)) > lm.config.block_size
    s = sc.score_sentences([long])
    assert np.isfinite(s).all() and s[0] < 0


def test_score_past_block_size_does_not_depend_on_batch_mates(lm):
    sc = TransformerScorer(lm)
    root = sc.init_state(1)[0]
    ids = lm.tokenizer.encode(" ".join(SENTENCES))[: lm.config.block_size - 2]  # history near the window's end
    long_hist = sc.advance([root], [ids])[0]
    long_word = "thecatsatonthematandatethefish"  # many pieces: shrinks the room of the whole forward
    assert len(sc.word_ids(long_word)) > 4
    assert 1 < len(sc.word_ids("zebra")) < len(sc.word_ids(long_word))  # forwarded, with a different room
    alone = sc.score_words([long_hist], ["zebra"])[0]
    together = sc.score_words([long_hist, root], ["zebra", long_word])[0][:1]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


def test_kenlm_equals_kenlm_sentence_score(arpa):
    import kenlm

    sc = KenLMScorer(arpa)
    model = kenlm.Model(str(arpa))
    texts = SENTENCES[:3] + ["the mat sat on a cat"]
    ref = [model.score(t, bos=True, eos=True) * math.log(10) for t in texts]
    np.testing.assert_allclose(sc.score_sentences(texts), ref, rtol=1e-6)
    assert "cat" in arpa_unigrams(arpa)


def test_kenlm_oov_word_gets_unk_offset(arpa):
    import kenlm

    sc = KenLMScorer(arpa, unk_offset=-7.0)
    model = kenlm.Model(str(arpa))
    ref = model.score("the zebra", bos=True, eos=True) * math.log(10) - 7.0
    assert sc.score_sentences(["the zebra"])[0] == pytest.approx(ref)
    assert "unigrams" not in sc.signature()  # the ARPA's own: named by the path
    assert KenLMScorer(arpa, unigrams=["the"]).signature() != KenLMScorer(arpa, unigrams=["the", "cat"]).signature()


def test_transformer_oov_word_gets_unk_offset(lm):
    """unk_offset is added to words outside the vocabulary, word by word and in whole sentences."""
    plain = TransformerScorer(lm)
    sc = TransformerScorer(lm, vocabulary=["the", "cat", "sat"], unk_offset=-7.0)
    words = ["the", "zebra", "cat", "qqq"]
    a, _ = plain.score_words(plain.init_state(4), words)
    b, _ = sc.score_words(sc.init_state(4), words)
    np.testing.assert_allclose(b - a, [0.0, -7.0, 0.0, -7.0], atol=1e-9)
    texts = ["the zebra sat", "the cat sat"]
    np.testing.assert_allclose(sc.score_sentences(texts) - plain.score_sentences(texts), [-7.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(Scorer.score_sentences(sc, texts), sc.score_sentences(texts), rtol=1e-5, atol=1e-4)
    assert "unk_offset:-7" in sc.signature() and "unk_offset" not in plain.signature()
    # what changes the scores is in the signature (tuning journals and sharded decodes compare them)
    sigs = {plain.signature(), sc.signature(), TransformerScorer(lm, vocabulary=["the", "cat"]).signature(),
            TransformerScorer(lm, vocabulary=["the", "cat", "sat"]).signature(), TransformerScorer(lm, word_end=False).signature()}
    assert len(sigs) == 5
    with pytest.raises(LmplugError, match="expected a vocabulary"):
        TransformerScorer(lm, unk_offset=-7.0)


def test_word_bounds_bound_the_word_scores(lm, arpa):
    """word_bounds (no forward) >= score_words; equal without word_end for one-piece words; the
    default (KenLM: its scores are as cheap as a bound) is none."""
    words = ["the", "cat", "zebra", "qqq", "mat", "fish"]
    for kw in ({}, {"word_end": False}, {"vocabulary": ["the", "cat"], "unk_offset": -3.0}):
        sc = TransformerScorer(lm, **kw)
        _, (st,) = sc.score_words(sc.init_state(1), ["the"])  # a history that is not the root
        sc.materialize([st])  # (lazy without word_end: computed when first used)
        for states in (sc.init_state(len(words)), [st] * len(words)):
            forwards = sc.work["forwards"]
            bound = sc.word_bounds(states, words)
            assert sc.work["forwards"] == forwards  # read from the states alone
            score, _ = sc.score_words(states, words)
            assert (bound >= score - 1e-6).all(), (kw, bound, score)
            if kw.get("word_end") is False:
                one = [len(sc.word_ids(w)) == 1 for w in words]
                assert any(one)
                np.testing.assert_allclose(bound[one], score[one], atol=1e-6)
    ken = KenLMScorer(arpa)
    assert ken.cheap_words and ZeroScorer().cheap_words and not sc.cheap_words
    assert ken.word_bounds(ken.init_state(len(words)), words) is None


def test_zero_scorer_scores_nothing():
    z = ZeroScorer(vocab_size=5)
    s, _ = z.score_words(z.init_state(3), ["a", "b", "c"])
    assert s.tolist() == [0, 0, 0] and z.score_sentences(["a b"]).tolist() == [0.0]
    assert z.batch_score([None, None]).shape == (2, 5)


def test_kenlm_missing_file_says_expected(tmp_path):
    pytest.importorskip("kenlm")
    with pytest.raises(LmplugError, match="expected an .arpa or binary file"):
        KenLMScorer(tmp_path / "nope.arpa")


def test_transformer_prefix_scores_sum_the_compatible_first_pieces(lm):
    sc = TransformerScorer(lm)
    start = sc.init_state(1)
    _, after = sc.score_words(start, ["the"])  # a WordEndState: its word-boundary mass is divided out
    prefixes = ["", "t", "th", "the", "ca", "zq"]
    for st in [start[0], after[0]]:
        got = sc.prefix_scores([st] * len(prefixes), prefixes)
        logp = st.logp.double().numpy()
        for p, g in zip(prefixes, got):  # brute force: every "▁x" with x a prefix of p or p a prefix of x
            pieces = [i for i in range(sc.vocab_size) if sc.tokenizer.id_to_piece(i).startswith("\u2581")
                      and (p.startswith(sc.tokenizer.id_to_piece(i)[1:]) or sc.tokenizer.id_to_piece(i)[1:].startswith(p))]
            want = math.log(np.exp(logp[pieces]).sum()) - sc.boundary_logmass([st])[0]
            assert g == pytest.approx(want, abs=1e-9)
        # an optimistic estimate of the word: at least its pieces' log-prob, and it can only fall
        # as letters are added
        for w in ["the", "cat", "mat"]:
            ids = sc.word_ids(w)
            pieces = sc.token_logprobs([st], [ids[0]])[0] - sc.boundary_logmass([st])[0]
            steps = sc.prefix_scores([st] * len(w), [w[: k + 1] for k in range(len(w))])
            assert np.all(np.diff(steps) <= 1e-12) and steps[-1] >= pieces - 1e-9


def test_transformer_prefix_scores_batched_equal_one_at_a_time(lm):
    # one call over mixed states and repeated prefixes (rows of the prefix table shared, some
    # added by an earlier call) == each pair alone on a fresh scorer, to the bit
    sc = TransformerScorer(lm)
    start = sc.init_state(1)[0]
    after = sc.score_words([start], ["the"])[1][0]
    sc.prefix_scores([start], ["th"])
    states = [start, after, start, after, after, start, after]
    prefixes = ["the", "the", "th", "zq", "", "ca", "thee"]
    got = sc.prefix_scores(states, prefixes)
    for st, p, g in zip(states, prefixes, got):
        fresh = TransformerScorer(lm)
        st1 = fresh.init_state(1)[0] if st is start else fresh.score_words(fresh.init_state(1), ["the"])[1][0]
        assert fresh.prefix_scores([st1], [p])[0] == g


def test_kenlm_prefix_scores_are_unigram_masses(arpa):
    sc = KenLMScorer(arpa)
    import kenlm

    m = kenlm.Model(str(arpa))
    words = sorted(sc.unigrams)
    uni = {w: 10 ** m.score(w, bos=False, eos=False) for w in words}
    unk = 10 ** m.score("zzzz", bos=False, eos=False) * math.exp(sc.unk_offset)
    got = sc.prefix_scores(sc.init_state(4), ["", "ca", "the", "zq"])
    for p, g in zip(["", "ca", "the", "zq"], got):
        assert g == pytest.approx(math.log(sum(v for w, v in uni.items() if w.startswith(p)) + unk), abs=1e-9)
    assert ZeroScorer().prefix_scores([None], ["a"]) is None


def test_scores_survive_pool_turnover(lm):
    """Word scores and the states after them do not depend on the KVPool they were computed in: a
    scorer whose pools hold a few tokens (a new pool almost every call, the contexts in use moved
    into it, a state listed several times moved once) scores as one with a single large pool."""
    words = ["the", "zebra", "a", "mat", "catastrophe", "fish"]  # one to several pieces each
    got = []
    for pool_tokens in (12, 10**5):
        sc = TransformerScorer(lm)
        sc.pool_tokens = pool_tokens
        root = sc.init_state(1)[0]
        prev = sc.score_words([root], ["we"])[1][0]
        first, new = sc.score_words([root, prev] * 3, words)
        some = [new[4], new[1], new[4], new[3]]  # later slots, one twice
        kept = sc.compact(some)  # the same states, moved into the newest pool
        assert all(a is b for a, b in zip(kept, some))
        second, after = sc.score_words(some, words[:4])
        third, _ = sc.score_words(after + after, words[2:] + words[:4])
        got.append((first, second, third, sc.final_score(after)))
    for a, b in zip(*got):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_states_listed_twice_move_to_a_new_pool_once(lm):
    sc = TransformerScorer(lm)
    root = sc.init_state(1)[0]
    _, new = sc.score_words([root] * 4, ["the", "zebra", "catastrophe", "fish"])
    some = [new[3], new[1], new[3]]  # contexts with gaps between their slots, one listed twice
    want = sc.score_words(some, ["a", "mat", "a"])[0]
    sc._pool = None  # as if full: the next call starts a new pool and moves the states into it
    np.testing.assert_allclose(sc.score_words(some, ["a", "mat", "a"])[0], want, rtol=1e-5, atol=1e-5)
    assert all(s.pool is sc._pool for s in some)


def test_long_sentence_scored_alike_by_both_entry_points(lm):
    """One long-sentence rule (lmplug.scoring's sliding window): ``lmplug ppl``'s path and the
    scorer's (CTC rescoring, MT features) give the same number past block_size."""
    from lmplug.scoring import score_sentences

    long = " ".join(SENTENCES * 3)
    assert len(lm.tokenizer.encode(long)) + 1 > lm.config.block_size
    texts = [long, SENTENCES[0]]
    ref = [s.logprob for s in score_sentences(lm, texts)]
    np.testing.assert_allclose(TransformerScorer(lm).score_sentences(texts), ref, rtol=1e-6, atol=1e-5)


def test_kenlm_oov_rule_is_one_offset_per_word_everywhere(arpa):
    """The OOV rule: KenLM's <unk> probability plus unk_offset per word outside the word list,
    word by word (as the decoders sum it) and per sentence alike; unk_offset=0 is what
    ``lmplug ppl`` reports (score_sentences_ngram)."""
    from lmplug.ngram import load_kenlm, score_sentences_ngram
    from lmplug.scorers.kenlm import KENLM_UNK_OFFSET

    texts = ["the zebra sat on qqq", "the cat sat"]
    plain = [s.logprob for s in score_sentences_ngram(load_kenlm(arpa), texts)]
    zero = KenLMScorer(arpa, unk_offset=0.0)
    fused = KenLMScorer(arpa)
    assert fused.unk_offset == pytest.approx(-10 * math.log(10)) == KENLM_UNK_OFFSET
    np.testing.assert_allclose(zero.score_sentences(texts), plain, rtol=1e-12)
    np.testing.assert_allclose(fused.score_sentences(texts) - plain, [2 * KENLM_UNK_OFFSET, 0.0], atol=1e-9)
    for sc in (zero, fused):  # word by word == per sentence
        np.testing.assert_allclose(Scorer.score_sentences(sc, texts), sc.score_sentences(texts), rtol=1e-6)  # KenLM sums in float32
    assert "unk_offset:0" in zero.signature() and "unk_offset" not in fused.signature()
