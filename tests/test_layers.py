"""Layering rules checked on the source: argparse stays in the CLI layer."""

from __future__ import annotations

import ast
from pathlib import Path

import lmplug

PACKAGE = Path(lmplug.__file__).parent


def _library_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cli" not in path.relative_to(PACKAGE).parts[:1]:
            yield path


def test_no_argparse_namespace_past_the_cli():
    """No function outside lmplug/cli/ takes an ``args`` parameter or one annotated as an argparse
    Namespace: the commands turn their flags into plain values once (issue 22, item 4)."""
    found = []
    for path in _library_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                a = node.args
                for arg in a.posonlyargs + a.args + a.kwonlyargs:
                    note = ast.unparse(arg.annotation) if arg.annotation is not None else ""
                    if arg.arg == "args" or "Namespace" in note:
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{arg.lineno}: {arg.arg}: {note or '?'}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [n.name for n in node.names]
                if "argparse" in names:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: imports argparse")
    assert not found, "argparse values outside lmplug/cli/:\n" + "\n".join(found)
