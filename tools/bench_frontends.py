#!/usr/bin/env python
"""Benchmark the speech front-ends on real recordings: seconds of compute per second of audio on
one thread, feature shapes, and sanity transcripts (hama's greedy phones and Whisper base's own
greedy decode beside the reference text of the first recording).

    OMP_NUM_THREADS=1 .venv/bin/python tools/bench_frontends.py \\
        --manifest CATHY/manifest.jsonl --n 5 --json exp/bench/frontends.json

(CATHY: a folder of the Cathy recordings, CC0, with their manifest.jsonl; any manifest of real speech works.)
The first recording of each of the first N prompts. Each front-end is loaded (timed), run once to
warm up, then on each recording in --repeats passes (the median pass is reported) (audio already read
and at 16 kHz: the time is the front-end's alone). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from lmplug import __version__
from lmplug.constants import FRONTENDS
from lmplug.files import read_jsonl
from lmplug.speech.audio import SAMPLE_RATE, load_audio
from lmplug.speech.frontends import load_frontend


def greedy_phones(log_probs: np.ndarray, tokens, blank: int, word_boundary: int) -> str:
    """Best path, repeats merged, blanks dropped; words split at ``<wb>`` (shown as " | ")."""
    best = log_probs.argmax(axis=1)
    keep = [int(t) for i, t in enumerate(best) if t != blank and (i == 0 or t != best[i - 1])]
    return " ".join("|" if t == word_boundary else tokens[t] for t in keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True, help="JSONL with audio (relative to the manifest) and text")
    ap.add_argument("--n", type=int, default=5, help="recordings, from the top (default 5)")
    ap.add_argument("--frontends", nargs="+", default=list(FRONTENDS), help=f"default: {' '.join(FRONTENDS)}")
    ap.add_argument("--threads", type=int, default=1, help="CTranslate2 intra-op threads (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the recordings; the median is reported (default 3)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    rows, prompts = [], set()
    for _, row in read_jsonl(args.manifest, "manifest"):  # one recording per prompt
        if len(rows) < args.n and row.get("prompt", row["id"]) not in prompts:
            rows.append(row)
            prompts.add(row.get("prompt", row["id"]))
    root = Path(args.manifest).parent
    audios = [load_audio(root / r["audio"]) for r in rows]
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    results = []
    for name in args.frontends:
        t0 = time.perf_counter()
        fe = load_frontend(name) if name == "hama" else load_frontend(name, threads=args.threads)
        load_s = time.perf_counter() - t0
        fe(audios[0])  # warm-up
        passes = []
        for _ in range(args.repeats):  # the median pass: the machine's other load comes and goes
            t0 = time.perf_counter()
            feats = [fe(a) for a in audios]
            passes.append(time.perf_counter() - t0)
        run_s = statistics.median(passes)
        res = {"frontend": name, "key": fe.key, "load_s": round(load_s, 3), "audio_s": round(seconds, 3),
               "compute_s": round(run_s, 4), "passes_s": [round(p, 4) for p in passes], "s_per_audio_s": round(run_s / seconds, 5),
               "shapes": [list(f.shape) for f in feats],
               "frames_per_s": round(sum(f.shape[0] for f in feats) / seconds, 2)}
        res["seconds"] = [round(len(a) / SAMPLE_RATE, 3) for a in audios]
        if name == "hama":
            res["sanity"] = {"id": rows[0]["id"], "text": rows[0]["text"],
                             "greedy_phones": greedy_phones(feats[0], fe.tokens, fe.blank, fe.word_boundary)}
        elif name == "whisper-base":
            res["sanity"] = {"id": rows[0]["id"], "text": rows[0]["text"], "whisper_greedy": fe.transcribe(audios[0], beam_size=1)}
        results.append(res)

    print(f"{len(audios)} recordings, {seconds:.2f} s of audio, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"threads={args.threads}")
    print(f"{'front-end':<18}{'load s':>8}{'s/audio s':>11}{'frames/s':>10}  shapes")
    for r in results:
        print(f"{r['frontend']:<18}{r['load_s']:>8.2f}{r['s_per_audio_s']:>11.4f}{r['frames_per_s']:>10.2f}  "
              f"{', '.join(str(tuple(s)) for s in r['shapes'])}")
    for r in results:
        for k, v in r.get("sanity", {}).items():
            print(f"  {r['frontend']} {k}: {v}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"lmplug": __version__, "machine": platform.processor() or platform.machine(),
                                               "cpu": _cpu_name(), "manifest": args.manifest, "threads": args.threads,
                                               "results": results}, indent=1, ensure_ascii=False) + "\n")


def _cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


if __name__ == "__main__":
    main()
