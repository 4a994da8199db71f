"""Data-parallel training on CPU: 2 gloo processes under torchrun vs 1 process, same global batch."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TORCHRUN = Path(sys.executable).parent / "torchrun"


def train_lm_args(tmp_path: Path, corpus, tokenizer, eval_every: int, dropout: float = 0.0
                  ) -> tuple[list[str], dict]:
    """`lmplug train-lm` arguments for 8 tiny steps (without dropout by default), and a 1-thread environment."""
    (tmp_path / "train.txt").write_text("\n".join(corpus) + "\n")
    (tmp_path / "dev.txt").write_text("\n".join(corpus[:24]) + "\n")
    tokenizer.save(tmp_path / "tok.model")
    common = ["train-lm", "--train", str(tmp_path / "train.txt"), "--dev", str(tmp_path / "dev.txt"),
              "--tokenizer", str(tmp_path / "tok.model"), "--scale", "tiny", "--max-steps", "8",
              "--eval-every", str(eval_every), "--batch-size", "8", "--dropout", str(dropout), "--device", "cpu"]
    return common, {"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}


@pytest.mark.skipif(not TORCHRUN.is_file() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_gloo_processes_match_one(tmp_path, corpus, tokenizer):
    common, env = train_lm_args(tmp_path, corpus, tokenizer, eval_every=8)
    one = subprocess.run([sys.executable, "-m", "lmplug", *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = str(TORCHRUN) if TORCHRUN.is_file() else shutil.which("torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "lmplug", *common,
                          "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert "world 2" in two.stdout
    a = load_file(str(tmp_path / "one" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoint" / "model.safetensors"))
    for k in a:
        # per-rank means of the loss differ from the global mean only by the <s> targets each rank ignores
        torch.testing.assert_close(a[k], b[k], atol=2e-3, rtol=1e-2, msg=k)
    # and training really moved the weights away from their (seeded) initial values
    from lmplug.checkpoint import load_lm
    from lmplug.model import TransformerLM

    cfg = load_lm(tmp_path / "one").config
    torch.manual_seed(1234)
    init = TransformerLM(cfg).state_dict()
    assert max(float((a[k] - init[k]).abs().max()) for k in a) > 1e-2


@pytest.mark.skipif(not TORCHRUN.is_file() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_resume_on_a_different_number_of_processes(tmp_path, corpus, tokenizer):
    """4 steps on 2 gloo processes, then the last 4 on 1 process == 8 steps on 1 process."""
    common, env = train_lm_args(tmp_path, corpus, tokenizer, eval_every=4)
    torchrun = str(TORCHRUN) if TORCHRUN.is_file() else shutil.which("torchrun")
    first = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "lmplug", *common, "--stop-after", "4",
                            "--out", str(tmp_path / "mixed")], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    import json

    assert json.loads((tmp_path / "mixed" / "checkpoint" / "trainer" / "state.json").read_text())["step"] == 4
    logs = {}
    for out in ("mixed", "one"):  # resume the 2-process run on 1 process; and a plain 1-process run
        r = subprocess.run([sys.executable, "-m", "lmplug", *common, "--out", str(tmp_path / out)],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        logs[out] = r.stdout
    assert "world 1, steps 4->8" in logs["mixed"] and "steps 0->8" in logs["one"]
    a = load_file(str(tmp_path / "one" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "mixed" / "checkpoint" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-3, rtol=1e-2, msg=k)


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.is_file() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_process_resume_with_dropout_is_exact(tmp_path, corpus, tokenizer):
    """2 processes with dropout: 4 steps, a restart, 4 more == 8 steps in one go (rank 1's masks too;
    three torchrun starts, ~30 s; test_train.py checks the per-step seeding itself in milliseconds)."""
    common, env = train_lm_args(tmp_path, corpus, tokenizer, eval_every=4, dropout=0.1)
    torchrun = str(TORCHRUN) if TORCHRUN.is_file() else shutil.which("torchrun")
    two = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "lmplug", *common]
    for out, extra in (("whole", []), ("split", ["--stop-after", "4"]), ("split", [])):
        r = subprocess.run([*two, *extra, "--out", str(tmp_path / out)], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    assert "world 2, steps 4->8" in r.stdout
    a = load_file(str(tmp_path / "whole" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "checkpoint" / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
