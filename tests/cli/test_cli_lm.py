import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmplug.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train-lm", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"\(default:\s+cpu\)", out) and "--max-steps" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ppl", "--model", "no/such/dir", "--text", "x.txt"], "text file not found"),
        (["train-tokenizer", "--text", "no_such.txt", "--out", "t.model"], "expected a file at no_such.txt"),
        (["train-ngram", "--text", "no_such.txt", "--out", "x"], "missing or empty"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith(f"lmplug {argv[0]}: error:")


@pytest.mark.parametrize("every", [0, 1, 2, -5])
def test_prepare_text_every_below_3_would_leave_a_split_empty(every, tmp_path, capsys):
    """Of every EVERY lines one goes to dev and one to test: 3 is the least that leaves train non-empty."""
    (tmp_path / "c.txt").write_text("".join(f"line {i}\n" for i in range(10)))
    argv = ["prepare-text", "--input", str(tmp_path / "c.txt"), "--out", str(tmp_path / "out"), "--every", str(every)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("lmplug prepare-text: error: expected every >= 3 (of every EVERY lines, one goes to dev, one to "
                   f"test, the rest to train), found {every}")
    assert not (tmp_path / "out").exists()
    assert main(argv[:-1] + ["3"]) == 0
    assert json.loads(capsys.readouterr().out) == {"train": 4, "dev": 3, "test": 3}


@pytest.mark.parametrize("size", ["0", "-4"])
def test_train_tokenizer_vocab_size_below_1(size, tmp_path, capsys):
    (tmp_path / "t.txt").write_text("a b c\n")
    assert main(["train-tokenizer", "--text", str(tmp_path / "t.txt"), "--out", str(tmp_path / "t.model"),
                 "--vocab-size", size]) == 2
    assert capsys.readouterr().err.strip() == f"lmplug train-tokenizer: error: --vocab-size: expected an integer >= 1, found {size}"
    assert not (tmp_path / "t.model").exists()


def test_ppl_missing_checkpoint(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("hello world\n")
    assert main(["ppl", "--model", str(tmp_path / "nope"), "--text", str(tmp_path / "t.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "lmplug", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("lmplug ")


needs_tools = pytest.mark.skipif(
    shutil.which("diatheke") is None or not (Path(sys.executable).parent / "lmplz").is_file(),
    reason="needs diatheke and lmplz (tools/setup.sh)",
)


@needs_tools
def test_lm_recipe_tiny_end_to_end(tmp_path):
    """recipes/lm/run.sh at tiny scale: real bible text, real lmplz, a trained LM, a results.json."""
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = ["bash", "recipes/lm/run.sh", "--scale", "tiny", "--corpus", "bible", "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp")]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "exp" / "tiny" / "results.json").read_text())
    bible = res["corpora"]["bible"]
    assert bible["transformer"]["sentences"] == 300 and bible["kenlm"]["words"] == bible["transformer"]["words"]
    assert 1 < bible["kenlm"]["ppl_word"] < 5000 and 1 < bible["transformer"]["ppl_word"]
    assert "| bible |" in r.stdout
