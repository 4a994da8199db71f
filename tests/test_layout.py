"""The package's layout (docs/ARCHITECTURE.md): no import circle, and every import points down.

Read from the source with ``ast`` (module-level and function-level imports alike), so a lazy
import inside a function counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "lmplug"

# the layers, lowest first: a module may import its own layer's modules and those of lower layers
LAYERS = {
    "core": 0,  # infrastructure and the LM core: modules directly in lmplug/
    "scorers": 1,
    "ctc": 2,
    "mt": 2,
    "speech": 2,
    "cli": 3,
}
# the same layer, other folders: ctc, mt and speech are siblings and stay apart
SIBLINGS_APART = {"ctc", "mt", "speech"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The lmplug modules ``path`` imports (``from lmplug.x import y`` counts ``lmplug.x.y`` when
    that is a module, else ``lmplug.x``)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("lmplug"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("lmplug"):
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in known else base)
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(p, m, set(mods)) for m, p in mods.items()}


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "core"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle among the modules (package ``__init__`` re-exports excluded), or None."""
    graph = {m: {d for d in deps if not _is_package(d)} for m, deps in graph.items() if not _is_package(m)}
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        color[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if color.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in color and (found := visit(d)):
                return found
        stack.pop()
        color[m] = 2
        return None

    for m in sorted(graph):
        if m not in color and (found := visit(m)):
            return found
    return None


def _is_package(module: str) -> bool:
    return (PKG.parent / module.replace(".", "/") / "__init__.py").is_file()


def test_the_package_is_read():
    graph = _graph()
    assert "lmplug.ctc.decoder" in graph and "lmplug.scorers.base" in graph
    assert "lmplug.scorers.base" in graph["lmplug.scorers.transformer"]


def test_no_import_circle():
    assert _cycle(_graph()) is None, f"import circle: {' -> '.join(_cycle(_graph()))}"


def test_the_circle_finder_finds_one():
    assert _cycle({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}}) == ["a.x", "a.y", "a.z", "a.x"]
    assert _cycle({"a.x": {"a.y"}, "a.y": set()}) is None


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m not in ("lmplug", "lmplug.__main__")))
def test_imports_point_down(module):
    graph = _graph()
    here = _folder(module)
    for dep in graph[module]:
        there = _folder(dep)
        if dep == "lmplug":
            assert False, f"{module} imports the package root (its public API); import the module instead"
        assert LAYERS[there] <= LAYERS[here], f"{module} ({here}) imports {dep} ({there}): an upward arrow"
        if LAYERS[there] == LAYERS[here] and here != there:
            assert not ({here, there} <= SIBLINGS_APART), f"{module} ({here}) imports its sibling {dep} ({there})"


def test_public_names_are_unique():
    """No two modules define a public function or class of the same name (``register``, the CLI
    modules' one protocol, excepted)."""
    seen: dict[str, list[str]] = {}
    for m, path in _modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                seen.setdefault(node.name, []).append(m)
    twice = {n: ms for n, ms in seen.items() if len(ms) > 1 and n != "register"}
    assert not twice, f"public names defined more than once: {twice}"


# private names read on other objects that are not lmplug's: NamedTuple's public _replace, and
# sacrebleu's corpus statistics (lmplug.mt.mert's sufficient statistics for MERT)
FOREIGN_PRIVATE = {"_replace", "_extract_corpus_statistics"}


def test_no_private_attribute_of_another_object_is_read():
    found = []
    for m, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and node.attr not in FOREIGN_PRIVATE):
                found.append(f"{m}:{node.lineno} .{node.attr}")
    assert not found, f"private attributes read from outside their class: {found}"
