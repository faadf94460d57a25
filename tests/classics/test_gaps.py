"""The gaps test: trace numbers missing inside batches, and days a terminal went silent."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from posaudit.classics import gaps as gp
from posaudit.store import Store

T0 = datetime(2026, 3, 2, 9, 0)  # a Monday


def record(trace_no: int, minutes: float = 0, **kw: Any) -> dict[str, Any]:
    row = {
        "txn_id": f"X{trace_no}",
        "ts": T0 + timedelta(minutes=minutes or trace_no % 1_000),
        "terminal_id": "T1",
        "merchant_id": "M1",
        "batch_no": 1,
        "trace_no": trace_no,
    }
    row.update(kw)
    return row


def query(sql: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    connection = duckdb.connect()
    connection.register("transactions", pl.DataFrame(rows).to_arrow())
    return connection.sql(sql).pl()


def test_numbers_missing_inside_a_batch_are_gaps_and_its_ends_are_not() -> None:
    rows = [record(n) for n in (5, 6, 8, 9, 13, 14)]  # 7 and 10-12 missing
    rows += [record(20, batch_no=2), record(21, batch_no=2)]  # the next batch starts at 20
    rows += [record(6, txn_id="X6-again")]  # a number written twice is no gap
    found = query(gp.TRACE_GAPS_SQL, rows).sort("after_trace_no")
    assert found.select("batch_no", "after_trace_no", "before_trace_no", "missing").rows() == [
        (1, 6, 8, 1),
        (1, 9, 13, 3),
    ]


def test_a_batch_across_the_wrap_is_read_in_its_own_order() -> None:
    """999,998, 999,999, then 1, 2 and 4: 3 is missing, the wrap is not a gap."""
    traces = (999_998, 999_999, 1, 2, 4)
    rows = [record(n, minutes=i) for i, n in enumerate(traces)]
    found = query(gp.TRACE_GAPS_SQL, rows)
    assert found.select("after_trace_no", "before_trace_no", "missing").rows() == [(2, 4, 1)]


def days_rows(skipped: set[date], weeks: int = 4, sunday: bool = False) -> list[dict[str, Any]]:
    """A terminal trading Monday to Saturday (and Sunday if asked), but on ``skipped``."""
    out = []
    for offset in range(weeks * 7):
        day = T0.date() + timedelta(days=offset)
        if day in skipped or (day.isoweekday() == 7 and not sunday):
            continue
        out.append(record(offset + 1, ts=datetime.combine(day, T0.time())))
    return out


def missing_days(rows: list[dict[str, Any]], share: float = 0.8) -> list[date]:
    calendar = query(gp.MISSING_DAYS_SQL, rows)
    return sorted(
        calendar.filter(
            ~pl.col("traded")
            & (pl.col("weekday_others") > 0)
            & (pl.col("weekday_traded") >= share * pl.col("weekday_others"))
        )["day"].to_list()
    )


def test_a_day_off_its_own_pattern_is_missing_and_its_weekly_rest_day_is_not() -> None:
    wednesday = date(2026, 3, 11)
    assert missing_days(days_rows({wednesday})) == [wednesday]
    # the Sundays it never trades are its pattern, not gaps
    assert missing_days(days_rows(set())) == []
    # a weekday it skips half the time is not one of its trading days
    mondays = {date(2026, 3, 2) + timedelta(days=7), date(2026, 3, 2) + timedelta(days=21)}
    assert missing_days(days_rows(mondays)) == []
    assert missing_days(days_rows(mondays), share=0.5) == sorted(mondays)


def test_every_deleted_record_of_the_sample_world_lies_in_a_gap_and_no_gap_lies_elsewhere(
    sample_store: Path,
) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        found = gp.gaps(store)
        labelled = store.frame(
            "SELECT entity_id AS terminal_id, start_ts, end_ts FROM ground_truth "
            "WHERE scenario = 'deleted_records'"
        )
    finally:
        store.close()
    overlapping = labelled.join(found.traces, on="terminal_id").filter(
        (pl.col("after_ts") <= pl.col("end_ts")) & (pl.col("before_ts") >= pl.col("start_ts"))
    )
    assert labelled.height > 0
    assert overlapping.select("terminal_id", "start_ts").n_unique() == labelled.height
    assert overlapping.select("terminal_id", "batch_no", "after_trace_no").n_unique() == (
        found.traces.height
    )
    assert found.trace_totals()["missing_trace_numbers"] == found.traces["missing"].sum()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


def test_the_command_prints_totals_and_lists(sample_store: Path) -> None:
    made = cli("analyze", "gaps", "--db", str(sample_store), "--json")
    assert made.returncode == 0, made.stderr
    record_ = json.loads(made.stdout)
    traces = record_["traces"]
    assert traces["totals"]["missing_trace_numbers"] == sum(g["missing"] for g in traces["gaps"])
    assert traces["totals"]["gaps"] == len(traces["gaps"]) > 0
    assert record_["days"]["totals"]["missing_days"] == len(record_["days"]["days"])
    shown = cli("analyze", "gaps", "--db", str(sample_store), "--top", "2")
    assert shown.returncode == 0, shown.stderr
    assert "Trace gaps:" in shown.stdout and "Missing days:" in shown.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--usual-share", "0"), "--usual-share must lie above 0"),
        (("--usual-share", "1.5"), "--usual-share must lie above 0"),
        (("--top", "0"), "--top must be at least 1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    sample_store: Path, args: tuple[str, ...], words: str
) -> None:
    made = cli("analyze", "gaps", "--db", str(sample_store), *args)
    assert made.returncode == 2
    assert made.stderr.count("\n") == 1 and words in made.stderr, made.stderr
