#!/usr/bin/env bash
# `make demo`: the project's claims in minutes, on the reference checkpoints of models/ and the data
# the repository carries or builds from Debian's packages. Nothing is tuned here: each part decodes
# or scores a test set with the checkpoints and the dev-tuned weights its recipe's RESULTS.md
# reports, so the numbers are those of the RESULTS (the summary prints both side by side).
#
# Usage (from the repository root, after `make setup`):
#   recipes/demo/run.sh                     # all stages (~14 min on 2 cores, the Bible translation: README)
#   recipes/demo/run.sh --stage 2           # from the real-speech part on
#   recipes/demo/run.sh --lm-steps 600      # train the small LM longer
#
# Stages: 0 data: the bibles (Debian) and the Gutenberg text, split
#         1 LM: a small Transformer trained for a few minutes (recipes/lm, demo preset, bible) to show
#           training works; its test perplexity beside KenLM's and the reference LM's (models/lm-bible)
#         2 real speech: recipes/asr_real on the reference head (models/am-real-whisper), hama with its
#           committed lexicon, the committed dev weights: Cathy test and the unseen speakers
#         3 synthetic speech: recipes/asr_ctc_fusion --references on the bible test voices, with its
#           committed dev weights (skipped, and said so, where none are committed for a domain)
#         4 translation: recipes/mt_nbest_rerank --references (models/nmt-multi30k-en-de, nmt-multi30k-de-en,
#           lm-multi30k-de) on the whole Multi30k test, beam 50, with its committed dev weights
#           (results/weights/); needs data/multi30k (research-use terms, never committed: `lmplug
#           prepare-multi30k`). Else the Bible references (models/nmt-bible-es-en, nmt-bible-en-es, lm-bible; beam 12; weights in
#           results/weights/bible/); else skipped, and the one missing file said (exp/demo/mt/skipped.txt)
#         5 summary: one table printed and written to exp/demo/SUMMARY.md (tools/demo_summary.py)
# Outputs: exp/demo/{lm,real,asr,mt}/..., exp/demo/summary.json, exp/demo/SUMMARY.md
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=5; lm_steps=200; exp=exp/demo; data=data
. recipes/common/stages.sh "$@"  # options, PY, run, step
mkdir -p "$exp"
t0=$(date +%s)
lap() { echo "[demo] stage $1 done at $(( $(date +%s) - t0 )) s" >&2; }

if step 0; then
  bash recipes/lm/run.sh --scale demo --corpus "bible gutenberg" --stage 0 --stop-stage 0 --data "$data" --exp "$exp/lm"
  lap 0
fi

if step 1; then
  bash recipes/lm/run.sh --scale demo --corpus bible --stage 1 --stop-stage 4 --data "$data" --exp "$exp/lm" \
    --max-steps "$lm_steps"
  run ppl --model models/lm-bible --model "$exp/lm/demo/bible/ngram5.bin" --text "$data/bible/en.test.txt" \
    --json "$exp/lm/reference_bible.json"
  lap 1
fi

# the speech systems the summary shows (tools/demo_summary.py); the recipes' other systems are not decoded
summarized="greedy lmplug_kenlm lmplug_transformer lmplug_both"

if step 2; then
  r=recipes/asr_real/results; systems=head  # hama where its lexicon and weights are committed
  [ -f $r/hama_lexicon.txt ] && [ -f $r/weights_hama_lm.json ] && systems="head hama"
  bash recipes/asr_real/run.sh --scale cpu --am models/am-real-whisper --weights-from $r --lexicon $r/hama_lexicon.txt \
    --systems "$systems" --decode-only "$summarized hama_kenlm hama_lm" --data "$data" --exp "$exp"
  lap 2
fi

if step 3; then
  w=recipes/asr_ctc_fusion/results/weights; doms=""
  for dom in bible gutenberg; do ls "$w"/weights_"$dom"_*.json > /dev/null 2>&1 && doms="$doms $dom"; done
  if [ -n "$doms" ]; then
    bash recipes/asr_ctc_fusion/run.sh --scale cpu --references --weights-from "$w" --domains "${doms# }" \
      --decode-only "$summarized" --data "$data" --exp "$exp"
  else
    echo "[demo] no committed weights in $w: synthetic speech skipped" >&2
  fi
  lap 3
fi

if step 4; then  # Multi30k, else the Bible, else skipped: the first file missing says why
  w=recipes/mt_nbest_rerank/results/weights; rm -f "$exp/mt/skipped.txt"
  first_missing() { local f; for f in "$@"; do [ -f "$f" ] || { echo "$f"; return; }; done; }
  corpus=multi30k; weights=$w
  why=$(first_missing "$data/multi30k/manifest.json" models/{nmt-multi30k-en-de,nmt-multi30k-de-en,lm-multi30k-de}/card.json \
    "$w/weights.lm_channel.json")
  if [ -n "$why" ] && [ -z "$(first_missing models/{nmt-bible-es-en,nmt-bible-en-es,lm-bible}/card.json \
        "$w/bible/weights.lm_channel.json")" ]; then
    corpus=bible; weights=$w/bible; why=""
  fi
  if [ -z "$why" ]; then
    bash recipes/mt_nbest_rerank/run.sh --scale cpu --corpus $corpus --references --weights-from "$weights" \
      --data-dir "$data" --exp "$exp/mt"
  else
    mkdir -p "$exp/mt"; echo "no $why" > "$exp/mt/skipped.txt"
    echo "[demo] translation skipped: no $why" >&2
  fi
  lap 4
fi

if step 5; then
  "$PY" tools/demo_summary.py "$exp" --out "$exp/summary.json" --markdown "$exp/SUMMARY.md"
fi
