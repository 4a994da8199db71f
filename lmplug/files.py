"""Files: outputs that a failed or interrupted run cannot leave half-written, and the one reader
of JSON and JSONL inputs (errors name the file and line)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmplug.errors import LmplugError


def check_writable(*paths: str | None) -> None:
    """Fail before the work, not after it: each output file (None and "-" pass) can be created."""
    for p in paths:
        if p is None or p == "-":
            continue
        if Path(p).is_dir():
            raise LmplugError(f"expected an output file, found a directory: {p}")
        probe = Path(f"{p}.{os.getpid()}.tmp")  # per process: the ranks of a torchrun decode probe the same path
        try:
            probe.open("w").close()
            probe.unlink()
        except OSError as e:
            raise LmplugError(f"cannot write {p}: {e.strerror or e}") from None


def make_out_dir(path: str | Path, *files: str) -> Path:
    """An output directory, created before the work (not after it) and checked to take ``files``."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file there, no permission
        raise LmplugError(f"cannot make the output directory {out}: {e.strerror or e}") from None
    check_writable(*(str(out / f) for f in files))
    return out


def write_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Lines to ``path`` ("-": stdout) through a temporary file: an interrupted or failed write
    leaves the earlier file as it was."""
    if path == "-":
        for line in lines:
            sys.stdout.write(line + "\n")
        return
    tmp = Path(f"{path}.tmp")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on leaving the block without an exception it is
    synced and renamed onto ``path`` in one step, otherwise removed. An interrupted or failed write
    leaves no file or the earlier one, never half of one; writers racing on one path each rename a
    whole file (their own temporary name), the last one wins.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: str | Path) -> Any:
    """A JSON file; a malformed or non-UTF-8 one is an error naming it (and where, for bad JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LmplugError(f"{path}: corrupt JSON ({e})") from None  # e names the line and column
    except UnicodeDecodeError as e:
        raise LmplugError(f"{path}: expected UTF-8 JSON, found invalid bytes at byte {e.start}") from None


def read_jsonl(path: str | Path, what: str = "file") -> list[tuple[int, dict]]:
    """The JSON objects of a JSONL file, each with its line number (from 1; blank lines skipped).

    Args:
        what: names the file in the not-found error ("manifest", "n-best file", ...).

    Raises:
        LmplugError: no file at ``path``, bytes that are not UTF-8, or a line that is not a JSON
            object (named ``path:line``).
    """
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"{what} not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise LmplugError(f"{p}: expected UTF-8 JSON lines, found invalid bytes at byte {e.start}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise LmplugError(f"{p}:{n}: expected a JSON object, found invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise LmplugError(f"{p}:{n}: expected a JSON object, found {type(row).__name__} {line[:80]!r}")
        rows.append((n, row))
    return rows


def save_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_benchmark(out: str | None, result: dict[str, Any]) -> None:
    """A benchmark's JSON (tools/bench_*.py): ``result`` with the machine it ran on, written to
    ``out`` (None: nothing written)."""
    import platform

    import torch

    result = {**result, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"-> {out}")


def atomic_dir(final: Path, write) -> None:
    """Call ``write(tmp_dir)`` and then swap ``tmp_dir`` in as ``final``."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    old = final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
