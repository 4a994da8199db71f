"""MemoScorer: the wrapped scorer's scores (memoized == recomputed), hits that need no forward, the
lazy replay of skipped states, the bound, and decoding over a weight grid with the same texts."""

from __future__ import annotations

import random

import numpy as np
import pytest
from ctc_helpers import SENTENCES, one_thread, tiny_arpa, tiny_lm

from lmplug.ctc.decoder import build_ctc_decoder
from lmplug.ctc.simulate import char_labels, pad_batch, simulate_emissions, text_to_char_ids
from lmplug.ctc.tune import memoize_word_scorers
from lmplug.errors import LmplugError
from lmplug.scorers.base import Scorer
from lmplug.scorers.kenlm import KenLMScorer
from lmplug.scorers.memo import MemoScorer
from lmplug.scorers.transformer import TransformerScorer
from lmplug.scorers.zero import ZeroScorer

single_thread = pytest.fixture(autouse=True, scope="module")(one_thread)

VOCAB = sorted({w for s in SENTENCES for w in s.split()}) + ["zebra", "qqq"]  # two words the LM never saw


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return tiny_lm(tmp_path_factory.mktemp("lm"), steps=40, seed=1)


def random_texts(seed: int, n: int, max_words: int = 9) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(1, max_words))) for _ in range(n)]


def word_by_word(scorer: Scorer, texts: list[str]) -> np.ndarray:
    """Sentence scores through score_words and final_score (what a decoder asks for)."""
    return Scorer.score_sentences(scorer, texts)


@pytest.mark.parametrize("kw", [{}, {"word_end": False}, {"vocabulary": VOCAB[:-2], "unk_offset": -3.0}])
def test_scores_equal_the_wrapped_scorer_and_hits_forward_nothing(lm, kw):
    plain, memo = TransformerScorer(lm, **kw), MemoScorer(TransformerScorer(lm, **kw))
    texts = random_texts(0, 30)
    ref = word_by_word(plain, texts)
    np.testing.assert_allclose(word_by_word(memo, texts), ref, rtol=1e-5, atol=1e-4)
    n_words = sum(len(t.split()) for t in texts)
    st = memo.stats()  # rows not answered from the memo are misses (rows sharing one, one inner row)
    assert (st["word_hits"], st["word_misses"], st["final_hits"], st["final_misses"]) == (0, n_words, 0, len(texts))
    assert memo.inner.work["rows"] < plain.work["rows"]  # the texts share histories: each forwarded once
    work = dict(memo.inner.work)
    again = word_by_word(memo, texts)  # every (history, word) and end of sentence is a hit
    assert memo.inner.work == work
    np.testing.assert_allclose(again, ref, rtol=1e-5, atol=1e-4)
    st2 = memo.stats()
    assert (st2["word_hits"], st2["word_misses"], st2["final_hits"], st2["final_misses"]) == (n_words, n_words,
                                                                                              len(texts), len(texts))
    # new texts over the same words: hits and misses mixed, in one batch, still the plain scores
    mixed = texts[:10] + random_texts(1, 20)
    np.testing.assert_allclose(word_by_word(memo, mixed), word_by_word(plain, mixed), rtol=1e-5, atol=1e-4)


def test_a_miss_after_hits_replays_the_history_in_one_forward(lm):
    plain, memo = TransformerScorer(lm), MemoScorer(TransformerScorer(lm))
    history = "we sat on the mat and ate the fish".split()
    st = memo.init_state(1)
    for w in history:  # scores the history once: every state materialized
        _, st = memo.score_words(st, [w])
    forwards = memo.inner.work["forwards"]
    st = memo.init_state(2)
    for w in history:  # again, from the root: hits only, no inner state needed
        sc, st = memo.score_words(st, [w, w])
    assert memo.inner.work["forwards"] == forwards and st[0].depth == 0 and st[0].words == tuple(history)
    assert st[0] == st[1] and hash(st[0]) == hash(st[1])
    # a miss: the history replayed from the root (one forward), then the word (one forward)
    got, after = memo.score_words(st, ["cat", "dog"])
    assert memo.stats()["replayed_words"] == len(history) and memo.inner.work["forwards"] == forwards + 2
    assert st[0].depth == len(history) and after[0].depth == len(history) + 1  # kept on the states
    ref = plain.init_state(2)
    for w in history:
        _, ref = plain.score_words(ref, [w, w])
    want, ref = plain.score_words(ref, ["cat", "dog"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(memo.final_score(after), plain.final_score(ref), rtol=1e-5, atol=1e-4)
    # the look-ahead and the bounds: the wrapped scorer's, memoized by (history, prefix / word)
    for method, arg in (("prefix_scores", ["c", "d"]), ("word_bounds", ["mat", "zebra"])):
        a = getattr(memo, method)(after, arg)
        np.testing.assert_allclose(a, getattr(plain, method)(ref, arg), rtol=1e-5, atol=1e-4)
        work = dict(memo.inner.work)
        np.testing.assert_array_equal(getattr(memo, method)(after, arg), a)
        assert memo.inner.work == work
    assert memo.stats()["prefix_hits"] == 2 and memo.stats()["bound_hits"] == 2
    # a scored word is its own (exact) bound
    np.testing.assert_array_equal(memo.word_bounds(st, ["cat", "dog"]), got)


def test_advance_words_equals_score_words_word_by_word(lm):
    """The replay's one forward leaves the states score_words leaves (within block_size; past
    it, word by word as the context slides), with or without word_end."""
    for word_end in (True, False):
        sc = TransformerScorer(lm, word_end=word_end)
        long = (" ".join(SENTENCES * 2)).split()  # past block_size=32 tokens
        words = [["the", "cat", "sat"], [], ["zebra", "qqq", "mat"], long]
        root = sc.init_state(len(words))
        fast = sc.advance_words(root, words)
        slow = Scorer.advance_words(sc, root, words)
        assert fast[1] is root[1]
        nxt = ["on", "dog", "ate", "fish"]
        np.testing.assert_allclose(sc.score_words(fast, nxt)[0], sc.score_words(slow, nxt)[0], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(sc.final_score(fast), sc.final_score(slow), rtol=1e-5, atol=1e-4)


def test_the_memo_is_bounded(lm):
    plain, memo = TransformerScorer(lm), MemoScorer(TransformerScorer(lm), max_entries=20)
    texts = random_texts(2, 12)
    ref = word_by_word(plain, texts)
    n_words = sum(len(t.split()) for t in texts)
    for _ in range(3):  # emptied between calls when full; old states find their nodes again
        np.testing.assert_allclose(word_by_word(memo, texts), ref, rtol=1e-5, atol=1e-4)
        # past the bound by one call's entries at most: its rows' new words, and the histories
        # of the states of an emptied memo walked again
        assert memo.stats()["entries"] <= 20 + n_words + len(texts)
    assert memo.stats()["clears"] >= 3
    # the look-ahead scores go first when they are most of the entries: the word scores stay
    memo = MemoScorer(TransformerScorer(lm), max_entries=40)
    word_by_word(memo, ["the cat sat"])
    prefixes = [chr(97 + i % 26) + chr(97 + i // 26) for i in range(40)]
    memo.prefix_scores(memo.init_state(len(prefixes)), prefixes)
    assert memo.stats()["entries"] == 3 + 40
    work = dict(memo.inner.work)
    np.testing.assert_allclose(word_by_word(memo, ["the cat sat"]), word_by_word(plain, ["the cat sat"]), rtol=1e-5, atol=1e-4)
    assert memo.inner.work == work and memo.stats()["entries"] == 3 and memo.stats()["clears"] == 1
    with pytest.raises(LmplugError, match="max_entries: expected an integer >= 1, found 0"):
        MemoScorer(plain, max_entries=0)
    with pytest.raises(TypeError, match="expected a Scorer to wrap"):
        MemoScorer(memo)


def test_the_interface_is_the_wrapped_scorers(lm):
    inner = TransformerScorer(lm, vocabulary=VOCAB, name="tlm")
    memo = MemoScorer(inner)
    assert (memo.name, memo.order, memo.signature(), memo.known_words()) == ("tlm", None, inner.signature(), set(VOCAB))
    assert not memo.cheap_words and memo.prefix_uses_state and memo.has_prefix_scores and not memo.token_level
    np.testing.assert_array_equal(memo.score_sentences(SENTENCES), inner.score_sentences(SENTENCES))
    zero = MemoScorer(ZeroScorer())
    assert zero.order == 1 and zero.cheap_words and not zero.has_prefix_scores
    assert zero.prefix_scores(zero.init_state(1), ["a"]) is None and zero.word_bounds(zero.init_state(1), ["a"]) is None
    s = zero.init_state(1)
    _, a = zero.score_words(s, ["a"])
    _, b = zero.score_words(a, ["b"])
    assert a[0] == b[0] == s[0]  # order 1: one state
    # what a tuning memoizes: word scorers that are not cheap, never a token-level one in token mode
    cheap = ZeroScorer()  # (cheap_words, as KenLM)
    got = memoize_word_scorers({"lm": inner, "zero": cheap, "pyctcdecode": None}, "word")
    assert isinstance(got["lm"], MemoScorer) and got["zero"] is cheap and got["pyctcdecode"] is None
    assert memoize_word_scorers({"lm": inner}, "token")["lm"] is inner


def test_ngram_states_are_keyed_by_their_last_words(tmp_path):
    pytest.importorskip("kenlm", reason="kenlm module not installed (pip install kenlm==0.3.0)")
    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found next to sys.executable or on PATH")
    plain = KenLMScorer(arpa)
    memo = MemoScorer(KenLMScorer(arpa))
    for texts in (random_texts(3, 40), random_texts(4, 40)):
        np.testing.assert_allclose(word_by_word(memo, texts), word_by_word(plain, texts), rtol=1e-9)
    assert memo.stats()["word_hits"] > 0
    fresh = MemoScorer(KenLMScorer(arpa))
    word_by_word(fresh, ["a cat sat"])
    got = word_by_word(fresh, ["the a cat sat"])  # after "a cat", whatever came before: hits
    assert (fresh.stats()["word_hits"], fresh.stats()["final_hits"]) == (1, 1)
    np.testing.assert_allclose(got, word_by_word(plain, ["the a cat sat"]), rtol=1e-9)
    s = memo.init_state(2)
    _, s = memo.score_words(s, ["a", "the"])
    _, s = memo.score_words(s, ["cat", "cat"])
    assert s[0] != s[1]  # order 3: a state is its last two words, "a cat" and "the cat"
    _, s = memo.score_words(s, ["sat", "sat"])
    assert s[0] == s[1] and s[0].words != s[1].words  # "cat sat" both


def test_decoding_a_weight_grid_gives_the_same_texts_with_less_work(lm):
    """One decoder per scorer over a grid of weights, as tune-ctc decodes its dev set: the same
    n-best lists; the memo forwards less from the second grid point on."""
    labels = char_labels(SENTENCES)
    ids = [text_to_char_ids(t, labels) for t in SENTENCES * 2]
    x, lens = pad_batch(simulate_emissions(ids, labels, seed=21, confusion=0.6))
    grid = [{"lm": w, "words": b} for w in (0.5, 1.0) for b in (0.0, 2.0)]
    for kw in ({}, {"lookahead": ["lm"], "history_words": 1}):
        plain = TransformerScorer(lm, vocabulary=VOCAB[:-2])
        memo = MemoScorer(TransformerScorer(lm, vocabulary=VOCAB[:-2]))
        decs = [build_ctc_decoder(labels, {"lm": s}, grid[0], beam_size=6, nbest=3, **kw) for s in (plain, memo)]
        for weights in grid:
            out = []
            for d in decs:
                d.set_weights(weights)
                out.append(d.decode(x, lens))
            for a, b in zip(*out):
                assert [h.text for h in a] == [h.text for h in b]
                np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=1e-4)
        assert memo.inner.work["tokens"] < 0.8 * plain.work["tokens"], (kw, memo.inner.work, plain.work)
        assert memo.stats()["word_hits"] > memo.stats()["word_misses"]
