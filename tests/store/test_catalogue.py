"""The table catalogue and ``schema.sql`` say the same: the same tables, and every column the
catalogue names exists in its table with the role it gives it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import duckdb
import pytest

from posaudit.store.catalogue import (
    BUCKETED_TABLES,
    CATALOGUE,
    DIMENSION_TABLES,
    EVENT_TABLES,
    EVENT_TIME_COLUMNS,
    TABLE_NAMES,
    UPGRADE_TABLES,
    WINDOW_TABLES,
    WORLD_TABLES,
    MerchantLink,
    TableFacts,
    event_time_column,
    key_column,
    table_facts,
)


@pytest.fixture(scope="module")
def schema() -> dict[str, dict[str, str]]:
    """Each table of ``schema.sql`` with its columns and their types, as DuckDB creates them."""
    con = duckdb.connect()
    try:
        con.execute(files("posaudit.store").joinpath("schema.sql").read_text(encoding="utf-8"))
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE NOT internal ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, {})[column] = data_type
    return tables


@pytest.fixture(scope="module")
def primary_keys() -> dict[str, list[str]]:
    con = duckdb.connect()
    try:
        con.execute(files("posaudit.store").joinpath("schema.sql").read_text(encoding="utf-8"))
        rows = con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    finally:
        con.close()
    return {table: list(columns) for table, columns in rows}


def test_the_catalogue_names_every_table_of_the_schema_and_no_other(
    schema: dict[str, dict[str, str]],
) -> None:
    assert sorted(TABLE_NAMES) == sorted(schema)
    assert len(set(TABLE_NAMES)) == len(TABLE_NAMES)


def test_every_key_is_a_column_of_its_table_and_its_primary_key_where_declared(
    schema: dict[str, dict[str, str]], primary_keys: dict[str, list[str]]
) -> None:
    for facts in CATALOGUE.values():
        assert facts.key in schema[facts.name], facts.name
        if facts.name in primary_keys:
            assert primary_keys[facts.name] == [facts.key], facts.name


def test_every_event_time_column_is_a_timestamp_of_its_table(
    schema: dict[str, dict[str, str]],
) -> None:
    assert EVENT_TIME_COLUMNS
    for table, column in EVENT_TIME_COLUMNS.items():
        assert schema[table].get(column) == "TIMESTAMP", (table, column)


def test_every_merchant_link_reaches_a_merchant_id(schema: dict[str, dict[str, str]]) -> None:
    for table in BUCKETED_TABLES:
        link = table_facts(table).merchant
        assert link is not None
        assert link.column in schema[table], table
        assert {link.column, "merchant_id"} <= set(schema[link.table]), table


def test_the_derived_lists_follow_the_catalogue() -> None:
    assert DIMENSION_TABLES == ("merchants", "terminals", "operators")
    assert EVENT_TABLES == (
        "pin_events",
        "login_events",
        "lockouts",
        "transactions",
        "operator_events",
        "batch_totals",
    )
    assert UPGRADE_TABLES == ("operator_events", "batch_totals")
    assert tuple(EVENT_TIME_COLUMNS) == EVENT_TABLES
    # detection reads the dimensions and the events, and a bucketed export splits all of them
    assert BUCKETED_TABLES == DIMENSION_TABLES + EVENT_TABLES
    assert WINDOW_TABLES == ("login_events", "transactions")
    assert (*DIMENSION_TABLES, *EVENT_TABLES, "ground_truth") == WORLD_TABLES
    assert key_column("lockouts") == "lockout_id"
    assert event_time_column("lockouts") == "locked_at"
    assert event_time_column("merchants") is None


def test_an_unknown_table_is_named() -> None:
    with pytest.raises(KeyError, match="no_such_table"):
        table_facts("no_such_table")


@pytest.mark.parametrize(
    "facts",
    [
        {"kind": "event"},  # an event table without a time
        {"kind": "dimension", "time_column": "ts"},  # a time column on a dimension
        {"kind": "labels", "bounds_window": True},  # only events bound the window
    ],
)
def test_inconsistent_facts_are_refused(facts: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="table t"):
        TableFacts(name="t", key="id", holds="", **facts)  # type: ignore[arg-type]


def test_a_table_is_bucketed_when_it_reaches_a_merchant() -> None:
    assert table_facts("pin_events").merchant == MerchantLink("operator_id", "operators")
    assert table_facts("pin_events").bucketed
    assert not table_facts("findings").bucketed


def test_a_store_made_before_the_later_tables_gains_them_as_the_schema_says(
    tmp_path: Path,
) -> None:
    """The ingest and review tables, and the ENUM types they use, created on a store that
    lacks them are column for column those of a new store."""
    from posaudit.store import Store
    from posaudit.store.catalogue import LATER_TABLES

    def columns(store: Store) -> list[tuple[object, ...]]:
        return store.query(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE NOT internal ORDER BY table_name, column_index"
        )

    path = tmp_path / "old.duckdb"
    with Store.staged(path, append=False) as new:
        new.initialise(pin_key_fingerprint="f", code_version="0")
        whole = columns(new)
        for table in LATER_TABLES:
            new.execute(f"DROP TABLE {table}")
        for enum in ("review_status_t", "review_decision_t"):
            new.execute(f"DROP TYPE {enum}")
    store = Store.open(path)
    try:
        assert not any(store.has_table(t) for t in LATER_TABLES)
        with store.transaction():
            store.ensure_ingest_tables()
            store.ensure_review_tables()
        assert columns(store) == whole
    finally:
        store.close()
