"""Token shards on disk and the batches training draws from them.

A shard is a flat ``uint16``/``uint32`` memmap of ``<s> ids </s> <s> ids </s> ...`` with a JSON
sidecar. Batches are a pure function of ``(seed, step)``: exact resume needs no sampler state,
and with ``world_size`` processes each rank takes its slice of the same global batch, so a DDP
run sees exactly the batches a single process would.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lmplug.errors import LmplugError
from lmplug.tokenizer import Tokenizer

IGNORE_INDEX = -100  # targets not scored: the <s> that follows each </s>


def tokenizer_hash(tokenizer: Tokenizer) -> str:
    return hashlib.sha1(tokenizer.model_proto).hexdigest()[:12]


@dataclass
class TokenShard:
    tokens: np.ndarray  # (N,) uint16/uint32 memmap
    path: str
    n_sentences: int

    def __len__(self) -> int:
        return len(self.tokens)


def encode_corpus(lines: Sequence[str], tokenizer: Tokenizer, out_path: str | Path, chunk: int = 10000) -> TokenShard:
    """Encode sentences to ``out_path`` (.bin + .json sidecar); reuses an up-to-date shard."""
    out = Path(out_path)
    meta_path = out.with_suffix(".json")
    digest = hashlib.sha1("\n".join(lines).encode("utf-8")).hexdigest()[:12]
    tok_hash = tokenizer_hash(tokenizer)
    if out.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("text_sha1") == digest and meta.get("tokenizer") == tok_hash:
            return load_shard(out)
    if not lines:
        raise LmplugError(f"cannot build {out}: empty corpus, expected at least one sentence")
    dtype = np.uint16 if tokenizer.vocab_size < 2**16 else np.uint32
    pieces: list[np.ndarray] = []
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    for i in range(0, len(lines), chunk):
        for ids in tokenizer.encode_batch(lines[i : i + chunk]):
            pieces.append(np.asarray([bos, *ids, eos], dtype=dtype))
    arr = np.concatenate(pieces)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".bin.tmp")
    arr.tofile(tmp)
    tmp.replace(out)
    meta = {"dtype": np.dtype(dtype).name, "n_tokens": int(len(arr)), "n_sentences": len(lines),
            "text_sha1": digest, "tokenizer": tok_hash}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return load_shard(out)


def load_shard(path: str | Path) -> TokenShard:
    p = Path(path)
    meta_path = p.with_suffix(".json")
    if not p.is_file() or not meta_path.is_file():
        raise LmplugError(f"token shard incomplete: expected {p} and {meta_path}")
    meta = json.loads(meta_path.read_text())
    tokens = np.memmap(p, dtype=np.dtype(meta["dtype"]), mode="r")
    if len(tokens) != meta["n_tokens"]:
        raise LmplugError(f"{p}: {len(tokens)} tokens on disk, sidecar says {meta['n_tokens']} (truncated file?)")
    return TokenShard(tokens=tokens, path=str(p), n_sentences=meta["n_sentences"])


def _windows(tokens: np.ndarray, starts: np.ndarray, block_size: int, bos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = starts[:, None] + np.arange(block_size + 1)[None, :]
    chunk = torch.from_numpy(tokens[idx].astype(np.int64))
    x, y = chunk[:, :-1], chunk[:, 1:].clone()
    y[y == bos_id] = IGNORE_INDEX
    return x, y


def sample_batch(shard: TokenShard, batch_size: int, block_size: int, seed: int, step: int, bos_id: int,
                 rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Global batch ``step`` (random windows, a pure function of seed and step); this rank's rows.

    Returns x, y: (batch_size // world_size, block_size) int64; y is x shifted by one with
    ``IGNORE_INDEX`` where the target is <s>.
    """
    n = len(shard) - block_size - 1
    if n <= 0:
        raise LmplugError(f"{shard.path}: {len(shard)} tokens, expected more than block_size+1 = {block_size + 1}")
    if batch_size % world_size:
        raise LmplugError(f"batch_size {batch_size} must be divisible by the number of processes {world_size}")
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, n, size=batch_size)
    per = batch_size // world_size
    return _windows(shard.tokens, starts[rank * per : (rank + 1) * per], block_size, bos_id)


def eval_starts(shard: TokenShard, block_size: int, max_tokens: int, what: str = "evaluation") -> np.ndarray:
    """Start offsets of the non-overlapping windows ``eval_batches`` reads; training calls it on the
    dev shard before its first step, so a dev text too short for one window fails there."""
    n_windows = max(1, min((len(shard) - 1) // block_size, max_tokens // block_size))
    starts = np.arange(n_windows) * block_size
    starts = starts[starts + block_size + 1 <= len(shard)]
    if len(starts) == 0:
        raise LmplugError(f"{shard.path}: {what} text too short, expected at least block_size+1 = {block_size + 1} "
                          f"tokens for one window, found {len(shard)} (add sentences or lower --block-size)")
    return starts


def eval_batches(shard: TokenShard, batch_size: int, block_size: int, bos_id: int, max_tokens: int):
    """Non-overlapping windows from the start of the shard, up to ``max_tokens`` targets."""
    starts = eval_starts(shard, block_size, max_tokens)
    for i in range(0, len(starts), batch_size):
        yield _windows(shard.tokens, starts[i : i + batch_size], block_size, bos_id)
