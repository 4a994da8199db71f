"""lmplug.speech.cache: the same audio reads back the same features without computing them again;
a changed front-end key computes new ones; no write is ever left half done."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmplug.errors import LmplugError
from lmplug.speech.cache import FeatureCache, audio_digest, compute_features

sf = pytest.importorskip("soundfile")


class CountingFrontEnd:
    """A stand-in front-end: (N,) -> (N // 320 + 1, 4) float32 features, counting its calls."""

    frame_rate = 50.0
    dim = 4

    def __init__(self, name: str = "fake", model: str = "m1", scale: float = 1.0) -> None:
        self.name, self.key, self.scale, self.calls = name, f"{name}|model={model}|v1", scale, 0

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        frames = audio[: (len(audio) // 320) * 320].reshape(-1, 320)
        stats = np.stack([frames.mean(1), frames.std(1), frames.min(1), frames.max(1)], axis=1)
        return (np.concatenate([stats, stats[-1:]]) * self.scale).astype(np.float32)  # (T, 4)


def _noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


def _npy_files(root) -> list:
    return sorted(p for p in root.rglob("*.npy"))


def test_same_audio_reads_back_the_same_features(tmp_path):
    sf.write(tmp_path / "a.wav", _noise(), 16000, subtype="FLOAT")
    fe, cache = CountingFrontEnd(), FeatureCache(tmp_path / "cache")
    first = cache.features(fe, tmp_path / "a.wav")
    assert first.dtype == np.float16 and first.shape == (51, 4)
    np.testing.assert_array_equal(first, fe(_noise()).astype(np.float16))
    fe.calls = 0
    again = FeatureCache(tmp_path / "cache").features(fe, tmp_path / "a.wav")  # a new process, the same root
    np.testing.assert_array_equal(again, first)
    assert fe.calls == 0 and (cache.hits, cache.misses) == (0, 1)
    (npy,) = _npy_files(tmp_path / "cache")
    assert npy.name == f"{audio_digest(tmp_path / 'a.wav')}.npy"
    info = json.loads((npy.parent.parent / "frontend.json").read_text())
    assert info["key"] == fe.key and info["dim"] == 4 and info["dtype"] == "float16"


def test_arrays_are_keyed_by_their_samples(tmp_path):
    fe, cache = CountingFrontEnd(), FeatureCache(tmp_path)
    a = cache.features(fe, _noise(seed=1))
    np.testing.assert_array_equal(cache.features(fe, _noise(seed=1).copy()), a)
    assert (cache.hits, cache.misses, fe.calls) == (1, 1, 1)
    assert not np.array_equal(cache.features(fe, _noise(seed=2)), a) and cache.misses == 2


def test_a_changed_model_computes_new_features_beside_the_old(tmp_path):
    sf.write(tmp_path / "a.flac", _noise(), 16000)
    cache = FeatureCache(tmp_path / "cache")
    old = cache.features(CountingFrontEnd(model="m1"), tmp_path / "a.flac")
    new_fe = CountingFrontEnd(model="m2", scale=2.0)
    new = cache.features(new_fe, tmp_path / "a.flac")
    assert new_fe.calls == 1 and cache.misses == 2
    np.testing.assert_allclose(new.astype(np.float32), 2 * old.astype(np.float32), rtol=1e-3)
    assert len(_npy_files(tmp_path / "cache")) == 2  # the old features are kept
    np.testing.assert_array_equal(cache.features(CountingFrontEnd(model="m1"), tmp_path / "a.flac"), old)


def test_changed_audio_bytes_are_new_audio(tmp_path):
    fe, cache = CountingFrontEnd(), FeatureCache(tmp_path / "cache")
    sf.write(tmp_path / "a.wav", _noise(seed=1), 16000, subtype="FLOAT")
    a = cache.features(fe, tmp_path / "a.wav")
    sf.write(tmp_path / "a.wav", _noise(seed=2), 16000, subtype="FLOAT")  # same name, new content
    assert not np.array_equal(cache.features(fe, tmp_path / "a.wav"), a) and fe.calls == 2


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    fe, cache = CountingFrontEnd(), FeatureCache(tmp_path / "cache")

    def half_save(f, arr, **kw):
        f.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        cache.features(fe, _noise())
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name != "frontend.json"] == []
    monkeypatch.undo()
    assert cache.features(fe, _noise()).shape == (51, 4) and len(_npy_files(tmp_path / "cache")) == 1


def test_a_foreign_partial_file_is_computed_again(tmp_path):
    fe, cache = CountingFrontEnd(), FeatureCache(tmp_path)
    good = cache.features(fe, _noise())
    (npy,) = _npy_files(tmp_path)
    npy.write_bytes(npy.read_bytes()[:60])  # cut by something other than lmplug
    np.testing.assert_array_equal(cache.features(fe, _noise()), good)
    assert fe.calls == 2


def test_bad_input_fails_before_writing(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"junk")
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(LmplugError, match="unreadable audio"):
        cache.features(CountingFrontEnd(), tmp_path / "junk.wav")
    with pytest.raises(LmplugError, match="audio not found"):
        cache.features(CountingFrontEnd(), tmp_path / "none.wav")
    assert not (tmp_path / "cache").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(LmplugError, match="expected a feature cache directory, found a file"):
        FeatureCache(tmp_path / "file")


def test_compute_features_with_and_without_a_cache(tmp_path):
    fe = CountingFrontEnd()
    sources = [_noise(seed=1), _noise(0.5, seed=2), _noise(seed=1)]
    plain = compute_features(fe, sources)
    assert [f.shape for f in plain] == [(51, 4), (26, 4), (51, 4)] and fe.calls == 3
    cache = FeatureCache(tmp_path)
    cached = compute_features(fe, sources, cache)
    assert (cache.hits, cache.misses) == (1, 2)
    for a, b in zip(plain, cached):
        np.testing.assert_array_equal(a, b)
