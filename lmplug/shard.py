"""Decoding a large set over several processes: which utterances a shard decodes, and the merge.

Shard ``r`` of ``N`` decodes the utterances whose manifest index ``i`` has ``i % N == r`` (so
long and short utterances spread evenly) and writes ``<out>.part-r-of-N.jsonl`` atomically: a
header line ``{"part": {...}}`` (rank, shard count, total utterances, decoding seconds, and a
fingerprint of the manifest ids and decoder settings), then one hypothesis row per utterance with
its manifest ``"index"``. :func:`merge_parts` checks that all N parts exist and come from the same
run, and returns the rows in manifest order.

    # under torchrun: each process decodes its shard; rank 0 merges after a (gloo) barrier
    torchrun --standalone --nproc_per_node 8 -m lmplug decode --emissions test.jsonl --labels labels.json \\
        --lm exp/lm/gpu/bible/lm --device cuda --out hyps.jsonl
    # by hand, under any scheduler: one process per shard, then the merge
    lmplug decode ... --shard-rank 0 --num-shards 2 --out hyps.jsonl
    lmplug decode ... --shard-rank 1 --num-shards 2 --out hyps.jsonl
    lmplug merge-decode --out hyps.jsonl --num-shards 2
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from lmplug.errors import LmplugError
from lmplug.files import write_lines

BARRIER_TIMEOUT = timedelta(hours=6)  # how long a finished rank waits for the slowest one


def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """Manifest indices that shard ``rank`` of ``world`` decodes: ``i % world == rank``."""
    if world < 1 or not 0 <= rank < world:
        raise LmplugError(f"expected 0 <= shard rank < number of shards, found rank {rank} of {world}")
    return list(range(rank, n, world))


def torchrun_shard() -> tuple[int, int] | None:
    """(rank, world size) when started by torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world <= 1:
        return None
    return int(os.environ["RANK"]), world


def local_rank() -> int:
    """This process's GPU index under torchrun (``LOCAL_RANK``; 0 when not started by it)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_device(device: str, local_rank: int) -> str:
    """``cuda`` -> ``cuda:<local_rank>`` (one GPU per process); any other device unchanged."""
    return f"cuda:{local_rank}" if device == "cuda" else device


def fingerprint(ids: Sequence[str], settings: dict) -> str:
    """Short hash of the manifest ids and decoder settings: parts of one run share it."""
    blob = json.dumps([list(ids), settings], sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def part_path(out: str | Path, rank: int, world: int) -> Path:
    return Path(f"{out}.part-{rank}-of-{world}.jsonl")


def write_part(out: str | Path, rank: int, world: int, rows: Sequence[dict], header: dict) -> Path:
    """Write one shard's rows (each with an ``"index"``) after its header, atomically."""
    path = part_path(out, rank, world)
    head = {"part": {**header, "rank": rank, "num_shards": world, "utterances": len(rows)}}
    write_lines(path, [json.dumps(head)] + [json.dumps(row) for row in rows])
    return path


def merge_parts(out: str | Path, world: int) -> tuple[list[dict], list[dict]]:
    """All parts of ``out``: (rows in manifest order without their ``"index"``, part headers by rank).

    Raises ``LmplugError`` when a part is missing, or when the parts disagree (another manifest,
    other settings, or an index missing or decoded twice).
    """
    if world < 1:
        raise LmplugError(f"expected the number of shards >= 1, found {world}")
    paths = [part_path(out, r, world) for r in range(world)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise LmplugError(f"expected {world} decoded parts of {out}, found {world - len(missing)}; missing {missing} "
                          f"(run `lmplug decode ... --shard-rank R --num-shards {world} --out {out}` for each)")
    headers, rows = [], []
    for p in paths:
        lines = p.read_text(encoding="utf-8").splitlines()
        try:
            first = json.loads(lines[0]) if lines else None
            head = first.get("part") if isinstance(first, dict) else None
            part = [json.loads(line) for line in lines[1:]]
        except json.JSONDecodeError:
            head = part = None
        if (not isinstance(head, dict) or not {"fingerprint", "total", "seconds"} <= set(head)
                or len(part) != head.get("utterances")
                or not all(isinstance(r, dict) and isinstance(r.get("index"), int) for r in part)):
            raise LmplugError(f"{p}: expected a part header and its rows, found a truncated or foreign file")
        headers.append(head)
        rows.extend(part)
    prints = {h["fingerprint"] for h in headers}
    totals = {h["total"] for h in headers}
    if len(prints) > 1 or len(totals) > 1:
        raise LmplugError(f"parts of {out} come from different runs (manifest or settings differ: fingerprints "
                          f"{sorted(prints)}, totals {sorted(totals)}); expected one run, re-decode the stale shards")
    total = totals.pop()
    order = sorted(r["index"] for r in rows)
    if order != list(range(total)):
        raise LmplugError(f"parts of {out}: expected each of {total} utterances once, found {len(order)} rows "
                          f"with {len(set(order))} distinct indices")
    rows.sort(key=lambda r: r["index"])
    return [{k: v for k, v in r.items() if k != "index"} for r in rows], headers


def remove_parts(out: str | Path, world: int) -> None:
    for r in range(world):
        part_path(out, r, world).unlink(missing_ok=True)


def barrier() -> None:
    """Wait for every torchrun process (gloo, CPU-side), initialising the process group if needed."""
    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        dist.init_process_group(backend="gloo", timeout=BARRIER_TIMEOUT)
    dist.barrier()
    if own:
        dist.destroy_process_group()
