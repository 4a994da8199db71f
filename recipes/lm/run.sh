#!/usr/bin/env bash
# Transformer LM vs KenLM 5-gram, per-word perplexity on held-out text.
#
# Usage (from the repository root, after `make setup`):
#   recipes/lm/run.sh --scale cpu                         # both corpora, all stages
#   recipes/lm/run.sh --scale tiny --corpus bible         # seconds; what the test suite runs
#   recipes/lm/run.sh --scale cpu --corpus gutenberg --stage 3 --stop-stage 4
#   recipes/lm/run.sh --scale cpu --stage 3 --stop-stage 4 --max-steps 8000   # train on past the preset
#   recipes/lm/run.sh --scale cpu --corpus bible --stop-stage 2 --kenlm-only  # data and KenLM, no tokenizer
#
# Corpora: bible (embedded default: Debian's KJV + WEB, lowercased, split by book; see
#          data/README.md) and gutenberg (--gutenberg PATH, default data/gutenberg/gutenberg_nltk17.txt:
#          public-domain Project Gutenberg books, committed; data/README.md).
# Stages:  0 data   1 tokenizer   2 KenLM 5-gram   3 Transformer LM   4 perplexity   5 results.json
# --max-steps N overrides the scale's number of steps; an lm/ checkpoint of fewer steps is resumed
#          and trained on to N (the cosine schedule re-stretched to N: the learning rate jumps up once).
# Outputs: exp/lm/<scale>/<corpus>/{tok.model,ngram5.arpa,ngram5.bin,lm/,ppl.json}, exp/lm/<scale>/results.json
set -euo pipefail
cd "$(dirname "$0")/../.."

scale=cpu; corpus="bible gutenberg"; stage=0; stop_stage=5
gutenberg=data/gutenberg/gutenberg_nltk17.txt; data=data; exp=exp/lm; max_steps=""; kenlm_only=0
flags="kenlm_only"  # skip stage 1: the tokenizer only the Transformer needs (the speech recipes' reference LMs bring theirs)
. recipes/common/stages.sh "$@"  # options, PY, run, step

for c in $corpus; do
  d=$exp/$scale/$c; mkdir -p "$d"
  case $c in
    bible) src=$data/bible; train=$src/en.train.txt; dev=$src/en.dev.txt; test=$src/en.test.txt;;
    gutenberg) src=$data/gutenberg; train=$src/train.txt; dev=$src/dev.txt; test=$src/test.txt;;
    *) echo "unknown corpus $c (bible|gutenberg)" >&2; exit 2;;
  esac
  if step 0; then
    if [ $c = bible ]; then run prepare-bible --out "$src"
    elif [ -f "$gutenberg" ]; then run prepare-text --input "$gutenberg" --out "$src"
    elif [ -f "$test" ]; then echo "[lm] $gutenberg absent: using the prepared $src" >&2  # e.g. carried to a GPU machine
    else echo "expected $gutenberg or a prepared $src/" >&2; exit 2; fi
  fi
  if [ "$scale" = tiny ]; then  # seconds: small slices of the same splits
    head -n 3000 "$train" > "$d/train.txt"; head -n 300 "$dev" > "$d/dev.txt"; head -n 300 "$test" > "$d/test.txt"
    train=$d/train.txt; dev=$d/dev.txt; test=$d/test.txt
  fi
  if step 1 && [ "$kenlm_only" = 0 ]; then
    run train-tokenizer --text "$train" --out "$d/tok.model" --scale "$scale"
  fi
  if step 2; then
    run train-ngram --text "$train" --out "$d/ngram5" --order 5 | tee "$d/ngram5.json"
  fi
  if step 3; then
    run train-lm --train "$train" --dev "$dev" --tokenizer "$d/tok.model" --out "$d/lm" --scale "$scale" ${max_steps:+--max-steps $max_steps}
  fi
  if step 4; then
    run ppl --model "$d/lm" --model "$d/ngram5.bin" --text "$test" --json "$d/ppl.json"
  fi
done
if step 5; then
  "$PY" tools/lm_results.py "$exp/$scale" --out "$exp/$scale/results.json"
fi
