"""lmplug.speech.audio: any rate resampled to 16 kHz, stereo averaged, and one clear error for
each kind of audio it cannot use."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lmplug.errors import LmplugError
from lmplug.speech.audio import load_audio

sf = pytest.importorskip("soundfile")
pytest.importorskip("torchaudio")


def _tone(sr: int, seconds: float = 1.0, hz: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def _peak_hz(x: np.ndarray, sr: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * sr / len(x))


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_any_rate_becomes_16k_with_the_same_tone(tmp_path, sr, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, _tone(sr), sr, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == pytest.approx(16000, abs=1)  # 1 s at 16 kHz
    assert _peak_hz(audio) == pytest.approx(440.0, abs=1.0)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)


def test_stereo_is_averaged(tmp_path):
    left, right = _tone(16000, hz=440.0), _tone(16000, hz=1000.0)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav"), (left + right) / 2, atol=1e-6)


def test_mp3_reads_when_libsndfile_has_it(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no MP3")
    sf.write(tmp_path / "tone.mp3", _tone(44100), 44100, format="MP3")
    audio = load_audio(tmp_path / "tone.mp3")
    assert abs(len(audio) - 16000) < 1200 and _peak_hz(audio) == pytest.approx(440.0, abs=2.0)  # encoder padding


def test_bad_audio_one_line_each(tmp_path):
    cases = []
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    cases.append(("junk.wav", "unreadable audio: expected WAV, FLAC, OGG, Opus or MP3, found bytes libsndfile cannot decode"))
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    cases.append(("empty.wav", "empty audio: expected at least one sample, found 0"))
    sf.write(tmp_path / "low.wav", _tone(4000), 4000)
    cases.append(("low.wav", "expected a sample rate of at least 8000 Hz, found 4000 Hz"))
    sf.write(tmp_path / "six.wav", _tone(16000, channels=6), 16000)
    cases.append(("six.wav", "expected mono or stereo audio, found 6 channels"))
    nan = _tone(16000)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    cases.append(("nan.wav", "expected finite samples, found [nan] at sample 100"))
    cases.append(("missing.wav", "audio not found"))
    for name, message in cases:
        with pytest.raises(LmplugError, match=re.escape(message)) as e:
            load_audio(tmp_path / name)
        assert str(tmp_path / name) in str(e.value) and "\n" not in str(e.value)
