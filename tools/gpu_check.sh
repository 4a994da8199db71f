#!/usr/bin/env bash
# The one script a session with a lent GPU runs once (issue 6): environment report, correctness on
# the device (decoder == its CPU result, KV cache == full forward), benchmarks (LM training tokens/s
# and MFU in bf16, scoring tokens/s, CTC + Transformer-LM decoding RTF at batch 1 and 32), and with
# --recipes the gpu-scale recipes. Everything lands in $OUT (default exp/gpu_check):
# gpu_check.json, gpu_check.log (this output), recipes.log and recipe_<name>.json.
#
# Usage (from anywhere; options are tools/gpu_check.py's, see its --help):
#   OUT=$OUT bash tools/gpu_check.sh                    # on the GPU machine, ~5 minutes
#   bash tools/gpu_check.sh --tiny                      # CPU, ~1 minute (tests/test_gpu_check.py)
#   OUT=$OUT bash tools/gpu_check.sh --only train,decode_rtf --train-configs wide
#   OUT=$OUT bash tools/gpu_check.sh --recipes --recipes-seconds 420
# Without CUDA the script runs on CPU at tiny sizes and says so. Python: $PYTHON, else the first of
# .venv/bin/python and python3 whose torch sees CUDA, else .venv/bin/python, else python3 (the GPU
# image's python3 has torch 2.11 and numpy 2, but no kenlm, pyctcdecode or jiwer: those checks are
# skipped and say so). Exit status: 1 if a step failed or a correctness check disagreed.
# --recipes runs what the recipes can reach there: they read data/ (not sent unless carried; data/bible
# is 22 MiB) and the GPU image has no lmplz, kenlm or espeak-ng: a recipe stops at its first stage
# that needs one of them, and recipes.log says where.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-exp/gpu_check}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
  for py in .venv/bin/python python3; do
    if [ -x "$(command -v "$py")" ] && "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
      PYTHON=$py; break
    fi
  done
  if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
  fi
fi
export PYTHON PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "[gpu_check] python: $PYTHON, out: $OUT"
"$PYTHON" tools/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
