"""The frames behind notebooks/11-merchant-typologies.py: merchants against their category.

Every frame comes from the same terminal-day reduction the rules read
(:data:`posaudit.score.merchants.MERCHANT_TERMINAL_DAYS_SQL`), run in the store.
"""

from __future__ import annotations

import polars as pl

from posaudit.notebook.session import Audit
from posaudit.score.merchants import HOUR_BINS, MERCHANT_TERMINAL_DAYS_SQL, RULE_NAMES


def terminal_days(audit: Audit) -> pl.DataFrame:
    """Every terminal's day: sales by channel and three-hour bin, cash-out-like sales."""
    return audit.sql(MERCHANT_TERMINAL_DAYS_SQL)


def category_hours(days: pl.DataFrame, audit: Audit) -> pl.DataFrame:
    """Per category and three-hour bin: the share of the category's approved sales.

    Columns: category, hours ('00-03' ..), share, sales (the bin's); a bin under the cash-out rule's
    ``odd_hour_percent`` is where its sales count.
    """
    merchants = audit.table("merchants").select("merchant_id", "category")
    totals = (
        days.join(merchants, on="merchant_id")
        .group_by("category")
        .agg(pl.col(f"h{b}").sum() for b in range(HOUR_BINS))
        .unpivot(index="category", variable_name="bin", value_name="sales")
    )
    return (
        totals.with_columns(
            (pl.col("sales") / pl.col("sales").sum().over("category")).fill_nan(0).alias("share"),
            pl.col("bin").str.slice(1).cast(pl.Int64).alias("bin"),
        )
        .with_columns(
            pl.format(
                "{}-{}",
                (pl.col("bin") * 3).cast(pl.String).str.zfill(2),
                (pl.col("bin") * 3 + 3).cast(pl.String).str.zfill(2),
            ).alias("hours")
        )
        .select("category", "hours", "share", "sales")
        .sort("category", "hours")
    )


def merchant_profiles(days: pl.DataFrame, audit: Audit) -> pl.DataFrame:
    """Per merchant: sales, mean ticket (CNY), credit share and night share (00-06), with its
    category and fee class, and whether a merchant typology finding names it."""
    named = (
        audit.findings()
        .filter(pl.col("rule").is_in(RULE_NAMES) & (pl.col("entity_type") == "merchant"))
        .group_by(pl.col("entity_id").alias("merchant_id"))
        .agg(pl.col("rule").unique().sort().str.join(", ").alias("findings"))
    )
    return (
        days.group_by("merchant_id")
        .agg(
            pl.col("sale_count").sum().alias("sales"),
            pl.col("sale_amount_fen").sum(),
            pl.col("credit_count").sum(),
            (pl.col("h0") + pl.col("h1")).sum().alias("night"),
        )
        .filter(pl.col("sales") > 0)
        .select(
            "merchant_id",
            "sales",
            (pl.col("sale_amount_fen") / pl.col("sales") / 100).round(2).alias("mean_ticket_yuan"),
            (pl.col("credit_count") / pl.col("sales")).alias("credit_share"),
            (pl.col("night") / pl.col("sales")).alias("night_share"),
        )
        .join(
            audit.table("merchants").select(
                "merchant_id", "category", pl.col("fee_class").cast(pl.String)
            ),
            on="merchant_id",
        )
        .join(named, on="merchant_id", how="left")
        .with_columns(pl.col("findings").fill_null("none"))
        .sort("merchant_id")
    )


def typology_findings(audit: Audit) -> pl.DataFrame:
    """The run's merchant typology findings, most severe and strongest first."""
    return (
        audit.findings()
        .filter(pl.col("rule").is_in(RULE_NAMES))
        .select("rule", "severity", "score", "entity_type", "entity_id", "window_start", "summary")
        .sort("score", descending=True)
    )
