#!/usr/bin/env bash
# Real speech with LM fusion: real recordings -> Whisper base's encoder (frozen, features cached) ->
# a character CTC head -> beam search with and without each LM -> WER/CER on held-out prompts of
# the Cathy recordings (one speaker) and on pocketsphinx-testdata's other speakers (reported, never
# tuned on). Weights are tuned on Cathy dev prompts only.
#
# Usage (from the repository root, after `make setup`):
#   recipes/asr_real/run.sh --scale cpu                       # everything (~90 min on 2 cores)
#   recipes/asr_real/run.sh --scale cpu --stage 4             # re-tune and re-score only
#   recipes/asr_real/run.sh --scale cpu --cathy DIR           # the Cathy corpus elsewhere (manifest.jsonl, audio/)
#   recipes/asr_real/run.sh --scale cpu --lm exp/lm/cpu/gutenberg/lm   # another Transformer LM than the reference
#   recipes/asr_real/run.sh --scale cpu --am models/am-real-whisper      # the reference head: no stage 2 (training)
#   recipes/asr_real/run.sh --scale cpu --am models/am-real-whisper --weights-from recipes/asr_real/results \
#     --lexicon recipes/asr_real/results/hama_lexicon.txt --exp exp/demo    # `make demo`: the committed dev weights,
#                                                                            # no tuning (stage 4 copies them)
#   recipes/asr_real/run.sh --scale cpu --stage 4 --systems hama   # stages 4-5 of some systems only (head, hama, whisper)
#   ... --decode-only "lmplug_kenlm lmplug_transformer hama_kenlm hama_lm"   # stage 5 decodes these hyps_<name> only
#
# Stages: 0 manifests (Cathy by prompt + augmented copies, pocketsphinx-testdata; synthetic training
#         speech)   1 KenLM (recipes/lm stages 0-2, Gutenberg; the Transformer is --lm, by default the
#         reference checkpoint models/lm-gutenberg, not retrained)   2 CTC head on Whisper base   3 emissions
#         4 tune weights on dev   5 decode test + unseen speakers, Whisper's own decoder   6 results
# Systems: those of recipes/common/ctc_systems.sh on the head's character emissions; hama's phone CTC
#          model with a phone lexicon of the KenLM words and KenLM fusion (no head); and Whisper
#          base's own decoder as an anchor.
# Outputs: exp/real/<scale>/{am,cathy/{emissions_*,tune_*,hyps_*},unseen/{emissions_test,hyps_*}},
#          exp/real/<scale>/results.json, RESULTS.fragment.md
#
# Data: data/cathy (committed, CC0: data/README.md). The LMs are the LM recipe's Gutenberg models: the Cathy prompts (CMU ARCTIC) come from books of
# Curwood, London and Doyle, which that text does not contain (recipes/asr_real/NOTES.md checks it).
set -euo pipefail
cd "$(dirname "$0")/../.."

scale=cpu; stage=0; stop_stage=6; beam=16; token_min_logp=-8; history_words=1; lookahead=1; oov_penalty=-20; jobs=2
data=data; exp=exp; cathy=data/cathy; lm=models/lm-gutenberg; am=""; weights_from=""; lexicon=""
sphinx=/usr/share/pocketsphinx/test/data; frontend=whisper-base; systems="head hama whisper"; decode_only=""
. recipes/common/stages.sh "$@"  # options, PY, run, step
has() { case " $systems " in *" $1 "*) true;; *) false;; esac; }

# the speech recipe's grids and search settings (recipes/asr_ctc_fusion/run.sh says why)
grid="--lm-weights 0,0.25,0.5,0.75,1.0,1.5 --bonuses=-1,0,0.5,1,2,3,4,5"
grid_lm="--lm-weights 0.5,0.75,1.0,1.25 --bonuses 0,1,2,3,4,5"
grid_both="--lm-weights 0.5,0.75,1.0 --bonuses 0,1,2,3,4,5 --outer kenlm=0.25,0.5"
# hama + phone lexicon: small KenLM weights, negative bonuses (a probe on other Cathy prompts, NOTES.md)
grid_hama="--lm-weights 0.1,0.2,0.3,0.5,0.75,1.0 --bonuses=-4,-2,0,1,2"
grid_hama_lm="--lm-weights 0.1,0.25,0.5,0.75,1.0 --bonuses=-4,-2,0,1,2"
grid_hama_both="--lm-weights 0.1,0.25,0.5 --bonuses=-4,-2,0 --outer kenlm=0.1,0.25"
case $scale in  # held-out prompts, augmented copies, synthetic training utterances
  tiny) dev_prompts=3; test_prompts=3; augment=0; n_syn=20; grid="--lm-weights 0,0.5 --bonuses 0,1"; grid_lm=$grid
        grid_both="$grid --outer kenlm=0.25"; grid_hama="--lm-weights 0.1 --bonuses=-4"
        grid_hama_lm=$grid_hama; grid_hama_both="$grid_hama --outer kenlm=0.25";;
  demo) dev_prompts=40; test_prompts=60; augment=1; n_syn=1000
        grid="--lm-weights 0.25,0.5,1.0 --bonuses 0,1,2"; grid_lm="--lm-weights 0.5,1.0 --bonuses 0,1.5"
        grid_both="--lm-weights 0.5,1.0 --bonuses 1,3 --outer kenlm=0.25"; grid_hama="--lm-weights 0.1,0.3 --bonuses=-4,0"
        grid_hama_lm="--lm-weights 0.5 --bonuses 0"; grid_hama_both="--lm-weights 0.5 --bonuses 0 --outer kenlm=0.25";;
  *) dev_prompts=100; test_prompts=150; augment=2; n_syn=3000;;
esac
sp=$data/speech_real; syn=$data/speech_$scale/bible; d=$exp/real/$scale; lmd=$exp/lm/$scale/gutenberg
cache=$exp/feature_cache; lexicon=${lexicon:-$d/hama_lexicon.txt}
mkdir -p "$d"

[ -n "$am" ] && augment=0  # a given head: no training, so neither augmented copies nor synthetic speech
if step 0; then
  run prepare-real-speech --cathy "$cathy" --sphinx "$sphinx" --out "$sp" --dev-prompts $dev_prompts \
    --test-prompts $test_prompts --augment $augment
  [ -n "$am" ] || [ -f "$syn/train.jsonl" ] || {  # multi-voice synthetic speech: the head must not fit only one voice
    run prepare-bible --out "$data/bible"
    run prepare-speech --text "$data/bible/kjv.train.txt" --out "$syn" --split train --max-sentences $n_syn --max-words 25 --seed 1
  }
fi

if step 1; then
  [ -f "$lmd/ngram5.bin" ] || \
    bash recipes/lm/run.sh --scale "$scale" --corpus gutenberg --stop-stage 2 --kenlm-only --data "$data" --exp "$exp/lm"
fi

if step 2 && [ -z "$am" ]; then
  train="$syn/train.jsonl $sp/train.jsonl"
  [ -f "$sp/train_aug.jsonl" ] && [ $augment -gt 0 ] && train="$train $sp/train_aug.jsonl"
  run train-am --frontend $frontend --feature-cache "$cache" --train $train --dev "$sp/dev.jsonl" --out "$d/am" --scale "$scale"
fi

am=${am:-$d/am}
splits="dev test"; [ -n "$weights_from" ] && splits=test  # no tuning: no dev emissions
if step 3; then
  for split in $splits; do
    run emissions --am "$am" --manifest "$sp/$split.jsonl" --out "$d/cathy/emissions_$split" --feature-cache "$cache"
  done
  run emissions --am "$am" --manifest "$sp/unseen.jsonl" --out "$d/unseen/emissions_test" --feature-cache "$cache"
  # the second system: hama's phone CTC model as it is (no head), decoded into words with a phone lexicon
  for split in $splits; do
    run emissions --frontend hama --manifest "$sp/$split.jsonl" --out "$d/cathy/hama_$split" --feature-cache "$cache"
  done
  run emissions --frontend hama --manifest "$sp/unseen.jsonl" --out "$d/unseen/hama_test" --feature-cache "$cache"
fi

. recipes/common/ctc_systems.sh  # tune_systems, decode_systems
hama() {  # decoder arguments of the hama systems: $1 = emissions dir[, $2 = beam size]
  echo --emissions "$1/manifest.jsonl" --labels "$1/labels.json" --lexicon "$lexicon" --beam-size ${2:-$beam} \
    --token-min-logp=$token_min_logp --history-words $history_words
}
hama_lms() {  # the LMs of a hama system: $1 = kenlm, lm or both
  case $1 in kenlm) echo --kenlm "$lmd/ngram5.bin";; lm) echo --lm "$lm" --vocabulary "$lmd/ngram5.arpa";;
    both) echo --kenlm "$lmd/ngram5.bin" --lm "$lm";; esac
}
if step 4 && [ -n "$weights_from" ]; then  # the weights of an earlier tuning (WEIGHTS_FROM/weights_<system>.json)
  weights_in "$weights_from" "" "$d/cathy"
fi
if step 4 && [ -z "$weights_from" ]; then
  has head && tune_systems "$d/cathy/emissions_dev" "$d/cathy" "$lmd/ngram5.bin" "$lm"
fi
if step 4 && has hama; then
  # the KenLM vocabulary in hama's phones (G2P: ~30 ms a word, ~18 min for Gutenberg's 35,830 words)
  [ -f "$lexicon" ] || run make-lexicon --words "$lmd/ngram5.arpa" --frontend hama --out "$lexicon"
fi
if step 4 && has hama && [ -z "$weights_from" ]; then
  run tune-ctc $(hama "$d/cathy/hama_dev") $(hama_lms kenlm) $grid_hama --out-dir "$d/cathy/tune_hama" --jobs $jobs --quiet
  run tune-ctc $(hama "$d/cathy/hama_dev") $(hama_lms lm) $grid_hama_lm --out-dir "$d/cathy/tune_hama_lm" --jobs $jobs --quiet
  run tune-ctc $(hama "$d/cathy/hama_dev") $(hama_lms both) --tune lm $grid_hama_both --out-dir "$d/cathy/tune_hama_both" \
    --jobs $jobs --quiet
fi

if step 5; then
  for set in cathy unseen; do  # the unseen speakers with Cathy dev's weights
    has head || continue
    decode_systems "$d/$set/emissions_test" "$d/cathy" "$d/$set" "$lmd/ngram5.bin" "$lm"
  done
  for set in cathy unseen; do
    has hama || continue  # its greedy baseline: beam 1 through the lexicon (phones alone are no words)
    wants hama_greedy && run decode $(hama "$d/$set/hama_test" 1) --out "$d/$set/hyps_hama_greedy.jsonl" --stats "$d/$set/stats_hama_greedy.json" --quiet
    wants hama_nolm && run decode $(hama "$d/$set/hama_test") --out "$d/$set/hyps_hama_nolm.jsonl" --stats "$d/$set/stats_hama_nolm.json" --quiet
    for sys in kenlm lm both; do
      t=tune_hama; [ $sys = kenlm ] || t=tune_hama_$sys
      wants hama_$sys || continue
      run decode $(hama "$d/$set/hama_test") $(hama_lms $sys) --weights-file "$d/cathy/$t/weights.json" \
        --out "$d/$set/hyps_hama_$sys.jsonl" --stats "$d/$set/stats_hama_$sys.json" --quiet
    done
  done
  has whisper && "$PY" tools/whisper_baseline.py --manifest "$sp/test.jsonl" --out "$d/cathy/hyps_whisper.jsonl" --stats "$d/cathy/stats_whisper.json"
  has whisper && "$PY" tools/whisper_baseline.py --manifest "$sp/unseen.jsonl" --out "$d/unseen/hyps_whisper.jsonl" --stats "$d/unseen/stats_whisper.json"
fi

if step 6; then
  weights_out "$d/cathy" "$d/weights"  # results/weights_<system>.json, what --weights-from reads
  "$PY" tools/asr_results.py "$d" --am "$am" --out "$d/results.json" --weights-from cathy | tee "$d/RESULTS.fragment.md"
fi
