"""Translation model: learns a toy task through fit, beam search properties, forced decoding, resume."""

from __future__ import annotations

import json
import random

import pytest
import torch

from lmplug.errors import LmplugError
from lmplug.mt.nmt import load_translator, nmt_configs, pair_groups, train_translation
from lmplug.mt.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, beam_search, pad_sources, score_pairs
from lmplug.tokenizer import train_tokenizer

WORDS = "a b c d e f g h i j".split()


def _toy(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    src = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))) for _ in range(n)]
    return src, [s.upper() for s in src]  # "translate" = uppercase every word


@pytest.fixture(scope="module")
def toy_tok(tmp_path_factory):
    src, tgt = _toy(400, 0)
    return train_tokenizer(src + tgt, tmp_path_factory.mktemp("tok") / "toy.model", vocab_size=40, model_type="word")


@pytest.fixture(scope="module")
def toy_translator(tmp_path_factory, toy_tok):
    src, tgt = _toy(400, 0)
    dsrc, dtgt = _toy(40, 1)
    model_cfg, train_cfg, _ = nmt_configs("tiny", train_overrides=dict(max_steps=300, device="cpu"))
    out = tmp_path_factory.mktemp("nmt")
    summary = train_translation(src, tgt, dsrc, dtgt, toy_tok, out, model_cfg, train_cfg, direction="lo-up",
                                progress=False)
    assert summary["dev_loss"] < 0.5
    return load_translator(out)


def _greedy(model: Seq2SeqTransformer, src: list[int], max_len: int) -> list[int]:
    """Greedy decoding that recomputes the whole prefix every step (no cache)."""
    c = model.config
    s, m = pad_sources([src], c.eos_id)
    out: list[int] = []
    for _ in range(max_len):
        logits = model(s, m, torch.tensor([[c.bos_id, *out]]))
        nxt = int(logits[0, -1].argmax())
        if nxt == c.eos_id:
            break
        out.append(nxt)
    return out


def test_tiny_model_learns_the_toy_task(toy_translator):
    src, tgt = _toy(40, 1)
    out = toy_translator.translate(src, beam=4)
    correct = sum(hyps[0][0] == t for hyps, t in zip(out, tgt))
    assert correct >= 34, f"{correct}/40 dev sentences translated exactly"
    assert "lo-up" in toy_translator.signature()
    for kw, message in [(dict(beam=0), "Translator.translate.beam: expected an integer >= 1, found 0"),
                        (dict(beam=4, nbest=5), r"Translator.translate.nbest: expected at most beam \(4\)"),
                        (dict(nbest=0), "Translator.translate.nbest: expected an integer >= 1, found 0"),
                        (dict(batch_sentences=0), "Translator.translate.batch_sentences: expected an integer >= 1")]:
        with pytest.raises(LmplugError, match=message):  # the API checks what the CLI checks
            toy_translator.translate(src[:2], **kw)


def test_nbest_sorted_and_scores_match_forced_decoding(toy_translator):
    src, _ = _toy(12, 2)
    ids = toy_translator.encode(src)
    res = beam_search(toy_translator.model, ids, beam=10, nbest=10)
    for s, hyps in zip(ids, res):
        assert len(hyps) == 10
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({h.tokens for h in hyps}) == 10
        for h in hyps:  # cached incremental decoding == teacher-forced recomputation
            assert h.score == pytest.approx(h.logprob / (len(h.tokens) + 1))
        forced = score_pairs(toy_translator.model, [s] * len(hyps), [list(h.tokens) for h in hyps])
        assert forced == pytest.approx([h.logprob for h in hyps], abs=1e-4)


def test_beam_1_is_greedy_and_batched_equals_one_by_one(toy_translator):
    src, _ = _toy(16, 3)
    ids = toy_translator.encode(src)
    model = toy_translator.model
    beam1 = beam_search(model, ids, beam=1, batch_sentences=5)
    for s, hyps in zip(ids, beam1):
        assert list(hyps[0].tokens) == _greedy(model, s, int(1.5 * len(s) + 10))
    batched = beam_search(model, ids, beam=6, batch_sentences=16)
    single = beam_search(model, ids, beam=6, batch_sentences=1)
    for a, b in zip(batched, single):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.logprob for h in a] == pytest.approx([h.logprob for h in b], abs=1e-4)


def test_length_cap_forces_end_of_sentence():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(vocab_size=30, n_enc_layer=1, n_dec_layer=1, n_head=2, n_embd=16)).eval()
    res = beam_search(model, [[5, 6, 7]], beam=3, max_len_a=0.0, max_len_b=4)
    assert res[0] and all(len(h.tokens) <= 4 for h in res[0])


def test_resume_is_exact(tmp_path, toy_tok):
    src, tgt = _toy(200, 4)
    model_cfg, train_cfg, _ = nmt_configs("tiny", train_overrides=dict(max_steps=40, eval_every=20, log_every=10,
                                                                       device="cpu"))
    a = train_translation(src, tgt, src[:20], tgt[:20], toy_tok, tmp_path / "a", model_cfg, train_cfg, progress=False)
    train_translation(src, tgt, src[:20], tgt[:20], toy_tok, tmp_path / "b", model_cfg, train_cfg, progress=False,
                      stop_after=20)
    b = train_translation(src, tgt, src[:20], tgt[:20], toy_tok, tmp_path / "b", model_cfg, train_cfg, progress=False)
    assert b["steps"] == 40 and a["dev_loss"] == pytest.approx(b["dev_loss"], abs=1e-6)
    la = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("loss") for r in la] == pytest.approx([r.get("loss") for r in lb], abs=1e-6)


def test_encoder_ignores_padding(toy_translator):
    model = toy_translator.model
    ids = toy_translator.encode(["a b", "a b c d e f"])
    s, m = pad_sources(ids, model.config.eos_id)
    alone = score_pairs(model, [ids[0]], [[7, 8]])
    batched = score_pairs(model, ids, [[7, 8], [7, 8]])
    assert alone[0] == pytest.approx(batched[0], abs=1e-5)
    assert m.sum(1).tolist() == [len(ids[0]) + 1, len(ids[1]) + 1]


def test_checkpoint_errors(tmp_path, toy_translator):
    with pytest.raises(LmplugError, match="checkpoint not found"):
        load_translator(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer.model"):
        (bad / f).write_text("{}")
    (bad / "config.json").write_text(json.dumps({"format": "lmplug-lm", "model": {}}))
    with pytest.raises(LmplugError, match="expected format 'lmplug-seq2seq', found 'lmplug-lm'"):
        load_translator(bad)
    with pytest.raises(LmplugError, match="expected as many source as target lines, found 2 and 1"):
        train_translation(["a", "b"], ["A"], ["a"], ["A"], toy_translator.tokenizer, tmp_path / "x",
                          *nmt_configs("tiny")[:2], progress=False)


def test_a_reference_export_loads_as_float32_and_scores_alike(tmp_path, toy_translator):
    """models/nmt-*: float16 weights with a card (lmplug export-model) load into float32, score as the
    float32 checkpoint does within float16 rounding, and a changed file is refused."""
    from lmplug.references import export_reference

    card = export_reference(toy_translator.path, tmp_path / "ref", name="nmt-toy", kind="nmt", description="",
                            data="_toy", train_command="(test)")
    assert card["dtype"] == "float16" and set(card["files"]) == {"config.json", "model.safetensors", "tokenizer.model"}
    ref = load_translator(tmp_path / "ref")
    assert all(p.dtype == torch.float32 for p in ref.model.parameters()) and ref.direction == "lo-up"
    src, tgt = _toy(20, 2)
    assert ref.score(src, tgt) == pytest.approx(toy_translator.score(src, tgt), abs=0.05)
    assert [h[0][0] for h in ref.translate(src, beam=4)] == [h[0][0] for h in toy_translator.translate(src, beam=4)]
    w = tmp_path / "ref" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-4])
    with pytest.raises(LmplugError, match="model.safetensors: expected sha256 .* changed or truncated"):
        load_translator(tmp_path / "ref")


@pytest.mark.parametrize("n, batch_size, world_size, sizes", [
    (10, 4, 1, [4, 4, 2]),  # one process: batches as cut
    (9, 4, 2, [4, 5]),  # a last batch of 1 pair would leave rank 1 nothing: it joins the one before
    (10, 4, 2, [4, 4, 2]),
    (3, 4, 2, [3]),
])
def test_pair_groups_give_every_process_a_pair(n, batch_size, world_size, sizes):
    groups = pair_groups(list(range(n)), batch_size, seed=0, world_size=world_size)
    assert [len(g) for g in groups] == sizes
    assert sorted(i for g in groups for i in g) == list(range(n))  # every pair once


def test_pair_groups_refuse_fewer_pairs_than_processes():
    with pytest.raises(LmplugError, match="at least one sentence pair per process .*found batch_size 4 and 1 pairs"):
        pair_groups([3], 4, seed=0, world_size=2)
    with pytest.raises(LmplugError, match="found batch_size 2 and 10 pairs"):
        pair_groups(list(range(10)), 2, seed=0, world_size=4)


@pytest.mark.parametrize("field, value, message", [
    ("n_enc_layer", -1, "Seq2SeqConfig.n_enc_layer: expected an integer >= 1, found -1"),
    ("n_dec_layer", 0, "Seq2SeqConfig.n_dec_layer: expected an integer >= 1, found 0"),
])
def test_seq2seq_config_needs_an_encoder_and_a_decoder(field, value, message):
    with pytest.raises(LmplugError, match=message):
        nmt_configs("tiny", {field: value})


@pytest.mark.parametrize("model, message", [
    ({"n_layer": 2}, r"config\.json: unknown Seq2SeqConfig fields \['n_layer'\]"),
    ([1, 2], r"config\.json: expected the model config as a JSON object, found list"),
    ({"n_dec_layer": 0}, r"config\.json: Seq2SeqConfig\.n_dec_layer: expected an integer >= 1"),
])
def test_bad_model_section_of_a_checkpoint(tmp_path, toy_tok, model, message):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"format": "lmplug-seq2seq", "model": model}))
    (bad / "model.safetensors").write_text("{}")
    toy_tok.save(bad / "tokenizer.model")
    with pytest.raises(LmplugError, match=message):
        load_translator(bad)


def test_resume_with_another_tokenizer_is_refused(tmp_path, toy_tok):
    src, tgt = _toy(60, 4)
    model_cfg, train_cfg, _ = nmt_configs("tiny", train_overrides=dict(max_steps=4, device="cpu"))
    train_translation(src, tgt, src[:8], tgt[:8], toy_tok, tmp_path / "m", model_cfg, train_cfg, progress=False,
                      stop_after=1)
    osrc, otgt = _toy(400, 5)
    other = train_tokenizer(otgt + osrc, tmp_path / "other.model", vocab_size=toy_tok.vocab_size, model_type="word")
    assert other.model_proto != toy_tok.model_proto
    with pytest.raises(LmplugError, match="expected the tokenizer the checkpoint was trained with .*, found .*other"):
        train_translation(src, tgt, src[:8], tgt[:8], other, tmp_path / "m", model_cfg, train_cfg, progress=False)
