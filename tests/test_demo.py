"""`posaudit demo`, the README's main job: end to end, and it replaces only its own store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

POSAUDIT = [sys.executable, "-m", "posaudit"]
SMALL = ["--merchants", "6", "--days", "4"]


def demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSAUDIT, "demo", *SMALL, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_simulates_audits_reports_and_runs_again(tmp_path: Path) -> None:
    first = demo("--db", "data/demo.duckdb", "--out", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [
        "posaudit-findings-run-00001-en.csv",
        "posaudit-findings-run-00001-en.parquet",
        "posaudit-report-run-00001-en.html",
        "posaudit-report-run-00001-en.pdf",
        "posaudit-report-run-00001-en.xlsx",
    ]
    with duckdb.connect(str(tmp_path / "data/demo.duckdb"), read_only=True) as con:
        runs = con.execute("SELECT status FROM pipeline_runs").fetchall()
        findings = con.execute("SELECT count(*) FROM findings").fetchall()[0][0]
    assert runs == [("succeeded",)] and findings > 0
    assert f"audit run-00001: {findings:,} findings" in first.stdout
    # a second demo replaces the store its first made
    again = demo("--db", "data/demo.duckdb", "--out", "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "data" / "demo.duckdb.lock").exists()


def test_the_demo_leaves_a_file_it_did_not_make_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the quarter's audit notes\n", encoding="utf-8")
    result = demo("--db", str(notes), "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"posaudit: error: {notes} exists and is not a store made by `posaudit demo`; the demo "
        "replaces only its own store: choose another --db (or $POSAUDIT_DB), or move that file "
        "away\n"
    )
    assert notes.read_text(encoding="utf-8") == "the quarter's audit notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_demo_leaves_another_store_alone(sample_store: Path, tmp_path: Path) -> None:
    """A store `posaudit simulate` made (a production store, say) is not the demo's to replace."""
    store = tmp_path / "audit.duckdb"
    store.write_bytes(sample_store.read_bytes())
    before = store.read_bytes()
    result = demo("--db", str(store), "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a store made by `posaudit demo`" in result.stderr
    assert result.stderr.count("\n") == 1
    assert store.read_bytes() == before


def test_the_demo_leaves_a_folder_alone(tmp_path: Path) -> None:
    folder = tmp_path / "store.duckdb"
    folder.mkdir()
    result = demo("--db", str(folder), "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a store made by `posaudit demo`" in result.stderr
    assert folder.is_dir() and not any(folder.iterdir())
