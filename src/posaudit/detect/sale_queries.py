"""The few sales the sales and ledger rules look at, each set found in one pass of the store.

A store holds millions of sales; the sales rules need a few in a hundred of them. Two store
queries find them, each reading the transactions once where they lie:

- :func:`card_repeats`: every sale on a card that made two or more approved sales at the
  terminal. A split purchase (:func:`split_sale_candidates`) and a sale recorded twice
  (:func:`repeated_sales`) both repeat a card at a terminal, so both sets are cut from it.
- :func:`declines_and_voids`: the declined sales, the approved voids, and the approved sales
  on a card with a decline or a void. Card testing (:func:`declined_sales`) and void abuse
  (:func:`void_sales`) each take their part.

The rules cut their sets from these frames in Polars, over a few hundred thousand rows: the
store groups and joins ten million once, not once per rule (measured in docs/benchmarks.md).
Each cut is exact: it gives the rows a query of its own over all transactions would give.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.detect.registry import derived_query

# The widest gap between two sales on one card that a split purchase may have: the split-sale
# candidates are the sales with another this close (the rule's max_gap_minutes at most this).
CANDIDATE_GAP_MINUTES: Final = 60
# The longest a sale recorded twice may lie after the first record.
REPEAT_WINDOW_SECONDS: Final = 600

# Cards that came back to a terminal: counted by terminal and card in one grouping of the
# approved card sales (about one pair in a hundred repeats), then the sales of those pairs,
# every status (a declined sale between two approved ones tells a retry from a repeat).
CARD_REPEATS_SQL: Final = """
SELECT
    CAST(t.txn_id AS VARCHAR) AS txn_id,
    t.ts AS ts,
    CAST(t.terminal_id AS VARCHAR) AS terminal_id,
    CAST(t.merchant_id AS VARCHAR) AS merchant_id,
    CAST(t.operator_id AS VARCHAR) AS operator_id,
    CAST(t.card_token AS VARCHAR) AS card_token,
    CAST(t.amount_fen AS BIGINT) AS amount_fen,
    CAST(t.status AS VARCHAR) AS status,
    t.trace_no AS trace_no
FROM transactions AS t
SEMI JOIN (
    SELECT terminal_id, card_token
    FROM transactions
    WHERE kind = 'sale' AND status = 'approved' AND card_token IS NOT NULL
    GROUP BY terminal_id, card_token
    HAVING COUNT(*) > 1
) AS r ON t.terminal_id = r.terminal_id AND t.card_token = r.card_token
WHERE t.kind = 'sale'
"""
card_repeats = derived_query(
    "card_repeats",
    sql=CARD_REPEATS_SQL,
    source="transactions",
    time_column="ts",
)
card_repeats.__doc__ = """The sales, of any status, on a card that made two or more approved
sales at the terminal: ``txn_id``, ``ts``, ``terminal_id``, ``merchant_id``,
``operator_id``, ``card_token``, ``amount_fen``, ``status``, ``trace_no`` (by
``CARD_REPEATS_SQL``)."""

# A decline or a void, and the approved sales on its card: a tester's card that works, a
# customer paying again after a decline, a voided sale and a sale rung up again.
DECLINES_AND_VOIDS_SQL: Final = """
SELECT
    CAST(t.txn_id AS VARCHAR) AS txn_id,
    t.ts AS ts,
    CAST(t.kind AS VARCHAR) AS kind,
    CAST(t.status AS VARCHAR) AS status,
    CAST(t.terminal_id AS VARCHAR) AS terminal_id,
    CAST(t.merchant_id AS VARCHAR) AS merchant_id,
    CAST(t.operator_id AS VARCHAR) AS operator_id,
    CAST(t.amount_fen AS BIGINT) AS amount_fen,
    CAST(t.card_token AS VARCHAR) AS card_token,
    CAST(t.failure_reason AS VARCHAR) AS failure_reason,
    CAST(t.original_txn_id AS VARCHAR) AS original_txn_id
FROM transactions AS t
WHERE (t.kind = 'sale' AND t.status = 'declined')
    OR (t.kind = 'void' AND t.status = 'approved')
    OR (t.kind = 'sale' AND t.status = 'approved' AND t.card_token IN (
        SELECT e.card_token FROM transactions AS e
        WHERE e.card_token IS NOT NULL AND (
            (e.kind = 'sale' AND e.status = 'declined')
            OR (e.kind = 'void' AND e.status = 'approved')
        )
    ))
"""
declines_and_voids = derived_query(
    "declines_and_voids",
    sql=DECLINES_AND_VOIDS_SQL,
    source="transactions",
    time_column="ts",
)
declines_and_voids.__doc__ = """Declined sales, approved voids, and the approved sales on a
card with either: ``txn_id``, ``ts``, ``kind``, ``status``, ``terminal_id``, ``merchant_id``,
``operator_id``, ``amount_fen``, ``card_token``, ``failure_reason``, ``original_txn_id`` (by
``DECLINES_AND_VOIDS_SQL``)."""


_SALE: Final = pl.col("kind") == "sale"
_APPROVED: Final = pl.col("status") == "approved"
_DECLINED_SALE: Final = _SALE & (pl.col("status") == "declined")
_APPROVED_VOID: Final = (pl.col("kind") == "void") & _APPROVED


def _with_approved_sales_on_their_cards(frame: pl.LazyFrame, rows: pl.Expr) -> pl.LazyFrame:
    """The rows of ``frame`` that ``rows`` selects, and its approved sales on their cards."""
    selected = frame.filter(rows)
    cards = selected.select("card_token").drop_nulls().unique()
    sales = frame.filter(_SALE & _APPROVED).join(cards, on="card_token", how="semi")
    return pl.concat([selected, sales])


def declined_sales(declines_and_voids: pl.LazyFrame) -> pl.LazyFrame:
    """Declined sales, and the approved sales on the cards they were declined on:
    ``txn_id``, ``ts``, ``terminal_id``, ``merchant_id``, ``operator_id``, ``amount_fen``,
    ``card_token``, ``status`` (declined or approved), ``failure_reason``."""
    return _with_approved_sales_on_their_cards(declines_and_voids, _DECLINED_SALE).select(
        "txn_id",
        "ts",
        "terminal_id",
        "merchant_id",
        "operator_id",
        "amount_fen",
        "card_token",
        "status",
        "failure_reason",
    )


def void_sales(declines_and_voids: pl.LazyFrame) -> pl.LazyFrame:
    """Approved voids and the approved sales on the cards they name: ``txn_id``, ``ts``,
    ``kind`` (void or sale), ``terminal_id``, ``merchant_id``, ``operator_id``,
    ``amount_fen``, ``card_token``, ``original_txn_id``."""
    return _with_approved_sales_on_their_cards(declines_and_voids, _APPROVED_VOID).select(
        "txn_id",
        "ts",
        "kind",
        "terminal_id",
        "merchant_id",
        "operator_id",
        "amount_fen",
        "card_token",
        "original_txn_id",
    )


def split_sale_candidates(card_repeats: pl.LazyFrame) -> pl.LazyFrame:
    """Approved sales with another approved sale on the same card at the same terminal
    within ``CANDIDATE_GAP_MINUTES``, among the sales of the terminal-days on which some card
    came back: ``txn_id``, ``ts``, ``terminal_id``, ``merchant_id``, ``operator_id``,
    ``amount_fen``, ``card_token``.

    Only the terminal-days with a card that came back are ordered; a terminal-day has one
    exactly when a terminal, card and day hold two approved sales, all of them in
    ``card_repeats``.
    """
    gap = timedelta(minutes=CANDIDATE_GAP_MINUTES)
    sales = card_repeats.filter(_APPROVED & pl.col("card_token").is_not_null()).with_columns(
        pl.col("ts").dt.date().alias("day")
    )
    days = (
        sales.group_by("terminal_id", "card_token", "day")
        .agg(pl.len().alias("sales"))
        .filter(pl.col("sales") > 1)
        .select("terminal_id", "day")
        .unique()
    )
    pair = ["terminal_id", "card_token"]
    return (
        sales.join(days, on=["terminal_id", "day"], how="semi")
        .sort(*pair, "ts", "txn_id")
        .filter(
            (pl.col("ts").shift(1).over(pair) >= pl.col("ts") - gap)
            | (pl.col("ts").shift(-1).over(pair) <= pl.col("ts") + gap)
        )
        .select(
            "txn_id",
            "ts",
            "terminal_id",
            "merchant_id",
            "operator_id",
            "amount_fen",
            "card_token",
        )
    )


def repeated_sales(card_repeats: pl.LazyFrame) -> pl.LazyFrame:
    """Approved sales that repeat the terminal's previous sale on the same card for the same
    amount, itself approved, within ``REPEAT_WINDOW_SECONDS``: the sale, the earlier one
    (``previous_txn_id``, ``previous_ts``, ``previous_trace_no``) and ``gap_seconds``.

    A terminal, card and amount with two approved sales has them and all its other sales in
    ``card_repeats``: the previous sale of each is there too.
    """
    same = ["terminal_id", "card_token", "amount_fen"]
    sales = card_repeats.filter(pl.col("card_token").is_not_null())
    repeats = (
        sales.filter(_APPROVED)
        .group_by(same)
        .agg(pl.len().alias("approved"))
        .filter(pl.col("approved") > 1)
        .select(same)
    )
    return (
        sales.join(repeats, on=same, how="semi")
        .sort(*same, "ts", "trace_no", "txn_id")
        .with_columns(
            pl.col(c).shift(1).over(same).alias(f"previous_{c}")
            for c in ("txn_id", "ts", "status", "trace_no")
        )
        .filter(
            pl.col("previous_txn_id").is_not_null()
            & _APPROVED
            & (pl.col("previous_status") == "approved")
            & (pl.col("ts") <= pl.col("previous_ts") + timedelta(seconds=REPEAT_WINDOW_SECONDS))
        )
        .select(
            "txn_id",
            "ts",
            "terminal_id",
            "merchant_id",
            "operator_id",
            "card_token",
            "amount_fen",
            "trace_no",
            "previous_txn_id",
            "previous_ts",
            "previous_trace_no",
            ((pl.col("ts") - pl.col("previous_ts")).dt.total_microseconds() / 1_000_000).alias(
                "gap_seconds"
            ),
        )
    )
