import json

import pytest
import torch
from safetensors.torch import load_file

from lmplug.checkpoint import load_lm
from lmplug.errors import LmplugError
from lmplug.model import LMConfig
from lmplug.scoring import perplexity, score_sentences
from lmplug.train import TrainConfig, lr_at, pick_device, seed_step, train_lm

MODEL = LMConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.1)  # dropout on: RNG must resume too
TRAIN = TrainConfig(batch_size=4, max_steps=16, lr=3e-3, warmup_steps=3, eval_every=4, eval_tokens=512, log_every=1,
                    device="cpu")


def losses(out):
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def curve(out):
    """Metric lines without the wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("tok_per_s", "elapsed_s")} for r in losses(out)]


def test_resume_follows_the_uninterrupted_curve(tmp_path, corpus, tokenizer):
    a, b = tmp_path / "a", tmp_path / "b"
    train_lm(corpus, corpus[:24], tokenizer, a, MODEL, TRAIN, progress=False)
    train_lm(corpus, corpus[:24], tokenizer, b, MODEL, TRAIN, progress=False, stop_after=6)  # "killed" at step 6
    assert json.loads((b / "checkpoint" / "trainer" / "state.json").read_text())["step"] == 6
    train_lm(corpus, corpus[:24], tokenizer, b, MODEL, TRAIN, progress=False)  # same command again resumes
    assert curve(a) == curve(b) and len(curve(a)) == 16 + 4
    wa = load_file(str(a / "checkpoint" / "model.safetensors"))
    wb = load_file(str(b / "checkpoint" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_sigterm_stops_at_a_step_boundary_and_resumes_exactly(tmp_path, corpus, tokenizer, monkeypatch):
    import os
    import signal

    import lmplug.train as train

    a, b = tmp_path / "a", tmp_path / "b"
    train_lm(corpus, corpus[:24], tokenizer, a, MODEL, TRAIN, progress=False)
    lr_at = train.lr_at

    def term_at_6(step, cfg):  # a `kill` arriving in the middle of step 7
        if step == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return lr_at(step, cfg)

    monkeypatch.setattr(train, "lr_at", term_at_6)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        train_lm(corpus, corpus[:24], tokenizer, b, MODEL, TRAIN, progress=False)
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    assert json.loads((b / "checkpoint" / "trainer" / "state.json").read_text())["step"] == 7
    monkeypatch.setattr(train, "lr_at", lr_at)
    train_lm(corpus, corpus[:24], tokenizer, b, MODEL, TRAIN, progress=False)
    assert curve(a) == curve(b)
    wa = load_file(str(a / "checkpoint" / "model.safetensors"))
    wb = load_file(str(b / "checkpoint" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def same_weights(a, b):
    wa = load_file(str(a / "checkpoint" / "model.safetensors"))
    wb = load_file(str(b / "checkpoint" / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ctrl_c_during_evaluation_resumes_exactly(tmp_path, corpus, tokenizer, monkeypatch):
    """Ctrl-C while evaluating (or saving) after step 8: the checkpoint of step 8 resumes with step 9's
    dropout masks, not step 8's again (dropout 0.1 in MODEL)."""
    import lmplug.train as train

    a, b = tmp_path / "a", tmp_path / "b"
    train_lm(corpus, corpus[:24], tokenizer, a, MODEL, TRAIN, progress=False)
    evaluate, calls = train.evaluate, []

    def ctrl_c_at_second_evaluation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", ctrl_c_at_second_evaluation)
    with pytest.raises(KeyboardInterrupt):
        train_lm(corpus, corpus[:24], tokenizer, b, MODEL, TRAIN, progress=False)
    assert json.loads((b / "checkpoint" / "trainer" / "state.json").read_text())["step"] == 8
    monkeypatch.setattr(train, "evaluate", evaluate)
    train_lm(corpus, corpus[:24], tokenizer, b, MODEL, TRAIN, progress=False)
    assert [r for r in curve(a) if "loss" in r] == [r for r in curve(b) if "loss" in r]
    assert same_weights(a, b)


def test_dropout_masks_depend_on_seed_rank_and_step_only():
    """What makes resume exact on every torchrun rank: no RNG state carried from step to step."""
    seed_step(1234, 1, 7)
    first = torch.rand(8)
    torch.rand(100)  # whatever ran before (another step, an evaluation, a restart)
    seed_step(1234, 1, 7)
    assert torch.equal(torch.rand(8), first)
    for other in ((1234, 0, 7), (1234, 1, 8), (1235, 1, 7)):
        seed_step(*other)
        assert not torch.equal(torch.rand(8), first), other


def test_resume_with_another_tokenizer_is_refused(tmp_path, corpus, tokenizer):
    from lmplug.tokenizer import train_tokenizer

    out = tmp_path / "lm"
    train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False, stop_after=1)
    other = train_tokenizer(corpus, tmp_path / "bpe.model", vocab_size=tokenizer.vocab_size, model_type="bpe")
    assert (other.vocab_size, other.bos_id, other.eos_id) == (tokenizer.vocab_size, tokenizer.bos_id, tokenizer.eos_id)
    shard = (out / "data" / "train.bin").read_bytes()
    with pytest.raises(LmplugError, match=r"expected the tokenizer the checkpoint was trained with .*, found .*bpe\.model"):
        train_lm(corpus, corpus[:24], other, out, MODEL, TRAIN, progress=False)
    assert (out / "data" / "train.bin").read_bytes() == shard  # refused before the text is encoded with it


def test_corrupt_checkpoint_is_named_not_a_traceback(tmp_path, corpus, tokenizer):
    out = tmp_path / "lm"
    train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False, stop_after=1)
    ckpt = out / "checkpoint"
    state = json.loads((ckpt / "trainer" / "state.json").read_text())
    cases = [
        ("model.safetensors", lambda b: b[: len(b) // 2], r"model\.safetensors: corrupt or unreadable"),
        ("trainer/optimizer.safetensors", lambda b: b[: len(b) // 2],
         r"optimizer\.safetensors: expected the optimizer state of this model, found a corrupt"),
        ("trainer/state.json", lambda b: json.dumps({k: v for k, v in state.items() if k != "optimizer"}).encode(),
         r"state\.json: expected an object with keys \['step', 'elapsed_s', 'optimizer'\]"),
    ]
    for name, damage, message in cases:
        good = (ckpt / name).read_bytes()
        (ckpt / name).write_bytes(damage(good))
        with pytest.raises(LmplugError, match=message):
            train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False)
        (ckpt / name).write_bytes(good)
    train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False, stop_after=1)  # intact again


def test_dev_text_too_short_fails_before_training(tmp_path, corpus, tokenizer):
    out = tmp_path / "lm"
    with pytest.raises(LmplugError, match=r"dev\.bin: dev text too short, expected at least block_size\+1 = 33 tokens"):
        train_lm(corpus, ["god"], tokenizer, out, MODEL, TRAIN, progress=False)
    assert not (out / "checkpoint").exists() and not (out / "metrics.jsonl").exists()


def test_stop_after_must_be_positive(tmp_path, corpus, tokenizer, capsys):
    from lmplug.cli.main import main

    with pytest.raises(LmplugError, match="stop_after: expected an integer >= 1, found 0"):
        train_lm(corpus, corpus[:24], tokenizer, tmp_path / "lm", MODEL, TRAIN, progress=False, stop_after=0)
    args = ["train-lm", "--train", "t.txt", "--dev", "d.txt", "--tokenizer", "x.model", "--out", str(tmp_path / "o")]
    assert main([*args, "--stop-after", "-1"]) == 2
    assert "--stop-after: expected an integer >= 1, found -1" in capsys.readouterr().err


def test_training_lowers_dev_loss_and_checkpoint_loads(tmp_path, corpus, tokenizer):
    out = tmp_path / "lm"
    cfg = TrainConfig(**{**TRAIN.__dict__, "max_steps": 40, "eval_every": 20})
    summary = train_lm(corpus, corpus[:24], tokenizer, out, MODEL, cfg, progress=False)
    dev = [r["dev_loss"] for r in losses(out) if "dev_loss" in r]
    assert len(dev) == 2 and dev[1] < dev[0]
    assert summary["tokens_seen"] == 40 * 4 * 32
    lm = load_lm(out)  # a training output dir resolves to its checkpoint
    res = perplexity(score_sentences(lm, corpus[:12]))
    assert res["ppl_token"] < tokenizer.vocab_size  # better than uniform after 40 steps


def test_resume_with_other_config_is_refused(tmp_path, corpus, tokenizer):
    out = tmp_path / "lm"
    train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False, stop_after=2)
    other = LMConfig(**{**MODEL.to_dict(), "n_embd": 64})
    with pytest.raises(LmplugError, match="use another --out or --no-resume"):
        train_lm(corpus, corpus[:24], tokenizer, out, other, TRAIN, progress=False)


def test_weights_without_trainer_state_are_not_silently_replaced(tmp_path, corpus, tokenizer):
    out = tmp_path / "lm"
    train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False, stop_after=2)
    (out / "checkpoint" / "trainer" / "state.json").unlink()
    weights = (out / "checkpoint" / "model.safetensors").read_bytes()
    with pytest.raises(LmplugError, match="no trainer state .*--no-resume"):
        train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False)
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == weights
    train_lm(corpus, corpus[:24], tokenizer, out, MODEL, TRAIN, progress=False, resume=False, stop_after=1)


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "batch_size: expected an integer >= 1, found 0"),
    ("max_steps", -1, "max_steps: expected an integer >= 1"),
    ("lr", -1.0, "lr: expected a number > 0"),
    ("eval_every", 0, "eval_every: expected an integer >= 1"),
    ("warmup_steps", -5, "warmup_steps: expected an integer >= 0"),
    ("lr", float("nan"), "lr: expected a number > 0"),
])
def test_train_config_rejects_nonsense(field, value, message):
    with pytest.raises(LmplugError, match=message):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("field, value, message", [
    ("block_size", 0, "block_size: expected an integer >= 1, found 0"),
    ("n_embd", "256", "n_embd: expected an integer >= 1, found '256'"),
    ("dropout", 1.5, "0 <= dropout < 1"),
    ("eos_id", 4000, "below vocab_size"),
])
def test_model_config_rejects_nonsense(field, value, message):
    with pytest.raises(LmplugError, match=message):
        LMConfig(**{field: value})


def test_empty_and_short_corpus(tmp_path, corpus, tokenizer):
    with pytest.raises(LmplugError, match="empty corpus"):
        train_lm([], ["a"], tokenizer, tmp_path / "x", MODEL, TRAIN, progress=False)
    with pytest.raises(LmplugError, match="expected more than block_size"):
        train_lm(["god"], corpus[:24], tokenizer, tmp_path / "y", MODEL, TRAIN, progress=False)


def test_pick_device_names_bad_or_absent_devices(monkeypatch):
    with pytest.raises(LmplugError, match="expected a device such as auto, cpu, cuda or cuda:0, found 'foo'"):
        pick_device("foo")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(LmplugError, match=r"'cuda:7' requested but this machine has 2 CUDA device\(s\): expected cuda:0..cuda:1"):
        pick_device("cuda:7")
    assert pick_device("cuda:1") == torch.device("cuda:1")


def test_pick_device_gives_each_torchrun_process_its_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda", local_rank=1) == torch.device("cuda:1")  # training under torchrun
    assert pick_device("auto", local_rank=1) == torch.device("cuda:1")
    assert pick_device("cuda:0", local_rank=1) == torch.device("cuda:0")  # an explicit index is kept
    assert pick_device("cpu", local_rank=1) == torch.device("cpu")
    assert pick_device("cuda") == torch.device("cuda")  # not a torchrun process: as given
    with pytest.raises(LmplugError, match="'cuda:2' requested but this machine has 2 CUDA device"):
        pick_device("cuda", local_rank=2)


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes(tmp_path, corpus, tokenizer):
    """The gpu preset trains with torch.compile: same curve and weights as eager (dropout off), plain
    parameter names in the checkpoint, and a compiled run resumes from it (~1 min on CPU: two compiles)."""
    from dataclasses import replace

    cfg = replace(TRAIN, max_steps=6, eval_every=3)
    model = replace(MODEL, dropout=0.0)
    a, b = tmp_path / "eager", tmp_path / "compiled"
    train_lm(corpus, corpus[:24], tokenizer, a, model, cfg, progress=False)
    train_lm(corpus, corpus[:24], tokenizer, b, model, replace(cfg, compile=True), progress=False, stop_after=3)
    train_lm(corpus, corpus[:24], tokenizer, b, model, replace(cfg, compile=True), progress=False)
    ca, cb = curve(a), curve(b)
    assert [r["step"] for r in cb] == [r["step"] for r in ca]
    for ra, rb in zip(ca, cb):
        for k in ("loss", "dev_loss"):
            if k in ra:
                assert rb[k] == pytest.approx(ra[k], abs=1e-4), (ra, rb)
    wa = load_file(str(a / "checkpoint" / "model.safetensors"))
    wb = load_file(str(b / "checkpoint" / "model.safetensors"))
    assert wa.keys() == wb.keys() and not any("_orig_mod" in k for k in wb)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-4), k
    assert load_lm(b).config == load_lm(a).config
