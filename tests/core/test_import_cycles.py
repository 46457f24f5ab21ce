"""No import cycle inside lbgap, counting imports inside functions too: a cycle hidden by a
function-level import is still a cycle (two modules that cannot be understood one without the
other)."""

from __future__ import annotations

import ast
from pathlib import Path

import lbgap

ROOT = Path(lbgap.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    return _imports_of(path.read_text(), _module_name(path), path.name == "__init__.py", modules)


def _imports_of(text: str, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The lbgap modules that the module ``name`` imports, anywhere in it (type-checking blocks aside)."""
    package = name if is_package else name.rpartition(".")[0]
    tree = ast.parse(text)
    skip = {
        id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    paths = list(ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the edges from a package to its own submodules (a package's
    ``__init__`` re-exporting its parts is not a cycle with them)."""
    return {v: {w for w in ws if not w.startswith(v + ".")} for v, ws in graph.items()}


def test_no_import_cycle_in_lbgap():
    cycles = _cycles(_package_inits(_graph()))
    assert cycles == [], "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_the_checker_finds_a_cycle_hidden_in_a_function():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    modules = {"lbgap", "lbgap.registry", "lbgap.spec", "lbgap.spec.model"}
    text = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..plugin import X\ndef f():\n    from ..registry import Registry\n"
    assert _imports_of(text, "lbgap.spec.model", False, modules) == {"lbgap.registry"}
