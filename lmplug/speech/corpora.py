"""Real recorded speech as manifests (the format of ``lmplug.speech.synthesis``).

- **Cathy** (``read_cathy``): 1,620 recordings of CMU ARCTIC prompts read by one US English speaker
  (CC0; ``data/cathy`` or any copy with its ``manifest.jsonl``: ``id``, ``audio``, ``text``,
  ``prompt``). ``split_by_prompt`` keeps every take of a prompt, and every prompt with the same
  words, on one side, so dev and test sentences are never heard in training.
- **pocketsphinx-testdata** (``read_sphinx_testdata``, Debian's package, installed under
  ``/usr/share/pocketsphinx/test/data``): 10 utterances of other speakers, 5 LibriVox readings of
  *Sense and Sensibility* and 5 spoken card names: a check that a model trained with one real
  voice did not collapse onto it.
- ``augment_recordings``: perturbed copies of training recordings (speed 0.9/1.0/1.1, white or
  pink noise at 10-30 dB SNR, synthetic reverberation), written once as FLAC (kept on a rerun).

Transcripts are normalized as the LMs' text (``lmplug.corpus.normalize(..., "lower")``); a
recording whose words the character labels cannot spell (digits, letters outside a-z) is skipped
and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from lmplug.errors import LmplugError
from lmplug.files import read_jsonl

SPHINX_TESTDATA = "/usr/share/pocketsphinx/test/data"  # Debian's pocketsphinx-testdata
LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz' ")  # the character acoustic models' labels


def _normalized(text: str) -> str | None:
    """The transcript as the LMs' text, or None when the labels cannot spell what is said (digits,
    which normalizing would drop, or letters outside a-z)."""
    from lmplug.corpus import normalize

    if any(ch.isdigit() for ch in text):
        return None
    t = normalize(text, "lower")
    return t if t and set(t) <= LABEL_CHARS else None


def read_cathy(root: str | Path) -> tuple[list[dict], int]:
    """Cathy's recordings as rows (``id``, ``audio`` (absolute), ``text`` (normalized), ``prompt``,
    ``original`` (the transcript as written)) and the number skipped (words outside the labels)."""
    root = Path(root)
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise LmplugError(f"{root}: expected the Cathy corpus folder with manifest.jsonl, found none")
    rows, skipped = [], 0
    for n, d in read_jsonl(manifest, "Cathy manifest"):
        missing = [k for k in ("id", "audio", "text", "prompt") if k not in d]
        if missing:
            raise LmplugError(f"{manifest}:{n}: expected fields id, audio, text, prompt, missing {missing}")
        audio = root / d["audio"]
        if not audio.is_file():
            raise LmplugError(f"{manifest}:{n}: audio file not found: {audio}")
        text = _normalized(str(d["text"]))
        if text is None:
            skipped += 1
            continue
        rows.append({"id": str(d["id"]), "audio": str(audio.resolve()), "text": text, "prompt": str(d["prompt"]),
                     "original": str(d["text"])})
    if not rows:
        raise LmplugError(f"{manifest}: expected recordings with transcripts over the labels, found none")
    return rows, skipped


def split_by_prompt(rows: Sequence[dict], dev_prompts: int, test_prompts: int, seed: int = 0) -> dict[str, list[dict]]:
    """``{"train", "dev", "test"}`` rows: ``dev_prompts`` and ``test_prompts`` prompts drawn at random
    (``seed``) with all their takes; training keeps the rest, less any take whose words equal a
    held-out sentence's."""
    prompts = sorted({r["prompt"] for r in rows})
    if dev_prompts + test_prompts >= len(prompts):
        raise LmplugError(f"expected fewer held-out prompts than the {len(prompts)} there are, found "
                          f"{dev_prompts} dev + {test_prompts} test")
    order = np.random.default_rng(seed).permutation(len(prompts))
    dev = {prompts[i] for i in order[:dev_prompts]}
    test = {prompts[i] for i in order[dev_prompts : dev_prompts + test_prompts]}
    held_out_text = {r["text"] for r in rows if r["prompt"] in dev | test}
    return {"train": [r for r in rows if r["prompt"] not in dev | test and r["text"] not in held_out_text],
            "dev": [r for r in rows if r["prompt"] in dev],
            "test": [r for r in rows if r["prompt"] in test]}


_SPHINX_LINE = re.compile(r"^\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^()]+)\)\s*$")


def read_sphinx_testdata(root: str | Path = SPHINX_TESTDATA) -> list[dict]:
    """The 10 utterances of pocketsphinx-testdata (``librivox/``, ``cards/``) as rows (``id``,
    ``audio``, ``text``, ``set``)."""
    root = Path(root)
    sets = {"librivox": root / "librivox" / "transcription", "cards": root / "cards" / "cards.transcription"}
    if not all(p.is_file() for p in sets.values()):
        raise LmplugError(f"{root}: expected pocketsphinx-testdata (librivox/transcription and "
                          "cards/cards.transcription; `apt-get install pocketsphinx-testdata`), found neither or one")
    rows = []
    for name, path in sets.items():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            m = _SPHINX_LINE.match(line)
            if not m:
                raise LmplugError(f"{path}:{n}: expected '<s> words </s> (file id)', found {line!r}")
            words, fid = m.group(1), m.group(2)
            audio = path.parent / f"{fid}.wav"
            if not audio.is_file():
                raise LmplugError(f"{path}:{n}: audio file not found: {audio}")
            text = _normalized(words)
            if text is None:
                raise LmplugError(f"{path}:{n}: expected words over the labels, found {words!r}")
            rows.append({"id": f"{name}-{fid}", "audio": str(audio.resolve()), "text": text, "set": name})
    return rows


def _augment(job: dict) -> dict:
    """One perturbed copy (run in a worker process): speed, noise, reverberation, written as FLAC."""
    import soundfile as sf

    from lmplug.files import atomic_output
    from lmplug.speech.audio import SAMPLE_RATE, load_audio, resample
    from lmplug.speech.synthesis import add_noise, limit_peak, make_noise, reverberate

    rng = np.random.default_rng(job["seed"])
    audio = load_audio(job["source"])
    if job["speed"] != 1.0:  # played faster or slower: read as if recorded at speed x 16 kHz
        audio = resample(audio, int(round(SAMPLE_RATE * job["speed"])))
    if job["reverb"]:
        audio = reverberate(audio, rng)
    audio = add_noise(audio, make_noise(job["noise"], len(audio), rng), job["snr"])
    audio = limit_peak(audio)
    with atomic_output(job["path"]) as tmp:
        sf.write(str(tmp), audio, SAMPLE_RATE, format="FLAC")
    return {"id": job["id"], "duration": round(len(audio) / SAMPLE_RATE, 3)}


def augment_recordings(rows: Sequence[dict], out_dir: str | Path, copies: int, seed: int = 0, workers: int = 2,
                       reverb_prob: float = 0.3, progress: bool = True) -> list[dict]:
    """``copies`` perturbed copies of each row's recording under ``out_dir/audio_aug`` (rows with
    ``id`` ``<id>-aug<k>`` and absolute ``audio``): speed 0.9, 1.0 or 1.1, white or pink noise at
    10-30 dB SNR, reverberation with probability ``reverb_prob``; drawn per copy from ``seed``.
    A file already there (its name carries a digest of its settings) is kept: a rerun resumes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    out = Path(out_dir) / "audio_aug"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])
    jobs, made = [], []
    for r in rows:
        for k in range(copies):
            job = {"id": f"{r['id']}-aug{k}", "source": r["audio"], "speed": float(rng.choice([0.9, 1.0, 1.1])),
                   "noise": str(rng.choice(["white", "pink"])), "snr": round(float(rng.uniform(10, 30)), 1),
                   "reverb": bool(rng.random() < reverb_prob), "seed": int(rng.integers(2**31))}
            digest = hashlib.sha1(json.dumps(job, sort_keys=True).encode()).hexdigest()[:8]
            job["path"] = str((out / f"{job['id']}-{digest}.flac").resolve())
            made.append({**{k: v for k, v in r.items() if k not in ("audio", "id")}, "id": job["id"],
                         "audio": job["path"], "augment": {k: job[k] for k in ("speed", "noise", "snr", "reverb")}})
            if not Path(job["path"]).is_file():
                jobs.append(job)
    ctx = multiprocessing.get_context("forkserver")  # no fork of a process that may hold torch threads
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        for _ in tqdm(pool.map(_augment, jobs, chunksize=8), total=len(jobs), disable=not progress,
                      desc="augment", unit="utt"):
            pass
    return made


def write_rows(rows: Sequence[dict], path: str | Path) -> Path:
    """A manifest of ``rows`` (audio paths written relative to the manifest's folder), atomically;
    durations filled in from the files."""
    import soundfile as sf

    from lmplug.files import atomic_output

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            audio = os.path.relpath(r["audio"], path.parent.resolve())
            duration = r.get("duration") or round(sf.info(r["audio"]).duration, 3)
            f.write(json.dumps({**r, "audio": audio, "duration": duration}, ensure_ascii=False) + "\n")
    return path
