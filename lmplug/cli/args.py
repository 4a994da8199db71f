"""What every ``lmplug`` subcommand module shares: the help formatter, subcommand registration,
and the parser of grids users type (weights: :func:`lmplug.features.parse_weights`)."""

from __future__ import annotations

import argparse
from typing import Callable

from lmplug.errors import LmplugError

Handler = Callable[[argparse.Namespace], int]
FMT = argparse.ArgumentDefaultsHelpFormatter  # --help shows every default


def add_command(sub, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    """A subcommand ``name`` running ``handler(args)``, its help shown in the list and on --help."""
    p = sub.add_parser(name, help=help, description=help, formatter_class=FMT)
    p.set_defaults(handler=handler)
    return p


def parse_grid(spec: str, flag: str = "grid") -> list[float]:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]``: at least one number (``flag`` names the list in errors)."""
    try:
        grid = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        grid = []
    if not grid:
        raise LmplugError(f"{flag}: expected a comma-separated list of numbers, found {spec!r}")
    return grid
