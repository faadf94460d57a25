"""Stratification: the amounts of approved transactions of one kind, by strata of amount
(docs/classics.md).

The bounds are the auditor's (in fen), or by default the data's own quantiles: the median and
the 80th, 95th and 99th percentiles, so that the strata show the bulk of the amounts and how
much of the money lies in the largest few. Each stratum holds the amounts from its lower
bound up to, not including, its upper; the first starts at the smallest amount, the last ends
past the largest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import polars as pl

from posaudit.store import Store

Kind = Literal["sale", "refund", "void", "transfer"]
KINDS: Final[tuple[Kind, ...]] = ("sale", "refund", "void", "transfer")
# The default bounds: these quantiles of the amounts.
QUANTILES: Final = (0.5, 0.8, 0.95, 0.99)


@dataclass(frozen=True)
class Strata:
    """The strata of one kind's amounts: ``table`` has ``stratum`` (1, 2, ...), ``lower_fen``
    (inclusive; null: from the smallest), ``upper_fen`` (exclusive; null: past the largest),
    ``count``, ``count_share``, ``amount_fen``, ``amount_share``, ``min_fen``, ``max_fen`` and
    ``mean_fen`` (null in an empty stratum)."""

    kind: Kind
    bounds_fen: tuple[int, ...]
    from_quantiles: bool
    table: pl.DataFrame


def _amounts_sql(kind: Kind) -> str:
    return (
        "SELECT CAST(amount_fen AS BIGINT) AS amount_fen FROM transactions "
        f"WHERE kind = '{kind}' AND status = 'approved' AND amount_fen IS NOT NULL"
    )


def quantile_bounds(store: Store, kind: Kind) -> tuple[int, ...]:
    """The default bounds: the amounts' ``QUANTILES`` (the lower of two neighbours, so a bound
    is an amount the data holds), without repeats."""
    qs = ", ".join(str(q) for q in QUANTILES)
    row = store.frame(
        f"SELECT QUANTILE_DISC(amount_fen, [{qs}]) AS q FROM ({_amounts_sql(kind)}) AS a"
    )
    values = row["q"][0]
    if values is None:
        return ()
    return tuple(sorted({int(v) for v in values}))


def stratum_sql(bounds_fen: tuple[int, ...]) -> str:
    """The SQL of an amount's stratum (1, 2, ...): how many bounds lie at or below
    ``amount_fen``, plus one."""
    count = " + ".join([f"CAST(amount_fen >= {b} AS INTEGER)" for b in bounds_fen] or ["0"])
    return f"({count} + 1)"


def bounds_frame(bounds_fen: tuple[int, ...]) -> pl.DataFrame:
    """Every stratum of ``bounds_fen``: ``stratum``, ``lower_fen`` (inclusive; null: from the
    smallest) and ``upper_fen`` (exclusive; null: past the largest)."""
    return pl.DataFrame(
        {
            "stratum": list(range(1, len(bounds_fen) + 2)),
            "lower_fen": [None, *bounds_fen],
            "upper_fen": [*bounds_fen, None],
        },
        schema={"stratum": pl.Int32, "lower_fen": pl.Int64, "upper_fen": pl.Int64},
    )


def strata(store: Store, kind: Kind = "sale", bounds_fen: tuple[int, ...] | None = None) -> Strata:
    """The approved ``kind`` amounts by strata of ``bounds_fen`` (default: the quantiles)."""
    if kind not in KINDS:
        msg = f"unknown kind {kind!r}: one of {', '.join(KINDS)}"
        raise ValueError(msg)
    from_quantiles = bounds_fen is None
    bounds = quantile_bounds(store, kind) if bounds_fen is None else tuple(bounds_fen)
    if list(bounds) != sorted(set(bounds)):
        msg = f"the bounds must rise, each once: {', '.join(str(b) for b in bounds)}"
        raise ValueError(msg)
    found = store.frame(
        f"""
        SELECT {stratum_sql(bounds)} AS stratum, CAST(COUNT(*) AS BIGINT) AS count,
            CAST(SUM(amount_fen) AS BIGINT) AS amount_fen,
            MIN(amount_fen) AS min_fen, MAX(amount_fen) AS max_fen
        FROM ({_amounts_sql(kind)}) AS a
        GROUP BY ALL
        """
    )
    table = (
        bounds_frame(bounds)
        .join(found.with_columns(pl.col("stratum").cast(pl.Int32)), on="stratum", how="left")
        .with_columns(pl.col("count", "amount_fen").fill_null(0).cast(pl.Int64))
        .with_columns(
            (pl.col("count") / pl.col("count").sum()).fill_nan(0.0).alias("count_share"),
            (pl.col("amount_fen") / pl.col("amount_fen").sum()).fill_nan(0.0).alias("amount_share"),
            (pl.col("amount_fen") / pl.col("count")).alias("mean_fen"),
        )
        .with_columns(
            pl.when(pl.col("count") > 0).then(pl.col("mean_fen")).alias("mean_fen"),
        )
        .select(
            "stratum",
            "lower_fen",
            "upper_fen",
            "count",
            "count_share",
            "amount_fen",
            "amount_share",
            pl.col("min_fen").cast(pl.Int64),
            pl.col("max_fen").cast(pl.Int64),
            "mean_fen",
        )
    )
    return Strata(kind, bounds, from_quantiles, table)


__all__ = [
    "KINDS",
    "QUANTILES",
    "Strata",
    "bounds_frame",
    "quantile_bounds",
    "strata",
    "stratum_sql",
]
