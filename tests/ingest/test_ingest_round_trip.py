"""The proof: a simulated world's tables, ingested through the built-in `contract` mapping into
a new store, give the same findings as the world itself; and days ingested later (late rows
among them) are picked up by the next run incrementally."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from posaudit.ingest.contract import TARGET_TABLES
from tests.conftest import build_store
from tests.ingest.ingest_kit import cli, ingest, query, summary_line

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world") / "world.duckdb"
    build_store(path, merchants=8, days=6, seed=7)
    return path


@pytest.fixture(scope="module")
def world_findings(world: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    audited = tmp_path_factory.mktemp("audited") / "world.duckdb"
    shutil.copyfile(world, audited)
    done = cli("run", "--db", str(audited), "--quiet")
    assert done.returncode == 0, done.stderr
    return open_findings(audited)


def open_findings(db: Path) -> set[str]:
    found = query(db, "SELECT finding_id FROM findings WHERE status = 'open'")
    return set(found["finding_id"].to_list())


def tables(db: Path) -> dict[str, pl.DataFrame]:
    return {t: query(db, f"SELECT * FROM {t}") for t in TARGET_TABLES}


def test_an_exported_world_ingested_anew_gives_the_same_findings(
    world: Path, world_findings: set[str], tmp_path: Path
) -> None:
    flat = tmp_path / "flat"
    done = cli("export", "--db", str(world), "--out", str(flat), "--flat")
    assert done.returncode == 0, done.stderr
    # every format the contract mapping reads: dimensions as CSV, some events as JSON lines
    sources = []
    for table, rows in tables(world).items():
        if table in ("merchants", "terminals", "operators"):
            sources.append(tmp_path / f"{table}.csv")
            rows.write_csv(sources[-1])
        elif table in ("pin_events", "login_events"):
            sources.append(tmp_path / f"{table}.jsonl")
            rows.write_ndjson(sources[-1])
        else:
            sources.append(flat / table)
    db = tmp_path / "ingested.duckdb"
    summary = ingest(db, *sources)
    assert summary["rows_quarantined"] == 0 and summary["rows_duplicate"] == 0
    original = tables(world)
    for table, rows in tables(db).items():
        assert rows.height == original[table].height, table
    done = cli("run", "--db", str(db), "--quiet")
    assert done.returncode == 0, done.stderr
    assert world_findings and open_findings(db) == world_findings


def test_days_ingested_later_and_late_rows_are_picked_up_incrementally(
    world: Path, world_findings: set[str], tmp_path: Path
) -> None:
    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir()
    later.mkdir()
    world_tables = tables(world)
    # events before the world's last two days arrive first, the rest (and a late row) after
    days = world_tables["transactions"]["ts"].dt.date().unique().sort()
    cut = pl.lit(days[-2]).cast(pl.Datetime("us"))
    for table, rows in world_tables.items():
        column = {"lockouts": "locked_at"}.get(table, "ts")
        if column not in rows.columns:
            rows.write_parquet(first / f"{table}.parquet")
            continue
        early = pl.col(column) < cut
        # one early transaction held back: it arrives with the later days, as a late row
        late = pl.int_range(pl.len()) == 0 if table == "transactions" else pl.lit(False)
        rows.filter(early & ~late).write_parquet(first / f"{table}.parquet")
        rows.filter(~early | late).write_parquet(later / f"{table}-2.parquet")
    db = tmp_path / "ingested.duckdb"
    ingest(db, first)
    assert cli("run", "--db", str(db), "--quiet").returncode == 0
    ingest(db, later)
    done = cli("run", "--db", str(db), "--quiet", "--json")
    assert done.returncode == 0, done.stderr
    summary = summary_line(done.stdout)
    assert summary["mode"] == "incremental", summary
    assert "events changed from" in summary["reason"], summary
    assert open_findings(db) == world_findings
