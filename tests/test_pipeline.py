"""`posaudit run` and `posaudit evaluate` on a simulated world, as a user runs them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.report.data import FAMILY_ORDER
from posaudit.simulate.engine import world_pins
from posaudit.store import Store
from tests.conftest import SAMPLE_LACKS
from tests.pin_leaks import pins_in_store

POSAUDIT = [sys.executable, "-m", "posaudit"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def audited(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audited") / "w.duckdb"
    shutil.copy(sample_store, path)
    result = run("run", "--db", str(path), "--json")
    assert result.returncode == 0, result.stderr
    return path


def _findings(path: Path) -> pl.DataFrame:
    store = Store.open(path, read_only=True)
    try:
        return store.frame("SELECT * FROM findings ORDER BY finding_id")
    finally:
        store.close()


def test_run_writes_findings_and_a_run_record(audited: Path) -> None:
    findings = _findings(audited)
    assert findings.height > 100
    assert findings.get_column("finding_id").is_unique().all()
    assert set(findings.get_column("family")) == set(FAMILY_ORDER)
    store = Store.open(audited, read_only=True)
    runs = store.frame("SELECT * FROM pipeline_runs")
    store.close()
    row = runs.row(0, named=True)
    assert row["status"] == "succeeded" and row["findings_total"] == findings.height
    assert row["policy_hash"] and row["code_version"] and row["rows_read"] > 1_000
    assert row["finished_at"] >= row["started_at"]


def test_rerun_adds_no_duplicate(audited: Path, tmp_path: Path) -> None:
    copy = tmp_path / "again.duckdb"
    shutil.copy(audited, copy)
    before = _findings(copy)
    result = run("run", "--db", str(copy), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["new"] == 0 and summary["seen"] == before.height and summary["resolved"] == 0
    after = _findings(copy)
    assert after.select("finding_id", "first_run_id").equals(
        before.select("finding_id", "first_run_id")
    )
    assert set(after.get_column("run_id")) == {summary["run_id"]}


def test_detection_never_reads_labels(audited: Path, tmp_path: Path, sample_store: Path) -> None:
    unlabelled = tmp_path / "unlabelled.duckdb"
    shutil.copy(sample_store, unlabelled)
    con = duckdb.connect(str(unlabelled))
    con.execute("DELETE FROM ground_truth")
    con.close()
    assert run("run", "--db", str(unlabelled)).returncode == 0
    columns = [
        "finding_id",
        "rule",
        "severity",
        "score",
        "entity_id",
        "window_start",
        "window_end",
        "summary",
        "evidence",
    ]
    assert _findings(unlabelled).select(columns).equals(_findings(audited).select(columns))


def test_findings_hold_no_pin_or_digest(audited: Path) -> None:
    findings = _findings(audited)
    store = Store.open(audited, read_only=True)
    digests = set(
        store.frame("SELECT DISTINCT pin_digest FROM pin_events").get_column("pin_digest")
    )
    store.close()
    text = " ".join(
        findings.get_column("summary").to_list() + findings.get_column("evidence").to_list()
    )
    assert not {d for d in digests if d in text}
    assert not re.search(r"[0-9a-f]{64}", text)
    # no PIN of the world in any column of any table the run wrote to (findings, runs, ...)
    held = world_pins(audited)
    assert len(frozenset().union(*held.values())) > 100
    assert not pins_in_store(audited, held)


def test_summaries_are_one_sentence_naming_the_entity(audited: Path) -> None:
    findings = _findings(audited)
    for row in findings.sample(200, seed=1).iter_rows(named=True):
        summary = row["summary"]
        assert "\n" not in summary and 20 < len(summary) < 400
        short = row["entity_id"].split("-")[-1]
        assert row["entity_id"] in summary or short in summary, summary


def test_evaluate_reports_quality_on_the_sample(audited: Path) -> None:
    result = run("evaluate", "--db", str(audited), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    recall = {r["scenario"]: r["recall"] for r in report["recall"]}
    precision = {r["rule"]: r["precision"] for r in report["precision"]}
    from posaudit.simulate.scenario import SCENARIOS

    assert set(recall) == set(SCENARIOS) - SAMPLE_LACKS
    low = {k: v for k, v in recall.items() if v < 0.95 and k != "friendly_refunds"}
    assert not low, low
    assert recall["friendly_refunds"] >= 0.7
    # the targets (precision at least 0.90 against each rule's own scenarios) are measured on
    # larger worlds (docs/detection.md, "Quality"); the sample has a handful of findings per
    # rule, where one false alarm among eight costs 0.125, so it is held to 0.9 crediting any
    # incident on the entity and to 0.8 against the rule's own scenarios
    generous = {r["rule"]: r["precision_any"] for r in report["precision"]}
    weak = {k: v for k, v in generous.items() if v < 0.9}
    assert not weak, weak
    weak_own = {k: v for k, v in precision.items() if v < 0.8}
    assert not weak_own, weak_own
    human = run("evaluate", "--db", str(audited))
    assert "recall per scenario" in human.stdout and "precision per rule" in human.stdout


def test_bad_runs_exit_2_and_write_nothing(tmp_path: Path, audited: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    assert run("simulate", "--db", str(empty), "--merchants", "2", "--days", "1").returncode == 0
    con = duckdb.connect(str(empty))
    con.execute("DELETE FROM transactions")
    con.close()
    result = run("run", "--db", str(empty))
    assert result.returncode == 2 and "holds no transactions" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    policy = tmp_path / "p.toml"
    policy.write_text("[rules.refund_bursts]\nwindow_minutes = -5\n")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(audited, copy)
    before = copy.read_bytes()
    result = run("run", "--db", str(copy), "--policy", str(policy))
    assert result.returncode == 2 and "must not be negative" in result.stderr
    assert copy.read_bytes() == before
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    result = run("run", "--db", str(foreign))
    assert result.returncode == 2 and "not a posaudit store" in result.stderr
    result = run("evaluate", "--db", str(empty))
    assert result.returncode == 2 and "no successful run" in result.stderr
