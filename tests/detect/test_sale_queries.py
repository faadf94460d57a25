"""The sales rules' candidate sets, cut from two shared store queries, are exactly what a
query of their own over every transaction gives.

The references below are those queries, written the plain way (a window over every sale of a
terminal-day with a repeated card, a group over every sale): the rules once ran them, one per
rule. Random ledgers, crowded onto few terminals, cards and amounts so that repeats, declines
and voids meet, must give the same rows both ways.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posaudit.detect import sale_queries as q

START = datetime(2026, 3, 4, 22, 0)

SPLIT_REFERENCE = f"""
WITH s AS (
    SELECT txn_id, ts, terminal_id, merchant_id, operator_id, amount_fen, card_token,
        CAST(ts AS DATE) AS day
    FROM transactions
    WHERE kind = 'sale' AND status = 'approved' AND card_token IS NOT NULL
), c AS (
    SELECT s.*,
        LAG(s.ts) OVER (PARTITION BY s.terminal_id, s.card_token ORDER BY s.ts, s.txn_id)
            AS previous_ts,
        LEAD(s.ts) OVER (PARTITION BY s.terminal_id, s.card_token ORDER BY s.ts, s.txn_id)
            AS next_ts
    FROM s JOIN (
        SELECT terminal_id, day FROM s GROUP BY terminal_id, day
        HAVING COUNT(DISTINCT card_token) < COUNT(*)
    ) AS d ON s.terminal_id = d.terminal_id AND s.day = d.day
)
SELECT txn_id, ts, terminal_id, merchant_id, operator_id, amount_fen, card_token FROM c
WHERE previous_ts >= ts - INTERVAL '{q.CANDIDATE_GAP_MINUTES} minutes'
    OR next_ts <= ts + INTERVAL '{q.CANDIDATE_GAP_MINUTES} minutes'
"""
_SAME = "PARTITION BY terminal_id, card_token, amount_fen ORDER BY ts, trace_no, txn_id"
REPEATED_REFERENCE = f"""
WITH s AS (
    SELECT *,
        LAG(txn_id) OVER ({_SAME}) AS previous_txn_id,
        LAG(ts) OVER ({_SAME}) AS previous_ts,
        LAG(status) OVER ({_SAME}) AS previous_status,
        LAG(trace_no) OVER ({_SAME}) AS previous_trace_no
    FROM transactions
    WHERE kind = 'sale' AND card_token IS NOT NULL
)
SELECT txn_id, ts, terminal_id, merchant_id, operator_id, card_token, amount_fen, trace_no,
    previous_txn_id, previous_ts, previous_trace_no,
    DATE_PART('epoch', ts) - DATE_PART('epoch', previous_ts) AS gap_seconds
FROM s
WHERE status = 'approved' AND previous_status = 'approved'
    AND ts <= previous_ts + INTERVAL '{q.REPEAT_WINDOW_SECONDS} seconds'
"""
DECLINED_REFERENCE = """
SELECT txn_id, ts, terminal_id, merchant_id, operator_id, amount_fen, card_token, status,
    failure_reason
FROM transactions
WHERE kind = 'sale' AND (status = 'declined' OR (status = 'approved' AND card_token IN (
    SELECT card_token FROM transactions WHERE kind = 'sale' AND status = 'declined'
)))
"""
VOID_REFERENCE = """
SELECT txn_id, ts, kind, terminal_id, merchant_id, operator_id, amount_fen, card_token,
    original_txn_id
FROM transactions
WHERE status = 'approved' AND (kind = 'void' OR (kind = 'sale' AND card_token IN (
    SELECT card_token FROM transactions WHERE kind = 'void' AND status = 'approved'
)))
"""

SCHEMA: dict[str, Any] = {
    "txn_id": pl.String,
    "ts": pl.Datetime("us"),
    "terminal_id": pl.String,
    "merchant_id": pl.String,
    "operator_id": pl.String,
    "kind": pl.String,
    "status": pl.String,
    "amount_fen": pl.Int64,
    "card_token": pl.String,
    "trace_no": pl.Int64,
    "failure_reason": pl.String,
    "original_txn_id": pl.String,
}

row = st.fixed_dictionaries(
    {
        "minute": st.integers(0, 3 * 60),  # across midnight: 22:00 to 01:00
        "second": st.integers(0, 59),
        "terminal": st.sampled_from(["T1", "T2"]),
        "kind": st.sampled_from(["sale", "sale", "sale", "void"]),
        "status": st.sampled_from(["approved", "approved", "declined"]),
        "amount_fen": st.sampled_from([500, 500, 1_990, 7_990]),
        "card": st.sampled_from(["A", "B", "C", None]),
        "trace_no": st.integers(1, 4),
    }
)


def ledger(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "txn_id": f"X{i:03d}",
                "ts": START + timedelta(minutes=r["minute"], seconds=r["second"]),
                "terminal_id": r["terminal"],
                "merchant_id": "M" + r["terminal"],
                "operator_id": "OP",
                "kind": r["kind"],
                "status": r["status"],
                "amount_fen": r["amount_fen"],
                "card_token": r["card"],
                "trace_no": r["trace_no"],
                "failure_reason": "declined" if r["status"] == "declined" else None,
                "original_txn_id": f"X{i - 1:03d}" if r["kind"] == "void" else None,
            }
            for i, r in enumerate(rows)
        ],
        schema=SCHEMA,
    )


def same_rows(cut: pl.LazyFrame, reference: str, frame: pl.DataFrame) -> None:
    connection = duckdb.connect()
    connection.register("transactions", frame.to_arrow())
    expected = connection.sql(reference).pl()
    got = cut.collect()
    assert got.columns == expected.columns
    got = got.cast(dict(expected.schema)).sort(got.columns, nulls_last=True)  # type: ignore[arg-type]
    assert got.equals(expected.sort(expected.columns, nulls_last=True), null_equal=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, max_size=40))
def test_each_cut_gives_the_rows_of_its_own_query_over_every_transaction(
    rows: list[dict[str, Any]],
) -> None:
    frame = ledger(rows)
    repeats = q.card_repeats(frame.lazy())
    exceptions = q.declines_and_voids(frame.lazy())
    same_rows(q.split_sale_candidates(repeats), SPLIT_REFERENCE, frame)
    same_rows(q.repeated_sales(repeats), REPEATED_REFERENCE, frame)
    same_rows(q.declined_sales(exceptions), DECLINED_REFERENCE, frame)
    same_rows(q.void_sales(exceptions), VOID_REFERENCE, frame)


def test_a_repeat_follows_the_previous_sale_of_its_card_and_amount_not_a_declined_one() -> None:
    rows = [
        {
            "minute": 0,
            "second": 0,
            "terminal": "T1",
            "kind": "sale",
            "status": "approved",
            "amount_fen": 500,
            "card": "A",
            "trace_no": 1,
        },
        {
            "minute": 0,
            "second": 20,
            "terminal": "T1",
            "kind": "sale",
            "status": "declined",
            "amount_fen": 500,
            "card": "A",
            "trace_no": 2,
        },
        {
            "minute": 0,
            "second": 40,
            "terminal": "T1",
            "kind": "sale",
            "status": "approved",
            "amount_fen": 500,
            "card": "A",
            "trace_no": 3,
        },
        {
            "minute": 1,
            "second": 0,
            "terminal": "T1",
            "kind": "sale",
            "status": "approved",
            "amount_fen": 500,
            "card": "A",
            "trace_no": 4,
        },
    ]
    found = q.repeated_sales(q.card_repeats(ledger(rows).lazy())).collect()
    assert found.select("txn_id", "previous_txn_id", "gap_seconds").rows() == [
        ("X003", "X002", 20.0)
    ]
