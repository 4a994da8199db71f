"""A feature cache: each front-end's features of each audio, computed once, as float16 ``.npy``
files on disk.

Layout under the cache's root::

    <front-end name>-<sha256(front-end key)[:16]>/frontend.json   # the key, dim, frame rate, tokens
    <front-end name>-<sha256(front-end key)[:16]>/<digest[:2]>/<digest>.npy   # (T, dim) float16

``digest`` is the audio content's sha256: of the file's bytes for a path (a hit reads no audio),
of the 16 kHz float32 samples for an array. The front-end key holds its model file's sha256, so
a changed model writes new features beside the old, never over them. Every file is written through
a temporary name and renamed (``lmplug.files.atomic_output``): an interrupted run leaves whole
files or none, and processes sharing a cache can race harmlessly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmplug.constants import VERSION
from lmplug.errors import LmplugError
from lmplug.files import atomic_output
from lmplug.speech.audio import SAMPLE_RATE, file_digest, load_audio

F16_MAX = float(np.finfo(np.float16).max)


def audio_digest(audio: str | Path | np.ndarray) -> str:
    """sha256 (hex) of an audio file's bytes, or of (N,) float32 samples at 16 kHz."""
    if isinstance(audio, np.ndarray):
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        return hashlib.sha256(f"float32@{SAMPLE_RATE}:".encode() + samples.tobytes()).hexdigest()
    p = Path(audio)
    if not p.is_file():
        raise LmplugError(f"audio not found: {p}")
    return file_digest(p)


class FeatureCache:
    """Front-end features by (audio digest, front-end key), under ``root``.

    ``hits`` and ``misses`` count this object's lookups (a miss computes and writes).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise LmplugError(f"expected a feature cache directory, found a file: {self.root}")
        self.hits = 0
        self.misses = 0
        self._described: set[str] = set()

    def folder(self, frontend) -> Path:
        """The folder of ``frontend``'s features (its name and key digest)."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", frontend.name)
        return self.root / f"{safe}-{hashlib.sha256(frontend.key.encode()).hexdigest()[:16]}"

    def path(self, frontend, digest: str) -> Path:
        return self.folder(frontend) / digest[:2] / f"{digest}.npy"

    def features(self, frontend, audio: str | Path | np.ndarray) -> np.ndarray:
        """``frontend``'s (T, dim) float16 features of ``audio`` (a file, or (N,) float32 samples at
        16 kHz), read from the cache or computed and written there."""
        target = self.path(frontend, audio_digest(audio))
        if target.is_file():
            try:
                feats = np.load(target, allow_pickle=False)
                if feats.dtype == np.float16 and feats.ndim == 2 and feats.shape[1] == frontend.dim:
                    self.hits += 1
                    return feats
            except (OSError, ValueError):
                pass  # not a whole .npy (written by something else): computed again below
        self.misses += 1
        samples = audio if isinstance(audio, np.ndarray) else load_audio(audio)
        feats = to_float16(frontend(samples), frontend.name)
        self._describe(frontend)
        with atomic_output(target) as tmp, open(tmp, "wb") as f:
            np.save(f, feats)
        return feats

    def _describe(self, frontend) -> None:
        """frontend.json in the front-end's folder: what its features are (once per object)."""
        folder = self.folder(frontend)
        if frontend.key in self._described or (folder / "frontend.json").is_file():
            return
        info = {"name": frontend.name, "key": frontend.key, "dim": frontend.dim, "frame_rate": frontend.frame_rate,
                "dtype": "float16", "lmplug": VERSION}
        if hasattr(frontend, "tokens"):
            info.update(tokens=list(frontend.tokens), blank=frontend.blank, word_boundary=frontend.word_boundary)
        with atomic_output(folder / "frontend.json") as tmp:
            tmp.write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        self._described.add(frontend.key)


def to_float16(feats: np.ndarray, name: str = "front-end") -> np.ndarray:
    """(T, D) float32 -> float16; values beyond float16's range (finite ones) are an error."""
    finite = feats[np.isfinite(feats)]
    if finite.size and np.abs(finite).max() > F16_MAX:
        raise LmplugError(f"{name}: expected features within float16's range (|x| <= {F16_MAX:g}), "
                          f"found {np.abs(finite).max():g}")
    return feats.astype(np.float16)


def compute_features(frontend, sources: Sequence[str | Path | np.ndarray], cache: FeatureCache | None = None,
                     progress: bool = False) -> list[np.ndarray]:
    """``frontend``'s (T_i, dim) float16 features of each source (file or 16 kHz samples), through
    ``cache`` when given (else computed, nothing written)."""
    from tqdm import tqdm

    out = []
    for src in tqdm(sources, disable=not progress, desc=frontend.name, unit="utt"):
        if cache is not None:
            out.append(cache.features(frontend, src))
        else:
            samples = src if isinstance(src, np.ndarray) else load_audio(src)
            out.append(to_float16(frontend(samples), frontend.name))
    return out
