"""What the command line leaves on disk: an export read back, a simulation killed midway."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from posaudit.store import Store, read_parquet_table
from posaudit.store.catalogue import CATALOGUE
from tests.conftest import build_store

POSAUDIT = [sys.executable, "-m", "posaudit"]
EXPORTED = [
    t for t, facts in CATALOGUE.items() if facts.kind != "meta"
]  # the store's own settings stay home
# A world far too large to finish before the kill: the test never waits on its end.
LONG_SIMULATION = ("--merchants", "2000", "--days", "365", "--seed", "1", "--yes")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=600)


def plain(frame: pl.DataFrame) -> pl.DataFrame:
    """Enums and categoricals as strings: Parquet keeps the values, not the DuckDB type."""
    return frame.with_columns(
        pl.col(c).cast(pl.String)
        for c, t in frame.schema.items()
        if isinstance(t, pl.Enum | pl.Categorical)
    )


@pytest.fixture(scope="module")
def audited_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world with one run's findings, so that every table has rows."""
    path = tmp_path_factory.mktemp("export") / "w.duckdb"
    build_store(path, merchants=10, days=5, seed=3)
    assert cli("run", "--db", str(path), "--quiet").returncode == 0
    return path


@pytest.mark.parametrize("layout", [[], ["--flat"]], ids=["partitioned", "flat"])
def test_export_reads_back_as_the_stores_tables(
    audited_world: Path, tmp_path: Path, layout: list[str]
) -> None:
    out = tmp_path / "parquet"
    done = cli("export", "--db", str(audited_world), "--out", str(out), *layout)
    assert done.returncode == 0, done.stderr
    assert f"exported {len(EXPORTED)} tables to {out}" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORTED)
    assert any(out.glob("transactions/date=*/*.parquet")) == (not layout)
    store = Store.open(audited_world, read_only=True)
    try:
        for table in EXPORTED:
            key = CATALOGUE[table].key
            stored = plain(store.frame(f"SELECT * FROM {table} ORDER BY {key}"))
            read = plain(read_parquet_table(out, table).collect()).sort(key)
            assert read.columns == stored.columns, table
            assert read.equals(stored), table
            # a simulated world has ingested and reviewed nothing: those tables are empty, and
            # exported
            empty_allowed = CATALOGUE[table].kind in ("ingest", "reviews")
            assert stored.height > 0 or empty_allowed, f"{table} is empty: proves nothing"
    finally:
        store.close()


def test_export_refuses_a_folder_that_holds_anything(audited_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "notes.txt").write_text("kept\n")
    done = cli("export", "--db", str(audited_world), "--out", str(out))
    assert done.returncode == 2
    assert f"--out {out} must be a new or empty folder" in done.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_killed_simulation_leaves_no_store_and_the_next_one_works(tmp_path: Path) -> None:
    db = tmp_path / "world.duckdb"
    staging = db.with_name(db.name + ".staging")
    simulation = subprocess.Popen(
        [*POSAUDIT, "simulate", "--db", str(db), *LONG_SIMULATION],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # killed once days are being written (wherever the simulation writes them)
        deadline = time.monotonic() + 300
        while not any(p.exists() and p.stat().st_size > 4 * 2**20 for p in (db, staging)):
            assert simulation.poll() is None, simulation.communicate()[1]
            assert time.monotonic() < deadline, "the simulation wrote no days within 5 minutes"
            time.sleep(0.2)
    finally:
        simulation.send_signal(signal.SIGKILL)
        simulation.communicate(timeout=60)
    assert simulation.returncode == -signal.SIGKILL
    assert not db.exists()
    again = cli("simulate", "--db", str(db), "--merchants", "3", "--days", "2", "--seed", "2")
    assert again.returncode == 0, again.stderr
    assert not staging.exists()
    store = Store.open(db, read_only=True)
    try:
        assert store.query("SELECT merchants, days FROM simulations") == [(3, 2)]
    finally:
        store.close()
