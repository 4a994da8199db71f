import json
import shutil

import numpy as np
import pytest

from lmplug.errors import LmplugError
from lmplug.speech.synthesis import (VOICES, Utterance, add_noise, build_speech_corpus, load_audio, make_noise, read_kaldi_dir,
                           read_manifest, write_manifest)

sf = pytest.importorskip("soundfile")


def test_voice_splits_are_disjoint():
    assert not set(VOICES["train"]) & set(VOICES["test"])
    assert not set(VOICES["train"]) & set(VOICES["dev"])
    assert len(VOICES["test"]) >= 2


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_add_noise_hits_the_snr(kind, snr):
    rng = np.random.default_rng(0)
    speech = np.sin(np.linspace(0, 600, 16000)).astype(np.float32)
    noise = make_noise(kind, len(speech), rng, babble=[rng.standard_normal(5000).astype(np.float32)])
    noisy = add_noise(speech, noise, snr)
    measured = 10 * np.log10(np.mean(speech**2) / np.mean((noisy - speech) ** 2))
    assert measured == pytest.approx(snr, abs=1e-3)


def test_pink_noise_has_falling_spectrum():
    x = make_noise("pink", 2**15, np.random.default_rng(0))
    p = np.abs(np.fft.rfft(x)) ** 2
    assert p[10:100].mean() > 10 * p[-1000:].mean()


def test_manifest_errors_name_file_and_line(tmp_path):
    wav = tmp_path / "a.flac"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "audio": "a.flac", "text": "hi"}) + "\n{bad\n")
    with pytest.raises(LmplugError, match=r"m.jsonl:2: expected a JSON object"):
        read_manifest(m)
    m.write_text(json.dumps({"id": "a", "audio": "a.flac", "text": " "}) + "\n")
    with pytest.raises(LmplugError, match=r"m.jsonl:1: empty transcript"):
        read_manifest(m)
    m.write_text(json.dumps({"id": "b", "audio": "missing.flac", "text": "x"}) + "\n")
    with pytest.raises(LmplugError, match=r"m.jsonl:1: audio file not found"):
        read_manifest(m)
    m.write_text(json.dumps({"id": "b", "text": "x"}) + "\n")
    with pytest.raises(LmplugError, match=r"missing field\(s\) \['audio'\]"):
        read_manifest(m)
    write_manifest([Utterance("a", str(wav), "hi there")], m)
    assert read_manifest(m)[0].text == "hi there"


def test_kaldi_dir(tmp_path):
    sf.write(tmp_path / "u1.wav", np.zeros(800, dtype=np.float32), 8000)
    (tmp_path / "wav.scp").write_text("u1 u1.wav\n")
    (tmp_path / "text").write_text("u1 hello world\n")
    (u,) = read_kaldi_dir(tmp_path)
    assert u.text == "hello world" and load_audio(u.audio).shape == (1600,)  # resampled 8k -> 16k
    (tmp_path / "text").write_text("u2 other\n")
    with pytest.raises(LmplugError, match="no transcript for utterance u1"):
        read_kaldi_dir(tmp_path)


def test_unreadable_audio(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"not audio at all")
    with pytest.raises(LmplugError, match="unreadable audio"):
        load_audio(tmp_path / "x.wav")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (tools/setup.sh)")
def test_build_tiny_corpus_is_deterministic_and_resumable(tmp_path):
    sents = ["and god said let there be light", "the lord is my shepherd", "he leadeth me beside the still waters"]
    m = build_speech_corpus(sents, tmp_path, "test", workers=1, progress=False)
    utts = read_manifest(m)
    assert [u.text for u in utts] == sents and {u.voice for u in utts} <= set(VOICES["test"])
    audio = load_audio(utts[0].audio)
    assert 1.0 < len(audio) / 16000 < 6.0 and utts[0].duration == pytest.approx(len(audio) / 16000, abs=1e-3)
    before = (tmp_path / utts[0].audio).stat().st_mtime
    again = read_manifest(build_speech_corpus(sents, tmp_path, "test", workers=1, progress=False))
    assert [u.__dict__ for u in again] == [u.__dict__ for u in utts]  # same draws
    assert (tmp_path / utts[0].audio).stat().st_mtime == before  # existing audio kept
    reverb = read_manifest(build_speech_corpus(sents, tmp_path, "test", workers=1, progress=False, reverb_prob=1.0))
    assert all(a.audio != b.audio for a, b in zip(reverb, utts))  # other audio: not the files kept
    with pytest.raises(LmplugError, match="empty"):
        build_speech_corpus(["ok", " "], tmp_path, "test", progress=False)
