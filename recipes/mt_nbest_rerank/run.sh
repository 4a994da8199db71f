#!/usr/bin/env bash
# n-best reranking of a small Transformer NMT system with a target-language LM (Transformer +
# KenLM) and a noisy channel model (the reverse-direction NMT), weights tuned for dev BLEU.
#
# Usage (from the repository root, after `make setup`):
#   recipes/mt_nbest_rerank/run.sh --scale cpu --corpus multi30k          # Multi30k En->De, all stages (stage 0
#                                      downloads Multi30k into data/multi30k unless it is there)
#   recipes/mt_nbest_rerank/run.sh --scale cpu --corpus multi30k --multi30k-from DIR   # copied from a local folder
#   recipes/mt_nbest_rerank/run.sh --scale cpu --corpus bible             # RV1909 Es -> KJV En (Debian)
#   recipes/mt_nbest_rerank/run.sh --scale tiny --corpus multi30k         # seconds: what the tests run
#   recipes/mt_nbest_rerank/run.sh --scale cpu --corpus multi30k --stage 6 --stop-stage 9
#   recipes/mt_nbest_rerank/run.sh --scale demo --corpus bible --nmt-args "--max-steps 300" \
#       --lm exp/lm/demo/bible/lm --kenlm exp/lm/demo/bible/ngram5.bin --lm-normalize lower   # the LM recipe's LMs
#   recipes/mt_nbest_rerank/run.sh --scale cpu --corpus multi30k --references   # the reference checkpoints, no training
#   recipes/mt_nbest_rerank/run.sh --scale cpu --corpus bible --references      # the Bible's (models/nmt-bible-*, lm-bible)
#   recipes/mt_nbest_rerank/run.sh --scale cpu --corpus multi30k --references \
#       --weights-from recipes/mt_nbest_rerank/results/weights --exp exp/demo/mt   # `make demo`: the committed dev
#                                      weights, no tuning (test only: no dev n-best, no dev features)
#
# Corpora:
#   multi30k  data/multi30k (--data-dir DIR reads DIR/multi30k): train task1 train.en-de, tune on val,
#             test on test_2016_flickr; German LM on task1 train.de + task2 train.{1..5}.de. Research-use
#             terms, so never committed: stage 0 runs `lmplug prepare-multi30k` (line counts checked),
#             copying from --multi30k-from DIR (task1/, task2/; plain or .gz), else downloading from
#             github.com/multi30k/dataset when DIR/multi30k/manifest.json is missing.
#   bible     data/bible (lmplug prepare-bible): rv.* -> kjv.*, split by book; English LM on the
#             KJV + WEB text of the training books.
# Scales:  tiny (first 2000 train / 60 dev / 60 test sentences), demo (all train, first 200 dev /
#          300 test), cpu and gpu (whole splits). n-best size = --beam: 10 tiny, 12 demo, 50 gpu, cpu 50
#          (multi30k) / 12 (bible).
# Tuning:  MERT, --restarts 20, --window 2 (smoothed line search; 0 = plain MERT).
# References (--references): the NMT, the channel and the target LM from --models DIR (default models/),
#          named nmt-<corpus>-<src>-<tgt>, nmt-<corpus>-<tgt>-<src> (`lmplug export-model` of this recipe's cpu
#          models; each holds its tokenizer) and lm-multi30k-de / lm-bible (the LM recipe's English LM, with
#          --lm-normalize lower and a KenLM of its text): stages 1, 3, 4 and 5 train nothing, KenLM (2) is built.
# Weights (--weights-from DIR): stage 8 copies DIR/weights.<set>.json (what stage 9 leaves in
#          exp/mt/<scale>/<corpus>/weights/, committed as results/weights/) in place of tuning.
# Stages:  0 data   1 tokenizers   2 KenLM 5-gram   3 Transformer LM   4 forward NMT   5 channel NMT
#          6 n-best (dev, test)   7 features   8 tune on dev + rerank test   9 evaluate (test) + results
# Outputs: exp/mt/<scale>/<corpus>/{nmt,channel,lm,*.nbest,weights.*.json,weights/,test.*.txt,eval.test.json},
#          exp/mt/<scale>/results.json (tools/mt_results.py)
set -euo pipefail
cd "$(dirname "$0")/../.."

scale=cpu; corpus=multi30k; stage=0; stop_stage=9; data_dir=data; multi30k_from=""; exp=exp/mt
lm=""; kenlm=""; lm_normalize=none; beam=""; restarts=20; window=2; nmt_args=""
references=0; models=models; weights_from=""
flags="references"
. recipes/common/stages.sh "$@"  # options, PY, run, step
# the translation commands are `lmplug` subcommands once lmplug.cli.main registers lmplug.cli.mt
if "$PY" -m lmplug --help 2>/dev/null | grep tune-rerank > /dev/null; then MT=lmplug; else MT=lmplug.cli.mt; fi
mt() { echo "+ lmplug $*" >&2; "$PY" -m $MT "$@"; }

d=$exp/$scale/$corpus; mkdir -p "$d"
case $corpus in
  multi30k)
    m=$data_dir/multi30k; src=en; tgt=de
    train_src=$m/task1/train.en; train_tgt=$m/task1/train.de; dev_src=$m/task1/val.en; dev_tgt=$m/task1/val.de
    test_src=$m/task1/test_2016_flickr.en; test_tgt=$m/task1/test_2016_flickr.de
    lm_parts="$m/task1/train.de $m/task2/train.1.de $m/task2/train.2.de $m/task2/train.3.de $m/task2/train.4.de $m/task2/train.5.de"
    ref_lm=lm-multi30k-de; cpu_beam=50;;
  bible)
    b=data/bible; src=es; tgt=en
    train_src=$b/rv.train.txt; train_tgt=$b/kjv.train.txt; dev_src=$b/rv.dev.txt; dev_tgt=$b/kjv.dev.txt
    test_src=$b/rv.test.txt; test_tgt=$b/kjv.test.txt; lm_parts="$b/kjv.train.txt $b/web.train.txt"
    # the reference target LM is the LM recipe's (lower-cased text without punctuation: en.train.txt is
    # kjv + web train, normalized), so the KenLM is built from that text and hypotheses are lower-cased
    ref_lm=lm-bible; cpu_beam=12
    if [ "$references" = 1 ] && [ -z "$lm" ]; then lm_parts=$b/en.train.txt; lm_normalize=lower; fi;;
  *) echo "unknown corpus $corpus (multi30k|bible)" >&2; exit 2;;
esac
case $scale in
  tiny) vocab=300; lm_vocab=300; beam=${beam:-10}; restarts=2;;
  demo) vocab=4000; lm_vocab=4000; beam=${beam:-12};;
  cpu) vocab=6000; lm_vocab=4000; beam=${beam:-$cpu_beam};;
  gpu) vocab=8000; lm_vocab=8000; beam=${beam:-50};;
  *) echo "unknown scale $scale (tiny|demo|cpu|gpu)" >&2; exit 2;;
esac
# feature sets: the system's own scores + lengths, then + LM, + channel, + both; "norm": both with
# per-word model scores in place of the sentence totals; "norm_lm_channel": the Transformer LM and
# the channel per word, 4 features (the sets and --window were chosen by tools/mt_dev_cv.py on dev)
base=nmt,nmt_norm,words,len_ratio
declare -A sets=([len]=$base [lm]=$base,lm,kenlm [channel]=$base,channel [lm_channel]=$base,lm,kenlm,channel
                 [norm]=nmt_norm,words,len_ratio,lm_norm,kenlm_norm,channel_norm
                 [norm_lm_channel]=nmt_norm,channel_norm,lm_norm,words)
names="len lm channel lm_channel norm norm_lm_channel"

nmt=$d/nmt; channel=$d/channel
if [ "$references" = 1 ]; then
  nmt=$models/nmt-$corpus-$src-$tgt; channel=$models/nmt-$corpus-$tgt-$src; refs="$nmt $channel"
  [ -n "$lm" ] || { lm=$models/$ref_lm; refs="$refs $lm"; }
  missing=$(for r in $refs; do [ -f "$r/card.json" ] || printf ', %s' "$r"; done)
  if [ -n "$missing" ]; then
    echo "--references --corpus $corpus: expected reference checkpoints (lmplug export-model) ${refs// /, };" \
      "found no card.json in ${missing#, }" >&2; exit 2
  fi
fi
splits="dev test"
if [ -n "$weights_from" ]; then  # no tuning: test only
  splits=test
  for name in $names; do
    [ -f "$weights_from/weights.$name.json" ] && continue
    echo "--weights-from: expected tuned weights $weights_from/weights.<set>.json for each set ($names)," \
      "found no $weights_from/weights.$name.json" >&2; exit 2
  done
fi

case $scale in  # small scales read the first lines of the same splits (split:lines)
  tiny) slices="train:2000 dev:60 test:60";;
  demo) slices="dev:200 test:300";;
  *) slices="";;
esac
if step 0; then
  if [ $corpus = bible ] && [ ! -f $b/manifest.json ]; then run prepare-bible --out $b; fi
  if [ $corpus = multi30k ]; then  # a complete $m (its manifest) is kept; else copied or downloaded
    mt prepare-multi30k --out "$m" ${multi30k_from:+--from "$multi30k_from"}
  fi
  for s in $slices; do
    n=${s#*:}; s=${s%:*}; eval "sp=\$${s}_src tp=\$${s}_tgt"
    head -n "$n" "$sp" > "$d/$s.src"; head -n "$n" "$tp" > "$d/$s.tgt"
  done
  if [ "$scale" = tiny ]; then cat $lm_parts | awk "NR <= 6000" > "$d/lm.txt"; else cat $lm_parts > "$d/lm.txt"; fi
fi
for s in $slices; do
  s=${s%:*}; eval "${s}_src=$d/$s.src ${s}_tgt=$d/$s.tgt"
done

if step 1; then
  if [ "$references" = 0 ]; then  # a reference NMT holds its tokenizer
    cat "$train_src" "$train_tgt" > "$d/nmt_tok_text.txt"
    run train-tokenizer --text "$d/nmt_tok_text.txt" --out "$d/nmt_tok.model" --vocab-size $vocab
  fi
  if [ -z "$lm" ]; then run train-tokenizer --text "$d/lm.txt" --out "$d/lm_tok.model" --vocab-size $lm_vocab; fi
fi
if step 2 && [ -z "$kenlm" ]; then
  run train-ngram --text "$d/lm.txt" --out "$d/ngram5" --order 5 | tee "$d/ngram5.json"
fi
if step 3 && [ -z "$lm" ]; then
  run train-lm --train "$d/lm.txt" --dev "$dev_tgt" --tokenizer "$d/lm_tok.model" --out "$d/lm" --scale "$scale" \
    $( [ "$scale" = cpu ] && echo "--max-steps 2000 --eval-every 250" )
fi
lm=${lm:-$d/lm}; kenlm=${kenlm:-$d/ngram5.bin}
if step 4 && [ "$references" = 0 ]; then
  mt train-nmt --train-src "$train_src" --train-tgt "$train_tgt" --dev-src "$dev_src" --dev-tgt "$dev_tgt" \
    --tokenizer "$d/nmt_tok.model" --out "$d/nmt" --direction $src-$tgt --scale "$scale" $nmt_args
fi
if step 5 && [ "$references" = 0 ]; then  # the channel model: the same system trained in the reverse direction
  mt train-nmt --train-src "$train_tgt" --train-tgt "$train_src" --dev-src "$dev_tgt" --dev-tgt "$dev_src" \
    --tokenizer "$d/nmt_tok.model" --out "$d/channel" --direction $tgt-$src --scale "$scale" \
    $( [ "$scale" = cpu ] && echo "--max-steps 3000" ) $nmt_args
fi
if step 6; then
  for s in $splits; do
    eval "sp=\$${s}_src"
    mt translate --model "$nmt" --src "$sp" --out "$d/$s.nbest" --onebest "$d/$s.1best.txt" --beam $beam --nbest $beam \
      | tee "$d/$s.translate.json"
  done
fi
if step 7; then
  for s in $splits; do
    eval "sp=\$${s}_src"
    mt nbest-features --nbest "$d/$s.nbest" --src "$sp" --out "$d/$s.feat.nbest" --lm "$lm" --kenlm "$kenlm" \
      --lm-normalize $lm_normalize --channel "$channel" --cache "$d/feature_cache" | tee "$d/$s.features.json"
  done
fi
if step 8; then
  for name in $names; do  # tuned on dev only, or those of an earlier tuning
    if [ -n "$weights_from" ]; then
      cp "$weights_from/weights.$name.json" "$d/weights.$name.json"
    else
      mt tune-rerank --nbest "$d/dev.feat.nbest" --ref "$dev_tgt" --features ${sets[$name]} --init nmt_norm=1 \
        --restarts $restarts --window $window --out "$d/weights.$name.json"
    fi
    mt rerank --nbest "$d/test.feat.nbest" --src "$test_src" --weights "$d/weights.$name.json" --out "$d/test.$name.txt"
  done
  mt rerank --nbest "$d/test.feat.nbest" --oracle-ref "$test_tgt" --out "$d/test.oracle.txt"
fi
if step 9; then
  mt eval-mt --ref "$test_tgt" --baseline 1best --system 1best="$d/test.1best.txt" --system len="$d/test.len.txt" \
    --system lm="$d/test.lm.txt" --system channel="$d/test.channel.txt" --system lm_channel="$d/test.lm_channel.txt" \
    --system norm="$d/test.norm.txt" --system norm_lm_channel="$d/test.norm_lm_channel.txt" \
    --system oracle="$d/test.oracle.txt" --json "$d/eval.test.json"
  mkdir -p "$d/weights"; for name in $names; do cp "$d/weights.$name.json" "$d/weights/"; done  # for results/weights/
  "$PY" tools/mt_results.py "$exp/$scale" --out "$exp/$scale/results.json"
fi
