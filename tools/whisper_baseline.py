#!/usr/bin/env python
"""Whisper's own decoder as an anchor system: transcribe a speech manifest with Whisper (beam
search, no timestamps, through CTranslate2) and score it against the manifest's transcripts.

    OMP_NUM_THREADS=1 .venv/bin/python tools/whisper_baseline.py \\
        --manifest CATHY/manifest.jsonl --out exp/whisper/cathy_hyps.jsonl --limit 40

(CATHY: a folder of the Cathy recordings, CC0, with their manifest.jsonl; any manifest of real speech
works: JSONL with id, audio (relative to the manifest's folder, or absolute) and text.)
Writes one JSON line per utterance to --out, in `lmplug decode`'s hypothesis format (id, text: the
hypothesis normalized as below; whisper: Whisper's own text; reference; seconds: compute time of the
transcription; duration: seconds of audio), with --stats the total compute time as `lmplug decode
--stats` writes it (for tools/asr_results.py), and prints a JSON summary: WER and CER (jiwer) after
both sides are normalized alike (``lmplug.corpus.normalize(text, "lower")``, then only a-z,
apostrophe and space kept; Whisper's digits and abbreviations, "8" for "eight", "Mr." for
"mister", stay as they are and count as errors) and seconds of compute per second of audio (audio
already read: the time is Whisper's alone, model loading apart), with the signature of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from lmplug import __version__
from lmplug.corpus import normalize
from lmplug.errors import LmplugError
from lmplug.files import write_lines
from lmplug.speech.audio import SAMPLE_RATE, load_audio
from lmplug.speech.frontends import WhisperEncoder
from lmplug.speech.synthesis import Utterance, read_manifest


def score_text(text: str) -> str:
    """The text WER and CER are computed on: ``normalize(text, "lower")`` with everything but a-z,
    apostrophe and space removed, spaces collapsed."""
    return " ".join(re.sub(r"[^a-z' ]", "", normalize(text, "lower")).split())


def transcribe_all(whisper: WhisperEncoder, utts: list[Utterance], beam: int, language: str) -> list[dict]:
    """One row per utterance: id, text (the normalized hypothesis), whisper (Whisper's text), reference,
    seconds (of compute), duration."""
    from tqdm import tqdm

    rows = []
    for u in tqdm(utts, desc=whisper.name, unit="utt"):
        audio = load_audio(u.audio)
        t0 = time.perf_counter()
        hyp = whisper.transcribe(audio, beam_size=beam, language=language)
        rows.append({"id": u.id, "text": score_text(hyp), "whisper": hyp, "reference": u.text,
                     "seconds": round(time.perf_counter() - t0, 4),
                     "duration": round(len(audio) / SAMPLE_RATE, 3)})
    return rows


def summarize(rows: list[dict]) -> dict:
    """WER and CER (in %, jiwer, over the normalized texts) and seconds of compute per audio second."""
    import jiwer

    refs, hyps = [score_text(r["reference"]) for r in rows], [r["text"] for r in rows]
    if empty := [r["id"] for r, ref in zip(rows, refs) if not ref]:
        raise LmplugError(f"expected a reference with a-z letters for every utterance, found none for {empty[:3]}")
    compute, audio = sum(r["seconds"] for r in rows), sum(r["duration"] for r in rows)
    return {"utterances": len(rows), "wer": round(100 * jiwer.wer(refs, hyps), 2),
            "cer": round(100 * jiwer.cer(refs, hyps), 2), "audio_s": round(audio, 2),
            "compute_s": round(compute, 2), "s_per_audio_s": round(compute / audio, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True, help="JSONL with id, audio and text")
    ap.add_argument("--out", required=True, help="hypotheses, one JSON line per utterance")
    ap.add_argument("--model", default="base", help="base, tiny.en or a CTranslate2 Whisper directory (default base)")
    ap.add_argument("--beam", type=int, default=5, help="beam size, 1: greedy (default 5)")
    ap.add_argument("--language", default="en", help="language code, for multilingual models (default en)")
    ap.add_argument("--threads", type=int, default=1, help="CTranslate2 intra-op threads (default 1)")
    ap.add_argument("--limit", type=int, default=0, help="the first N utterances only (default 0: all)")
    ap.add_argument("--stats", default=None, help="write the compute time here (JSON: utterances, seconds)")
    args = ap.parse_args()
    try:
        utts = read_manifest(args.manifest)[: args.limit or None]
        t0 = time.perf_counter()
        whisper = WhisperEncoder(args.model, threads=args.threads)
        load_s = time.perf_counter() - t0
        rows = transcribe_all(whisper, utts, args.beam, args.language)
        summary = summarize(rows)
    except LmplugError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_lines(args.out, (json.dumps(r, ensure_ascii=False) for r in rows))
    if args.stats:
        write_lines(args.stats, [json.dumps({"utterances": len(rows), "seconds": summary["compute_s"]})])
    summary.update(load_s=round(load_s, 2), hyps=args.out, signature={
        "model": whisper.name, "model_sha256": whisper.digest[:16], "beam": args.beam, "language": args.language,
        "threads": args.threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "manifest": args.manifest,
        "limit": args.limit, "text": "normalize(lower)+[a-z' ]", "lmplug": __version__})
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
