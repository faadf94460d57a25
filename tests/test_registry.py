"""Every rule is registered, documented, in the default policy and tested."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from posaudit.detect.registry import DERIVED_INPUTS, DERIVED_TABLES, RULES
from posaudit.rules import RULE_MODULES, all_rules
from posaudit.simulate.scenario import SCENARIOS
from posaudit.store.catalogue import TABLE_NAMES

ROOT = Path(__file__).parents[1]


def _resolve(dotted: str) -> object | None:
    """The object a dotted name imports: a module, or an attribute of one."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        module, _, attribute = dotted.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attribute, None)
        except (ImportError, ValueError):
            return None


def _rules_called_by_tests(test_file: Path) -> dict[str, set[str]]:
    """Rule by rule, the tests of ``test_file`` that call its function: by a name the file
    imports (``rule(...)``, ``module.rule(...)``), through the registry (``RULES["rule"](...)``),
    or through a helper of the file that does."""
    tree = ast.parse(test_file.read_text())
    imported: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.asname or a.name: a.name for a in node.names}
    by_function = {rule.function: name for name, rule in all_rules().items()}

    def target(call: ast.Call) -> object | None:
        func = call.func
        if isinstance(func, ast.Name) and func.id in imported:
            return _resolve(imported[func.id])
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            module = imported.get(func.value.id)
            return getattr(_resolve(module), func.attr, None) if module else None
        if isinstance(func, ast.Subscript) and isinstance(func.slice, ast.Constant):
            registry = func.value
            if isinstance(registry, ast.Attribute) and isinstance(registry.value, ast.Name):
                registry = _resolve(f"{imported.get(registry.value.id)}.{registry.attr}")
            elif isinstance(registry, ast.Name) and registry.id in imported:
                registry = _resolve(imported[registry.id])
            if registry is RULES and func.slice.value in RULES:
                return RULES[func.slice.value].function
        return None

    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    rules: dict[str, set[str]] = {}
    helpers: dict[str, set[str]] = {}
    for name, function in functions.items():
        calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)]
        rules[name] = {by_function[t] for c in calls if (t := target(c)) in by_function}
        helpers[name] = {c.func.id for c in calls if isinstance(c.func, ast.Name)} & set(functions)
    changed = True
    while changed:  # a helper's rules are its callers' too
        changed = False
        for name in functions:
            reached = set().union(rules[name], *(rules[h] for h in helpers[name]))
            changed |= reached != rules[name]
            rules[name] = reached
    tested: dict[str, set[str]] = {}
    for name in functions:
        if name.startswith("test_"):
            for rule in rules[name]:
                tested.setdefault(rule, set()).add(f"{test_file.name}::{name}")
    return tested


def test_every_rule_is_documented_and_tested() -> None:
    docs = (ROOT / "docs" / "detection.md").read_text()
    tested: dict[str, set[str]] = {}
    # the rules' own tests, on literal frames, mirror src/posaudit/detect and score
    for test_file in [
        *(ROOT / "tests" / "detect").glob("test_*.py"),
        *(ROOT / "tests" / "score").glob("test_*.py"),
    ]:
        for rule, tests in _rules_called_by_tests(test_file).items():
            tested.setdefault(rule, set()).update(tests)
    for name, rule in all_rules().items():
        assert f"`{name}`" in docs, f"{name} is not in docs/detection.md"
        # a positive and a negative case at least: two tests that run the rule itself
        tests = tested.get(name, set())
        assert len(tests) >= 2, f"{name}: {len(tests)} test(s) run it: {sorted(tests)}"
        assert rule.description, f"{name} has no docstring"


def test_rules_declare_inputs_keys_and_scenarios_that_exist() -> None:
    for name, rule in all_rules().items():
        assert set(rule.inputs) <= set(TABLE_NAMES) | DERIVED_INPUTS | set(DERIVED_TABLES), name
        assert "ground_truth" not in rule.inputs, name
        assert set(rule.scenarios) <= set(SCENARIOS), name
        assert rule.lookback.total_seconds() > 0, name
    covered = {s for r in all_rules().values() for s in r.scenarios}
    assert covered == set(SCENARIOS), set(SCENARIOS) - covered


def test_rules_never_import_duckdb_altair_or_the_cli() -> None:
    import re

    for module in [
        *(ROOT / "src" / "posaudit" / "detect").glob("*.py"),
        *(ROOT / "src" / "posaudit" / "score").glob("*.py"),
    ]:
        code = [
            line for line in module.read_text().splitlines() if not line.lstrip().startswith("#")
        ]
        imports = [line for line in code if re.match(r"\s*(import|from)\s", line)]
        for forbidden in ("duckdb", "altair", "posaudit.cli", "posaudit.store", "typer"):
            assert not any(forbidden in line for line in imports), (module.name, forbidden)
        if module.parent.name == "detect":
            assert not any(re.search(r"\.collect\(\)", line) for line in code), module.name


def test_derived_tables_come_from_store_tables_and_filter_real_columns() -> None:
    assert DERIVED_TABLES, "the refund rules share a derived table"
    for name, table in DERIVED_TABLES.items():
        assert table.source in TABLE_NAMES, name
        assert name not in TABLE_NAMES, name
    schema = (ROOT / "src" / "posaudit" / "store" / "schema.sql").read_text()
    for table in DERIVED_TABLES.values():
        for column in [*table.rows, *(table.linked or ())]:
            assert f"{column} " in schema, (table.name, column)


def _imported_modules(module: Path) -> set[str]:
    """The posaudit modules ``module`` imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.startswith("posaudit")}


def test_the_registry_imports_no_rule_and_detection_never_imports_the_score() -> None:
    source = ROOT / "src" / "posaudit"
    rule_modules = {module.__name__ for module in RULE_MODULES}
    assert not _imported_modules(source / "detect" / "registry.py") & rule_modules
    for module in (source / "detect").glob("*.py"):
        imported = _imported_modules(module)
        assert not {name for name in imported if name.startswith("posaudit.score")}, module.name


def test_the_list_names_every_module_that_registers_a_rule() -> None:
    source = ROOT / "src" / "posaudit"
    for module in [*(source / "detect").glob("*.py"), *(source / "score").glob("*.py")]:
        importlib.import_module(f"posaudit.{module.parent.name}.{module.stem}")
    registering = {rule.function.__module__ for rule in RULES.values()}
    assert registering == {module.__name__ for module in RULE_MODULES}
    assert all_rules() == RULES
