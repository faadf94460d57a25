"""The severity scale as docs/detection.md#severity writes it, held to an audit of the sample world.

Critical and high page an analyst, so they are kept for a login someone else holds: money
leaving after a suspicious login (critical) and a guessed PIN that got in (high). The docs'
table gives each rule its severities; the audit may use no other, and the alert volume of
critical and high stays within the target of 5 per 1,000 operators per day.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from posaudit.rules import all_rules
from posaudit.store import Store

DOC = Path(__file__).resolve().parents[2] / "docs" / "detection.md"
SEVERITIES = ("info", "low", "medium", "high", "critical")
# docs/evaluation.md#alert-volume: the findings that page, per 1,000 operators per day
PAGING_BUDGET = 5.0


def severity_table() -> dict[str, set[str]]:
    """Rule -> the severities its row of the Severity section's rule table names."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Severity\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        rules_cell, severity_cell = line.strip("|").split("|")[:2]
        # word bounds keep `medium_anomaly_score` from reading as "medium"
        named = {name for name in SEVERITIES if re.search(rf"\b{name}\b", severity_cell)}
        for rule_name in re.findall(r"`([a-z_]+)`", rules_cell):
            table[rule_name] = named
    return table


def posaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def audited(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample world, audited by `posaudit run` with the default policy."""
    path = Path(shutil.copy(sample_store, tmp_path_factory.mktemp("severity") / "w.duckdb"))
    done = posaudit("run", "--db", str(path))
    assert done.returncode == 0, done.stderr
    return path


def test_the_severity_table_gives_every_rule_its_severities() -> None:
    table = severity_table()
    assert set(table) == set(all_rules())
    assert all(table.values()), table
    assert [name for name, named in table.items() if "critical" in named] == [
        "refunds_after_suspicious_login"
    ]
    assert [name for name, named in table.items() if "high" in named] == ["pin_brute_force"]


def test_the_audit_uses_only_the_severities_the_table_names(audited: Path) -> None:
    table = severity_table()
    store = Store.open(audited, read_only=True)
    try:
        rows = store.query("SELECT rule, CAST(severity AS VARCHAR), evidence FROM findings")
    finally:
        store.close()
    assert {severity for _, severity, _ in rows} >= {"medium", "high", "critical"}
    for rule_name, severity, evidence in rows:
        assert severity in table[rule_name], (rule_name, severity)
        if rule_name == "pin_brute_force":
            # high exactly when the guessing got in
            assert (severity == "high") == json.loads(evidence)["ended_in_success"]


def test_critical_and_high_stay_within_the_paging_budget(audited: Path) -> None:
    done = posaudit("evaluate", "--db", str(audited), "--json")
    assert done.returncode == 0, done.stderr
    volume = json.loads(done.stdout)["alert_volume"]
    assert volume["findings"]["critical+high"] > 0  # the world has takeovers to page on
    assert volume["per_1000_operators_per_day"]["critical+high"] <= PAGING_BUDGET
