"""Gaps: trace numbers missing inside a terminal's batches, and days a terminal that usually
trades went silent (docs/classics.md).

**Trace numbers.** A terminal numbers every record it writes, one after the other; a batch
holds a run of them. A number missing between two a batch holds is a record written and then
lost or deleted. Six-digit numbers wrap from 999,999 to 1: a batch holding numbers near both
ends of the range is read as running across the wrap, as the rule ``trace_gaps`` reads it.

**Days.** A terminal trades on some weekdays and not others. Within the span from its first
to its last record, a day with no record is missing when the terminal traded on at least
``usual_share`` of the span's other days of that weekday: its own pattern says it should have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from posaudit.detect.ledger import HALF_TRACE
from posaudit.store import Store

# Six-digit trace numbers (docs/domain.md): after 999,999 comes 1.
MAX_TRACE_NO: Final = 999_999
# A weekday the terminal traded on this share of the time or more is one of its trading days.
USUAL_SHARE: Final = 0.8

# Each batch's numbers in order, across the wrap: a batch holding numbers below and above the
# half whose span exceeds half the range wrapped, and its low numbers come after its high ones.
TRACE_GAPS_SQL: Final = f"""
WITH records AS (
    SELECT
        CAST(terminal_id AS VARCHAR) AS terminal_id,
        CAST(merchant_id AS VARCHAR) AS merchant_id,
        batch_no, trace_no, MIN(ts) AS ts
    FROM transactions
    WHERE batch_no IS NOT NULL AND trace_no IS NOT NULL
    GROUP BY terminal_id, merchant_id, batch_no, trace_no
), batches AS (
    SELECT terminal_id, batch_no,
        MAX(trace_no) - MIN(trace_no) > {MAX_TRACE_NO // 2}
            AND MIN(trace_no) < {HALF_TRACE} AND MAX(trace_no) >= {HALF_TRACE} AS wrapped
    FROM records
    GROUP BY terminal_id, batch_no
), ordered AS (
    SELECT r.terminal_id, r.merchant_id, r.batch_no, r.trace_no, r.ts,
        CASE WHEN b.wrapped AND r.trace_no < {HALF_TRACE}
            THEN r.trace_no + {MAX_TRACE_NO} ELSE r.trace_no END AS position
    FROM records AS r
    JOIN batches AS b ON r.terminal_id = b.terminal_id AND r.batch_no = b.batch_no
), steps AS (
    SELECT terminal_id, merchant_id, batch_no, trace_no, ts,
        LEAD(trace_no) OVER batch AS next_trace_no,
        LEAD(ts) OVER batch AS next_ts,
        LEAD(position) OVER batch - position AS step
    FROM ordered
    WINDOW batch AS (PARTITION BY terminal_id, batch_no ORDER BY position)
)
SELECT terminal_id, merchant_id, batch_no,
    trace_no AS after_trace_no, next_trace_no AS before_trace_no,
    CAST(step - 1 AS BIGINT) AS missing, ts AS after_ts, next_ts AS before_ts
FROM steps
WHERE step > 1
"""

MISSING_DAYS_SQL: Final = """
WITH days AS (
    SELECT DISTINCT CAST(terminal_id AS VARCHAR) AS terminal_id,
        CAST(merchant_id AS VARCHAR) AS merchant_id, CAST(ts AS DATE) AS day
    FROM transactions
), spans AS (
    SELECT terminal_id, merchant_id, MIN(day) AS first_day, MAX(day) AS last_day
    FROM days GROUP BY terminal_id, merchant_id
), calendar AS (
    SELECT s.terminal_id, s.merchant_id, CAST(d.day AS DATE) AS day
    FROM spans AS s,
        LATERAL (SELECT UNNEST(GENERATE_SERIES(s.first_day, s.last_day, INTERVAL 1 DAY)) AS day) d
), marked AS (
    SELECT c.terminal_id, c.merchant_id, c.day, ISODOW(c.day) AS weekday,
        t.day IS NOT NULL AS traded
    FROM calendar AS c
    LEFT JOIN days AS t
        ON c.terminal_id = t.terminal_id AND c.merchant_id = t.merchant_id AND c.day = t.day
)
SELECT terminal_id, merchant_id, day, weekday,
    CAST(SUM(CASE WHEN traded THEN 1 ELSE 0 END)
        OVER (PARTITION BY terminal_id, merchant_id, weekday) AS BIGINT) AS weekday_traded,
    CAST(COUNT(*) OVER (PARTITION BY terminal_id, merchant_id, weekday) - 1 AS BIGINT)
        AS weekday_others,
    traded
FROM marked
"""


@dataclass(frozen=True)
class Gaps:
    """The trace-number gaps and the missing days of a store."""

    # terminal_id, merchant_id, batch_no, after/before_trace_no, missing, after/before_ts: the
    # records either side of the gap, their numbers and times
    traces: pl.DataFrame
    days: pl.DataFrame  # terminal_id, merchant_id, day, weekday, weekday_traded, weekday_others
    usual_share: float

    def trace_totals(self) -> dict[str, int]:
        return {
            "gaps": self.traces.height,
            "missing_trace_numbers": int(self.traces["missing"].sum()),
            "batches": self.traces.select("terminal_id", "batch_no").n_unique(),
            "terminals": self.traces["terminal_id"].n_unique(),
        }

    def day_totals(self) -> dict[str, int]:
        return {
            "missing_days": self.days.height,
            "terminals": self.days["terminal_id"].n_unique(),
        }


def gaps(store: Store, *, usual_share: float = USUAL_SHARE) -> Gaps:
    """The store's trace-number gaps (by terminal, batch and number) and missing days (by
    terminal and day)."""
    if not 0.0 < usual_share <= 1.0:
        msg = f"the usual share must lie in (0, 1], got {usual_share}"
        raise ValueError(msg)
    traces = store.frame(TRACE_GAPS_SQL).sort("terminal_id", "batch_no", "after_trace_no")
    calendar = store.frame(MISSING_DAYS_SQL)
    days = (
        calendar.filter(
            ~pl.col("traded")
            & (pl.col("weekday_others") > 0)
            & (pl.col("weekday_traded") >= usual_share * pl.col("weekday_others"))
        )
        .drop("traded")
        .sort("terminal_id", "day")
    )
    return Gaps(traces, days, usual_share)


__all__ = ["MAX_TRACE_NO", "USUAL_SHARE", "Gaps", "gaps"]
