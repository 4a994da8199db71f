#!/usr/bin/env bash
# Speech recognition with LM fusion: synthetic speech -> Conformer-CTC -> beam search with and
# without each LM -> WER/CER on held-out voices and held-out books. Weights are tuned on dev only.
#
# Usage (from the repository root, after `make setup`; the LM recipe provides the LMs and is
# run by stage 1 when its checkpoints are missing):
#   recipes/asr_ctc_fusion/run.sh --scale cpu                  # everything
#   recipes/asr_ctc_fusion/run.sh --scale tiny                 # seconds; what the test suite runs
#   recipes/asr_ctc_fusion/run.sh --scale cpu --stage 4        # re-tune and re-score only
#   recipes/asr_ctc_fusion/run.sh --scale tiny --domains bible # one domain
#   recipes/asr_ctc_fusion/run.sh --scale cpu --stage 4 --token-min-logp -5  # pyctcdecode's default pruning
#   recipes/asr_ctc_fusion/run.sh --scale cpu --stage 4 --history-words 0     # no recombination under the Transformer
#   recipes/asr_ctc_fusion/run.sh --scale cpu --stage 4 --lookahead 0         # no look-ahead inside words
#   recipes/asr_ctc_fusion/run.sh --scale cpu --stage 4 --oov-penalty -10     # Transformer systems at KenLM's partial-word penalty
#   recipes/asr_ctc_fusion/run.sh --scale cpu --stage 4 --jobs 1              # tuning grids in one process
#   recipes/asr_ctc_fusion/run.sh --scale cpu --stop-stage 3 --lm-steps 9600  # LMs trained past the preset
#   recipes/asr_ctc_fusion/run.sh --scale cpu --references     # the reference checkpoints: models/am-synthetic and
#                                                              # models/lm-<domain> (no training: stage 1 builds KenLM only)
#   recipes/asr_ctc_fusion/run.sh --scale cpu --references --weights-from recipes/asr_ctc_fusion/results/weights \
#       --exp exp/demo --domains bible                         # `make demo`: the committed dev weights, no tuning
#   recipes/asr_ctc_fusion/run.sh ... --decode-only "lmplug_kenlm lmplug_both"  # stage 5 decodes these hyps_<name> only
#
# Stages: 0 speech corpus (bible train/dev/test + gutenberg dev/test)   1 LMs (recipes/lm)
#         2 acoustic model   3 emissions   4 tune weights on dev   5 decode test   6 results
# Systems: greedy | beam (no LM) | lmplug+kenlm | pyctcdecode+kenlm | lmplug+transformer (word
#          fusion) | lmplug+kenlm+transformer (both fused) | kenlm beam, then Transformer n-best rescoring
# Outputs: exp/asr/<scale>/{am,<domain>/{emissions,tune_*,hyps_*}}, exp/asr/<scale>/results.json,
#          exp/asr/<scale>/RESULTS.fragment.md
set -euo pipefail
cd "$(dirname "$0")/../.."

# --token-min-logp: labels below this log-prob are not expanded, in every system (pyctcdecode's
# default is -5; -8 was better for KenLM and both-LM fusion on bible and Gutenberg dev, NOTES.md)
# --history-words: beams recombine also under the Transformer, by its last N words; 0: they do not
# (2 was best on bible dev without look-ahead; with it 1 was better on bible and Gutenberg dev, NOTES.md)
# --lookahead: beams spelling a word carry their LM's look-ahead (KenLM systems: its unigram mass of
# the words they can become; Transformer systems: the Transformer's probability of the word's
# first pieces); 0: none. The look-ahead was better for every lmplug system on dev, both domains
# (NOTES.md)
# --oov-penalty: log-score of a partial word that begins no known word (x length/6 past 6 letters) in
# the systems with the Transformer. -20: the Transformer spells any string from its pieces, so at the
# KenLM systems' -10 (pyctcdecode's) misspelled run-on words kept filling its beams; -20 was better
# for it on bible and Gutenberg dev, -5 and -20 no better than -10 for KenLM (NOTES.md)
# --jobs: grid points of a tuning decoded at once, one process (and cores/jobs torch threads) each;
# an interrupted stage 4 resumes from each tune dir's grid.jsonl when run again
# --gutenberg PATH: the Gutenberg text of stage 0 (default data/gutenberg/gutenberg_nltk17.txt, committed:
# data/README.md)
# --references: decode with the committed checkpoints instead of training (models/: their cards say how
# they were trained): no training speech, no stage 2, KenLM built from the same text as the LM recipe's
# --weights-from DIR: stage 4 takes DIR/weights_<domain>_<system>.json (what stage 6 writes to
# $exp/asr/<scale>/weights/) instead of tuning, and stage 3 computes no dev emissions
# --lm-steps: stage 1 trains the Transformer LMs this many steps (recipes/lm --max-steps; default: the
# scale's preset), also on past an existing checkpoint
lm_steps=""; references=0; weights_from=""; decode_only=""; scale=cpu; stage=0; stop_stage=6; beam=16; token_min_logp=-8; history_words=1; lookahead=1
oov_penalty=-20; jobs=2; data=data; exp=exp; domains="bible gutenberg"; gutenberg=data/gutenberg/gutenberg_nltk17.txt
flags="references"
. recipes/common/stages.sh "$@"  # options, PY, run, step

grid="--lm-weights 0,0.25,0.5,0.75,1.0,1.5 --bonuses=-1,0,0.5,1,2,3,4,5"  # "=": a value starting with "-"
# the Transformer decodes slower: a coarser grid, where its dev optima have been (weight 0.25 and
# bonuses 6-7 never came close; with look-ahead the optima moved to the edges 1.0 (Gutenberg) and
# bonus 1 (bible), NOTES.md)
grid_lm="--lm-weights 0.5,0.75,1.0,1.25 --bonuses 0,1,2,3,4,5"
# both fused: Transformer weight x bonus x KenLM weight (KenLM lowered under the Transformer: the
# KenLM-alone weight, 0.75, leaves the Transformer little room; measured on dev, NOTES.md)
grid_both="--lm-weights 0.5,0.75,1.0 --bonuses 0,1,2,3,4,5 --outer kenlm=0.25,0.5"
case $scale in  # utterances per split: train, dev, test
  tiny) n_train=40; n_dev=8; n_test=8; max_words=8; grid="--lm-weights 0,0.5 --bonuses 0,1"; grid_lm=$grid
        grid_both="$grid --outer kenlm=0.25,0.5";;
  demo) n_train=1000; n_dev=60; n_test=60; max_words=20; grid="--lm-weights 0.25,0.5,1.0 --bonuses 0,1,2"
        grid_lm="--lm-weights 0.5,1.0 --bonuses 0,1.5"; grid_both="--lm-weights 0.25,0.5 --bonuses 1.5,3 --outer kenlm=0.25,0.75";;
  *) n_train=3000; n_dev=200; n_test=300; max_words=25;;
esac
sp=$data/speech_$scale; d=$exp/asr/$scale; lmd=$exp/lm/$scale
am=$d/am; lm_of() { echo "$lmd/$1/lm"; }  # the acoustic model, and the Transformer LM of domain $1
if [ $references = 1 ]; then am=models/am-synthetic; lm_of() { echo "models/lm-$1"; }; fi
mkdir -p "$d"

if step 0; then
  run prepare-bible --out "$data/bible"
  case " $domains " in *" gutenberg "*)
    if [ -f "$gutenberg" ]; then
      run prepare-text --input "$gutenberg" --out "$data/gutenberg"
    elif [ -f "$data/gutenberg/test.txt" ]; then  # e.g. --gutenberg names a file this machine lacks
      echo "[asr] $gutenberg absent: using the prepared $data/gutenberg" >&2
    else
      echo "expected $gutenberg or a prepared $data/gutenberg/" >&2; exit 2
    fi;;
  esac
  [ $references = 1 ] || run prepare-speech --text "$data/bible/kjv.train.txt" --out "$sp/bible" --split train --max-sentences $n_train --max-words $max_words --seed 1
  for dom in $domains; do
    if [ $dom = bible ]; then dev=$data/bible/kjv.dev.txt; test=$data/bible/kjv.test.txt
    else dev=$data/gutenberg/dev.txt; test=$data/gutenberg/test.txt; fi
    [ -n "$weights_from" ] || run prepare-speech --text "$dev" --out "$sp/$dom" --split dev --max-sentences $n_dev --max-words $max_words --seed 1
    run prepare-speech --text "$test" --out "$sp/$dom" --split test --max-sentences $n_test --max-words $max_words --seed 1
  done
fi

if step 1; then
  for dom in $domains; do
    if [ $references = 1 ]; then  # the KenLM only (the Transformer is the reference checkpoint)
      [ -f "$lmd/$dom/ngram5.bin" ] || bash recipes/lm/run.sh --scale "$scale" --corpus $dom --stop-stage 2 --kenlm-only \
        --data "$data" --exp "$exp/lm" --gutenberg "$gutenberg"
    elif [ -n "$lm_steps" ]; then  # train on (resumes a shorter checkpoint; tokenizer and KenLM kept if there)
      from=3; [ -f "$lmd/$dom/tok.model" ] && [ -f "$lmd/$dom/ngram5.bin" ] || from=1  # text: stage 0 above
      bash recipes/lm/run.sh --scale "$scale" --corpus $dom --stage $from --stop-stage 3 --data "$data" --exp "$exp/lm" \
        --max-steps "$lm_steps" --gutenberg "$gutenberg"
    else
      [ -f "$lmd/$dom/lm/checkpoint/config.json" ] && [ -f "$lmd/$dom/ngram5.bin" ] || \
        bash recipes/lm/run.sh --scale "$scale" --corpus $dom --stop-stage 3 --data "$data" --exp "$exp/lm" \
          --gutenberg "$gutenberg"
    fi
  done
fi

if step 2 && [ $references = 0 ]; then
  run train-am --train "$sp/bible/train.jsonl" --dev "$sp/bible/dev.jsonl" --out "$d/am" --scale "$scale"
fi

splits="dev test"; [ -n "$weights_from" ] && splits=test  # no tuning: no dev emissions
if step 3; then
  for dom in $domains; do for split in $splits; do
    run emissions --am "$am" --manifest "$sp/$dom/$split.jsonl" --out "$d/$dom/emissions_$split"
  done; done
fi

. recipes/common/ctc_systems.sh  # tune_systems, decode_systems
if step 4; then  # all weights are chosen on dev
  for dom in $domains; do
    if [ -n "$weights_from" ]; then weights_in "$weights_from" "${dom}_" "$d/$dom"
    else tune_systems "$d/$dom/emissions_dev" "$d/$dom" "$lmd/$dom/ngram5.bin" "$(lm_of $dom)"; fi
  done
fi

if step 5; then
  for dom in $domains; do
    decode_systems "$d/$dom/emissions_test" "$d/$dom" "$d/$dom" "$lmd/$dom/ngram5.bin" "$(lm_of $dom)"
  done
fi

if step 6; then
  for dom in $domains; do weights_out "$d/$dom" "$d/weights" "${dom}_"; done  # what --weights-from reads
  "$PY" tools/asr_results.py "$d" --am "$am" --out "$d/results.json" | tee "$d/RESULTS.fragment.md"
fi
