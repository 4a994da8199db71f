"""tools/bench_decode.py with tiny models: the peers running the same Transformer, lm_work, --systems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ctc_helpers import SENTENCES, tiny_arpa, tiny_lm

ROOT = Path(__file__).resolve().parents[1]
TRANSFORMER_ROWS = ("lmplug+transformer:word", "pyctcdecode+transformer", "torchaudio+transformer",
                    "lmplug+transformer:token")


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "bench_decode.py"), *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_bench_peers_with_the_same_transformer(tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("flashlight.lib.text", reason="flashlight-text not installed (pip install flashlight-text==0.0.7)")
    from lmplug.checkpoint import save_lm

    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found next to sys.executable or on PATH")
    lm = tiny_lm(tmp_path, steps=40)
    save_lm(tmp_path / "lm", lm.model, lm.tokenizer)
    (tmp_path / "text.txt").write_text("".join(f"{s}\n" for s in SENTENCES))
    common = ["--text", str(tmp_path / "text.txt"), "--kenlm", str(arpa), "--lm", str(tmp_path / "lm"), "--n", "5",
              "--beams", "4"]
    res = bench(*common, "--systems", ",".join(TRANSFORMER_ROWS), "--out", str(tmp_path / "b.json"))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads((tmp_path / "b.json").read_text())
    rows = {r["system"]: r for r in doc["rows"]}
    assert set(rows) == {"greedy", *TRANSFORMER_ROWS}
    n_words = sum(len(s.split()) for s in SENTENCES)
    for name in TRANSFORMER_ROWS:
        w = rows[name]["lm_work"]
        assert 0 < w["forwards"] <= w["rows"] <= w["tokens"] <= w["padded_tokens"], (name, w)
        assert w["tokens_per_utt"] == w["tokens"] / 5 and w["tokens_per_word"] == w["tokens"] / n_words
    assert "lm_work" not in rows["greedy"] and rows["torchaudio+transformer"]["build_s"] > 0
    ours = rows["lmplug+transformer:word"]
    for peer in ("pyctcdecode+transformer", "torchaudio+transformer"):
        assert doc["checks"][f"lmplug+transformer:word / {peer} utt/s at beam 4"] == pytest.approx(
            ours["utt_per_s"] / rows[peer]["utt_per_s"])
        assert doc["checks"][f"WER lmplug+transformer:word - {peer} at beam 4"] == pytest.approx(
            ours["wer"] - rows[peer]["wer"])
        assert rows[peer]["wer"] < rows["greedy"]["wer"]  # the LM is in use
    assert "lmplug+transformer:word / pyctcdecode+transformer utt/s at beam 4:" in res.stdout
    res = bench(*common, "--systems", "lmplug,lmplug+transformer", "--out", str(tmp_path / "c.json"))
    assert res.returncode != 0 and "found lmplug+transformer" in res.stderr
