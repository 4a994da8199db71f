"""Speech data: a synthetic speech corpus (espeak-ng) and manifests (audio input: ``lmplug.speech.audio``).

``build_speech_corpus`` turns sentences into 16 kHz FLAC files across espeak-ng voices and
variants, speaking rates and pitches, with additive noise made here (white, pink, or babble from
other synthesized sentences) at chosen SNRs and optional synthetic reverberation, and writes a
JSONL manifest, one utterance a line::

    {"id": "test-000017", "audio": "audio/test-000017.flac", "duration": 3.41, "text": "...",
     "voice": "en-us+f3", "rate": 160, "pitch": 45, "noise": "pink", "snr": 15.0}

Voices are split too: ``VOICES["test"]`` and ``VOICES["dev"]`` combinations never speak in
training audio. Users bring their own recordings through the same manifest format (``audio`` a
path, relative to the manifest or absolute) or a Kaldi-style directory (``wav.scp`` + ``text``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from lmplug.errors import LmplugError, expect_unique_ids
from lmplug.files import read_jsonl
from lmplug.speech.audio import SAMPLE_RATE, load_audio, resample  # noqa: F401 (load_audio: re-exported)

# voice/variant combinations; dev and test combinations never occur in training audio
VOICES: dict[str, tuple[str, ...]] = {
    "train": tuple(
        f"{lang}+{var}"
        for lang in ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029")
        for var in ("m1", "m2", "m3", "m7", "f1", "f2", "f4", "klatt")
        if f"{lang}+{var}" not in ("en-us+f2", "en-gb-x-rp+m3")
    ),
    "dev": ("en-us+f2",),
    "test": ("en-gb-x-rp+m3", "en-us+f3"),
}
NOISES = ("white", "pink", "babble")


@dataclass
class Utterance:
    id: str
    audio: str  # path as written in the manifest (relative to the manifest's folder, or absolute)
    text: str
    duration: float = 0.0
    voice: str = ""
    rate: int = 0
    pitch: int = 0
    noise: str = ""
    snr: float | None = None


def _espeak(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    proc = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text],
                          capture_output=True)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise LmplugError(f"espeak-ng -v {voice} failed on {text[:40]!r}: {proc.stderr.decode(errors='replace')[:200]}")
    import soundfile as sf

    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return audio, sr


def make_noise(kind: str, n: int, rng: np.random.Generator, babble: Sequence[np.ndarray] = ()) -> np.ndarray:
    """``n`` samples of white, pink (1/f power) or babble noise (sum of other utterances)."""
    if kind == "white":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        return np.fft.irfft(spec / np.sqrt(f), n).astype(np.float32)
    if kind == "babble":
        if not babble:
            raise LmplugError("babble noise needs other utterances, found none")
        out = np.zeros(n, dtype=np.float32)
        for b in babble:
            start = int(rng.integers(0, max(1, len(b) - 1)))
            seg = np.resize(np.roll(b, -start), n)  # tile/cut to n samples
            out += seg / (np.std(seg) + 1e-8)
        return out
    raise LmplugError(f"unknown noise '{kind}', expected one of {NOISES}")


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Scale ``noise`` so that speech power / noise power = ``snr_db`` and add it."""
    p_s = float(np.mean(audio**2)) + 1e-12
    p_n = float(np.mean(noise**2)) + 1e-12
    return audio + noise * np.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))


def reverberate(audio: np.ndarray, rng: np.random.Generator, rt60: float = 0.3) -> np.ndarray:
    """Convolve with a synthetic room response: exponentially decaying noise of the given RT60."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir[0] = 1.0
    rir /= np.sqrt(np.sum(rir**2))
    return np.convolve(audio, rir)[: len(audio)].astype(np.float32)


def limit_peak(audio: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """Scaled down so that no sample exceeds ``peak`` (quieter audio is left as it is)."""
    return audio / max(1.0, float(np.max(np.abs(audio))) / peak)


def _synthesize(job: dict) -> dict:
    """One utterance (run in a worker process): TTS, resample, noise, reverb, write FLAC."""
    import soundfile as sf

    rng = np.random.default_rng(job["seed"])
    audio, sr = _espeak(job["text"], job["voice"], job["rate"], job["pitch"])
    audio = resample(audio, sr)
    if job["reverb"]:
        audio = reverberate(audio, rng)
    if job["noise"]:
        babble = [resample(*_espeak(t, v, 170, 50)) for t, v in job["babble"]] if job["noise"] == "babble" else []
        audio = add_noise(audio, make_noise(job["noise"], len(audio), rng, babble), job["snr"])
    audio = limit_peak(audio)
    sf.write(job["path"], audio, SAMPLE_RATE, format="FLAC")
    return {"id": job["id"], "duration": round(len(audio) / SAMPLE_RATE, 3)}


def build_speech_corpus(
    sentences: Sequence[str],
    out_dir: str | Path,
    split: str,
    voices: Sequence[str] | None = None,
    rates: tuple[int, int] = (130, 190),
    pitches: tuple[int, int] = (30, 70),
    snrs: tuple[float, float] = (10.0, 30.0),
    noises: Sequence[str] = NOISES,
    reverb_prob: float = 0.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Synthesize ``sentences`` (one utterance each) into ``out_dir/audio`` + ``out_dir/<split>.jsonl``.

    Each utterance draws its voice (from ``voices``, default ``VOICES[split]``), rate, pitch, noise
    type and SNR uniformly from the given ranges with a per-utterance seed, so a rebuild gives the
    same corpus. Existing audio files are kept (an interrupted build resumes). Returns the manifest.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    if shutil.which("espeak-ng") is None:
        raise LmplugError("espeak-ng not found: apt-get install -y espeak-ng (or run tools/setup.sh)")
    voices = tuple(voices or VOICES.get(split, ()))
    if not voices:
        raise LmplugError(f"no voices for split '{split}': pass voices= or use one of {sorted(VOICES)}")
    sentences = [s.strip() for s in sentences]
    if not sentences or any(not s for s in sentences):
        raise LmplugError(f"expected non-empty sentences, found {sum(1 for s in sentences if not s)} empty of {len(sentences)}")
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, sum(map(ord, split))])
    jobs, utts = [], []
    for i, text in enumerate(sentences):
        uid = f"{split}-{i:06d}"
        noise = str(rng.choice(list(noises))) if noises else ""
        babble = [(sentences[int(j)], str(rng.choice(voices))) for j in rng.integers(0, len(sentences), 3)]
        u = Utterance(uid, "", text, voice=str(rng.choice(voices)),
                      rate=int(rng.integers(*rates)), pitch=int(rng.integers(*pitches)), noise=noise,
                      snr=round(float(rng.uniform(*snrs)), 1) if noise else None)
        reverb, utt_seed = bool(rng.random() < reverb_prob), int(rng.integers(2**31))  # drawn even if kept
        # the file name carries a digest of everything that shapes the audio: a kept file is reused
        # only for exactly the same utterance
        digest = hashlib.sha1(json.dumps([asdict(u), babble, reverb, utt_seed]).encode()).hexdigest()[:8]
        u.audio = f"audio/{uid}-{digest}.flac"
        utts.append(u)
        if not (out / u.audio).is_file():
            jobs.append({"id": uid, "text": text, "voice": u.voice, "rate": u.rate, "pitch": u.pitch, "noise": noise,
                         "snr": u.snr, "babble": babble, "reverb": reverb, "seed": utt_seed,
                         "path": str(out / u.audio)})
    durations = {}
    ctx = multiprocessing.get_context("forkserver")  # no fork of a process that may hold torch threads
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        for r in tqdm(pool.map(_synthesize, jobs, chunksize=16), total=len(jobs), disable=not progress,
                      desc=f"tts {split}", unit="utt"):
            durations[r["id"]] = r["duration"]
    import soundfile as sf

    manifest = out / f"{split}.jsonl"
    with open(manifest.with_suffix(".jsonl.tmp"), "w", encoding="utf-8") as f:
        for u in utts:
            u.duration = durations.get(u.id) or round(sf.info(str(out / u.audio)).duration, 3)
            f.write(json.dumps(asdict(u), ensure_ascii=False) + "\n")
    manifest.with_suffix(".jsonl.tmp").replace(manifest)
    return manifest


def read_manifest(path: str | Path, check_files: bool = True, require_text: bool = True) -> list[Utterance]:
    """Read a JSONL manifest; every error names the file and line (a repeated id, its lines).

    Args:
        require_text: every row has a non-empty transcript ``text``; False (audio to transcribe):
            ``text`` is optional (``""`` when absent).
    """
    p = Path(path)
    utts, lines = [], []
    needed = ("id", "audio", "text") if require_text else ("id", "audio")
    for n, d in read_jsonl(p, "manifest"):
        missing = [k for k in needed if k not in d]
        if missing:
            raise LmplugError(f"{p}:{n}: missing field(s) {missing}; expected at least {', '.join(needed)}")
        d.setdefault("text", "")
        if require_text and not str(d["text"]).strip():
            raise LmplugError(f"{p}:{n}: empty transcript for utterance {d['id']}")
        d["audio"] = str(d["audio"]) if Path(d["audio"]).is_absolute() else str(p.parent / d["audio"])
        if check_files and not Path(d["audio"]).is_file():
            raise LmplugError(f"{p}:{n}: audio file not found: {d['audio']}")
        utts.append(Utterance(**{k: v for k, v in d.items() if k in Utterance.__dataclass_fields__}))
        lines.append(n)
    if not utts:
        raise LmplugError(f"{p}: empty manifest, expected at least one utterance")
    expect_unique_ids(p, [str(u.id) for u in utts], lines)
    return utts


def read_kaldi_dir(path: str | Path) -> list[Utterance]:
    """A Kaldi-style data directory: ``wav.scp`` (``id path``; no pipes) and ``text`` (``id words``)."""
    d = Path(path)
    for f in ("wav.scp", "text"):
        if not (d / f).is_file():
            raise LmplugError(f"{d}: expected a Kaldi data dir with wav.scp and text, missing {f}")

    def table(f: str) -> dict[str, str]:
        out = {}
        for n, line in enumerate((d / f).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                parts = line.strip().split(maxsplit=1)
                if len(parts) != 2:
                    raise LmplugError(f"{d / f}:{n}: expected '<id> <value>', found {line!r}")
                out[parts[0]] = parts[1]
        return out

    wavs, texts = table("wav.scp"), table("text")
    utts = []
    for uid, wav in wavs.items():
        if wav.endswith("|"):
            raise LmplugError(f"{d / 'wav.scp'}: utterance {uid} is a command pipe; expected a file path")
        if uid not in texts:
            raise LmplugError(f"{d / 'text'}: no transcript for utterance {uid}")
        audio = wav if Path(wav).is_absolute() else str(d / wav)
        if not Path(audio).is_file():
            raise LmplugError(f"{d / 'wav.scp'}: audio file not found for {uid}: {audio}")
        utts.append(Utterance(uid, audio, texts[uid]))
    return utts


def write_manifest(utts: Iterable[Utterance], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for u in utts:
            f.write(json.dumps(asdict(u), ensure_ascii=False) + "\n")
