"""A store of an older schema version is upgraded in place: version 1 (before account
references), version 2 (before operator events and batch totals) and version 3 (before open
findings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.store import SCHEMA_VERSION, Store

POSAUDIT = [sys.executable, "-m", "posaudit"]


def posaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=600)


VERSION_3_TABLES = ("operator_events", "batch_totals")


def as_version_3(con: duckdb.DuckDBPyConnection) -> None:
    """Make the store what posaudit wrote at schema version 3: every finding has an end."""
    con.execute("ALTER TABLE findings ALTER COLUMN window_end SET NOT NULL")
    con.execute("UPDATE posaudit_meta SET value = '3' WHERE key = 'schema_version'")


def as_version_2(con: duckdb.DuckDBPyConnection) -> None:
    """Make the store what posaudit wrote at schema version 2: no operator events and no batch
    totals, nor the types only they use."""
    as_version_3(con)
    for table in VERSION_3_TABLES:
        con.execute(f"DROP TABLE {table}")
    con.execute("DROP TYPE operator_event_kind_t")
    con.execute("DROP TYPE permission_t")
    con.execute("UPDATE posaudit_meta SET value = '2' WHERE key = 'schema_version'")


def as_version_1(db: Path) -> int:
    """Make ``db`` what posaudit wrote at schema version 1: transactions without
    ``account_ref``, and a run's kept refunds frame of that version. Returns the rows."""
    con = duckdb.connect(str(db))
    try:
        as_version_2(con)
        con.execute("ALTER TABLE transactions DROP COLUMN account_ref")
        con.execute("UPDATE posaudit_meta SET value = '1' WHERE key = 'schema_version'")
        con.execute("CREATE TABLE kept_refunds AS SELECT txn_id, ts FROM transactions LIMIT 3")
        con.execute("INSERT INTO posaudit_meta VALUES ('refunds.state_run_id', 'run-00001')")
        return int(con.execute("SELECT count(*) FROM transactions").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


@pytest.fixture
def old_store(tmp_path: Path) -> tuple[Path, int]:
    db = tmp_path / "old.duckdb"
    made = posaudit("simulate", "--db", str(db), "--merchants", "3", "--days", "2", "--seed", "3")
    assert made.returncode == 0, made.stderr
    return db, as_version_1(db)


def test_a_run_upgrades_a_version_1_store_in_place(old_store: tuple[Path, int]) -> None:
    db, rows = old_store
    done = posaudit("run", "--db", str(db))
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        meta = dict(con.execute("SELECT key, value FROM posaudit_meta").fetchall())
        assert meta["schema_version"] == SCHEMA_VERSION == "4"
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert set(VERSION_3_TABLES) <= tables
        counted = con.execute("SELECT count(*), count(account_ref) FROM transactions").fetchone()
        # every row kept; the rows made before the column have no account reference
        assert counted == (rows, 0)
        # the old run's refunds frame was dropped, and the run kept a new one with the column
        kept = {r[0] for r in con.execute("DESCRIBE kept_refunds").fetchall()}
        assert {"account_ref", "sale_account_ref"} <= kept
    finally:
        con.close()
    assert posaudit("evaluate", "--db", str(db)).returncode == 0


def test_a_version_1_store_opened_read_only_reads_as_this_version(
    old_store: tuple[Path, int],
) -> None:
    db, rows = old_store
    before = db.read_bytes()
    store = Store.open(db, read_only=True)
    try:
        transactions = store.read("transactions")
        assert transactions.height == rows
        # in the column's place, null: the data cannot tell
        columns = transactions.columns
        assert columns[columns.index("card_token") + 1] == "account_ref"
        assert transactions.get_column("account_ref").null_count() == rows
        assert store.schema("transactions")["account_ref"] == pl.String
        with store.cursor() as cursor:
            assert "account_ref" in cursor.read("transactions", where="false").columns
        cut = store.read_query(
            "SELECT count(account_ref) AS n FROM transactions", over={"transactions": None}
        )
        assert cut.item() == 0
        assert store.meta()["schema_version"] == "1"
    finally:
        store.close()
    assert posaudit("export", "--db", str(db), "--out", str(db.parent / "export")).returncode == 0
    assert db.read_bytes() == before


def test_appending_to_a_version_1_store_upgrades_it(old_store: tuple[Path, int]) -> None:
    db, rows = old_store
    done = posaudit("simulate", "--db", str(db), "--append", "--days", "1")
    assert done.returncode == 0, done.stderr
    store = Store.open(db, read_only=True)
    try:
        assert store.meta()["schema_version"] == SCHEMA_VERSION
        old, new = store.query(
            "SELECT count(*) FILTER (WHERE account_ref IS NULL AND channel IN "
            "('debit_card', 'credit_card')), count(account_ref) FROM transactions"
        )[0]
        assert old > 0 and new > 0  # the old card rows without, the appended ones with
        assert store.query("SELECT count(*) FROM transactions")[0][0] > rows  # type: ignore[operator]
    finally:
        store.close()


def test_a_newer_store_is_refused_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    assert posaudit("simulate", "--db", str(db), "--merchants", "2", "--days", "1").returncode == 0
    con = duckdb.connect(str(db))
    con.execute("UPDATE posaudit_meta SET value = '5' WHERE key = 'schema_version'")
    con.close()
    done = posaudit("run", "--db", str(db))
    assert done.returncode == 2
    assert "schema version 5" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_parquet_export_of_a_version_1_store_loads_with_null_references(
    old_store: tuple[Path, int], tmp_path: Path
) -> None:
    db, rows = old_store
    export = tmp_path / "export"
    store = Store.open(db, read_only=True)
    try:
        store.export_parquet(export, partitioned=False)
    finally:
        store.close()
    # as a version-1 store wrote it: no account_ref column
    (part,) = (export / "transactions").glob("*.parquet")
    pl.read_parquet(part).drop("account_ref").write_parquet(part)
    made = Store.from_parquet(
        export, tmp_path / "new.duckdb", code_version="test", pin_key_fingerprint="x"
    )
    store = Store.open(made, read_only=True)
    try:
        assert store.query("SELECT count(*), count(account_ref) FROM transactions")[0] == (rows, 0)
    finally:
        store.close()


@pytest.fixture
def version_2_store(tmp_path: Path) -> Path:
    db = tmp_path / "v2.duckdb"
    made = posaudit("simulate", "--db", str(db), "--merchants", "3", "--days", "2", "--seed", "4")
    assert made.returncode == 0, made.stderr
    con = duckdb.connect(str(db))
    try:
        as_version_2(con)
    finally:
        con.close()
    return db


def test_a_version_2_store_read_only_reads_the_new_tables_empty(version_2_store: Path) -> None:
    before = version_2_store.read_bytes()
    store = Store.open(version_2_store, read_only=True)
    try:
        for table in VERSION_3_TABLES:
            assert store.read(table).height == 0
        assert "permission" in store.read("operator_events").columns
        assert store.meta()["schema_version"] == "2"
    finally:
        store.close()
    assert version_2_store.read_bytes() == before


def test_opening_a_version_2_store_for_writing_adds_the_tables(version_2_store: Path) -> None:
    done = posaudit("run", "--db", str(version_2_store))
    assert done.returncode == 0, done.stderr
    store = Store.open(version_2_store, read_only=True)
    try:
        assert store.meta()["schema_version"] == SCHEMA_VERSION
        kinds = store.query(
            "SELECT data_type FROM duckdb_columns() WHERE table_name = 'operator_events' "
            "AND column_name = 'kind'"
        )
        assert kinds[0][0].startswith("ENUM")
    finally:
        store.close()


def test_a_version_3_store_without_its_tables_is_damaged(version_2_store: Path) -> None:
    con = duckdb.connect(str(version_2_store))
    con.execute("UPDATE posaudit_meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    done = posaudit("run", "--db", str(version_2_store))
    assert done.returncode == 2
    assert "missing tables operator_events, batch_totals" in done.stderr


def test_a_version_3_store_is_upgraded_to_open_findings(tmp_path: Path) -> None:
    """A store whose findings all had an end takes open ones: a PIN still held has none."""
    db = tmp_path / "v3.duckdb"
    made = posaudit("simulate", "--db", str(db), "--merchants", "3", "--days", "2", "--seed", "5")
    assert made.returncode == 0, made.stderr
    assert posaudit("run", "--db", str(db)).returncode == 0
    con = duckdb.connect(str(db))
    try:
        # as version 3 left them: every finding with an end
        con.execute("UPDATE findings SET window_end = window_start WHERE window_end IS NULL")
        as_version_3(con)
    finally:
        con.close()
    done = posaudit("run", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    # the earlier PIN findings all ended: the run after the upgrade decides them all again
    assert json.loads(done.stdout.strip().splitlines()[-1])["mode"] == "full"
    store = Store.open(db, read_only=True)
    try:
        assert store.meta()["schema_version"] == SCHEMA_VERSION
        open_states = store.query(
            "SELECT count(*) FROM findings WHERE family = 'pins' AND window_end IS NULL"
        )[0][0]
        assert open_states > 0  # type: ignore[operator]
    finally:
        store.close()
