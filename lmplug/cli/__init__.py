"""The ``lmplug`` command: ``main`` builds the parser from one module per domain (``lm``, ``ctc``,
``speech``, ``mt``), each with a ``register(subparsers)``."""

from lmplug.cli.main import main

__all__ = ["main"]
