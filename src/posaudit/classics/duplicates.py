"""Duplicate sales, as an auditor's duplicates test finds them (docs/classics.md).

Each approved card sale is set against the card's previous approved sale at the same
merchant. A pair within ``window_minutes`` is one of three kinds:

- ``exact``: the same terminal and the same amount: the record doubled, or the sale rung up
  twice;
- ``other_terminal``: the same amount at another terminal of the merchant: the sale taken
  again on the next till;
- ``near_amount``: the same terminal, an amount differing by at most ``tolerance_fen`` (and
  not equal): the sale typed again with a slip.

The later sale of a pair is the duplicate; its amount is what the pair may have taken twice.
The store pairs the sales (one window over the sales ordered by merchant, card and time); the
totals are made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import polars as pl

from posaudit.classics import ENTITIES, ENTITY_COLUMN, Entity
from posaudit.store import Store

Kind = Literal["exact", "other_terminal", "near_amount"]
KINDS: Final[tuple[Kind, ...]] = ("exact", "other_terminal", "near_amount")
# A card paying again this soon, for the same, is the first place to look.
WINDOW_MINUTES: Final = 10
# An amount typed again with a slip: within one yuan.
TOLERANCE_FEN: Final = 100


def pairs_sql(window_minutes: int, tolerance_fen: int) -> str:
    """The store's query for the duplicate pairs: the later sale's ``txn_id``, ``ts``,
    ``terminal_id``, ``merchant_id``, ``operator_id``, ``card_token``, ``amount_fen``, the
    earlier one's ``previous_txn_id``, ``previous_terminal_id``, ``previous_amount_fen``,
    ``gap_seconds`` and ``kind``."""
    return f"""
        WITH sales AS (
            SELECT
                CAST(txn_id AS VARCHAR) AS txn_id, ts,
                CAST(terminal_id AS VARCHAR) AS terminal_id,
                CAST(merchant_id AS VARCHAR) AS merchant_id,
                CAST(operator_id AS VARCHAR) AS operator_id,
                CAST(card_token AS VARCHAR) AS card_token,
                CAST(amount_fen AS BIGINT) AS amount_fen,
                LAG(CAST(txn_id AS VARCHAR)) OVER card AS previous_txn_id,
                LAG(ts) OVER card AS previous_ts,
                LAG(CAST(terminal_id AS VARCHAR)) OVER card AS previous_terminal_id,
                LAG(CAST(amount_fen AS BIGINT)) OVER card AS previous_amount_fen
            FROM transactions
            WHERE kind = 'sale' AND status = 'approved' AND card_token IS NOT NULL
                AND amount_fen IS NOT NULL
            -- two records in the same second: the terminal's trace number tells their order
            WINDOW card AS (PARTITION BY merchant_id, card_token ORDER BY ts, trace_no, txn_id)
        )
        SELECT
            txn_id, ts, terminal_id, merchant_id, operator_id, card_token, amount_fen,
            previous_txn_id, previous_terminal_id, previous_amount_fen,
            DATE_PART('epoch', ts) - DATE_PART('epoch', previous_ts) AS gap_seconds,
            CASE
                WHEN terminal_id = previous_terminal_id AND amount_fen = previous_amount_fen
                    THEN 'exact'
                WHEN amount_fen = previous_amount_fen THEN 'other_terminal'
                ELSE 'near_amount'
            END AS kind
        FROM sales
        WHERE previous_txn_id IS NOT NULL
            AND ts <= previous_ts + INTERVAL '{int(window_minutes)} minutes'
            AND (
                amount_fen = previous_amount_fen
                OR (terminal_id = previous_terminal_id
                    AND ABS(amount_fen - previous_amount_fen) <= {int(tolerance_fen)})
            )
    """


@dataclass(frozen=True)
class Duplicates:
    """The duplicate pairs of a store and their totals."""

    pairs: pl.DataFrame
    window_minutes: int
    tolerance_fen: int

    def totals(self) -> pl.DataFrame:
        """Per kind: ``pairs`` and ``amount_fen`` (of the later sales), every kind listed."""
        found = self.pairs.group_by("kind").agg(
            pl.len().alias("pairs"), pl.col("amount_fen").sum().alias("amount_fen")
        )
        return (
            pl.DataFrame({"kind": list(KINDS)})
            .join(found, on="kind", how="left")
            .with_columns(pl.col("pairs", "amount_fen").fill_null(0).cast(pl.Int64))
        )

    def largest(self, limit: int) -> pl.DataFrame:
        """The ``limit`` pairs of the largest amounts (then the earliest)."""
        order = ["amount_fen", "ts", "txn_id"]
        return self.pairs.sort(order, descending=[True, False, False]).head(limit)

    def by(self, entity: Entity) -> pl.DataFrame:
        """Per ``entity`` (of the later sale): pairs and amount of each kind and in all, the
        largest amount first."""
        column = ENTITY_COLUMN[entity]
        return (
            self.pairs.filter(pl.col(column).is_not_null())
            .group_by(pl.col(column).alias(entity))
            .agg(
                pl.len().cast(pl.Int64).alias("pairs"),
                pl.col("amount_fen").sum().alias("amount_fen"),
                *((pl.col("kind") == k).sum().cast(pl.Int64).alias(f"{k}_pairs") for k in KINDS),
            )
            .sort(["amount_fen", entity], descending=[True, False])
        )


def duplicates(
    store: Store, *, window_minutes: int = WINDOW_MINUTES, tolerance_fen: int = TOLERANCE_FEN
) -> Duplicates:
    """The store's duplicate sale pairs (:func:`pairs_sql`), ordered by time."""
    if window_minutes < 1:
        msg = f"the window must be a minute or more, got {window_minutes}"
        raise ValueError(msg)
    if tolerance_fen < 0:
        msg = f"the tolerance must be 0 fen or more, got {tolerance_fen}"
        raise ValueError(msg)
    pairs = store.frame(pairs_sql(window_minutes, tolerance_fen)).sort("ts", "txn_id")
    return Duplicates(pairs, window_minutes, tolerance_fen)


__all__ = ["ENTITIES", "KINDS", "TOLERANCE_FEN", "WINDOW_MINUTES", "Duplicates", "duplicates"]
