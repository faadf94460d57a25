"""08-sales-patterns: split sales, card testing and late voids, against what honest tills do.

Each rule of the ``sales`` family looks for a sequence an honest till does not produce: one
card swiped again and again within minutes, a burst of tiny declined sales from many cards,
sales voided long after they were made. The functions here put each rule's findings next to
the terminal's or operator's ordinary behaviour, read from the store with one query each.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from posaudit.notebook.session import Audit, by_severity

FAMILY: Final = "sales"
# Void delays: minute bins up to this many minutes, everything later in the last bin.
VOID_DELAY_CAP_MINUTES: Final = 600
VOID_DELAY_BIN_MINUTES: Final = 10


def sales_findings(audit: Audit) -> pl.DataFrame:
    """The run's findings of the sales family, most severe first."""
    return by_severity(audit.findings().filter(pl.col("family") == FAMILY))


def sales_rule_counts(audit: Audit) -> pl.DataFrame:
    """Findings per sales rule (every rule of the family, 0 where it found nothing)."""
    from posaudit.rules import all_rules

    rules = sorted(name for name, rule in all_rules().items() if rule.family == FAMILY)
    found = (
        sales_findings(audit)
        .group_by("rule")
        .agg(pl.len().alias("findings"), pl.col("entity_id").n_unique().alias("entities"))
    )
    return (
        pl.DataFrame({"rule": rules}, schema={"rule": pl.String})
        .join(found, on="rule", how="left")
        .with_columns(pl.col("findings", "entities").fill_null(0))
    )


def void_delays(audit: Audit) -> pl.DataFrame:
    """Approved voids by minutes after the sale they void, binned, and whether a sales finding
    names them. Columns: delay_minutes (bin start), voids, flagged."""
    voids = audit.sql(
        "SELECT v.txn_id, "
        "CAST(date_diff('second', s.ts, v.ts) AS DOUBLE) / 60 AS delay_minutes "
        "FROM transactions AS v JOIN transactions AS s ON s.txn_id = v.original_txn_id "
        "WHERE v.kind = 'void' AND v.status = 'approved' AND s.kind = 'sale'"
    )
    named = _named(audit, "void_txn_ids")
    return (
        voids.with_columns(
            (
                pl.col("delay_minutes").clip(0, VOID_DELAY_CAP_MINUTES)
                // VOID_DELAY_BIN_MINUTES
                * VOID_DELAY_BIN_MINUTES
            ).alias("delay_minutes"),
            pl.col("txn_id").is_in(named.implode()).alias("flagged"),
        )
        .group_by("delay_minutes", "flagged")
        .agg(pl.len().alias("voids"))
        .sort("delay_minutes", "flagged")
    )


def declines_by_hour(audit: Audit) -> pl.DataFrame:
    """Declined sales per terminal-hour, for the terminal-hours with any: how many, from how
    many cards, at what median amount; and whether a card-testing finding names them.
    Columns: terminal_id, hour, declines, cards, median_amount_fen, flagged."""
    declines = audit.sql(
        "SELECT txn_id, terminal_id, date_trunc('hour', ts) AS hour, card_token, amount_fen "
        "FROM transactions WHERE kind = 'sale' AND status = 'declined'"
    )
    named = _named(audit, "declined_txn_ids")
    return (
        declines.with_columns(pl.col("txn_id").is_in(named.implode()).alias("flagged"))
        .group_by("terminal_id", "hour")
        .agg(
            pl.len().alias("declines"),
            pl.col("card_token").n_unique().alias("cards"),
            pl.col("amount_fen").median().alias("median_amount_fen"),
            pl.col("flagged").any(),
        )
        .sort("declines", "hour", descending=[True, False])
    )


def _named(audit: Audit, key: str) -> pl.Series:
    """The transaction ids the run's sales findings list under evidence ``key``."""
    findings = sales_findings(audit).filter(pl.col("evidence").str.contains(f'"{key}"'))
    return (
        findings.select(
            pl.col("evidence").str.json_path_match(f"$.{key}").str.json_decode(pl.List(pl.String))
        )
        .to_series()
        .explode()
        .drop_nulls()
    )
