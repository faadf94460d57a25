"""Every rule is registered, documented, in the default policy and tested."""

from __future__ import annotations

from pathlib import Path

from posaudit.detect.registry import DERIVED_INPUTS, DERIVED_TABLES, all_rules
from posaudit.simulate.scenario import SCENARIOS
from posaudit.store import TABLES

ROOT = Path(__file__).parents[1]


def test_every_rule_is_documented_and_tested() -> None:
    docs = (ROOT / "docs" / "detection.md").read_text()
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_registry.py")
    for name, rule in all_rules().items():
        assert f"`{name}`" in docs, f"{name} is not in docs/detection.md"
        assert name in tests, f"no test names {name}"
        assert rule.description, f"{name} has no docstring"


def test_rules_declare_inputs_keys_and_scenarios_that_exist() -> None:
    for name, rule in all_rules().items():
        assert set(rule.inputs) <= set(TABLES) | DERIVED_INPUTS | set(DERIVED_TABLES), name
        assert "ground_truth" not in rule.inputs, name
        assert set(rule.scenarios) <= set(SCENARIOS), name
        assert rule.lookback.total_seconds() > 0, name
    covered = {s for r in all_rules().values() for s in r.scenarios}
    assert covered == set(SCENARIOS), set(SCENARIOS) - covered


def test_rules_never_import_duckdb_altair_or_the_cli() -> None:
    import re

    for module in [*(ROOT / "src" / "posaudit" / "detect").glob("*.py"), *(ROOT / "src" / "posaudit" / "score").glob("*.py")]:
        code = [line for line in module.read_text().splitlines() if not line.lstrip().startswith("#")]
        imports = [line for line in code if re.match(r"\s*(import|from)\s", line)]
        for forbidden in ("duckdb", "altair", "posaudit.cli", "posaudit.store", "typer"):
            assert not any(forbidden in line for line in imports), (module.name, forbidden)
        if module.parent.name == "detect":
            assert not any(re.search(r"\.collect\(\)", line) for line in code), module.name


def test_derived_tables_come_from_store_tables_and_filter_real_columns() -> None:
    all_rules()
    assert DERIVED_TABLES, "the refund rules share a derived table"
    for name, table in DERIVED_TABLES.items():
        assert table.source in TABLES, name
        assert name not in TABLES, name
    schema = (ROOT / "src" / "posaudit" / "store" / "schema.sql").read_text()
    for table in DERIVED_TABLES.values():
        for column in [*table.rows, *(table.linked or ())]:
            assert f"{column} " in schema, (table.name, column)
