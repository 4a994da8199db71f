"""recipes/asr_ctc_fusion/run.sh at tiny scale: every stage, real espeak-ng audio, real lmplz."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("diatheke") is None
    or not (Path(sys.executable).parent / "lmplz").is_file(),
    reason="needs espeak-ng, diatheke and lmplz (tools/setup.sh)",
)
def test_asr_recipe_tiny_end_to_end(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", "recipes/asr_ctc_fusion/run.sh", "--scale", "tiny", "--domains", "bible",
           "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp")]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "exp" / "asr" / "tiny" / "results.json").read_text())
    systems = res["domains"]["bible"]["systems"]
    assert set(systems) == {"greedy", "beam", "pyctcdecode_kenlm", "lmplug_kenlm", "kenlm_rescore",
                            "lmplug_transformer", "lmplug_both"}
    for name, row in systems.items():
        assert 0.0 <= row["cer"] <= 1.5 and row["utt_per_s"] > 0, name
    assert systems["lmplug_kenlm"]["weights"].keys() == {"kenlm", "words"}
    assert {"kenlm", "lm", "words"} <= systems["kenlm_rescore"]["weights"].keys()
    assert systems["lmplug_both"]["weights"].keys() == {"kenlm", "lm", "words"}
    assert systems["lmplug_both"]["weights"]["kenlm"] in (0.25, 0.5)  # the tiny grid's --outer kenlm=0.25,0.5
    tuned = json.loads((tmp_path / "exp" / "asr" / "tiny" / "bible" / "tune_both" / "weights.json").read_text())
    assert tuned["outer_name"] == "kenlm" and tuned["wer"] == min(tuned["outer_wer"])
    # held-out voices: no test voice spoke in training audio
    train = [json.loads(l) for l in (tmp_path / "data" / "speech_tiny" / "bible" / "train.jsonl").read_text().splitlines()]
    test = [json.loads(l) for l in (tmp_path / "data" / "speech_tiny" / "bible" / "test.jsonl").read_text().splitlines()]
    assert not {u["voice"] for u in train} & {u["voice"] for u in test}
    assert not {u["text"] for u in train} & {u["text"] for u in test}
    # --lm-steps trains the LM on from its checkpoint (the tokenizer and KenLM kept), as on a lent GPU
    lm = tmp_path / "exp" / "lm" / "tiny" / "bible"
    tok = (lm / "tok.model").read_bytes()
    before = json.loads((lm / "lm" / "train_summary.json").read_text())
    r = subprocess.run(cmd + ["--stage", "1", "--stop-stage", "1", "--lm-steps", "70"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    after = json.loads((lm / "lm" / "train_summary.json").read_text())
    assert (lm / "tok.model").read_bytes() == tok and "train-tokenizer" not in r.stderr
    assert after["steps"] == 70 > before["steps"], (before, after)


def test_decode_only_names_the_systems_stage_5_decodes():
    """recipes/common/ctc_systems.sh: `--decode-only` (make demo: the systems its summary shows) picks
    systems by their hyps_<name>; empty decodes every system."""
    script = ('set -euo pipefail; . recipes/common/ctc_systems.sh; decode_only="greedy lmplug_both"; '
              'for s in greedy beam lmplug_both kenlm_rescore; do wants $s && echo $s || true; done; '
              'decode_only=""; wants beam && echo all')
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["greedy", "lmplug_both", "all"]
