"""lmplug emissions: bad input is a one-line error that leaves no output behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmplug.speech.acoustic import AMConfig, ConformerCTC, save_am
from lmplug.cli.main import main


@pytest.fixture
def am(tmp_path):
    save_am(tmp_path / "am", ConformerCTC(AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64)).eval())
    return str(tmp_path / "am")


def _manifest(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_emissions_checks_the_audio_before_it_creates_outputs(am, tmp_path, capsys):
    sf = pytest.importorskip("soundfile")
    sf.write(tmp_path / "good.flac", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "bad.flac").write_bytes(b"not audio at all")
    man = _manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": "good.flac", "text": "x"},
                                           {"id": "b", "audio": "bad.flac", "text": "y"}])
    assert main(["emissions", "--am", am, "--manifest", man, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err  # after the fbank progress bar
    assert f"lmplug emissions: error: {tmp_path / 'bad.flac'}: unreadable audio: expected WAV, FLAC" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_emissions_refuses_duplicate_ids(am, tmp_path, capsys):
    (tmp_path / "a.flac").write_bytes(b"")
    rows = [{"id": "a", "audio": "a.flac", "text": "x"}, {"id": "b", "audio": "a.flac", "text": "y"}]
    man = _manifest(tmp_path / "m.jsonl", rows + rows[:1])
    assert main(["emissions", "--am", am, "--manifest", man, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"lmplug emissions: error: {man}: expected each utterance id once, "
                                               "found 'a' at lines 1 and 3")
    assert not (tmp_path / "out").exists()


def test_speech_commands_check_their_options(am, tmp_path, capsys):
    """Ids that cannot name a file, an SNR range that is not one, text with no usable sentence,
    a step count below 1: one-line errors before any work."""
    man = _manifest(tmp_path / "m.jsonl", [{"id": "spk/1", "audio": "a.flac", "text": "x"}])
    (tmp_path / "a.flac").write_bytes(b"")
    assert main(["emissions", "--am", am, "--manifest", man, "--out", str(tmp_path / "out")]) == 2
    assert "expected utterance ids usable as file names, found ['spk/1']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "t.txt").write_text("the cat sat\n")
    (tmp_path / "digits.txt").write_text("1 2 3\n")
    speech = ["prepare-speech", "--out", str(tmp_path / "sp"), "--split", "dev"]
    for extra, message in [(["--text", str(tmp_path / "t.txt"), "--snr", "abc"], "--snr: expected a comma-separated"),
                           (["--text", str(tmp_path / "t.txt"), "--snr", "20"], "--snr: expected 'low,high'"),
                           (["--text", str(tmp_path / "t.txt"), "--snr", "30,10"], "--snr: expected 'low,high'"),
                           (["--text", str(tmp_path / "digits.txt")], "found none among 1 lines")]:
        assert main(speech + extra) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    train = ["train-am", "--train", man, "--dev", man, "--out", str(tmp_path / "am2"), "--max-steps", "0"]
    assert main(train) == 2 and "--max-steps: expected an integer >= 1, found 0" in capsys.readouterr().err
    assert not (tmp_path / "sp").exists() and not (tmp_path / "am2").exists()


def test_emissions_reports_the_greedy_error_rates(am, tmp_path, capsys):
    """With transcripts in the manifest, emissions prints the acoustic model's greedy WER and CER
    (jiwer, in percent), the same as scoring the manifest's greedy column."""
    import jiwer
    import soundfile as sf

    rng = np.random.default_rng(0)
    rows = []
    for i, text in enumerate(["the cat", "a dog sat"]):
        sf.write(tmp_path / f"u{i}.flac", (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
        rows.append({"id": f"u{i}", "audio": f"u{i}.flac", "text": text})
    man = _manifest(tmp_path / "m.jsonl", rows)
    capsys.readouterr()
    assert main(["emissions", "--am", am, "--manifest", man, "--out", str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    refs, hyps = [r["text"] for r in written], [r["greedy"] for r in written]
    assert summary["greedy_wer"] == round(100 * jiwer.wer(refs, hyps), 2)
    assert summary["greedy_cer"] == round(100 * jiwer.cer(refs, hyps), 2)
