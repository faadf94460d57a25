"""The package's layers: every import points down (or stays inside its own part), and no
modules import each other in a circle.

Read from the source, every import counted: at the top of a module, inside a function, or
for type checking only. A part is a top-level module or a subpackage of ``posaudit``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Final

SOURCE: Final = Path(__file__).resolve().parents[1] / "src"

# From the ground up: a part may import the parts of lower layers and its own modules only.
LAYERS: Final = (
    ("posaudit", "posaudit.config", "posaudit.atomic", "posaudit.untrusted", "posaudit.palette"),
    ("posaudit.store",),
    ("posaudit.pins",),
    ("posaudit.detect", "posaudit.ingest", "posaudit.review"),
    # the auditor's classics read the ledger as the rules define it (trace numbers)
    ("posaudit.classics",),
    # the simulator's evading attackers stay under the default policy's thresholds
    ("posaudit.simulate",),
    ("posaudit.score",),
    ("posaudit.rules",),
    ("posaudit.evaluate", "posaudit.report"),
    # the daily ranking's evaluation reuses evaluate's matching of findings to incidents
    ("posaudit.ranking_evaluation",),
    ("posaudit.run",),
    ("posaudit.spark", "posaudit.notebook"),
    ("posaudit.cli",),
    ("posaudit.__main__",),
)
LAYER_OF: Final = {part: floor for floor, parts in enumerate(LAYERS) for part in parts}


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in (SOURCE / "posaudit").rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if modules()[module].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        yield f"{base}.{alias.name}"


@cache
def imports() -> dict[str, frozenset[str]]:
    """Each posaudit module's posaudit modules, however it imports them."""
    known = modules()
    graph = {}
    for module, path in known.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(module, node):
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name.startswith("posaudit") and name != module:
                    targets.add(name)
        graph[module] = frozenset(targets)
    return graph


def part_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_part_has_a_layer() -> None:
    assert {part_of(m) for m in modules()} == set(LAYER_OF)


def test_every_import_points_down_or_stays_in_its_part() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in imports().items()
        for target in targets
        if part_of(target) != part_of(module)
        and LAYER_OF[part_of(target)] >= LAYER_OF[part_of(module)]
        # a package's own __init__ names what it holds
        and not (module == "posaudit" or target == "posaudit")
    ]
    assert upward == []


def _circles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other_in_a_circle() -> None:
    # a package's __init__ re-exporting its modules is not a circle of the code's own
    graph = {
        module: frozenset(t for t in targets if not module.startswith(t + "."))
        for module, targets in imports().items()
    }
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert _circles(graph) == [["a", "b", "c"]]


def test_notebooks_and_reports_share_colours_without_importing_each_other() -> None:
    apart = {"posaudit.notebook": "posaudit.report", "posaudit.report": "posaudit.notebook"}
    crossing = [
        f"{module} imports {target}"
        for module, targets in imports().items()
        for target in targets
        if apart.get(part_of(module)) == part_of(target)
    ]
    assert crossing == []
    assert "posaudit.palette" in imports()["posaudit.notebook.charts"]  # the graph is read
