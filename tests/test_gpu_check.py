"""tools/gpu_check.sh at tiny size on CPU: every step reports, with the keys and sane numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_check(out: Path, *args: str, hide: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    if hide:
        env["PYTHONPATH"] = str(hide)
    return subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--tiny", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_tiny_gpu_check_on_cpu(tmp_path):
    res = run_check(tmp_path / "out", "--work", str(tmp_path / "work"))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    steps = doc["steps"]
    assert list(steps) == ["env", "setup", "decode_equal", "kenlm_equal", "torch_equal", "kv_cache", "matmul", "train",
                           "score", "decode_rtf", "decode_profile"]
    assert all(s["status"] == "ok" for n, s in steps.items() if n != "kenlm_equal"), doc["table"]
    assert steps["kenlm_equal"]["status"] in ("ok", "skipped")
    if not torch.cuda.is_available():
        assert doc["device"] == "cpu" and "CUDA not available" in doc["fallback"] and doc["mode"] == "tiny"
    assert doc["signature"].startswith("gpu_check|mode:tiny|") and "lmplug:" in doc["signature"]
    env = steps["env"]
    assert env["torch"] == torch.__version__ and set(env["optional"]) >= {"kenlm", "pyctcdecode", "jiwer", "sacrebleu"}
    for name in ("decode_equal", "torch_equal"):
        eq = steps[name]
        assert eq["equal"] and eq["same"] == eq["utterances"] > 0 and eq["max_abs_score_diff"] < 1e-3, name
    assert "mode:token" in steps["torch_equal"]["signature"]
    kv = steps["kv_cache"]
    assert kv["equal"] and kv["max_abs_step_diff"] < kv["atol"] and kv["max_abs_chunk_diff"] < kv["atol"]
    assert steps["matmul"]["flops_per_s"] > 1e8
    tr = steps["train"]["configs"]["tiny"]
    assert tr["tokens_per_s"] > 0 and tr["params"] > 0 and 0 < tr["mfu"] < tr["mfu_with_attention"]
    assert tr["mfu"] == pytest.approx(tr["tokens_per_s"] * 6 * tr["params"] / steps["matmul"]["flops_per_s"])
    sc = steps["score"]
    assert sc["tokens_per_s"] > 0 and sc["tokens"] > sc["sentences"] > 0 and sc["max_abs_logprob_diff_vs_cpu"] < 1e-3
    rtf = steps["decode_rtf"]
    rows = rtf["batches"]
    assert set(rows) == {"1", "32", "search_only", "token_torch_1", "token_torch_32", "token_torch_search_only",
                         "token_numpy_32"} and rtf["frame_ms"] == 20.0
    for row in rows.values():
        assert row["utterances"] > 0 and row["rtf"] > 0 and abs(row["rtf"] * row["rtfx"] - 1) < 1e-9
        assert row["audio_s"] == row["frames"] * 0.02
    for name, like in (("search_only", "32"), ("token_torch_search_only", "token_torch_32"),
                       ("token_numpy_32", "token_torch_32")):  # the same utterances
        assert rows[name]["batch"] == 32 and rows[name]["audio_s"] == rows[like]["audio_s"], name
    assert rows["token_torch_32"]["search"] == "torch" and rows["token_torch_32"]["mode"] == "token"
    if "wer" in rows["token_numpy_32"]:  # the two searches agree
        assert rows["token_numpy_32"]["wer"] == rows["token_torch_32"]["wer"]
    prof = steps["decode_profile"]
    assert prof["batch"] == 32 and prof["lm_steps"] > 0 and prof["host_ops_per_step"] > 10 and prof["top"]
    if not torch.cuda.is_available():
        assert prof["device_kernels_per_step"] is None and prof["top_of"].startswith("host operations")
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert all(line in log for line in doc["table"])
    # each row printed as it ended (what a device call that runs out of time still shows)
    assert all(f"  decode_rtf: {name}: RTFx" in log for name in rows) and "  train: tiny L2" in log


def test_a_failing_step_does_not_stop_the_others(tmp_path):
    res = run_check(tmp_path / "out", "--emissions", str(tmp_path / "missing"), "--only", "decode_rtf,matmul")
    assert res.returncode == 1
    steps = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["steps"]
    assert list(steps) == ["setup", "matmul", "decode_rtf"]
    assert steps["setup"]["status"] == "failed" and "emissions not found" in steps["setup"]["error"]
    assert steps["matmul"]["status"] == "ok" and steps["decode_rtf"]["status"] == "skipped"
    assert "Traceback" in (tmp_path / "out" / "gpu_check.log").read_text()


def test_missing_kenlm_pyctcdecode_jiwer_are_skipped_and_said(tmp_path):
    """As on the GPU image: those imports fail; the checks that need them say so instead of crashing."""
    hide = tmp_path / "hide"
    hide.mkdir()
    for m in ("kenlm", "pyctcdecode", "jiwer"):
        (hide / f"{m}.py").write_text("raise ImportError('hidden by the test')\n")
    res = run_check(tmp_path / "out", "--only", "env,kenlm_equal,decode_rtf", hide=hide)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    steps = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["steps"]
    assert {m for m, ok in steps["env"]["optional"].items() if not ok} >= {"kenlm", "pyctcdecode", "jiwer"}
    assert steps["kenlm_equal"]["status"] == "skipped" and "kenlm not installed" in steps["kenlm_equal"]["note"]
    rtf = steps["decode_rtf"]
    assert rtf["status"] == "ok" and "jiwer not installed" in rtf["note"]
    assert all("wer" not in row for row in rtf["batches"].values())  # search_only has none either


def test_bring_packs_what_the_device_made_into_parts_that_unpack_here(tmp_path):
    """--bring: globs under the working directory -> bring.tar.gz.partNN of at most 15 MiB each;
    optimizer state and feature caches are left out; the parts unpack to the same bytes."""
    import tarfile

    work = tmp_path / "repo"
    ck = work / "exp/lm/cpu/bible/lm/checkpoint"
    (ck / "trainer").mkdir(parents=True)
    rng = np.random.default_rng(0)
    (ck / "model.safetensors").write_bytes(rng.bytes(20 * 2**20))  # incompressible: two parts
    (ck / "config.json").write_text('{"n_layer": 4}\n')
    (ck / "trainer" / "optimizer.safetensors").write_bytes(b"x" * 1000)
    em = work / "exp/asr/cpu/bible/emissions_dev"
    (em / "npy").mkdir(parents=True)
    (em / "manifest.jsonl").write_text('{"id": "u1"}\n')
    (em / "npy" / "u1.npy").write_bytes(rng.bytes(5000))
    (em / "feats.bin").write_bytes(b"f" * 1000)
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--tiny", "--only", "env", "--out", str(out),
           "--bring", "exp/lm/cpu/*/lm,exp/asr/cpu/*/emissions_*,exp/nothing*"]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    bring = json.loads((out / "gpu_check.json").read_text())["steps"]["bring"]
    assert bring["status"] == "ok" and bring["parts"] == ["bring.tar.gz.part00", "bring.tar.gz.part01"]
    assert bring["paths"] == ["exp/asr/cpu/bible/emissions_dev", "exp/lm/cpu/bible/lm"] and bring["files"] == 4
    assert all((out / p).stat().st_size <= 15 * 2**20 for p in bring["parts"])
    joined = tmp_path / "joined.tar.gz"
    joined.write_bytes(b"".join((out / p).read_bytes() for p in bring["parts"]))
    back = tmp_path / "back"
    with tarfile.open(joined) as tar:
        tar.extractall(back, filter="data")
    got = sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file())
    assert got == ["exp/asr/cpu/bible/emissions_dev/manifest.jsonl", "exp/asr/cpu/bible/emissions_dev/npy/u1.npy",
                   "exp/lm/cpu/bible/lm/checkpoint/config.json", "exp/lm/cpu/bible/lm/checkpoint/model.safetensors"]
    for rel in got:
        assert (back / rel).read_bytes() == (work / rel).read_bytes()
    # a path outside the working directory is refused, and nothing is packed
    res = subprocess.run(cmd[:-1] + ["../*"], cwd=work, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    step = json.loads((out / "gpu_check.json").read_text())["steps"]["bring"]
    assert step["status"] == "failed" and "expected --bring paths under" in step["error"]


def test_recipe_commands_report_their_exit_status(tmp_path):
    res = run_check(tmp_path / "out", "--only", "env", "--recipe", "recipes/lm/run.sh --scale tiny --corpus nonsense")
    assert res.returncode == 1
    rec = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["steps"]["recipes"]
    assert rec["status"] == "failed"
    assert rec["recipes"] == {"0:lm": {"command": "recipes/lm/run.sh --scale tiny --corpus nonsense", "rc": 2,
                                       "seconds": rec["recipes"]["0:lm"]["seconds"]}}
    assert "unknown corpus nonsense" in (tmp_path / "out" / "recipes.log").read_text()


def test_gpu_check_sources_a_carried_bundle(tmp_path):
    """With a bundle (tools/device_bundle.sh's layout) gpu_check.sh puts its programs first on PATH and
    reports it; wheels for another Python are left out, and said so."""
    bundle = tmp_path / "bundle"
    (bundle / "bin").mkdir(parents=True)
    for b in ("lmplz", "build_binary", "espeak-ng"):
        (bundle / "bin" / b).write_text("#!/bin/sh\nexit 0\n")
        (bundle / "bin" / b).chmod(0o755)
    (bundle / "MANIFEST.json").write_text(json.dumps({"python_tag": "cp29", "wheels": []}))
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "LMPLUG_DEVICE_BUNDLE": str(bundle),
           "LMPLUG_SITE": str(tmp_path / "site")}
    res = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--tiny", "--only", "env"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    e = json.loads((out / "gpu_check.json").read_text())["steps"]["env"]
    assert e["programs"] == {b: str(bundle / "bin" / b) for b in ("lmplz", "build_binary", "espeak-ng")}
    assert e["bundle"]["python_tag"] == "cp29" and f"bundle {bundle}" in e["summary"]
    log = (out / "gpu_check.log").read_text()
    assert "the bundle's wheels are cp29: wheels and kenlm left out" in log
    assert not (tmp_path / "site").exists() or not any((tmp_path / "site").iterdir())
    # LMPLUG_NO_BUNDLE=1 ignores it
    res = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--tiny", "--only", "env"],
                         env={**env, "LMPLUG_NO_BUNDLE": "1"}, capture_output=True, text=True, timeout=120)
    e = json.loads((out / "gpu_check.json").read_text())["steps"]["env"]
    assert "bundle" not in e and e["programs"]["espeak-ng"] != str(bundle / "bin" / "espeak-ng")
