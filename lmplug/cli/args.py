"""What every ``lmplug`` subcommand module shares: the help formatter, subcommand registration,
and the parsers of the values users type (weights, grids, word lists)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

from lmplug.errors import LmplugError

Handler = Callable[[argparse.Namespace], int]
FMT = argparse.ArgumentDefaultsHelpFormatter  # --help shows every default


def add_command(sub, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    """A subcommand ``name`` running ``handler(args)``, its help shown in the list and on --help."""
    p = sub.add_parser(name, help=help, description=help, formatter_class=FMT)
    p.set_defaults(handler=handler)
    return p


def parse_weights(spec: str) -> dict[str, float]:
    """``"lm=0.5,words=1"`` -> ``{"lm": 0.5, "words": 1.0}``."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, eq, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            eq = ""
        if not eq or not math.isfinite(out[name.strip()]):
            raise LmplugError(f"expected weights as name=value[,name=value] with finite values, found {part!r} in {spec!r}")
    return out


def parse_grid(spec: str, flag: str = "grid") -> list[float]:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]``: at least one number (``flag`` names the list in errors)."""
    try:
        grid = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        grid = []
    if not grid:
        raise LmplugError(f"{flag}: expected a comma-separated list of numbers, found {spec!r}")
    return grid


def read_words(path: str) -> list[str]:
    """A word list: one word per line, or the 1-gram section of an ARPA file (``.arpa``, or a
    KenLM ``.bin`` with its ``.arpa`` beside it)."""
    p = Path(path)
    if p.suffix in (".arpa", ".bin"):
        from lmplug.ngram import arpa_unigrams

        words = arpa_unigrams(p)
        if words is None:
            raise LmplugError(f"expected an ARPA file at {p.with_suffix('.arpa')} to read the words of {p}, found none")
        return words
    if not p.is_file():
        raise LmplugError(f"word list not found: expected a text file (one word per line) at {p}")
    return p.read_text(encoding="utf-8").split()
