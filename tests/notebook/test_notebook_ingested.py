"""The frames and the chart of 06-ingested-data, on an ingested store and on a simulated one."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl

from posaudit.notebook import bounds, charts, ingested, open_audit, overview
from tests.conftest import DAMAGE


def _count(store: Path, sql: str) -> int:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return int(con.execute(sql).fetchall()[0][0])
    finally:
        con.close()


def test_files_are_the_ingested_files_and_add_up(ingested_store: Path) -> None:
    audit = open_audit(ingested_store)
    files = ingested.ingested_files(audit)
    assert files.height == _count(ingested_store, "SELECT count(*) FROM ingested_files") == 7
    assert not files.get_column("file").str.contains("/").any()
    assert (files.get_column("fingerprint").str.len_chars() == 12).all()
    assert (
        files["rows_read"]
        == files["rows_loaded"] + files["rows_duplicate"] + files["rows_quarantined"]
    ).all()
    assert files.get_column("rows_quarantined").sum() == len(DAMAGE)


def test_quarantine_by_reason_names_each_damaged_line(ingested_store: Path) -> None:
    audit = open_audit(ingested_store)
    reasons = ingested.quarantine_reasons(audit)
    assert sorted(reasons.select("reason", "table", "rows").iter_rows()) == [
        ("bad_amount", "transactions", 1),
        ("bad_timestamp", "transactions", 1),
        ("unknown_terminal", "transactions", 1),
    ]
    assert (reasons.get_column("what") != "").all()
    rows = ingested.quarantined_rows(audit)
    # a damaged line of index i is the file's physical line i + 1 (the header is line 1)
    assert sorted(rows.get_column("line").to_list()) == [line + 1 for line, _, _ in DAMAGE]
    assert "T999999" in rows.filter(pl.col("reason") == "unknown_terminal").item(0, "raw_row")
    assert ingested.quarantined_rows(audit, per_reason=0).height == 0


def test_coverage_counts_every_terminal_event_on_every_day(ingested_store: Path) -> None:
    audit = open_audit(ingested_store)
    coverage = ingested.coverage(audit)
    events = sum(
        _count(ingested_store, f"SELECT count(*) FROM {t}") for t in ingested.TERMINAL_EVENT_TABLES
    )
    assert coverage.get_column("events").sum() == events
    terminals = _count(ingested_store, "SELECT count(*) FROM terminals")
    days = coverage.get_column("day").n_unique()
    data_from, data_to = audit.data_window
    assert days == (data_to.date() - data_from.date()).days + 1
    assert coverage.height == terminals * days  # every day of every terminal, 0 when silent
    edges = pl.col("day").is_in([data_from.date(), data_to.date()])
    assert not coverage.filter(edges).get_column("is_silent").any()
    inside = coverage.filter(~edges)
    assert inside.get_column("is_silent").to_list() == (inside.get_column("events") == 0).to_list()


def test_terminals_with_the_most_silent_days_come_first() -> None:
    first = date(2026, 9, 1)
    days = [first + timedelta(days=d) for d in range(5)]
    coverage = pl.DataFrame(
        {
            "terminal_id": ["T1"] * 5 + ["T2"] * 5,
            "day": days * 2,
            "events": [0, 3, 0, 4, 0, 1, 1, 1, 1, 1],
            "is_silent": [False, False, True, False, False] + [False] * 5,
        }
    )
    by_terminal = ingested.coverage_by_terminal(coverage)
    assert by_terminal.get_column("terminal_id").to_list() == ["T1", "T2"]
    t1 = by_terminal.row(0, named=True)
    assert (t1["silent_days"], t1["days_with_events"], t1["events"]) == (1, 2, 7)
    assert (t1["first_day"], t1["last_day"]) == (days[1], days[3])


def test_a_simulated_store_shows_nothing_ingested(audited_store) -> None:
    audit = open_audit(audited_store.path)
    assert not ingested.has_ingested_data(audit)
    assert ingested.ingested_files(audit).height == 0
    assert ingested.quarantine_reasons(audit).height == 0
    assert ingested.quarantined_rows(audit).height == 0
    assert "Nothing was ingested" in ingested.ingest_headline(audit)
    assert "ground_truth" in overview.store_contents(audit).get_column("table_name").to_list()


def test_an_ingested_store_shows_no_empty_ground_truth(ingested_store: Path) -> None:
    audit = open_audit(ingested_store)
    assert "ground_truth" not in overview.store_contents(audit).get_column("table_name").to_list()
    headline = ingested.ingest_headline(audit)
    assert "from 7 files" in headline and f"{len(DAMAGE)} quarantined" in headline
    assert "no ground truth" in headline


def test_coverage_chart_is_bounded() -> None:
    first = date(2025, 1, 1)
    coverage = pl.DataFrame(
        {
            "terminal_id": [f"T{t:04d}" for t in range(100) for _ in range(400)],
            "day": [first + timedelta(days=d) for _ in range(100) for d in range(400)],
            "events": [(t * d) % 7 for t in range(100) for d in range(400)],
            "is_silent": [(t * d) % 7 == 0 for t in range(100) for d in range(400)],
        }
    )
    by_terminal = ingested.coverage_by_terminal(coverage)
    spec = charts.coverage_chart(coverage, by_terminal).to_dict()
    rows = [row for data in spec["datasets"].values() for row in data]
    assert len(rows) == bounds.COVERAGE_TERMINALS * bounds.DAYS
    shown = {row["terminal_id"] for row in rows}
    assert shown == set(by_terminal.head(bounds.COVERAGE_TERMINALS).get_column("terminal_id"))
    subtitle = " ".join(spec["title"]["subtitle"])
    assert "the 25 of 100 terminals with the most silent days, then the fewest events" in subtitle
    assert f"the last {bounds.DAYS} of 400 days" in subtitle


def test_coverage_chart_draws_a_small_store_whole() -> None:
    terminals = 3
    first = date(2026, 9, 1)
    coverage = pl.DataFrame(
        {
            "terminal_id": [f"T{t}" for t in range(terminals) for _ in range(10)],
            "day": [first + timedelta(days=d) for _ in range(terminals) for d in range(10)],
            "events": [1] * (terminals * 10),
            "is_silent": [False] * (terminals * 10),
        }
    )
    spec = charts.coverage_chart(coverage, ingested.coverage_by_terminal(coverage)).to_dict()
    assert sum(len(d) for d in spec["datasets"].values()) == terminals * 10
    # red marks the silent full days the data function found, not every day without events
    (red,) = [layer for layer in spec["layer"] if layer.get("transform")]
    assert red["transform"] == [{"filter": "datum.is_silent"}]
    assert spec["title"]["subtitle"] == [
        "logins, lockouts and transactions; red: a full day the terminal reported nothing"
    ]
