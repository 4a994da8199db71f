import json

import pytest
import torch

from lmplug.checkpoint import load_lm, save_lm
from lmplug.errors import LmplugError
from lmplug.tokenizer import train_tokenizer


@pytest.fixture()
def ckpt(tmp_path, tiny_model, tokenizer):
    save_lm(tmp_path / "ck", tiny_model, tokenizer)
    return tmp_path / "ck"


def test_roundtrip_same_logits(ckpt, tiny_model):
    lm = load_lm(ckpt)
    idx = torch.randint(0, tiny_model.config.vocab_size, (2, 7))
    torch.testing.assert_close(lm.model(idx)[0], tiny_model(idx)[0])
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "model.safetensors", "tokenizer.model"]
    assert "params:" in lm.signature()


def test_missing_file(ckpt):
    (ckpt / "tokenizer.model").unlink()
    with pytest.raises(LmplugError, match=r"missing \['tokenizer.model'\]"):
        load_lm(ckpt)


def test_corrupt_weights(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(LmplugError, match="corrupt or unreadable"):
        load_lm(ckpt)


def test_corrupt_config(ckpt):
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(LmplugError, match="corrupt JSON"):
        load_lm(ckpt)


def test_weights_do_not_match_config(ckpt):
    meta = json.loads((ckpt / "config.json").read_text())
    meta["model"]["n_embd"] = 64
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(LmplugError, match="do not match config.json"):
        load_lm(ckpt)


def test_tokenizer_mismatch(ckpt, tmp_path, corpus):
    other = train_tokenizer(corpus, tmp_path / "other.model", vocab_size=60)
    other.save(ckpt / "tokenizer.model")
    with pytest.raises(LmplugError, match="tokenizer has 60 pieces but the model expects vocab_size"):
        load_lm(ckpt)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(LmplugError, match="does not exist"):
        load_lm(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LmplugError, match="expected a checkpoint directory"):
        load_lm(tmp_path / "empty")


def test_no_pickle_anywhere(ckpt):
    """Every file is JSON, safetensors or a sentencepiece proto: nothing a loader would unpickle."""
    for f in ckpt.rglob("*"):
        assert f.suffix in {".json", ".safetensors", ".model"}, f
        assert not f.read_bytes().startswith(b"\x80"), f"{f} looks like a pickle"
