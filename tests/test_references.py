"""Reference checkpoints: half-precision storage, model cards, digests checked on every load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ctc_helpers import SENTENCES, tiny_lm

from lmplug.checkpoint import load_lm, save_lm
from lmplug.cli.main import main
from lmplug.errors import LmplugError
from lmplug.references import CARD, export_reference, verify_reference
from lmplug.scoring import perplexity, score_sentences


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    lm = tiny_lm(tmp_path_factory.mktemp("tok"))
    d = tmp_path_factory.mktemp("ck") / "lm"
    save_lm(d, lm.model, lm.tokenizer)
    return d


def _export(src, out, **kw):
    return export_reference(src, out, name="tiny", kind="lm", description="a test LM", data="SENTENCES",
                            train_command="(test)", **kw)


def test_export_stores_half_and_loads_as_float32(lm_dir, tmp_path):
    card = _export(lm_dir, tmp_path / "ref", metrics={"ppl_word": 1.0})
    assert card["dtype"] == "float16" and set(card["files"]) == {"config.json", "model.safetensors", "tokenizer.model"}
    assert (tmp_path / "ref" / CARD).is_file() and "sha256" in (tmp_path / "ref" / "README.md").read_text()
    full, half = load_lm(lm_dir), load_lm(tmp_path / "ref")
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    a = score_sentences(full, SENTENCES)
    b = score_sentences(half, SENTENCES)
    # float16 storage rounds each weight by at most 2**-11 relatively: sentence scores move little
    assert max(abs(x.logprob - y.logprob) for x, y in zip(a, b)) < 0.05
    assert (tmp_path / "ref" / "model.safetensors").stat().st_size < 0.6 * (lm_dir / "model.safetensors").stat().st_size


def test_a_changed_or_truncated_file_is_refused_on_load(lm_dir, tmp_path):
    _export(lm_dir, tmp_path / "ref")
    assert verify_reference(tmp_path / "ref")["name"] == "tiny"
    w = tmp_path / "ref" / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[:-10])
    with pytest.raises(LmplugError, match=r"model.safetensors: expected sha256 .* found .*changed or truncated"):
        load_lm(tmp_path / "ref")
    w.write_bytes(data)
    (tmp_path / "ref" / "tokenizer.model").unlink()
    with pytest.raises(LmplugError, match="its card lists tokenizer.model, found no such file"):
        load_lm(tmp_path / "ref")


def test_export_refuses_a_directory_without_weights(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")
    with pytest.raises(LmplugError, match="found no model.safetensors"):
        _export(tmp_path / "x", tmp_path / "ref")
    with pytest.raises(LmplugError, match="--dtype: expected one of"):
        _export(tmp_path / "x", tmp_path / "ref", dtype="int8")


def test_cli_export_model_measures_the_stored_weights(lm_dir, tmp_path, capsys):
    text = tmp_path / "test.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "models" / "lm-tiny"
    assert main(["export-model", "--checkpoint", str(lm_dir), "--out", str(out), "--name", "lm-tiny", "--kind", "lm",
                 "--eval-text", str(text), "--train-command", "lmplug train-lm ..."]) == 0
    card = json.loads((out / CARD).read_text())
    want = perplexity(score_sentences(load_lm(out), SENTENCES))["ppl_word"]
    assert card["metrics"]["ppl_word"] == round(want, 2) and card["metrics"]["sentences"] == len(SENTENCES)
    assert card["eval_command"] == f"lmplug ppl --model {out} --text {text}"
    capsys.readouterr()
    assert main(["ppl", "--model", str(out), "--text", str(text)]) == 0
    assert f"{want:.2f}" in capsys.readouterr().out


MODELS = Path(__file__).resolve().parents[1] / "models"
COMMITTED = sorted(p for p in MODELS.iterdir() if p.is_dir()) if MODELS.is_dir() else []


def test_the_committed_references_fit_the_budget():
    """models/ holds at most 100 MB (issue 24), each reference a directory with its card."""
    total = sum(f.stat().st_size for f in MODELS.rglob("*") if f.is_file())
    assert COMMITTED and total <= 100 * 10**6, f"models/: {total / 1e6:.1f} MB in {len(COMMITTED)} references"


@pytest.mark.parametrize("ref", COMMITTED, ids=lambda p: p.name)
def test_each_committed_reference_has_a_complete_card_and_intact_files(ref):
    card = verify_reference(ref)  # every digest checked
    assert card is not None, f"{ref}: no {CARD}"
    assert card["name"] == ref.name
    for key in ("data", "train_command", "eval_command", "description", "lmplug_commit"):
        assert card[key], f"{ref.name}: its card has no {key}"
    assert card["metrics"] and all(isinstance(v, (int, float)) for v in card["metrics"].values())
    assert (ref / "README.md").read_text(encoding="utf-8").startswith(f"# {ref.name}")
