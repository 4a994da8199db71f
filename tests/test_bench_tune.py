"""tools/bench_tune.py with a tiny LM: both runs agree, the memo forwards fewer tokens, JSON and table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ctc_helpers import SENTENCES, tiny_lm

ROOT = Path(__file__).resolve().parents[1]


def test_bench_tune_compares_the_memo_with_none(tmp_path):
    pytest.importorskip("jiwer")
    from lmplug.checkpoint import save_lm

    lm = tiny_lm(tmp_path, steps=20)
    save_lm(tmp_path / "lm", lm.model, lm.tokenizer)
    (tmp_path / "text.txt").write_text("".join(f"{s}\n" for s in SENTENCES * 2))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_tune.py"), "--text", str(tmp_path / "text.txt"),
                          "--n", "10", "--lm", str(tmp_path / "lm"), "--beam-size", "4", "--lm-weights", "0.5,1",
                          "--bonuses", "0,1", "--out", str(tmp_path / "b.json")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads((tmp_path / "b.json").read_text())
    checks = doc["checks"]
    assert checks["grid identical"] and checks["weights identical"] and checks["signature identical"]
    assert checks["grid points with identical texts"] == "4/4"
    plain, memo = doc["runs"]["plain"]["lm_work"], doc["runs"]["memo"]["lm_work"]
    assert checks["LM tokens memo / plain"] == memo["tokens"] / plain["tokens"] < 1
    assert doc["runs"]["memo"]["memo"]["word_hits"] > 0 and "|n:10|" in doc["signature"]
    assert "| memo |" in res.stdout and "grid identical: True" in res.stdout
