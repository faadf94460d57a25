"""Scheduled runs are safe: killed at any point they leave the store as it was, one writer at
a time, failures recorded, documented exit codes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hooked_run import HOOK_POINTS
from pipeline_kit import (
    Paused,
    append_days,
    cli,
    comparable,
    copy,
    file_bytes,
    findings,
    frame,
    hooked_cli,
    run_here,
    snapshot,
    summary_line,
)

pytestmark = pytest.mark.slow

# Points before the commit: a kill there must leave every byte of the store as it was.
BEFORE_COMMIT = [p for p in HOOK_POINTS if p != "committed"]


@pytest.fixture(scope="module")
def due(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store audited once, with a new day waiting for the next scheduled run."""
    path = copy(sample_store, tmp_path_factory.mktemp("due") / "due.duckdb")
    run_here(path)
    append_days(path)
    return path


@pytest.fixture(scope="module")
def uninterrupted(due: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The due run, made without interruption: what a run after a kill must arrive at."""
    path = copy(due, tmp_path_factory.mktemp("clean") / "clean.duckdb")
    assert run_here(path).mode == "incremental"
    return path


def test_every_hook_point_is_tested() -> None:
    assert set(BEFORE_COMMIT) == {"locked", "read", "computed", "writing"}


@pytest.mark.parametrize("point", BEFORE_COMMIT)
def test_a_killed_run_leaves_the_store_as_it_was(
    due: Path, uninterrupted: Path, tmp_path: Path, point: str
) -> None:
    store = copy(due, tmp_path / "killed.duckdb")
    tables, files = snapshot(store), file_bytes(store)
    paused = Paused("run", "--db", str(store), "--quiet", point=point)
    assert paused.kill() == -9
    assert file_bytes(store) == files
    after = snapshot(store)
    for table, rows in tables.items():
        assert after[table].equals(rows), table
    assert run_here(store).mode == "incremental"
    assert comparable(findings(store)).equals(comparable(findings(uninterrupted)))
    assert frame(store, "SELECT count(*) AS n FROM pipeline_runs").item() == 2


def test_a_run_killed_after_its_commit_is_complete(
    due: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    store = copy(due, tmp_path / "committed.duckdb")
    Paused("run", "--db", str(store), "--quiet", point="committed").kill()
    assert comparable(findings(store)).equals(comparable(findings(uninterrupted)))
    again = summary_line(cli("run", "--db", str(store), "--json").stdout)
    assert again["mode"] == "incremental" and again["new"] == 0 and again["resolved"] == 0
    assert comparable(findings(store)).equals(comparable(findings(uninterrupted)))


def test_a_second_run_exits_at_once_with_code_3(due: Path, tmp_path: Path) -> None:
    store = copy(due, tmp_path / "busy.duckdb")
    first = Paused("run", "--db", str(store), "--quiet", point="read")
    try:
        began = time.monotonic()
        second = cli("run", "--db", str(store))
        took = time.monotonic() - began
        reader = cli("evaluate", "--db", str(store))
    finally:
        first.kill()
    assert second.returncode == 3, second.stderr
    assert re.fullmatch(
        rf"posaudit: error: {re.escape(str(store))} is locked by another posaudit process "
        rf"\(pid {first.process.pid}: run, since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\)\n",
        second.stderr,
    ), second.stderr
    assert summary_line(second.stdout) == {
        "status": "locked",
        "error": second.stderr.strip()[len("posaudit: error: ") :],
        "exit_code": 3,
    }
    assert took < 30  # start-up only: no waiting for the lock
    assert reader.returncode == 3
    assert run_here(store).mode == "incremental"


def test_a_failed_run_is_recorded_and_changes_no_finding(due: Path, tmp_path: Path) -> None:
    store = copy(due, tmp_path / "failing.duckdb")
    before = findings(store, "true")
    result = hooked_cli("computed:fail", "run", "--db", str(store))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("posaudit: error: the run failed and left the findings")
    )
    summary = summary_line(result.stdout)
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    runs = frame(
        store,
        "SELECT run_id, CAST(status AS VARCHAR) AS status, error FROM pipeline_runs "
        "ORDER BY run_id",
    )
    assert runs.get_column("status").to_list() == ["succeeded", "failed"]
    assert "failing at computed" in runs.get_column("error")[1]
    assert findings(store, "true").equals(before)
    # a failed run leaves no watermark: the next run starts from the last successful one
    retry = run_here(store)
    assert (
        retry.mode == "incremental"
        and retry.previous_run_id == "run-00001"
        and retry.run_id == "run-00003"
    )


def test_fail_on_exits_4_for_new_findings_at_or_above_the_severity(
    sample_store: Path, tmp_path: Path
) -> None:
    store = copy(sample_store, tmp_path / "alert.duckdb")
    first = cli("run", "--db", str(store), "--fail-on", "high", "--json")
    summary = summary_line(first.stdout)
    assert first.returncode == 4, first.stderr
    assert summary["alert"] is True and summary["exit_code"] == 4 and summary["fail_on"] == "high"
    assert summary["new_by_severity"]["high"] > 0
    alerted = summary["new_by_severity"]["high"] + summary["new_by_severity"].get("critical", 0)
    assert f"posaudit: {alerted:,} new findings at or above high" in first.stderr
    # nothing new: no alert, whatever the threshold
    again = cli("run", "--db", str(store), "--fail-on", "info", "--json")
    assert again.returncode == 0 and summary_line(again.stdout)["alert"] is False


def test_bad_options_exit_2_and_write_nothing(due: Path, tmp_path: Path) -> None:
    store = copy(due, tmp_path / "bad.duckdb")
    before = file_bytes(store)
    for args, message in (
        (["--fail-on", "severe"], "--fail-on must be one of info, low, medium, high, critical"),
        (["--pipeline", str(tmp_path / "missing.toml")], "does not exist"),
        (["--db", str(tmp_path / "none.duckdb")], "no store at"),
    ):
        result = cli("run", "--db", str(store), *args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert file_bytes(store) == before
