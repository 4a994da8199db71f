"""Real speech corpora as manifests: Cathy split by prompt, pocketsphinx-testdata, augmented copies."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from lmplug.errors import LmplugError
from lmplug.speech.corpora import (augment_recordings, read_cathy, read_sphinx_testdata, split_by_prompt,
                                   write_rows)

PROMPTS = {"a0001": "Author of the danger trail, Philip Steels, etc.", "a0002": "Not at this particular case, Tom.",
           "a0003": "For the twentieth time that evening the two men shook hands.",
           "a0004": "Not at this particular case, Tom!", "a0005": "Lord, but I'm glad to see you again, Phil.",
           "a0006": "Will we ever forget it.", "a0007": "God bless 'em, I hope I'll go on seeing them forever.",
           "a0008": "Numbers 1 and 2."}


def _wav(path, seconds=0.3, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)


@pytest.fixture
def cathy(tmp_path):
    root = tmp_path / "cathy"
    (root / "audio").mkdir(parents=True)
    rows = []
    for i, (prompt, text) in enumerate(PROMPTS.items()):
        for take in range(1 + i % 3):  # 1-3 takes a prompt
            uid = f"arctic_{prompt}_{take}"
            _wav(root / "audio" / f"{uid}.flac", seed=len(rows))
            rows.append({"id": uid, "audio": f"audio/{uid}.flac", "text": text, "prompt": prompt})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_read_cathy_normalizes_and_skips_what_the_labels_cannot_spell(cathy):
    rows, skipped = read_cathy(cathy)
    assert skipped == 2  # "Numbers 1 and 2." has digits: 2 takes
    texts = {r["prompt"]: r["text"] for r in rows}
    assert texts["a0001"] == "author of the danger trail philip steels etc"
    assert texts["a0007"] == "god bless em i hope i'll go on seeing them forever"
    assert all(r["audio"].startswith("/") for r in rows)


def test_split_keeps_prompts_and_their_words_on_one_side(cathy):
    rows, _ = read_cathy(cathy)
    for seed in range(5):
        parts = split_by_prompt(rows, 2, 2, seed=seed)
        prompts = {k: {r["prompt"] for r in v} for k, v in parts.items()}
        assert len(prompts["dev"]) == 2 and len(prompts["test"]) == 2
        assert not (prompts["train"] & prompts["dev"] or prompts["train"] & prompts["test"] or prompts["dev"] & prompts["test"])
        held_out = {r["text"] for r in parts["dev"] + parts["test"]}
        assert not held_out & {r["text"] for r in parts["train"]}  # a0002 and a0004 have the same words
        for k, v in parts.items():  # every take of a prompt stays with it
            assert sum(r["prompt"] in prompts[k] for r in rows) == len(v) or k == "train"
    with pytest.raises(LmplugError, match="expected fewer held-out prompts than the 7 there are, found 4 dev \\+ 3 test"):
        split_by_prompt(rows, 4, 3)


def test_bad_cathy_folders(tmp_path, cathy):
    with pytest.raises(LmplugError, match="expected the Cathy corpus folder with manifest.jsonl"):
        read_cathy(tmp_path)
    lines = (cathy / "manifest.jsonl").read_text().splitlines()
    (cathy / "manifest.jsonl").write_text(lines[0] + "\n" + json.dumps({"id": "x", "audio": "audio/x.flac"}) + "\n")
    with pytest.raises(LmplugError, match=r"manifest.jsonl:2: expected fields id, audio, text, prompt, missing \['text', 'prompt'\]"):
        read_cathy(cathy)
    (cathy / "manifest.jsonl").write_text(json.dumps({"id": "x", "audio": "audio/x.flac", "text": "a", "prompt": "p"}) + "\n")
    with pytest.raises(LmplugError, match="manifest.jsonl:1: audio file not found"):
        read_cathy(cathy)


def test_sphinx_testdata(tmp_path):
    for name, trans, lines in (("librivox", "transcription", ["<s> he was not an ill disposed young man </s> (s-0880)"]),
                               ("cards", "cards.transcription", ["<s> ten of clubs  </s> (001)", ""])):
        (tmp_path / name).mkdir()
        (tmp_path / name / trans).write_text("\n".join(lines) + "\n")
    for f in ("librivox/s-0880.wav", "cards/001.wav"):
        _wav(tmp_path / f)
    rows = read_sphinx_testdata(tmp_path)
    assert [(r["id"], r["text"], r["set"]) for r in rows] == [
        ("librivox-s-0880", "he was not an ill disposed young man", "librivox"), ("cards-001", "ten of clubs", "cards")]
    (tmp_path / "cards" / "cards.transcription").write_text("ten of clubs\n")
    with pytest.raises(LmplugError, match=r"cards.transcription:1: expected '<s> words </s> \(file id\)'"):
        read_sphinx_testdata(tmp_path)
    with pytest.raises(LmplugError, match="expected pocketsphinx-testdata"):
        read_sphinx_testdata(tmp_path / "librivox")


def test_augmented_copies_are_written_once(tmp_path, cathy):
    rows, _ = read_cathy(cathy)
    made = augment_recordings(rows[:3], tmp_path / "out", copies=2, seed=1, workers=1, progress=False)
    assert [r["id"] for r in made] == [f"{r['id']}-aug{k}" for r in rows[:3] for k in range(2)]
    for r in made:
        audio, sr = sf.read(r["audio"])
        assert sr == 16000 and np.abs(audio).max() <= 0.96 and r["augment"]["speed"] in (0.9, 1.0, 1.1)
    stamps = {r["audio"]: (tmp_path / "out" / "audio_aug" / r["audio"].rsplit("/", 1)[1]).stat().st_mtime_ns for r in made}
    again = augment_recordings(rows[:3], tmp_path / "out", copies=2, seed=1, workers=1, progress=False)
    assert again == made and all(stamps[r["audio"]] == os.stat(r["audio"]).st_mtime_ns for r in again)
    manifest = write_rows(made, tmp_path / "m" / "train_aug.jsonl")
    from lmplug.speech.synthesis import read_manifest

    utts = read_manifest(manifest)  # relative paths resolve from the manifest's folder
    assert [u.id for u in utts] == [r["id"] for r in made] and all(u.duration > 0 for u in utts)


def test_prepare_real_speech_command(tmp_path, cathy):
    import subprocess
    import sys

    out = tmp_path / "real"
    res = subprocess.run([sys.executable, "-m", "lmplug", "prepare-real-speech", "--cathy", str(cathy), "--sphinx", "",
                          "--out", str(out), "--dev-prompts", "2", "--test-prompts", "2", "--augment", "1",
                          "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["prompts"]["dev"] == 2 and summary["prompts"]["test"] == 2 and summary["prompts"]["train"] >= 2
    assert summary["utterances"]["train_aug"] == summary["utterances"]["train"] and summary["skipped"] == 2
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["dev.jsonl", "test.jsonl", "train.jsonl", "train_aug.jsonl"]
