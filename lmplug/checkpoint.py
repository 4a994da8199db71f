"""Checkpoints without pickle: a directory of safetensors + JSON.

Layout of a checkpoint directory::

    config.json         {"format": "lmplug-lm", "version": ..., "model": LMConfig, "train": {...}}
    model.safetensors   model weights
    tokenizer.model     sentencepiece model
    trainer/            only in training checkpoints: optimizer.safetensors, state.json

Writes are atomic: a checkpoint is written to a temporary sibling directory and swapped in with
renames, so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lmplug.errors import LmplugError
from lmplug.files import atomic_dir, read_json, save_json  # noqa: F401  (re-exported for the loaders)
from lmplug.model import LMConfig, TransformerLM
from lmplug.tokenizer import Tokenizer

FORMAT = "lmplug-lm"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.model")


def _version() -> str:
    from lmplug.constants import VERSION as __version__

    return __version__


@dataclass
class LanguageModel:
    """A Transformer LM ready to score: model (eval mode), its tokenizer and config."""

    model: TransformerLM
    tokenizer: Tokenizer
    config: LMConfig
    path: str = ""

    @property
    def device(self) -> torch.device:
        return self.model.wte.weight.device

    def signature(self) -> str:
        c = self.config
        return (
            f"lm:transformer|L{c.n_layer}-C{c.n_embd}-H{c.n_head}|V{c.vocab_size}|"
            f"params:{self.model.num_parameters()}|path:{self.path}|lmplug:{_version()}"
        )


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint dir, or a training output dir holding ``checkpoint/`` (or its ``.old`` backup);
    a reference checkpoint's files are checked against its card (:mod:`lmplug.references`)."""
    from lmplug.references import verify_reference

    p = Path(path)
    for cand in (p, p / "checkpoint", p / "checkpoint.old"):
        if (cand / "config.json").is_file():
            verify_reference(cand)  # a reference checkpoint (models/): its digests, before anything is read
            return cand
    if not p.exists():
        raise LmplugError(f"checkpoint not found: {p} does not exist")
    found = sorted(x.name for x in p.iterdir()) if p.is_dir() else [p.name]
    raise LmplugError(f"{p}: expected a checkpoint directory with {', '.join(REQUIRED_FILES)}; found {found}")


def save_lm(path: str | os.PathLike, model: TransformerLM, tokenizer: Tokenizer, extra: dict | None = None,
            trainer_write=None) -> None:
    """Write a checkpoint directory atomically (``trainer_write(dir)`` adds training state)."""
    from safetensors.torch import save_file

    raw = model.module if hasattr(model, "module") else model
    state = {k: v.detach().contiguous().cpu() for k, v in raw.state_dict().items() if k != "lm_head.weight"}

    def write(tmp: Path) -> None:
        save_json(tmp / "config.json", {"format": FORMAT, "version": _version(), "model": raw.config.to_dict(), **(extra or {})})
        save_file(state, str(tmp / "model.safetensors"))
        tokenizer.save(tmp / "tokenizer.model")
        if trainer_write is not None:
            (tmp / "trainer").mkdir()
            trainer_write(tmp / "trainer")

    atomic_dir(Path(path), write)


def open_checkpoint(path: str | os.PathLike, fmt: str = FORMAT) -> tuple[Path, dict, Tokenizer]:
    """Resolve a checkpoint dir, check its files and format: (dir, config.json, tokenizer)."""
    ckpt = resolve_checkpoint(path)
    missing = [f for f in REQUIRED_FILES if not (ckpt / f).is_file()]
    if missing:
        raise LmplugError(f"{ckpt}: incomplete checkpoint, missing {missing} (expected {list(REQUIRED_FILES)})")
    meta = read_json(ckpt / "config.json")
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise LmplugError(f"{ckpt}/config.json: expected format '{fmt}', found {found!r}")
    if "model" not in meta:
        raise LmplugError(f"{ckpt}/config.json: expected a 'model' section, found keys {sorted(meta)}")
    return ckpt, meta, Tokenizer.load(ckpt / "tokenizer.model")


def load_weights(ckpt: Path, model: torch.nn.Module) -> None:
    """``model.safetensors`` into ``model`` (no pickle), refusing shapes that differ from the config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(ckpt / "model.safetensors"))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise LmplugError(f"{ckpt}/model.safetensors: corrupt or unreadable ({e})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise LmplugError(f"{ckpt}/model.safetensors: weights do not match config.json; first differences {diff}")
    model.load_state_dict(state, strict=False)


def load_lm(path: str | os.PathLike, device: str | torch.device | None = None) -> LanguageModel:
    """Load a checkpoint directory (no pickle) into an eval-mode model on ``device`` (default CPU)."""
    ckpt, meta, tokenizer = open_checkpoint(path)
    try:
        config = LMConfig.from_dict(meta["model"])
    except LmplugError as e:
        raise LmplugError(f"{ckpt / 'config.json'}: {e}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise LmplugError(
            f"{ckpt}: tokenizer has {tokenizer.vocab_size} pieces but the model expects vocab_size {config.vocab_size}"
        )
    if (tokenizer.bos_id, tokenizer.eos_id) != (config.bos_id, config.eos_id):
        raise LmplugError(
            f"{ckpt}: tokenizer bos/eos ids {(tokenizer.bos_id, tokenizer.eos_id)} differ from the model's "
            f"{(config.bos_id, config.eos_id)}"
        )
    model = TransformerLM(config)
    load_weights(ckpt, model)
    model.eval()
    model.to(device or "cpu")
    return LanguageModel(model=model, tokenizer=tokenizer, config=config, path=str(ckpt))


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer state dict into safetensors-ready tensors plus JSON metadata."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{pid}.{name}"] = val.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[name] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = val
    for pid, sc in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
