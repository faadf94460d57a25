"""`posaudit run --engine ...`: bad values give one line, exit 2, and write nothing.

These checks happen before Spark starts, so they need neither Java nor a Spark session.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posaudit.cli import app
from tests.spark.spark_kit import copy_store


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store(sample_store: Path, tmp_path: Path) -> Path:
    return copy_store(sample_store, tmp_path / "store.duckdb")


def _one_line_exit_2(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("posaudit: error:")]
    assert len(errors) == 1, done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--engine", "duckdb"], ["--engine must be local or spark", "'duckdb'"]),
        (["--master", "local[2]"], ["--master", "only with --engine spark"]),
        (["--engine", "spark", "--master", "my-cluster"], ["'my-cluster' is not a Spark master"]),
        (["--engine", "spark", "--spark-conf", "executor.memory"], ["is not KEY=VALUE"]),
        (["--engine", "spark", "--spark-strategy", "hash"], ["--spark-strategy must be one of"]),
        (["--engine", "spark", "--buckets", "0"], ["--buckets must be at least 1"]),
    ],
)
def test_bad_values_exit_2_with_one_line(
    store: Path, args: list[str], fragments: list[str]
) -> None:
    before = _digest(store)
    done = _run("--db", str(store), *args, "--parquet", str(store.parent / "export"))
    _one_line_exit_2(done, *fragments)
    assert _digest(store) == before
    assert not (store.parent / "export").exists()


def test_an_unreadable_parquet_folder_exits_2(store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "not-an-export"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"not parquet")
    before = _digest(store)
    done = _run("--db", str(store), "--engine", "spark", "--parquet", str(folder), "--json")
    _one_line_exit_2(done, "is not a bucketed posaudit export")
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "status": "bad_input",
        "error": done.stderr.split("error: ", 1)[1].strip(),
        "exit_code": 2,
    }
    assert _digest(store) == before
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]


def test_an_export_left_mid_update_is_refused_without_its_store(
    store: Path, tmp_path: Path
) -> None:
    """An update stopped half way leaves its journal: read alone, the export is refused."""
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("without pyspark the missing package is reported first")
    from posaudit.spark.export import JOURNAL_PREFIX, export_buckets
    from posaudit.store import Store

    opened = Store.open(store, read_only=True)
    try:
        export_buckets(opened, tmp_path / "export", buckets=2)
    finally:
        opened.close()
    (tmp_path / "export" / f"{JOURNAL_PREFIX}1" / "replaced").mkdir(parents=True)
    done = _run(
        "--engine",
        "spark",
        "--parquet",
        str(tmp_path / "export"),
        "--findings-out",
        str(tmp_path / "findings"),
    )
    _one_line_exit_2(done, "was interrupted: run again with --db")
    assert not (tmp_path / "findings").exists()


def test_no_java_exits_2(store: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("without pyspark the missing package is reported first")
    env = {"PATH": str(tmp_path), "JAVA_HOME": ""}
    done = _run("--db", str(store), "--engine", "spark", env=env)
    _one_line_exit_2(done, "needs Java")


def test_no_pyspark_exits_2(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a)
    )
    before = _digest(store)
    result = CliRunner().invoke(app, ["run", "--db", str(store), "--engine", "spark"])
    assert result.exit_code == 2
    assert "needs pyspark: pip install 'posaudit[spark]'" in result.output
    assert _digest(store) == before
