"""Audio input: any file libsndfile reads (WAV, FLAC, OGG Vorbis or Opus, MP3 with libsndfile >= 1.1),
any sample rate from 8 kHz up, mono or stereo, as mono float32 samples at 16 kHz.

Stereo is averaged to mono; more than two channels are refused (a 5.1 mix's average is not the
speech), as are rates below 8 kHz (no telephone band left to recognize) and non-finite samples.
Each refusal is one ``LmplugError`` line naming the file, what was expected and what was found.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lmplug.errors import LmplugError

SAMPLE_RATE = 16000  # every front-end's input rate
MIN_SAMPLE_RATE = 8000  # telephone speech; lower rates are refused
MAX_CHANNELS = 2  # stereo is averaged; more channels are refused
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")  # what manifests and `transcribe` expect (any libsndfile format reads)


def resample(audio: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) float32 at ``sr`` -> (M,) float32 at ``target`` (torchaudio's windowed sinc)."""
    if sr == target:
        return audio.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), sr, target).numpy()


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples at ``sample_rate``: (N,).

    Raises:
        LmplugError: no such file; bytes libsndfile cannot decode; no samples; a sample rate below
            ``MIN_SAMPLE_RATE``; more than ``MAX_CHANNELS`` channels; a NaN or infinite sample.
    """
    try:
        import soundfile as sf
    except ImportError:
        raise LmplugError("reading audio needs soundfile: run `pip install soundfile==0.14.0` "
                          "(or `pip install 'lmplug[audio]'`)") from None
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"audio not found: {p}")
    try:
        audio, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise LmplugError(f"{p}: unreadable audio: expected WAV, FLAC, OGG, Opus or MP3, found bytes libsndfile "
                          f"cannot decode ({str(e).strip().splitlines()[-1]})") from None
    n, channels = audio.shape
    if n == 0:
        raise LmplugError(f"{p}: empty audio: expected at least one sample, found 0")
    if sr < MIN_SAMPLE_RATE:
        raise LmplugError(f"{p}: expected a sample rate of at least {MIN_SAMPLE_RATE} Hz, found {sr} Hz")
    if channels > MAX_CHANNELS:
        raise LmplugError(f"{p}: expected mono or stereo audio, found {channels} channels "
                          "(downmix it first, e.g. `sox in.wav out.wav remix -`)")
    if not np.isfinite(audio).all():
        bad = int(np.flatnonzero(~np.isfinite(audio).all(axis=1))[0])
        raise LmplugError(f"{p}: expected finite samples, found {audio[bad].tolist()} at sample {bad}")
    return resample(audio.mean(axis=1), sr, sample_rate)


def audio_seconds(path: str | Path) -> float:
    """The length of an audio file in seconds, from its header (a file :func:`load_audio` has read)."""
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
