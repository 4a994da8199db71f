"""Output files that a failed or interrupted run cannot leave half-written."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from lmplug.errors import LmplugError


def check_writable(*paths: str | None) -> None:
    """Fail before the work, not after it: each output file (None and "-" pass) can be created."""
    for p in paths:
        if p is None or p == "-":
            continue
        if Path(p).is_dir():
            raise LmplugError(f"expected an output file, found a directory: {p}")
        probe = Path(f"{p}.tmp")
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
