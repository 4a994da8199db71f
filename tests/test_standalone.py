"""The repository stands alone: no recipe, tool, test, library module, Makefile rule or CI script
reads the project's read-only data folder beside the checkout (``..`` / ``shared``), which a user's clone
does not have. Data the repository may carry is in data/ (data/README.md); Multi30k is fetched by
``lmplug prepare-multi30k``. Comments may mention the folder; code may not.

The one opt-in to real data outside the repository is an environment variable naming a folder
(``LMPLUG_MULTI30K``, tests/cli/test_cli_mt.py), never a default path.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("recipes", "tools", "tests", "lmplug", "Makefile", ".ci")
CODE_SUFFIXES = {".py", ".sh", ".bash", ".mk", ".yml", ".yaml", ".toml", ".cfg", ".ini", ".c", ""}
# the folder beside the checkout by its relative path, its data/ subfolder, or a path component
# "shared" built in code (ROOT.parent / "shared")
SHARED = re.compile(r"\.\./shared|shared/data|[\"']shared[\"']")


def _code_files() -> list[Path]:
    files = []
    for name in SCANNED:
        p = ROOT / name
        for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []):
            if (f.is_file() and f.suffix in CODE_SUFFIXES and "__pycache__" not in f.parts
                    and f.resolve() != Path(__file__).resolve()):
                files.append(f)
    return files


def _code_lines(text: str, python: bool) -> list[tuple[int, str]]:
    """``(line number, code)`` with comments removed: Python's by its tokenizer (strings, docstrings
    included, stay: a default path is a string), others from a ``#`` at a line's start or after a
    space (shell, Makefile, YAML)."""
    if python:
        lines = text.splitlines()
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.COMMENT:
                    (row, col), _ = tok.start, tok.end
                    lines[row - 1] = lines[row - 1][:col]
        except (tokenize.TokenError, SyntaxError):
            pass  # scanned as it is
        return list(enumerate(lines, 1))
    return [(n, re.split(r"(?:^|\s)#", line, maxsplit=1)[0]) for n, line in enumerate(text.splitlines(), 1)]


def shared_reads(text: str, python: bool) -> list[tuple[int, str]]:
    """The lines of ``text`` whose code (not comments) names the folder beside the checkout."""
    return [(n, code.strip()) for n, code in _code_lines(text, python) if SHARED.search(code)]


def test_the_scan_finds_code_and_ignores_comments():
    up = ".." + "/shared"  # the folder beside the checkout (spelled so that this file does not name it)
    sh = f"x=1  # was {up}/data/text/g.txt\n# {up}\ngutenberg={up}/data/text/g.txt\n"
    assert shared_reads(sh, python=False) == [(3, f"gutenberg={up}/data/text/g.txt")]
    py = f'p = ROOT.parent / "shared" / "data"  # the folder\n# "{up}"\nq = "data/multi30k"  # not {up}\n'
    assert shared_reads(py, python=True) == [(1, 'p = ROOT.parent / "shared" / "data"')]
    assert shared_reads(f'"""Usage: --ref {up}/data/multi30k/task1/val.de"""\n', python=True) != []
    assert shared_reads("gcc -shared -fPIC -o x.so x.c\n", python=False) == []


def test_nothing_reads_the_folder_beside_the_checkout():
    hits = [f"{path.relative_to(ROOT)}:{n}: {code}" for path in _code_files()
            for n, code in shared_reads(path.read_text(encoding="utf-8", errors="replace"), python=path.suffix == ".py")]
    assert not hits, "reads outside the repository (use data/ or an opt-in variable):\n" + "\n".join(hits)


def test_the_scan_covers_the_recipes_and_the_ci():
    names = {str(p.relative_to(ROOT)) for p in _code_files()}
    assert {"recipes/lm/run.sh", "recipes/mt_nbest_rerank/run.sh", "Makefile", ".ci/run",
            "lmplug/constants.py", "tools/mt_dev_cv.py"} <= names
