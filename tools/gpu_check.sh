#!/usr/bin/env bash
# The one script a session with a lent GPU runs once (issue 6): environment report, correctness on
# the device (decoder == its CPU result, the device search search="torch" == the numpy search, KV
# cache == full forward), benchmarks (LM training tokens/s and MFU in bf16, scoring tokens/s, CTC +
# Transformer-LM decoding RTF at batch 1 and 32, host search and device search, and a profile of
# one device-search batch: kernels and device busy time per step), and with --recipes the
# gpu-scale recipes. Everything lands in $OUT (default exp/gpu_check): gpu_check.json
# (the recipes' results.json inside), gpu_check.log (this output), recipes.log, and with --bring the
# files to bring back as bring.tar.gz.partNN (the device tool returns at most 8 files, 16 MiB each).
#
# Usage (from anywhere; options are tools/gpu_check.py's, see its --help):
#   OUT=$OUT bash tools/gpu_check.sh                    # on the GPU machine, ~8-10 minutes (estimated)
#   bash tools/gpu_check.sh --tiny                      # CPU, ~1 minute (tests/test_gpu_check.py)
#   OUT=$OUT bash tools/gpu_check.sh --only train,decode_rtf --train-configs wide
#   OUT=$OUT bash tools/gpu_check.sh --recipes --recipes-seconds 420
# Without CUDA the script runs on CPU at tiny sizes and says so. Python: $PYTHON, else the first of
# .venv/bin/python and python3 whose torch sees CUDA, else .venv/bin/python, else python3. Exit
# status: 1 if a step failed or a correctness check disagreed.
# The GPU image has no kenlm, pyctcdecode, jiwer, soundfile, lmplz or espeak-ng: with .device (made
# here by tools/device_bundle.sh, ~9 MiB) carried, this script sources tools/device_env.sh, which
# installs them there (kenlm compiled, ~1 min); without it those checks and recipe stages are skipped
# or stop, and say so. The recipes read data/ (carry data/bible, 22 MiB, and data/gutenberg, 5.5 MiB).
# LMPLUG_NO_BUNDLE=1: ignore .device. A lent session's call, e.g.:
#   carry [".device", "data/bible", "data/gutenberg"]
#   OUT=$OUT bash tools/gpu_check.sh --recipes --recipes-seconds 300
# and, to train the speech recipe's cpu-scale models there and bring them back (issue 4's stronger LM):
#   OUT=$OUT bash tools/gpu_check.sh --only env,recipes,bring --recipes-seconds 540 \
#     --recipe "recipes/asr_ctc_fusion/run.sh --scale cpu --stop-stage 3 --lm-steps 9600" \
#     --bring "exp/lm/cpu/*/tok.model,exp/lm/cpu/*/lm,exp/asr/cpu/*/emissions_*,exp/asr/cpu/am/*.json*"
# then here: cat FILES_AT/bring.tar.gz.part* | tar -xzf -   (from the repository root)
# The device search (search="torch") with the recipes' LM size, L4-C256 (the gpu preset's L12-C768
# moves 9x more KV-cache bytes a frame: 12 layers x 768 vs 4 x 256): here
#   mkdir -p exp/carry_lm && cp exp/lm/demo/bible/lm/checkpoint/{config.json,model.safetensors,tokenizer.model} exp/carry_lm/
#   cp data/bible/en.test.txt exp/carry_lm/     # real sentences for its tokenizer (18 MiB in all)
# carry [".device", "exp/carry_lm"], and there (the training benchmark trains its own models)
#   OUT=$OUT bash tools/gpu_check.sh --lm exp/carry_lm --text exp/carry_lm/en.test.txt
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
bundle=${LMPLUG_DEVICE_BUNDLE:-.device}
{
  echo "[gpu_check] python: $PYTHON, out: $OUT"
  if [ -d "$bundle" ] && [ -z "${LMPLUG_NO_BUNDLE:-}" ]; then
    source tools/device_env.sh "$bundle" || true
  fi
  "$PYTHON" tools/gpu_check.py --out "$OUT" "$@"
} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
