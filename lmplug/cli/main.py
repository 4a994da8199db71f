"""The ``lmplug`` command: one entry point, one subcommand per job, registered by one module per domain.

    lmplug --help                 # every subcommand; lmplug SUBCOMMAND --help shows every default

A user error (``LmplugError``, or a file it cannot read) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Sequence

from lmplug.cli.args import FMT
from lmplug.errors import LmplugError

# modules with a ``register(subparsers)`` adding their subcommands, in the order --help lists them
COMMAND_MODULES = ("lmplug.cli.lm", "lmplug.cli.speech", "lmplug.cli.ctc", "lmplug.cli.mt")


def build_parser() -> argparse.ArgumentParser:
    from lmplug.constants import VERSION as __version__

    parser = argparse.ArgumentParser(prog="lmplug", description="Train a Transformer LM and plug it into CTC decoding and MT reranking.", formatter_class=FMT)
    parser.add_argument("--version", action="version", version=f"lmplug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def _describe(e: Exception) -> str:
    """One line for the input/output errors main() turns into exit 2."""
    if isinstance(e, UnicodeDecodeError):
        return f"expected UTF-8 text, found invalid bytes ({e.reason} at byte {e.start})"
    if isinstance(e, json.JSONDecodeError):
        return f"expected JSON, found invalid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or type(e).__name__}: {e.filename}"
    return f"{type(e).__name__}: {e}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except LmplugError as e:
        print(f"lmplug {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:  # a file the user named, not a bug
        if os.environ.get("LMPLUG_DEBUG"):
            raise
        print(f"lmplug {args.command}: error: {_describe(e)} (LMPLUG_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmplug {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
