"""The notebook package imports in layers: no module imports, even inside a function, one that
imports it back, and the notebooks and the reports share their colours without importing each
other."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "posaudit"


def _imported(path: Path) -> set[str]:
    """Every posaudit module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("posaudit"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("posaudit"))
    return names


def _package_graph(package: str) -> dict[str, set[str]]:
    modules = {
        f"posaudit.{package}.{p.stem}": p
        for p in (SOURCE / package).glob("*.py")
        if p.stem != "__init__"
    }
    return {name: _imported(path) & set(modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            found = visit(imported, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    for module in sorted(graph):
        found = visit(module, [])
        if found:
            return found
    return None


def test_the_notebook_modules_import_without_a_cycle() -> None:
    graph = _package_graph("notebook")
    assert "posaudit.notebook.style" in graph["posaudit.notebook.charts"]  # the graph is read
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_a_cycle_is_seen() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_notebooks_and_reports_share_colours_without_importing_each_other() -> None:
    for package, other in (("notebook", "posaudit.report"), ("report", "posaudit.notebook")):
        for path in (SOURCE / package).glob("*.py"):
            assert not any(n.startswith(other) for n in _imported(path)), (path.name, other)
