"""Reranking: features and their cache, the log-linear reranker, MERT line search and tuning."""

from __future__ import annotations

import numpy as np
import pytest

sacrebleu = pytest.importorskip("sacrebleu")

from lmplug.errors import LmplugError
from lmplug.mt.mert import (
    bleu_from_stats,
    bleu_signature,
    bleu_stats,
    line_search,
    oracle_selection,
    tune_weights,
    upper_envelope,
)
from lmplug.mt.nbest import NBestEntry
from lmplug.mt.rerank import Feature, PerWord, add_features, length_features, rerank_translations

REFS = ["a man rides a red bike down the street .", "two dogs play in the snow .",
        "a woman is reading a book in the park .", "children are swimming in a lake ."]
WRONG = [["a man rides a bike .", "man bike street", "a man is riding a red bike on the street ."],
         ["two dogs in snow .", "dogs playing", "two cats play in the snow ."],
         ["a woman reads .", "woman book park", "a girl is reading a book in a park ."],
         ["kids swim .", "children swimming lake", "the children swim in the lake ."]]


def _nbest(seed: int = 0):
    """Per sentence: 3 wrong hypotheses and the reference; no weight on "nmt" alone picks the reference."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (ref, wrong) in enumerate(zip(REFS, WRONG)):
        hyps = [NBestEntry(i, t, {"nmt": float(-k + rng.normal(0, 0.1)), "is_ref": 0.0}) for k, t in enumerate(wrong)]
        hyps.append(NBestEntry(i, ref, {"nmt": -1.3 - 0.1 * i, "is_ref": 1.0}))  # between wrong ones
        out.append(hyps)
    return out


def test_upper_envelope_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 9))
        b = rng.integers(-3, 4, n).astype(float)  # repeated slopes on purpose
        a = rng.integers(-3, 4, n).astype(float)
        starts, lines = upper_envelope(b, a)
        assert starts[0] == -np.inf and np.all(np.diff(starts) > 0)
        for g in np.linspace(-20, 20, 97):
            seg = int(np.searchsorted(starts, g, side="right") - 1)
            top = a + g * b
            assert top[lines[seg]] == pytest.approx(top.max())


def test_bleu_stats_sum_to_sacrebleu_corpus_bleu():
    hyps = [w[2] for w in WRONG]
    expected = sacrebleu.corpus_bleu(hyps, [REFS]).score
    assert float(bleu_from_stats(bleu_stats(hyps, REFS).sum(0))) == pytest.approx(expected, abs=1e-9)


BLEU_CORPORA = [  # (hypotheses, references)
    ([w[2] for w in WRONG], REFS),  # every order matches somewhere
    (["a man rides the bike", "two dogs play"], ["a man rides a red bike", "two cats play in snow"]),  # no 4-gram
    (["a man bike red street", "dogs snow two"], REFS[:2]),  # no 3- or 4-gram: the audit's flat objective
    (["a b", "c"], ["a b c d", "c d"]),  # no 3-grams at all (total 0): 0 in sacrebleu too
    (["x y z w v"], ["a b c d e"]),  # nothing matches
    (["the the the the the the"], ["the cat is on the mat"]),  # clipped counts, longer than the reference
]


@pytest.mark.parametrize("hyps,refs", BLEU_CORPORA)
def test_bleu_from_stats_is_sacrebleu_with_the_smoothing_its_signature_names(hyps, refs):
    """Also when some n-gram order has no match: sacrebleu's default 'exp' smoothing, not 0."""
    smooth = dict(kv.split(":", 1) for kv in bleu_signature().split("|"))["smooth"]
    assert smooth == "exp"
    expected = sacrebleu.BLEU(smooth_method=smooth).corpus_score(hyps, [refs]).score
    assert expected == sacrebleu.corpus_bleu(hyps, [refs]).score
    stats = bleu_stats(hyps, refs)
    assert float(bleu_from_stats(stats.sum(0))) == pytest.approx(expected, abs=1e-9)
    batched = bleu_from_stats(np.stack([stats.sum(0), stats[0]]))  # (..., 10) inputs
    assert batched[0] == pytest.approx(expected, abs=1e-9)
    assert batched[1] == pytest.approx(sacrebleu.corpus_bleu(hyps[:1], [refs[:1]]).score, abs=1e-9)


def test_bleu_of_a_corpus_with_no_3_gram_match_is_not_zero():
    hyps, refs = BLEU_CORPORA[2]
    assert float(bleu_from_stats(bleu_stats(hyps, refs).sum(0))) > 0.0


def test_line_search_finds_known_optimum():
    nb = _nbest()
    # score = nmt + gamma * is_ref: sentence i picks its reference once gamma > best wrong nmt - reference nmt
    thresholds = [max(e.scores["nmt"] for e in hyps[:3]) - hyps[3].scores["nmt"] for hyps in nb]
    stats = [bleu_stats([e.text for e in hyps], [REFS[i]] * len(hyps)) for i, hyps in enumerate(nb)]
    res = line_search([np.array([e.scores["is_ref"] for e in h]) for h in nb],
                      [np.array([e.scores["nmt"] for e in h]) for h in nb], stats)
    assert res.bleu == pytest.approx(100.0)
    assert res.low == pytest.approx(max(thresholds)) and res.high == np.inf
    assert res.gamma > max(thresholds)
    # the BLEU the sweep reports on an interval is the BLEU of reranking at a point inside it
    for gamma in (0.0, sorted(thresholds)[1] + 1e-6, res.gamma):
        picked = rerank_translations(nb, {"nmt": 1.0, "is_ref": gamma})
        sweep = line_search([np.array([e.scores["is_ref"] for e in h]) for h in nb],
                            [np.array([e.scores["nmt"] for e in h]) for h in nb], stats, current=gamma)
        if sweep.low < gamma < sweep.high:  # `current` kept: it lies in a best interval
            assert sacrebleu.corpus_bleu([e.text for e in picked], [REFS]).score <= sweep.bleu + 1e-9


def test_smoothed_line_search_prefers_a_plateau_to_a_spike():
    """Sentence i switches from hypothesis 0 to 1 at gamma = t_i, changing the matched n-grams by
    d_i: corpus BLEU over gamma is a narrow spike at (1, 1.1) (+5) and a plateau over (3, 6) (+3)."""
    t = [1.0, 1.1, 3.0, 4.0, 5.0, 6.0]
    d = [5.0, -5.0, 3.0, 0.0, 0.0, -3.0]

    def st(m):  # hyp len, ref len, matches 1-4, totals 1-4: BLEU = 100 * sum(m) / sum(totals)
        return [10.0, 10.0] + [m] * 4 + [10.0] * 4

    slopes = [np.array([0.0, 1.0]) for _ in t]
    intercepts = [np.array([0.0, -ti]) for ti in t]
    stats = [np.array([st(5.0), st(5.0 + di)]) for di in d]
    plain = line_search(slopes, intercepts, stats)
    assert (plain.low, plain.high) == (1.0, 1.1) and plain.bleu == pytest.approx(100 * 35 / 60)
    smooth = line_search(slopes, intercepts, stats, window=1)
    assert (smooth.low, smooth.high) == (4.0, 5.0) and smooth.gamma == pytest.approx(4.5)
    assert smooth.bleu == pytest.approx(100 * 33 / 60)  # the interval's own BLEU


def test_tuner_with_reference_identifying_feature_reaches_bleu_100():
    nb = _nbest()
    res = tune_weights(nb, REFS, restarts=3, progress=False)
    assert res.bleu == pytest.approx(100.0)
    assert [e.text for e in rerank_translations(nb, res.weights)] == REFS
    assert sum(abs(v) for v in res.weights.values()) == pytest.approx(1.0)
    assert "tuner:mert|restarts:3" in res.signature and "tok:13a" in res.signature
    smooth = tune_weights(nb, REFS, restarts=3, progress=False, window=2)
    assert smooth.bleu == pytest.approx(100.0) and "window:2" in smooth.signature
    # without the feature, BLEU can only fall
    res2 = tune_weights(nb, REFS, features=["nmt"], restarts=2, progress=False)
    assert res2.bleu < 100.0


def test_tuned_bleu_equals_sacrebleu_of_reranked_output():
    nb = _nbest(seed=3)
    for hyps in nb:
        for k, e in enumerate(hyps):
            e.scores["noise"] = float((k * 7919) % 5)
    for window in (0, 2):
        res = tune_weights(nb, REFS, features=["nmt", "noise"], restarts=4, progress=False, window=window)
        out = [e.text for e in rerank_translations(nb, res.weights)]
        assert sacrebleu.corpus_bleu(out, [REFS]).score == pytest.approx(res.bleu, abs=1e-9)
    with pytest.raises(LmplugError, match="window >= 0"):
        tune_weights(nb, REFS, window=-1, progress=False)


def test_oracle_at_least_first_best_and_reaches_100_when_reference_is_listed():
    nb = _nbest()
    pick = oracle_selection(nb, REFS)
    assert [nb[i][j].text for i, j in enumerate(pick)] == REFS


def test_weights_naming_unknown_features_are_refused():
    nb = _nbest()
    with pytest.raises(LmplugError) as e:
        rerank_translations(nb, {"nmt": 1.0, "lm": 0.5})
    assert str(e.value) == "weights name unknown features ['lm']; the n-best lists carry ['nmt', 'is_ref']"
    with pytest.raises(LmplugError, match=r"unknown features \['channel'\]"):
        tune_weights(nb, REFS, features=["nmt", "channel"], progress=False)


def test_tuning_refuses_a_feature_named_twice():
    nb = _nbest()
    with pytest.raises(LmplugError) as e:
        tune_weights(nb, REFS, features=["nmt", "is_ref", "nmt"], restarts=1, progress=False)
    assert str(e.value) == "expected each feature once, found 'nmt' twice"
    with pytest.raises(LmplugError, match="found 'nmt' 3 times"):
        tune_weights(nb, REFS, features=["nmt"] * 3, restarts=1, progress=False)


def test_rerank_ties_keep_the_earlier_hypothesis():
    nb = [[NBestEntry(0, "x", {"f": 1.0}), NBestEntry(0, "y", {"f": 1.0})]]
    assert rerank_translations(nb, {"f": 1.0})[0].text == "x"


def test_add_features_cache_and_lengths(tmp_path):
    nb = _nbest()
    calls = []

    def compute(src, hyp):
        calls.append(len(hyp))
        return [float(len(h)) for h in hyp]

    feats = [Feature("chars", "chars:v1", compute), *length_features()]
    sources = ["x y", "x", "x y z", "x y z w"]
    sigs = add_features(nb, sources, feats, cache_dir=tmp_path)
    assert sigs["chars"] == "chars:v1" and calls == [16]
    assert nb[1][3].scores["words"] == 7.0 and nb[1][3].scores["len_ratio"] == 7.0
    nb2 = _nbest()
    add_features(nb2, sources, feats, cache_dir=tmp_path)
    assert calls == [16]  # served from the cache
    assert nb2[0][0].scores["chars"] == len(nb2[0][0].text)
    with pytest.raises(LmplugError, match="expected one source sentence per n-best id \\(4\\), found 3 sources"):
        add_features(nb, sources[:3], feats)


BAD_CACHES = [  # (file content, the start of the reason the note gives)
    (b"", "expected JSON, found JSONDecodeError"),
    (b"{not json", "expected JSON, found JSONDecodeError"),
    (b"\xff\xfe", "expected JSON, found UnicodeDecodeError"),
    (b'{"signature": "chars:v0", "values": []}', "expected {'signature': 'chars:v1', 'values': [numbers]}"),
    (b'{"signature": "chars:v1", "values": ["1"]}', "expected {'signature': 'chars:v1', 'values': [numbers]}"),
    (b'{"signature": "chars:v1", "values": [1.0, 2.0]}', "expected 16 values (one per hypothesis), found 2"),
]


@pytest.mark.parametrize("content,problem", BAD_CACHES)
def test_an_unusable_feature_cache_file_is_named_and_recomputed(tmp_path, capsys, content, problem):
    """Empty, corrupt, another signature's or of the wrong length: never used, never a traceback."""
    calls = []

    def compute(src, hyp):
        calls.append(len(hyp))
        return [float(len(h)) for h in hyp]

    feats = [Feature("chars", "chars:v1", compute)]
    sources = ["x y", "x", "x y z", "x y z w"]
    add_features(_nbest(), sources, feats, cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.glob("chars.*.json")
    path.write_bytes(content)
    nb = _nbest()
    capsys.readouterr()
    add_features(nb, sources, feats, cache_dir=tmp_path, progress=False)
    assert calls == [16, 16]
    assert [e.scores["chars"] for h in nb for e in h] == [float(len(e.text)) for h in nb for e in h]
    err = capsys.readouterr().err
    assert f"{path}: unusable cache, computed again: {problem}" in err
    add_features(_nbest(), sources, feats, cache_dir=tmp_path, progress=False)
    assert calls == [16, 16]  # rewritten: served from the cache again


def test_per_word_features_divide_their_base():
    nb = _nbest()
    sources = ["x y", "x", "x y z", "x y z w"]
    chars = Feature("chars", "chars:v1", lambda src, hyp: [float(len(h)) for h in hyp])
    sigs = add_features(nb, sources, [chars, PerWord("chars")], progress=False)
    assert sigs["chars_norm"] == "chars/(hyp_words+1)"
    e = nb[1][3]
    assert e.scores["chars_norm"] == pytest.approx(len(e.text) / (len(e.text.split()) + 1))
    src_norm = PerWord("chars", of="src")
    add_features(nb, sources, [chars, src_norm], progress=False)
    assert e.scores["chars_norm"] == pytest.approx(len(e.text) / 2)  # source "x": one word
    with pytest.raises(LmplugError, match="per-word feature 'lm_norm' needs 'lm' computed before it"):
        add_features(nb, sources, [PerWord("lm")], progress=False)


def test_lm_features_come_from_the_ctc_scorers(tmp_path):
    """One scorer path: the MT ``lm`` and ``kenlm`` features are the scorers' sentence scores
    (TransformerScorer; KenLMScorer with unk_offset=0, KenLM's plain <unk>), long hypotheses
    by lmplug.scoring's sliding window."""
    from ctc_helpers import SENTENCES, tiny_arpa, tiny_lm

    from lmplug.mt.rerank import kenlm_feature, lm_feature
    from lmplug.scorers.kenlm import KenLMScorer
    from lmplug.scorers.transformer import TransformerScorer
    from lmplug.scoring import score_sentences

    (tmp_path / "lm").mkdir()
    lm = tiny_lm(tmp_path / "lm", steps=0, seed=1)
    hyps = [SENTENCES[0], "the zebra sat", " ".join(SENTENCES * 3), SENTENCES[0]]
    assert len(lm.tokenizer.encode(hyps[2])) + 1 > lm.config.block_size
    got = lm_feature(lm).compute(hyps, hyps)
    np.testing.assert_allclose(got, TransformerScorer(lm).score_sentences(hyps), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got, [s.logprob for s in score_sentences(lm, hyps)], rtol=1e-6, atol=1e-5)
    (tmp_path / "arpa").mkdir()
    arpa = tiny_arpa(tmp_path / "arpa")
    if arpa is None:
        pytest.skip("lmplz not found (KenLM binaries; see tools/setup.sh)")
    pytest.importorskip("kenlm")
    np.testing.assert_allclose(kenlm_feature(arpa).compute(hyps, hyps),
                               KenLMScorer(arpa, unk_offset=0.0).score_sentences(hyps), rtol=1e-12)
