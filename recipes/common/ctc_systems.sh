# The speech recipes' systems, sourced by recipes/asr_ctc_fusion/run.sh and recipes/asr_real/run.sh:
# tune each system's weights on dev emissions, then decode test emissions with them.
#
#   tune_systems EMISSIONS_DEV TUNE_ROOT KENLM_BIN LM_DIR      # TUNE_ROOT/tune_{kenlm,pyctcdecode,lm,both,rescore}
#   decode_systems EMISSIONS_TEST TUNE_ROOT OUT KENLM_BIN LM_DIR  # OUT/hyps_<system>.jsonl + stats_<system>.json
#   weights_out TUNE_ROOT DIR [PREFIX]     # the tuned weights as DIR/weights_<PREFIX><system>.json (results/)
#   weights_in DIR PREFIX TUNE_ROOT        # those files back as TUNE_ROOT/tune_<system>/weights.json (no tuning)
#
# decode_only (optional): the systems decode_systems decodes, by their hyps_<system> names (greedy beam
# lmplug_kenlm pyctcdecode_kenlm lmplug_transformer lmplug_both kenlm_rescore); empty: all.
# The caller sets: run (runs `lmplug ARGS`), beam, token_min_logp, history_words (0: none), lookahead
# (1/0), oov_penalty (the Transformer systems' --oov-penalty), jobs, and the grids
# grid (KenLM systems), grid_lm (the Transformer), grid_both (both fused). The KenLM unigrams are
# read from the .arpa beside KENLM_BIN (also the Transformer's known words).

ctc_common() {  # decoder arguments of tuning and decoding: $1 = emissions dir[, $2 = pyctcdecode]
  local x=""
  if [ "${2:-}" = pyctcdecode ]; then x="--backend pyctcdecode"  # it recombines by its own history pruning
  elif [ "$history_words" -gt 0 ]; then x="--history-words $history_words"; fi  # 0: no recombination under the Transformer
  echo --emissions "$1/manifest.jsonl" --labels "$1/labels.json" --beam-size $beam --token-min-logp=$token_min_logp $x
}

ctc_search() {  # search settings: $1 = kenlm (the KenLM-only systems) or lm (the systems with the Transformer)
  local s=""
  [ "$lookahead" -gt 0 ] && s="--lookahead $1"
  [ "$1" = lm ] && s="$s --oov-penalty=$oov_penalty"
  echo $s
}

tune_systems() {  # all weights are chosen on dev; an interrupted tuning resumes from its grid.jsonl
  local em=$1 t=$2 kenlm="--kenlm $3" lm=$4 vocab="--vocabulary ${3%.bin}.arpa"
  run tune-ctc $(ctc_common $em) $kenlm $(ctc_search kenlm) $grid --out-dir "$t/tune_kenlm" --jobs $jobs --quiet
  run tune-ctc $(ctc_common $em pyctcdecode) $kenlm $grid --out-dir "$t/tune_pyctcdecode" --jobs $jobs --quiet
  run tune-ctc $(ctc_common $em) --lm "$lm" $vocab $(ctc_search lm) $grid_lm --out-dir "$t/tune_lm" --jobs $jobs --quiet
  # both LMs: the Transformer's weight and the bonus at each KenLM weight of --outer
  run tune-ctc $(ctc_common $em) $kenlm --lm "$lm" $(ctc_search lm) --tune lm $grid_both --out-dir "$t/tune_both" \
    --jobs $jobs --quiet
  run decode $(ctc_common $em) $kenlm $(ctc_search kenlm) --weights-file "$t/tune_kenlm/weights.json" --nbest $beam \
    --out "$t/nbest_kenlm_dev.jsonl" --quiet
  run tune-rescore --nbest "$t/nbest_kenlm_dev.jsonl" --refs "$em/manifest.jsonl" --lm "$lm" \
    --weights-file "$t/tune_kenlm/weights.json" --out-dir "$t/tune_rescore"
}

wants() {  # true when system $1 is to be decoded (decode_only empty, or naming it)
  [ -z "${decode_only:-}" ] || [[ " $decode_only " == *" $1 "* ]]
}

decode_systems() {  # every system (or those of decode_only) on test emissions with the weights tuned on dev
  local em=$1 t=$2 o=$3 kenlm="--kenlm $4" lm=$5 vocab="--vocabulary ${4%.bin}.arpa"
  mkdir -p "$o"
  wants greedy && run decode $(ctc_common $em | sed "s/--beam-size $beam/--beam-size 1/") --out "$o/hyps_greedy.jsonl" --stats "$o/stats_greedy.json" --quiet
  wants beam && run decode $(ctc_common $em) --out "$o/hyps_beam.jsonl" --stats "$o/stats_beam.json" --quiet
  wants lmplug_kenlm && run decode $(ctc_common $em) $kenlm $(ctc_search kenlm) --weights-file "$t/tune_kenlm/weights.json" \
    --out "$o/hyps_lmplug_kenlm.jsonl" --stats "$o/stats_lmplug_kenlm.json" --quiet
  wants pyctcdecode_kenlm && run decode $(ctc_common $em pyctcdecode) $kenlm --weights-file "$t/tune_pyctcdecode/weights.json" \
    --out "$o/hyps_pyctcdecode_kenlm.jsonl" --stats "$o/stats_pyctcdecode_kenlm.json" --quiet
  wants lmplug_transformer && run decode $(ctc_common $em) --lm "$lm" $vocab $(ctc_search lm) --weights-file "$t/tune_lm/weights.json" \
    --out "$o/hyps_lmplug_transformer.jsonl" --stats "$o/stats_lmplug_transformer.json" --quiet
  wants lmplug_both && run decode $(ctc_common $em) $kenlm --lm "$lm" $(ctc_search lm) --weights-file "$t/tune_both/weights.json" \
    --out "$o/hyps_lmplug_both.jsonl" --stats "$o/stats_lmplug_both.json" --quiet
  wants kenlm_rescore || return 0
  run decode $(ctc_common $em) $kenlm $(ctc_search kenlm) --weights-file "$t/tune_kenlm/weights.json" --nbest $beam \
    --out "$o/nbest_kenlm_test.jsonl" --stats "$o/stats_kenlm_rescore.json" --quiet
  run rescore --nbest "$o/nbest_kenlm_test.jsonl" --lm "$lm" --weights-file "$t/tune_rescore/weights.json" \
    --out "$o/hyps_kenlm_rescore.jsonl" --stats "$o/stats_rescore_pass.json"
}

weights_out() {  # the tuned weights, for committing: TUNE_ROOT/tune_<system>/weights.json -> DIR/weights_<PREFIX><system>.json
  local t=$1 out=$2 prefix=${3:-} f s
  mkdir -p "$out"
  for f in "$t"/tune_*/weights.json; do
    [ -f "$f" ] || continue
    s=$(basename "$(dirname "$f")"); cp "$f" "$out/weights_$prefix${s#tune_}.json"
  done
}

weights_in() {  # the reverse, in place of tuning (`make demo`): DIR/weights_<PREFIX><system>.json -> TUNE_ROOT/tune_<system>/
  local dir=$1 prefix=$2 t=$3 f s
  for f in "$dir"/weights_"$prefix"*.json; do
    [ -f "$f" ] || { echo "expected tuned weights $dir/weights_$prefix<system>.json, found none" >&2; return 2; }
    s=$(basename "$f" .json); s=${s#weights_"$prefix"}; mkdir -p "$t/tune_$s"; cp "$f" "$t/tune_$s/weights.json"
  done
}
