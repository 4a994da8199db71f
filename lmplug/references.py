"""Reference checkpoints: any lmplug checkpoint stored compactly, with a model card and digests.

A reference is an ordinary checkpoint directory (an LM, an acoustic model, a translation model)
whose floating-point weights are stored in half precision, plus ``card.json`` (what it is, the
data and the exact command that trained it, its metrics and the command that measures them, the
lmplug commit, and the SHA-256 of every file) and ``README.md`` (the same card for people)::

    models/lm-bible/
        config.json  model.safetensors (float16)  tokenizer.model  card.json  README.md

It loads by path like any checkpoint: the loaders read half-precision weights into their float32
parameters, and :func:`lmplug.checkpoint.resolve_checkpoint` checks the digests first, so a
changed or truncated file is a one-line error rather than a silently different model.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping

from lmplug.errors import LmplugError
from lmplug.files import atomic_dir, read_json, save_json

CARD = "card.json"
CARD_FORMAT = "lmplug-card"
DTYPES = ("float16", "bfloat16", "float32")
SKIP = {"trainer", CARD, "README.md"}  # what an export leaves behind / writes itself


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The lmplug checkout's commit (``-dirty`` with uncommitted changes), or ``unknown``."""
    repo = Path(repo or Path(__file__).resolve().parents[1])
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _half_weights(src: Path, dst: Path, dtype: str) -> int:
    """``src`` safetensors with floating tensors cast to ``dtype``; returns the parameter count."""
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    state = load_file(str(src))
    out = {k: (v.to(target) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(out, str(dst))
    return sum(v.numel() for v in state.values())


def export_reference(checkpoint: str | os.PathLike, out: str | os.PathLike, *, name: str, kind: str,
                     description: str, data: str, train_command: str, metrics: Mapping[str, float] | None = None,
                     eval_command: str = "", dtype: str = "float16", notes: str = "") -> dict:
    """Copy a checkpoint to ``out`` as a reference: weights in ``dtype``, ``card.json`` + ``README.md``.

    Args:
        checkpoint: a checkpoint directory (:func:`lmplug.checkpoint.resolve_checkpoint` finds it).
        out: the reference directory to write (replaced atomically).
        name, kind, description: what it is (``kind``: ``lm``, ``am``, ``nmt``, ...).
        data, train_command: the data it was trained on and the exact command that trained it.
        metrics, eval_command: its metrics and the command that reproduces them (measured on the
            exported weights, since those are what users load).
        dtype: storage precision of the floating-point weights.
    Returns:
        The card (also written to ``out/card.json``).
    """
    if dtype not in DTYPES:
        raise LmplugError(f"--dtype: expected one of {', '.join(DTYPES)}, found {dtype!r}")
    src = Path(checkpoint)
    missing = [f for f in ("config.json", "model.safetensors") if not (src / f).is_file()]
    if missing:
        raise LmplugError(f"{src}: expected a checkpoint directory with config.json and model.safetensors, "
                          f"found no {', '.join(missing)}")
    card: dict = {}

    def write(tmp: Path) -> None:
        params = 0
        for f in sorted(src.iterdir()):
            if f.name in SKIP or f.name.endswith((".tmp", ".old")):
                continue
            if f.name == "model.safetensors":
                params = _half_weights(f, tmp / f.name, dtype)
            elif f.is_file():
                shutil.copy2(f, tmp / f.name)
        files = {f.name: {"sha256": sha256(f), "bytes": f.stat().st_size} for f in sorted(tmp.iterdir())}
        card.update({
            "format": CARD_FORMAT, "name": name, "kind": kind, "description": description, "data": data,
            "train_command": train_command, "eval_command": eval_command, "metrics": dict(metrics or {}),
            "parameters": params, "dtype": dtype, "bytes": sum(v["bytes"] for v in files.values()),
            "lmplug_commit": git_commit(), "created": _dt.date.today().isoformat(), "notes": notes, "files": files,
        })
        write_card(tmp, card)

    atomic_dir(Path(out), write)
    return card


def write_card(directory: str | os.PathLike, card: Mapping) -> None:
    """``card.json`` and ``README.md`` of a reference (e.g. after adding metrics measured on it);
    neither is among the digested files."""
    save_json(Path(directory) / CARD, dict(card))
    (Path(directory) / "README.md").write_text(card_markdown(card), encoding="utf-8")


def card_markdown(card: Mapping) -> str:
    """The model card for people (``README.md`` beside ``card.json``)."""
    metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                        for k, v in card.get("metrics", {}).items()) or "| (none) | |"
    files = "\n".join(f"| `{n}` | {f['bytes']:,} | `{f['sha256']}` |" for n, f in card["files"].items())
    notes = f"\n{card['notes']}\n" if card.get("notes") else ""
    return f"""# {card['name']}

{card['description']}

- kind: {card['kind']}; {card['parameters']:,} parameters, stored as {card['dtype']} ({card['bytes'] / 2**20:.1f} MiB); loads as float32
- data: {card['data']}
- lmplug commit: {card['lmplug_commit']}; exported {card['created']}
{notes}
## Trained with

```sh
{card['train_command']}
```

## Metrics

| metric | value |
|---|---|
{metrics}

Reproduce (on these stored weights):

```sh
{card['eval_command'] or '(no evaluation command recorded)'}
```

## Files (checked on every load)

| file | bytes | sha256 |
|---|---|---|
{files}
"""


def verify_reference(directory: str | os.PathLike) -> dict | None:
    """Check the files of a reference against its ``card.json`` (None when there is no card).

    Raises:
        LmplugError: a file listed in the card is missing, or its size or SHA-256 differs.
    """
    d = Path(directory)
    if not (d / CARD).is_file():
        return None
    card = read_json(d / CARD)
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT or not isinstance(card.get("files"), dict):
        raise LmplugError(f"{d / CARD}: expected a model card (format '{CARD_FORMAT}' with 'files'), found "
                          f"{card.get('format') if isinstance(card, dict) else type(card).__name__!r}")
    for fname, want in card["files"].items():
        f = d / fname
        if not f.is_file():
            raise LmplugError(f"{d}: its card lists {fname}, found no such file")
        if f.stat().st_size != want.get("bytes") or sha256(f) != want.get("sha256"):
            raise LmplugError(f"{f}: expected sha256 {str(want.get('sha256'))[:12]}... ({want.get('bytes')} bytes) "
                              f"as its card says, found {sha256(f)[:12]}... ({f.stat().st_size} bytes): "
                              "the file was changed or truncated")
    return card
