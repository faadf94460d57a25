"""The frames behind 09-fees-and-completeness: the fee audit and the records' completeness.

The fee audit is recomputed in the store by the rule's own query
(:data:`posaudit.detect.ledger.FEE_DIFFERENCES_SQL`), so the notebook and the run cannot
disagree; only the records whose fee is off the table reach Python.
"""

from __future__ import annotations

from typing import Final

import altair as alt
import polars as pl

from posaudit.detect.ledger import FEE_DIFFERENCES_SQL
from posaudit.notebook import bounds
from posaudit.notebook.charts import _title
from posaudit.notebook.session import Audit
from posaudit.notebook.style import WIDTH

LEDGER_RULES: Final = (
    "fee_mismatches",
    "duplicate_transactions",
    "trace_gaps",
    "batch_total_mismatches",
)


def _evidence(path: str) -> pl.Expr:
    return pl.col("evidence").str.json_path_match(path)


def fee_differences(audit: Audit) -> pl.DataFrame:
    """Every record whose fee is not the fee table's, recomputed now by the store."""
    return audit.sql(FEE_DIFFERENCES_SQL).with_columns(
        (pl.col("expected_fen") - pl.col("fee_fen")).alias("difference_fen")
    )


def fee_audit(audit: Audit) -> pl.DataFrame:
    """The records of the store by fee class and channel: how many, the fees charged, the fees
    the fee table gives, and the difference (expected minus charged), recomputed in the store."""
    differences = fee_differences(audit)
    totals = audit.sql(
        "SELECT CAST(m.fee_class AS VARCHAR) AS fee_class, CAST(t.channel AS VARCHAR) AS channel, "
        "count(*) AS records, sum(t.fee_fen) AS charged_fen FROM transactions AS t "
        "JOIN merchants AS m USING (merchant_id) GROUP BY ALL"
    )
    off = differences.group_by("fee_class", "channel").agg(
        pl.len().alias("records_off_table"), pl.col("difference_fen").sum()
    )
    return (
        totals.join(off, on=["fee_class", "channel"], how="left")
        .with_columns(
            pl.col("records_off_table").fill_null(0),
            pl.col("difference_fen").fill_null(0),
        )
        .with_columns((pl.col("charged_fen") + pl.col("difference_fen")).alias("expected_fen"))
        .select(
            "fee_class",
            "channel",
            "records",
            "records_off_table",
            "charged_fen",
            "expected_fen",
            "difference_fen",
        )
        .sort("fee_class", "channel")
    )


def ledger_findings(audit: Audit) -> pl.DataFrame:
    """The run's findings of the fees and completeness rules, most severe and latest first."""
    return (
        audit.findings()
        .filter(pl.col("rule").is_in(LEDGER_RULES))
        .select(
            "rule",
            "severity",
            "entity_type",
            "entity_id",
            "merchant_id",
            "window_start",
            "summary",
            "evidence",
        )
        .sort("rule", "window_start", descending=[False, True])
    )


def fee_leakage(findings: pl.DataFrame) -> dict[str, int]:
    """The fee leakage the report shows: the sum of ``fee_mismatches``' differences, with the
    fees not collected and those charged over the table."""
    difference = (
        findings.filter(pl.col("rule") == "fee_mismatches")
        .select(_evidence("$.difference_fen").cast(pl.Int64))
        .to_series()
    )
    return {
        "findings": difference.len(),
        "total_fen": int(difference.sum()),
        "not_collected_fen": int(difference.clip(lower_bound=0).sum()),
        "over_charged_fen": int(-difference.clip(upper_bound=0).sum()),
    }


def merchant_fee_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """The fee findings per merchant: days, what the wrong fees look like, the difference."""
    fee = findings.filter(pl.col("rule") == "fee_mismatches").with_columns(
        _evidence("$.fee_kind").alias("looks_like"),
        _evidence("$.difference_fen").cast(pl.Int64).alias("difference_fen"),
        _evidence("$.records").cast(pl.Int64).alias("records"),
    )
    return (
        fee.group_by("merchant_id")
        .agg(
            pl.len().alias("days"),
            pl.col("records").sum(),
            pl.col("looks_like").mode().first(),
            pl.col("difference_fen").sum(),
        )
        .sort("difference_fen", descending=True)
    )


def completeness_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """Trace gaps and batch totals that do not add up, per terminal and batch."""
    return (
        findings.filter(pl.col("rule").is_in(("trace_gaps", "batch_total_mismatches")))
        .with_columns(_evidence("$.batch_no").cast(pl.Int64).alias("batch_no"))
        .group_by("entity_id", "merchant_id", "batch_no")
        .agg(
            pl.col("window_start").min(),
            (pl.col("rule") == "trace_gaps").any().alias("trace_gap"),
            (pl.col("rule") == "batch_total_mismatches").any().alias("total_off"),
            pl.col("summary").sort().first(),
        )
        .rename({"entity_id": "terminal_id"})
        .sort("window_start")
    )


def duplicate_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """The sales recorded twice: the later record, its merchant, when, and what it repeats."""
    return findings.filter(pl.col("rule") == "duplicate_transactions").select(
        "entity_id", "merchant_id", "window_start", "summary"
    )


def findings_per_day_chart(findings: pl.DataFrame) -> alt.Chart:
    """The fees and completeness findings per day, one colour per rule; at most the last
    :data:`~posaudit.notebook.bounds.DAYS` days."""
    daily = (
        findings.with_columns(pl.col("window_start").dt.date().alias("day"))
        .group_by("day", "rule")
        .len("findings")
        .sort("day")
    )
    shown = bounds.latest(daily, "day", limit=bounds.DAYS, unit="days")
    return (
        alt.Chart(shown.frame)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("findings:Q", title="findings"),
            color=alt.Color("rule:N", title="rule"),
            tooltip=["day:T", "rule:N", "findings:Q"],
        )
        .properties(
            width=WIDTH - 200,
            height=180,
            title=_title("Fees and completeness findings per day", shown.note),
        )
    )
