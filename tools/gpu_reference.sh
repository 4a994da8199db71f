#!/usr/bin/env bash
# The reference models in one lent-GPU call (run by tools/gpu_check.py's --recipe): the Transformer
# LMs of recipes/lm for both corpora, trained side by side as two processes on the one GPU, their
# test perplexity beside the KenLM 5-gram's, and beside them the speech recipe's acoustic model and
# emissions (recipes/asr_ctc_fusion stages 0, 2 and 3; its LM stage 1 left out). Everything ends by
# --until: each training is sent SIGTERM in time (it saves a resumable checkpoint at its step
# boundary), then the perplexities and the emissions run on what was trained.
#
# Usage (from anywhere; first, here, the tokenizers exp/lm/<scale>/<corpus>/tok.model with
#   recipes/lm/run.sh --scale S --corpus C --stage 1 --stop-stage 1, carried with .device and data/):
#   bash tools/gpu_reference.sh --scale tiny --lm-steps 40              # CPU, ~3-5 min on 2 cores
#   bash tools/gpu_reference.sh --scale cpu --lm-batch 48 --lm-steps 6000 --until $((T0 + 500))
#   bash tools/gpu_reference.sh --scale cpu --only-stage0 &             # the speech synthesis (CPU)
#   bash tools/gpu_reference.sh --scale cpu --stage0 wait ...           #  early; this call waits for it
# Options:
#   --scale S              tiny | demo | cpu | gpu: the recipes' presets (default cpu)
#   --corpora "A B"        LM corpora (default "bible gutenberg")
#   --lm-steps N           train-lm --max-steps (default: the scale's preset)
#   --lm-batch N           train-lm --batch-size (default: the scale's preset)
#   --lm-compile           train-lm --compile
#   --device D             train-lm, train-am and ppl --device (default auto)
#   --speech 0|1           the speech recipe's stages 0, 2, 3 (default 1)
#   --stage0 run|wait      the speech synthesis here (run), or wait for an --only-stage0 call's
#                          (exp/asr/<scale>/stage0.rc; runs it here when none was started)
#   --only-stage0          the speech recipe's stage 0 alone (CPU), then exit with its status
#   --until EPOCH          everything ends by then (default: now + --seconds; --seconds default 3600)
#   --ppl-seconds N        kept after the LM trainings for the perplexities (default 45)
#   --emissions-seconds N  kept after the acoustic model's training for its emissions (default 75)
#   --emissions-tar FILE   also pack the finished exp/asr/<scale>/*/emissions_* (npy, manifest,
#                          labels; no features) into FILE (gzip) when it is at most 15 MiB
#   --data DIR, --exp DIR  as the recipes' (default data, exp)
# KenLM: exp/lm/<scale>/<corpus>/ngram5.bin is built here (recipes/lm stage 2, lmplz on PATH, e.g.
# from .device) when missing; the perplexities include it when Python imports kenlm.
# Threads: each process gets a share of the cores (OMP_NUM_THREADS), the LM trainings 1/8 each.
# Outputs: exp/lm/<scale>/<corpus>/{lm/,train.log,ngram.log,ppl.json,ppl.log},
#   exp/asr/<scale>/{am/,<domain>/emissions_{dev,test}/,stage0.log,am.log,emissions.log},
#   exp/gpu_reference/<scale>.json: per part its exit status, seconds, steps reached of max, dev loss,
#   perplexities, and whether the deadline stopped it.
# Measured on the H200 (2026-12-04): two L4-C256 trainings side by side, 6,000 steps at batch 48, 123 s each
# (~370k tokens/s each, eager, bf16); the espeak-ng synthesis (stage 0) ran at only 2-4 utterances/s
# there beside gpu_check's CPU-heavy steps and did not finish in ~7 minutes: synthesize here and carry.
# Exit status: 0 when every part ran to its end; 3 when the deadline stopped a part (its checkpoint
# resumes: the same train-lm/train-am command trains on); 1 when a part failed; 2 on a usage error.
set -uo pipefail
cd "$(dirname "$0")/.."

scale=cpu; corpora="bible gutenberg"; lm_steps=""; lm_batch=""; lm_compile=""; device=auto; speech=1
stage0=run; only_stage0=0; until=""; seconds=3600; ppl_s=45; em_s=75; em_tar=""; data=data; exp=exp
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2;;
    --corpora) corpora=$2; shift 2;;
    --lm-steps) lm_steps=$2; shift 2;;
    --lm-batch) lm_batch=$2; shift 2;;
    --lm-compile) lm_compile=--compile; shift;;
    --device) device=$2; shift 2;;
    --speech) speech=$2; shift 2;;
    --stage0) stage0=$2; shift 2;;
    --only-stage0) only_stage0=1; shift;;
    --until) until=$2; shift 2;;
    --seconds) seconds=$2; shift 2;;
    --ppl-seconds) ppl_s=$2; shift 2;;
    --emissions-seconds) em_s=$2; shift 2;;
    --emissions-tar) em_tar=$2; shift 2;;
    --data) data=$2; shift 2;;
    --exp) exp=$2; shift 2;;
    *) echo "unknown option $1 (see the usage block at the top of $0)" >&2; exit 2;;
  esac
done
case $stage0 in run|wait) ;; *) echo "--stage0: expected run or wait, found $stage0" >&2; exit 2;; esac
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHON PYTHONUNBUFFERED=1
now() { date +%s; }
[ -n "$until" ] || until=$(( $(now) + seconds ))
t_start=$(now)
lmd=$exp/lm/$scale; asrd=$exp/asr/$scale; sumd=$exp/gpu_reference
mkdir -p "$lmd" "$asrd" "$sumd"
log() { echo "[gpu_reference $(date +%T)] $*"; }
cores=$(nproc 2>/dev/null || echo 2)
threads() { local n=$(( cores / $1 )); [ $n -ge 1 ] || n=1; echo $n; }  # a 1/$1 share of the cores
kids() {  # the direct children of pid $1 (from /proc: no ps on some images)
  local s line p rest
  for s in /proc/[0-9]*/stat; do
    read -r line < "$s" 2>/dev/null || continue
    rest=${line##*) }; rest=${rest#* }  # past "pid (comm) state "
    [ "${rest%% *}" = "$1" ] || continue
    p=${s#/proc/}; echo "${p%/stat}"
  done
}
stop_kids() { local k; for k in $(kids "$1"); do kill -TERM "$k" 2>/dev/null; done; }  # a recipe's command, not
# the recipe's bash: that then ends when its command has saved its checkpoint and exited

# the speech recipe's stage 0: text (already prepared when carried) and synthesis (espeak-ng, CPU)
run_stage0() {
  rm -f "$asrd/stage0.rc"
  echo $$ > "$asrd/stage0.running"
  local t0 rc; t0=$(now)
  bash recipes/asr_ctc_fusion/run.sh --scale "$scale" --stage 0 --stop-stage 0 --data "$data" --exp "$exp" \
    > "$asrd/stage0.log" 2>&1
  rc=$?
  echo "$rc $(( $(now) - t0 ))" > "$asrd/stage0.rc"
  rm -f "$asrd/stage0.running"
  return $rc
}
if [ $only_stage0 = 1 ]; then
  log "speech stage 0 (scale $scale) -> $asrd/stage0.log"
  run_stage0; rc=$?
  log "speech stage 0: exit $rc in $(cut -d' ' -f2 "$asrd/stage0.rc") s"
  exit $rc
fi

am_stop=$(( until - em_s )); lm_stop=$(( until - ppl_s ))
log "scale $scale, corpora: $corpora, LM steps ${lm_steps:-preset} batch ${lm_batch:-preset}, speech $speech;" \
    "$(( until - t_start )) s: LM trainings stop by +$(( lm_stop - t_start )) s, the acoustic model by +$(( am_stop - t_start )) s"
declare -A lm_pid ng_pid ppl_pid rc_of t_of stopped
stopping=0
on_term() {  # tools/gpu_check.py's limit (SIGTERM to the group): stop everything at a step boundary
  stopping=1; log "SIGTERM: stopping every part (trainings save a checkpoint)"
  local p; for p in "${lm_pid[@]}" "${ppl_pid[@]}"; do kill -TERM "$p" 2>/dev/null; done
  [ -z "${speech_pid:-}" ] || for p in $(kids "$speech_pid"); do stop_kids "$p"; done
}
trap on_term TERM INT

# 1. per corpus: the Transformer LM training (one process each) and, on the CPU, the KenLM 5-gram
lm_args=""
[ -n "$lm_steps" ] && lm_args="$lm_args --max-steps $lm_steps"
[ -n "$lm_batch" ] && lm_args="$lm_args --batch-size $lm_batch"
declare -A test_of
for c in $corpora; do
  d=$lmd/$c; mkdir -p "$d"
  case $c in  # as recipes/lm/run.sh
    bible) src=$data/bible; train=$src/en.train.txt; dev=$src/en.dev.txt; test=$src/en.test.txt;;
    gutenberg) src=$data/gutenberg; train=$src/train.txt; dev=$src/dev.txt; test=$src/test.txt;;
    *) log "unknown corpus $c (bible|gutenberg)"; exit 2;;
  esac
  if [ "$scale" = tiny ]; then  # as recipes/lm/run.sh: small slices of the same splits
    head -n 3000 "$train" > "$d/train.txt"; head -n 300 "$dev" > "$d/dev.txt"; head -n 300 "$test" > "$d/test.txt"
    train=$d/train.txt; dev=$d/dev.txt; test=$d/test.txt
  fi
  test_of[$c]=$test
  if [ ! -f "$d/tok.model" ]; then
    log "$c: expected $d/tok.model (recipes/lm/run.sh --scale $scale --corpus $c --stage 1 --stop-stage 1)"
    rc_of[lm_$c]=2; continue
  fi
  if [ ! -f "$d/ngram5.bin" ]; then  # beside the training (CPU); first at tiny scale, which rewrites the slices
    t_of[ngram_$c]=$(now)
    OMP_NUM_THREADS=1 bash recipes/lm/run.sh --scale "$scale" --corpus "$c" --stage 2 --stop-stage 2 --data "$data" \
      --exp "$exp/lm" > "$d/ngram.log" 2>&1 &
    ng_pid[$c]=$!
    if [ "$scale" = tiny ]; then
      wait "${ng_pid[$c]}"; rc_of[ngram_$c]=$?; t_of[ngram_$c]=$(( $(now) - ${t_of[ngram_$c]} ))
    fi
  fi
  log "$c: train-lm -> $d/lm (log $d/train.log)"
  t_of[lm_$c]=$(now)
  OMP_NUM_THREADS=$(threads 8) "$PYTHON" -m lmplug train-lm --train "$train" --dev "$dev" --tokenizer "$d/tok.model" \
    --out "$d/lm" --scale "$scale" --device "$device" $lm_args $lm_compile > "$d/train.log" 2>&1 &
  lm_pid[$c]=$!
done

# 2. the speech recipe: stage 0 (or wait for it), stage 2 (train-am, stopped by am_stop), stage 3
speech_part() {
  trap - TERM INT
  local rc t0 pid sent="" w
  if [ "$stage0" = wait ] && { [ -f "$asrd/stage0.rc" ] || [ -f "$asrd/stage0.running" ]; }; then
    log "speech: waiting for stage 0 (another call, $asrd/stage0.log)"
    while [ ! -f "$asrd/stage0.rc" ]; do
      w=$(cat "$asrd/stage0.running" 2>/dev/null)
      if [ -n "$w" ] && ! kill -0 "$w" 2>/dev/null && [ ! -f "$asrd/stage0.rc" ]; then
        log "speech: the stage 0 call ($w) ended without a status"; return 1
      fi
      [ "$(now)" -lt "$am_stop" ] || { log "speech: stage 0 not done by the deadline"; return 3; }
      sleep 2
    done
    rc=$(cut -d' ' -f1 "$asrd/stage0.rc")
  else
    log "speech: stage 0 -> $asrd/stage0.log"
    run_stage0; rc=$?
  fi
  log "speech: stage 0 exit $rc ($(cut -d' ' -f2 "$asrd/stage0.rc" 2>/dev/null) s)"
  [ "$rc" = 0 ] || return 1
  log "speech: stage 2 (train-am) -> $asrd/am.log"
  t0=$(now)
  OMP_NUM_THREADS=$(threads 4) bash recipes/asr_ctc_fusion/run.sh --scale "$scale" --stage 2 --stop-stage 2 \
    --data "$data" --exp "$exp" > "$asrd/am.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(now)" -ge "$am_stop" ]; then
      [ -n "$sent" ] || { log "speech: train-am reached the deadline: SIGTERM (it saves a checkpoint)"; echo > "$asrd/am.stopped"; }
      [ -n "$sent" ] && [ $(( $(now) - sent )) -lt 5 ] || { stop_kids "$pid"; sent=$(now); }  # again every 5 s
    fi
    sleep 1
  done
  wait "$pid"; rc=$?
  log "speech: train-am exit $rc in $(( $(now) - t0 )) s"
  [ -f "$asrd/am/checkpoint/config.json" ] || return 1
  log "speech: stage 3 (emissions) -> $asrd/emissions.log"
  t0=$(now); sent=""
  OMP_NUM_THREADS=$(threads 2) bash recipes/asr_ctc_fusion/run.sh --scale "$scale" --stage 3 --stop-stage 3 \
    --data "$data" --exp "$exp" > "$asrd/emissions.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(now)" -ge "$until" ]; then
      [ -n "$sent" ] || log "speech: emissions reached the deadline: stopped"
      [ -n "$sent" ] && [ $(( $(now) - sent )) -lt 5 ] || { stop_kids "$pid"; sent=$(now); }
    fi
    sleep 1
  done
  wait "$pid"; rc=$?
  log "speech: emissions exit $rc in $(( $(now) - t0 )) s"
  [ -n "$sent" ] && return 3
  [ -f "$asrd/am.stopped" ] && return 3
  return $rc
}
rm -f "$asrd/am.stopped"
if [ "$speech" = 1 ]; then
  t_of[speech]=$(now)
  speech_part &
  speech_pid=$!
fi

# 3. wait; stop the LM trainings at lm_stop; then the perplexities (GPU; KenLM on the CPU)
have_kenlm() { "$PYTHON" -c 'import kenlm' 2>/dev/null; }
ppl_started=0
while :; do
  alive=0
  for c in "${!lm_pid[@]}"; do
    p=${lm_pid[$c]}
    [ -n "${rc_of[lm_$c]:-}" ] && continue
    if kill -0 "$p" 2>/dev/null; then
      alive=1
      if [ -z "${stopped[lm_$c]:-}" ] && [ "$(now)" -ge "$lm_stop" ]; then
        log "$c: train-lm reached the deadline: SIGTERM (it saves a checkpoint)"; kill -TERM "$p"; stopped[lm_$c]=1
      fi
    else
      wait "$p"; rc_of[lm_$c]=$?; t_of[lm_$c]=$(( $(now) - ${t_of[lm_$c]} ))
      log "$c: train-lm exit ${rc_of[lm_$c]} in ${t_of[lm_$c]} s: $(tail -n 1 "$lmd/$c/train.log" | tr "\r" "\n" | tail -n 1 | cut -c1-200)"
    fi
  done
  for c in "${!ng_pid[@]}"; do
    [ -n "${rc_of[ngram_$c]:-}" ] && continue
    if kill -0 "${ng_pid[$c]}" 2>/dev/null; then alive=1
    else wait "${ng_pid[$c]}"; rc_of[ngram_$c]=$?; t_of[ngram_$c]=$(( $(now) - ${t_of[ngram_$c]} ))
      log "$c: KenLM 5-gram exit ${rc_of[ngram_$c]} in ${t_of[ngram_$c]} s"
    fi
  done
  if [ $alive = 0 ] && [ $ppl_started = 0 ] && [ $stopping = 0 ]; then
    ppl_started=1
    kl=0; have_kenlm && kl=1
    for c in "${!lm_pid[@]}"; do
      d=$lmd/$c
      [ -f "$d/lm/checkpoint/config.json" ] || continue
      models="--model $d/lm"
      if [ $kl = 1 ] && [ -f "$d/ngram5.bin" ]; then models="$models --model $d/ngram5.bin"; fi
      log "$c: ppl ($models) on ${test_of[$c]} -> $d/ppl.json"
      t_of[ppl_$c]=$(now)
      OMP_NUM_THREADS=$(threads 4) "$PYTHON" -m lmplug ppl $models --text "${test_of[$c]}" --json "$d/ppl.json" \
        --device "$device" > "$d/ppl.log" 2>&1 &
      ppl_pid[$c]=$!
    done
    [ $kl = 1 ] || log "kenlm does not import: the perplexities are the Transformer's alone"
  fi
  for c in "${!ppl_pid[@]}"; do
    [ -n "${rc_of[ppl_$c]:-}" ] && continue
    if kill -0 "${ppl_pid[$c]}" 2>/dev/null; then
      alive=1
      [ "$(now)" -lt "$until" ] || { log "$c: ppl reached the deadline: stopped"; kill -TERM "${ppl_pid[$c]}"; stopped[ppl_$c]=1; }
    else wait "${ppl_pid[$c]}"; rc_of[ppl_$c]=$?; t_of[ppl_$c]=$(( $(now) - ${t_of[ppl_$c]} ))
      log "$c: ppl exit ${rc_of[ppl_$c]} in ${t_of[ppl_$c]} s: $(tail -n 1 "$lmd/$c/ppl.log" | cut -c1-200)"
    fi
  done
  if [ -n "${speech_pid:-}" ] && [ -z "${rc_of[speech]:-}" ]; then
    if kill -0 "$speech_pid" 2>/dev/null; then alive=1
    else wait "$speech_pid"; rc_of[speech]=$?; t_of[speech]=$(( $(now) - ${t_of[speech]} ))
      log "speech: exit ${rc_of[speech]} in ${t_of[speech]} s"
    fi
  fi
  [ $alive = 1 ] || break
  if [ "$(now)" -ge $(( until + 5 )) ] && [ -z "${killed:-}" ]; then  # past the deadline: nothing may hold the bring up
    log "still running 5 s past the deadline: SIGKILL"; killed=1
    for p in "${lm_pid[@]}" "${ng_pid[@]}" "${ppl_pid[@]}"; do kill -KILL "$p" 2>/dev/null; done
    if [ -n "${speech_pid:-}" ]; then
      for p in $(kids "$speech_pid"); do for k in $(kids "$p"); do kill -KILL "$k" 2>/dev/null; done; kill -KILL "$p" 2>/dev/null; done
      kill -KILL "$speech_pid" 2>/dev/null
    fi
  fi
  sleep 1
done

# 4. the finished emissions, packed (optional), and the summary
if [ -n "$em_tar" ]; then
  dirs=$(for m in "$asrd"/*/emissions_*/manifest.jsonl; do [ -f "$m" ] && dirname "$m"; done)
  if [ -n "$dirs" ]; then
    mkdir -p "$(dirname "$em_tar")"
    tar -czf "$em_tar" --exclude='feats*' $dirs
    size=$(stat -c %s "$em_tar")
    if [ "$size" -gt $(( 15 * 1048576 )) ]; then
      log "emissions: $(( size / 1048576 )) MiB packed, over 15 MiB: left out"; rm -f "$em_tar"
    else
      log "emissions: $(echo $dirs | wc -w) dirs, $(( size / 1024 )) KiB -> $em_tar (here: tar -xzf it in the repository root)"
    fi
  fi
fi
for k in "${!stopped[@]}"; do echo "$k"; done > "$sumd/.stopped"
[ -f "$asrd/am.stopped" ] && echo am >> "$sumd/.stopped"
for k in "${!rc_of[@]}"; do echo "$k ${rc_of[$k]} ${t_of[$k]:-}"; done > "$sumd/.status"
"$PYTHON" - "$sumd/$scale.json" "$lmd" "$asrd" "$sumd" "$corpora" "$(( $(now) - t_start ))" <<'EOF'
import json, sys
from pathlib import Path
out, lmd, asrd, sumd, corpora, secs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5].split(), int(sys.argv[6])
status = {l.split()[0]: l.split()[1:] for l in (sumd / ".status").read_text().splitlines() if l.strip()}
stopped = set((sumd / ".stopped").read_text().split())

def load(p):
    try:
        return json.loads(Path(p).read_text())
    except (OSError, ValueError):
        return None

def trained(d):
    """Steps reached, of how many, last dev loss and tokens (frames) a second of a training dir."""
    st = load(d / "checkpoint" / "trainer" / "state.json") or {}
    res = {"steps": st.get("step"), "max_steps": (st.get("train") or {}).get("max_steps"),
           "batch_size": (st.get("train") or {}).get("batch_size"), "dev_loss": st.get("dev_loss"),
           "elapsed_s": st.get("elapsed_s")}
    recs = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines() if l.strip()] \
        if (d / "metrics.jsonl").is_file() else []
    for r in reversed(recs):  # the last logged rate
        k = next((k for k in r if k.endswith("_per_s")), None)
        if k:
            res[k + "_last"] = r[k]
            break
    return res

def part(key):
    s = status.get(key)
    return {"rc": int(s[0]) if s else None, "seconds": int(s[1]) if s and len(s) > 1 and s[1] else None,
            "stopped_by_deadline": key in stopped}

doc = {"seconds": secs, "lm": {}, "speech": None}
for c in corpora:
    d = lmd / c
    doc["lm"][c] = {"train": {**part(f"lm_{c}"), **trained(d / "lm")}, "ngram": part(f"ngram_{c}"),
                    "ppl": {**part(f"ppl_{c}"), "results": load(d / "ppl.json")}}
if "speech" in status:
    em = {}
    for m in sorted(asrd.glob("*/emissions_*/manifest.jsonl")):
        em[f"{m.parent.parent.name}/{m.parent.name}"] = sum(1 for _ in m.open())
    doc["speech"] = {**part("speech"), "am_stopped_by_deadline": "am" in stopped, "am": trained(asrd / "am"),
                     "stage0": (asrd / "stage0.rc").read_text().split() if (asrd / "stage0.rc").is_file() else None,
                     "emissions_utterances": em}
Path(out).write_text(json.dumps(doc, indent=2) + "\n")
print(json.dumps(doc))
EOF
rm -f "$sumd/.status" "$sumd/.stopped"
rc=0
for k in "${!rc_of[@]}"; do
  case ${rc_of[$k]} in 0) ;; 3|130|143) [ $rc = 1 ] || rc=3;; *) rc=1;; esac
done
[ -n "${stopped[*]+x}" ] && [ $rc = 0 ] && rc=3  # (${#stopped[@]} of an empty array fails under set -u)
log "done in $(( $(now) - t_start )) s, exit $rc -> $sumd/$scale.json"
exit $rc
