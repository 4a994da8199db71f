"""The translation commands end to end on a toy task (seconds), and the tiny recipe (slow)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sacrebleu")

from lmplug.cli.main import main
from lmplug.mt.nbest import read_nbest

ROOT = Path(__file__).resolve().parents[2]
WORDS = "a b c d e f g h i j".split()


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("mtcli")
    rng = random.Random(0)
    src = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))) for _ in range(460)]
    tgt = [s.upper() for s in src]
    files = {}
    for name, lo, hi in (("train", 0, 400), ("dev", 400, 430), ("test", 430, 460)):
        files[f"{name}.src"] = _write(d / f"{name}.src", src[lo:hi])
        files[f"{name}.tgt"] = _write(d / f"{name}.tgt", tgt[lo:hi])
    from lmplug.tokenizer import train_tokenizer

    train_tokenizer(src + tgt, d / "tok.model", vocab_size=40, model_type="word")
    common = ["--tokenizer", str(d / "tok.model"), "--scale", "tiny", "--max-steps", "250", "--device", "cpu"]
    for out, a, b in (("fwd", "src", "tgt"), ("rev", "tgt", "src")):
        assert main(["train-nmt", "--train-src", files[f"train.{a}"], "--train-tgt", files[f"train.{b}"],
                     "--dev-src", files[f"dev.{a}"], "--dev-tgt", files[f"dev.{b}"], "--out", str(d / out),
                     *common]) == 0
    return d, files


def test_translate_features_tune_rerank_evaluate(toy, capsys):
    d, f = toy
    for s in ("dev", "test"):
        assert main(["translate", "--model", str(d / "fwd"), "--src", f[f"{s}.src"], "--out", str(d / f"{s}.nbest"),
                     "--onebest", str(d / f"{s}.1best"), "--beam", "10", "--nbest", "10", "--device", "cpu"]) == 0
        nb = read_nbest(d / f"{s}.nbest", n_sources=30)
        assert all(9 <= len(h) <= 10 for h in nb) and set(nb[0][0].scores) == {"nmt", "nmt_norm"}
        assert main(["nbest-features", "--nbest", str(d / f"{s}.nbest"), "--src", f[f"{s}.src"],
                     "--out", str(d / f"{s}.feat.jsonl"), "--channel", str(d / "rev"), "--cache", str(d / "cache"),
                     "--device", "cpu"]) == 0
    nb = read_nbest(d / "dev.feat.jsonl")
    assert set(nb[0][0].scores) == {"nmt", "nmt_norm", "channel", "channel_norm", "words", "len_ratio"}
    assert main(["tune-rerank", "--nbest", str(d / "dev.feat.jsonl"), "--ref", f["dev.tgt"], "--restarts", "2",
                 "--out", str(d / "w.json")]) == 0
    w = json.loads((d / "w.json").read_text())
    assert set(w["weights"]) == {"nmt", "nmt_norm", "channel", "channel_norm", "words", "len_ratio"} and w["dev_bleu"] > 50
    assert main(["rerank", "--nbest", str(d / "test.feat.jsonl"), "--weights", str(d / "w.json"),
                 "--src", f["test.src"], "--out", str(d / "test.rr")]) == 0
    assert main(["rerank", "--nbest", str(d / "test.feat.jsonl"), "--oracle-ref", f["test.tgt"],
                 "--out", str(d / "test.oracle")]) == 0
    assert main(["eval-mt", "--ref", f["test.tgt"], "--baseline", "1best", "--system", f"1best={d / 'test.1best'}",
                 "--system", f"rr={d / 'test.rr'}", "--system", f"oracle={d / 'test.oracle'}", "--bootstrap", "100",
                 "--json", str(d / "eval.json")]) == 0
    rep = json.loads((d / "eval.json").read_text())
    rows = {r["name"]: r for r in rep["systems"]}
    assert rows["oracle"]["bleu"] >= rows["1best"]["bleu"]
    assert rows["rr"]["p_bleu"] is not None and "tok:13a" in rep["signatures"]["BLEU"]


def test_user_errors_exit_2_with_one_line(toy, capsys):
    d, f = toy
    bad = d / "bad.nbest"
    bad.write_text("0 ||| a ||| nmt= 1\n2 ||| b ||| nmt= 1\n")
    assert main(["rerank", "--nbest", str(bad), "--weights", "nmt=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lmplug rerank: error: {bad}:2: expected id 1, found 2 (no hypotheses for id 1)"
    good = d / "good.nbest"
    good.write_text("0 ||| a ||| nmt= 1\n1 ||| b ||| nmt= 1\n")
    assert main(["rerank", "--nbest", str(good), "--weights", "nmt=1,lm=2"]) == 2
    assert "weights name unknown features ['lm']" in capsys.readouterr().err
    assert main(["rerank", "--nbest", str(good), "--weights", "nmt=1", "--src", f["test.src"]]) == 2
    assert "expected hypotheses for 30 source sentences" in capsys.readouterr().err


# the real Multi30k for the recipe test, opt-in (a folder holding task1/ and task2/); by default the
# test prepares fake files of Multi30k's layout and line counts (tests/conftest.py)
MULTI30K_ENV = "LMPLUG_MULTI30K"


SETS = ("len", "lm", "channel", "lm_channel", "norm", "norm_lm_channel")  # the recipe's feature sets
NEEDS_LMPLZ = pytest.mark.skipif(not (Path(sys.executable).parent / "lmplz").is_file(),
                                 reason="needs lmplz (tools/setup.sh)")


def _recipe(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "recipes/mt_nbest_rerank/run.sh", "--scale", "tiny", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory, fake_multi30k):
    """The tiny recipe run once, all stages (~1 min): (its exp dir, its data dir, the Multi30k source)."""
    exp = tmp_path_factory.mktemp("mt_recipe")
    source = os.environ.get(MULTI30K_ENV) or str(fake_multi30k)
    proc = _recipe("--corpus", "multi30k", "--data-dir", str(exp / "data"), "--multi30k-from", source, "--exp", str(exp))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return exp, exp / "data", source


@pytest.mark.slow
@NEEDS_LMPLZ
def test_tiny_recipe_end_to_end(tiny_recipe):
    exp, data, source = tiny_recipe
    assert json.loads((data / "multi30k" / "manifest.json").read_text())["source"] == source
    res = json.loads((exp / "tiny" / "results.json").read_text())
    rows = {r["name"] for r in res["corpora"]["multi30k"]["eval_test"]["systems"]}
    assert rows == {"1best", *SETS, "oracle"}
    d = exp / "tiny" / "multi30k"
    for name in SETS:  # the tuned weights, for committing (what --weights-from reads)
        assert (d / "weights" / f"weights.{name}.json").read_bytes() == (d / f"weights.{name}.json").read_bytes()


@pytest.mark.slow
@NEEDS_LMPLZ
def test_tiny_recipe_on_references_with_given_weights(tiny_recipe, tmp_path):
    """The tiny run's models exported as references (float16) and its tuned weights given: test only, nothing
    trained or tuned, and the same translations, features and BLEU as the tiny run's."""
    exp, data, _ = tiny_recipe
    d = exp / "tiny" / "multi30k"
    models = tmp_path / "models"
    for ckpt, name, kind in (("nmt", "nmt-multi30k-en-de", "nmt"), ("channel", "nmt-multi30k-de-en", "nmt"),
                             ("lm", "lm-multi30k-de", "lm")):
        assert main(["export-model", "--checkpoint", str(d / ckpt), "--out", str(models / name), "--name", name,
                     "--kind", kind]) == 0
    proc = _recipe("--corpus", "multi30k", "--data-dir", str(data), "--exp", str(tmp_path / "ref"), "--references",
                   "--models", str(models), "--weights-from", str(d / "weights"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = tmp_path / "ref" / "tiny" / "multi30k"
    assert not any((r / f).exists() for f in ("nmt", "channel", "lm", "nmt_tok.model", "dev.nbest", "dev.feat.nbest"))
    assert "tune-rerank" not in proc.stderr and f"--model {models / 'nmt-multi30k-en-de'} " in proc.stderr
    for name in SETS:
        assert (r / f"weights.{name}.json").read_bytes() == (d / f"weights.{name}.json").read_bytes()
    # float16 weights: the same hypotheses (by position) score alike; KenLM and lengths exactly
    got, want = read_nbest(r / "test.feat.nbest"), read_nbest(d / "test.feat.nbest")
    pairs = [(a, b) for g, w in zip(got, want) for a, b in zip(g, w) if a.text == b.text]
    assert len(pairs) >= 0.9 * sum(map(len, want))
    for a, b in pairs:
        assert a.scores.keys() == b.scores.keys()
        assert all(abs(a.scores[k] - b.scores[k]) <= (0 if k.startswith(("kenlm", "words", "len")) else 0.1)
                   for k in a.scores), (a, b)
    bleu = {e: {s["name"]: s["bleu"] for s in json.loads((x / "eval.test.json").read_text())["systems"]}
            for e, x in (("got", r), ("want", d))}
    assert bleu["got"].keys() == bleu["want"].keys()
    assert all(abs(bleu["got"][k] - bleu["want"][k]) <= 1.0 for k in bleu["want"]), bleu


def test_recipe_refuses_missing_references_and_weights_in_one_line(tmp_path):
    (tmp_path / "models" / "nmt-bible-es-en").mkdir(parents=True)
    (tmp_path / "models" / "nmt-bible-es-en" / "card.json").write_text("{}")
    m = tmp_path / "models"
    proc = _recipe("--corpus", "bible", "--references", "--models", str(m), "--exp", str(tmp_path / "exp"))
    assert proc.returncode == 2 and proc.stderr == (
        f"--references --corpus bible: expected reference checkpoints (lmplug export-model) {m}/nmt-bible-es-en, "
        f"{m}/nmt-bible-en-es, {m}/lm-bible; found no card.json in {m}/nmt-bible-en-es, {m}/lm-bible\n")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "weights.len.json").write_text("{}")
    proc = _recipe("--weights-from", str(tmp_path / "w"), "--exp", str(tmp_path / "exp"))
    assert proc.returncode == 2 and proc.stderr == (
        f"--weights-from: expected tuned weights {tmp_path}/w/weights.<set>.json for each set ({' '.join(SETS)}), "
        f"found no {tmp_path}/w/weights.lm.json\n")


def test_prepare_multi30k_copies_and_fails_offline_in_one_line(fake_multi30k, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["prepare-multi30k", "--out", str(out), "--from", str(fake_multi30k), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == {"out": str(out), "source": str(fake_multi30k), "files": 29}
    assert (out / "task1" / "test_2016_flickr.de").read_bytes() == (fake_multi30k / "task1/test_2016_flickr.de").read_bytes()
    url = "http://127.0.0.1:9/data"  # nothing listens on the discard port: refused at once
    assert main(["prepare-multi30k", "--out", str(tmp_path / "m2"), "--url", url, "--timeout", "5", "--quiet"]) == 2
    err = _error(capsys, "prepare-multi30k")
    assert err.startswith(f"cannot download {url}/task1/raw/train.en.gz: ") and "--from DIR" in err
    assert main(["prepare-multi30k", "--out", str(tmp_path / "m3"), "--timeout", "0", "--quiet"]) == 2
    assert _error(capsys, "prepare-multi30k") == "--timeout: expected a number > 0, found 0.0"


def _error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"lmplug {command}: error: "), err
    return err[len(f"lmplug {command}: error: "):]


def test_too_few_references_name_the_file_and_counts(tmp_path, capsys):
    nb = _write(tmp_path / "nb.txt", ["0 ||| a b ||| nmt= 1", "0 ||| a c ||| nmt= 2", "1 ||| b ||| nmt= 1",
                                      "2 ||| c ||| nmt= 1"])
    ref2 = _write(tmp_path / "ref2.txt", ["a b", "b"])
    assert main(["rerank", "--nbest", nb, "--oracle-ref", ref2]) == 2
    assert _error(capsys, "rerank") == f"{ref2}: expected 3 reference lines (one per sentence of {nb}), found 2"
    hyps = _write(tmp_path / "hyps.txt", ["a b", "b", "c"])
    assert main(["eval-mt", "--ref", ref2, "--system", f"s={hyps}"]) == 2
    assert _error(capsys, "eval-mt") == f"system 's': expected 2 lines (one per line of {ref2}), found 3 in {hyps}"
    empty = _write(tmp_path / "empty.txt", [])
    assert main(["eval-mt", "--ref", empty, "--system", f"s={empty}"]) == 2
    assert _error(capsys, "eval-mt") == f"{empty}: expected at least one reference line, found an empty file"


def test_eval_mt_bootstrap_zero_runs_no_test_and_names_must_differ(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", ["a b c d", "b c d e", "c d e f"])
    a = _write(tmp_path / "a.txt", ["a b c d", "b c d", "c d e f"])
    b = _write(tmp_path / "b.txt", ["a b c d", "b c d e", "c d e"])
    base = ["eval-mt", "--ref", ref, "--system", f"a={a}", "--baseline", "a", "--json", str(tmp_path / "r.json")]
    assert main(base + ["--system", f"b={b}", "--bootstrap", "0"]) == 0
    out = capsys.readouterr()
    assert "p=" not in out.out and "--bootstrap 0: no significance test against 'a'" in out.err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["n_bootstrap"] == 0 and all(r["p_bleu"] is None for r in rep["systems"])
    assert main(base + ["--system", f"b={b}", "--bootstrap", "-1"]) == 2
    assert _error(capsys, "eval-mt") == "--bootstrap: expected an integer >= 0, found -1"
    assert main(base + ["--system", f"a={b}"]) == 2
    assert _error(capsys, "eval-mt") == f"--system: expected distinct names, found 'a' twice (a={a}, a={b})"


def test_tune_rerank_refuses_negative_restarts(tmp_path, capsys):
    nb = _write(tmp_path / "nb.txt", ["0 ||| a ||| nmt= 1", "0 ||| b ||| nmt= 2"])
    ref = _write(tmp_path / "ref.txt", ["a"])
    assert main(["tune-rerank", "--nbest", nb, "--ref", ref, "--restarts", "-3", "--out", str(tmp_path / "w.json")]) == 2
    assert _error(capsys, "tune-rerank") == "expected restarts >= 0 (random starting points besides the first), found -3"
    assert not (tmp_path / "w.json").exists()


TRANSLATE_FLAG_ERRORS = [  # (extra flags, message)
    (["--beam", "0"], "--beam: expected an integer >= 1, found 0"),
    (["--beam", "-2", "--nbest", "1"], "--beam: expected an integer >= 1, found -2"),
    (["--nbest", "0"], "--nbest: expected an integer >= 1, found 0"),
    (["--nbest", "-1"], "--nbest: expected an integer >= 1, found -1"),
    (["--beam", "4", "--nbest", "9"], "--nbest: expected at most --beam (4) hypotheses, found 9"),
    (["--batch-sentences", "0"], "--batch-sentences: expected an integer >= 1, found 0"),
]


@pytest.mark.parametrize("flags,message", TRANSLATE_FLAG_ERRORS)
def test_translate_checks_its_search_flags(toy, tmp_path, capsys, flags, message):
    d, f = toy
    out = tmp_path / "x.nbest"
    assert main(["translate", "--model", str(d / "fwd"), "--src", f["test.src"], "--out", str(out), "--device", "cpu",
                 *flags]) == 2
    assert _error(capsys, "translate") == message
    assert not out.exists()


def test_translate_refuses_an_empty_source_and_keeps_the_whole_beam_by_default(toy, tmp_path, capsys):
    d, f = toy
    empty, out = _write(tmp_path / "empty.src", []), tmp_path / "x.nbest"
    assert main(["translate", "--model", str(d / "fwd"), "--src", empty, "--out", str(out), "--device", "cpu"]) == 2
    assert _error(capsys, "translate") == f"{empty}: expected at least one sentence, found an empty file"
    assert not out.exists()
    src = _write(tmp_path / "three.src", ["a b c", "d e", "f g h i"])
    assert main(["translate", "--model", str(d / "fwd"), "--src", src, "--out", str(out), "--beam", "3",
                 "--device", "cpu"]) == 0
    assert all(2 <= len(h) <= 3 for h in read_nbest(out, n_sources=3))


def test_tune_rerank_refuses_a_feature_named_twice(tmp_path, capsys):
    nb = _write(tmp_path / "nb.txt", ["0 ||| a ||| nmt= 1 lm= 2", "0 ||| b ||| nmt= 2 lm= 1"])
    ref = _write(tmp_path / "ref.txt", ["a"])
    out = tmp_path / "w.json"
    assert main(["tune-rerank", "--nbest", nb, "--ref", ref, "--features", "nmt,lm,nmt", "--out", str(out)]) == 2
    assert _error(capsys, "tune-rerank") == "expected each feature once, found 'nmt' twice"
    assert not out.exists()
