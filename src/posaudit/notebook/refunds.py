"""03-refund-anomalies: refunds against their sales, each refund rule, refund rates against peers.

A refund sends money back to a card. Legitimate ones go to the card that paid, for at most
what it paid, within the acquirer's window, by someone allowed to refund; each rule tests one
of those, and a few look at an operator's pattern (off hours, bursts, round amounts, right
after a suspicious login). Rates against peers catch what no single refund shows: a merchant
or an operator refunding far more than others of its kind.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from posaudit.notebook import bounds
from posaudit.notebook.session import Audit, by_severity

NO_FINDING: Final = "no finding"
# Refund rates need some volume to mean anything: fewer sales than this and a rate is noise.
MIN_SALES_FOR_RATE: Final = 20
# Lag histogram: half-day bins up to this many days, everything later in the last bin.
LAG_CAP_DAYS: Final = 30.0
LAG_BIN_DAYS: Final = 0.5


def refunded_transactions(audit: Audit) -> pl.DataFrame:
    """Every refund a finding of the run names, with that finding's rule and severity.

    Transaction findings name their refund as the entity; operator findings list theirs in the
    evidence (``refund_txn_ids``). Columns: txn_id, rule, severity, severity_rank, finding_id.
    """
    findings = audit.findings()
    direct = findings.filter(pl.col("entity_type") == "transaction").select(
        pl.col("entity_id").alias("txn_id"), "rule", "severity", "severity_rank", "finding_id"
    )
    listed = (
        findings.filter(pl.col("evidence").str.contains('"refund_txn_ids"'))
        .select(
            pl.col("evidence")
            .str.json_path_match("$.refund_txn_ids")
            .str.json_decode(pl.List(pl.String))
            .alias("txn_id"),
            "rule",
            "severity",
            "severity_rank",
            "finding_id",
        )
        .explode("txn_id")
        .drop_nulls("txn_id")
    )
    return pl.concat([direct, listed])


def refunds_with_sales(audit: Audit) -> pl.DataFrame:
    """Approved refunds with the sale they name and the findings that name them.

    Columns: txn_id, ts, merchant_id, terminal_id, operator_id, amount_fen, original_txn_id,
    sale_ts, sale_amount_fen, has_sale, same_card, lag_days, refunded_share (of the sale),
    rules (every rule naming the refund), flag (the most severe one's rule, or 'no finding').
    """
    # The sales are cut to those the refunds name before the join: the store then joins
    # 190,000 refunds to their sales, not to ten million (half the time on 10 M events).
    refunds = audit.sql(
        "WITH r AS (SELECT txn_id, ts, merchant_id, terminal_id, operator_id, amount_fen, "
        "original_txn_id, card_token FROM transactions "
        "WHERE kind = 'refund' AND status = 'approved'), "
        "s AS (SELECT txn_id, merchant_id, ts, amount_fen, card_token FROM transactions "
        "WHERE kind = 'sale' AND txn_id IN (SELECT original_txn_id FROM r)) "
        "SELECT r.txn_id, r.ts, r.merchant_id, r.terminal_id, r.operator_id, r.amount_fen, "
        "r.original_txn_id, s.ts AS sale_ts, s.amount_fen AS sale_amount_fen, "
        "r.card_token = s.card_token AS same_card "
        "FROM r LEFT JOIN s ON s.txn_id = r.original_txn_id AND s.merchant_id = r.merchant_id "
        "AND s.ts <= r.ts"
    )
    named = (
        refunded_transactions(audit)
        .sort(["severity_rank", "rule"], descending=[True, False])
        .group_by("txn_id", maintain_order=True)
        .agg(
            pl.col("rule").unique(maintain_order=True).alias("rules"),
            pl.col("rule").first().alias("flag"),
        )
    )
    return (
        refunds.join(named, on="txn_id", how="left")
        .with_columns(
            pl.col("sale_ts").is_not_null().alias("has_sale"),
            ((pl.col("ts") - pl.col("sale_ts")).dt.total_seconds() / 86_400)
            .round(2)
            .alias("lag_days"),
            (pl.col("amount_fen") / pl.col("sale_amount_fen")).alias("refunded_share"),
            pl.col("flag").fill_null(NO_FINDING),
            pl.col("rules").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
        .sort("ts", "txn_id")
    )


def refund_scatter(
    refunds: pl.DataFrame,
    *,
    max_flagged: int = bounds.REFUND_POINTS_FLAGGED,
    max_ordinary: int = bounds.REFUND_POINTS_ORDINARY,
) -> pl.DataFrame:
    """Refunds with a sale, for the refund-against-sale chart; sampled to stay under Altair's limit.

    Columns: txn_id, ts, terminal_id, operator_id, sale_cny, refund_cny, lag_days, flag,
    flagged_total, ordinary_total (refunds with and without a finding), flagged_shown,
    ordinary_shown. Beyond ``max_flagged`` flagged and ``max_ordinary`` ordinary refunds the
    rest are sampled (seeded, so the chart is the same each time).
    """
    placed = refunds.filter(
        pl.col("has_sale") & (pl.col("sale_amount_fen") > 0) & (pl.col("amount_fen") > 0)
    )
    flagged = placed.filter(pl.col("flag") != NO_FINDING)
    ordinary = placed.filter(pl.col("flag") == NO_FINDING)
    flagged_shown = (
        flagged if flagged.height <= max_flagged else flagged.sample(max_flagged, seed=0)
    )
    ordinary_shown = (
        ordinary if ordinary.height <= max_ordinary else ordinary.sample(max_ordinary, seed=0)
    )
    return (
        pl.concat([ordinary_shown, flagged_shown])
        .select(
            "txn_id",
            "ts",
            "terminal_id",
            "operator_id",
            (pl.col("sale_amount_fen") / 100).alias("sale_cny"),
            (pl.col("amount_fen") / 100).alias("refund_cny"),
            "lag_days",
            "flag",
            pl.lit(flagged.height).alias("flagged_total"),
            pl.lit(ordinary.height).alias("ordinary_total"),
            pl.lit(flagged_shown.height).alias("flagged_shown"),
            pl.lit(ordinary_shown.height).alias("ordinary_shown"),
        )
        .sort("ts", "txn_id")
    )


def refund_lags(refunds: pl.DataFrame, *, refund_window_days: float) -> pl.DataFrame:
    """Refunds per half-day of delay after their sale.

    Columns: lag_from_days, lag_to_days, flagged, refunds, past_window.

    Delays of ``LAG_CAP_DAYS`` or more share the last bin.

    Examples
    --------
    >>> refunds = pl.DataFrame({"has_sale": [True, True, True, False],
    ...     "lag_days": [0.2, 0.4, 40.0, None],
    ...     "flag": [NO_FINDING, NO_FINDING, "late_refunds", "refunds_without_sale"]})
    >>> refund_lags(refunds, refund_window_days=15).rows()
    [(0.0, False, 2, 0.5, False), (30.0, True, 1, 30.5, True)]
    """
    start = (
        pl.col("lag_days").clip(upper_bound=LAG_CAP_DAYS) / LAG_BIN_DAYS
    ).floor() * LAG_BIN_DAYS
    return (
        refunds.filter(pl.col("has_sale"))
        .group_by(start.alias("lag_from_days"), (pl.col("flag") != NO_FINDING).alias("flagged"))
        .agg(pl.len().alias("refunds"))
        .with_columns(
            (pl.col("lag_from_days") + LAG_BIN_DAYS).alias("lag_to_days"),
            (pl.col("lag_from_days") >= refund_window_days).alias("past_window"),
        )
        .sort("lag_from_days", "flagged")
    )


def refund_rule_counts(audit: Audit) -> pl.DataFrame:
    """The run's refund findings per rule: rule, findings, new, critical, high, amount_fen."""
    findings = refund_findings(audit, per_rule=None)
    return (
        findings.group_by("rule")
        .agg(
            pl.len().alias("findings"),
            pl.col("is_new").sum().alias("new"),
            (pl.col("severity") == "critical").sum().alias("critical"),
            (pl.col("severity") == "high").sum().alias("high"),
            pl.col("amount_fen").sum().alias("amount_fen"),
        )
        .sort(["findings", "rule"], descending=[True, False])
    )


def refund_findings(audit: Audit, *, per_rule: int | None = 40) -> pl.DataFrame:
    """The run's refund findings, most severe first; the first ``per_rule`` of each rule when set.

    Columns: finding_id, rule, severity, score, entity_type, entity_id, terminal_id,
    amount_fen (the refund's, or the refunds' total), refunds, window_start, summary, is_new.
    """
    evidence = pl.col("evidence")
    findings = (
        audit.findings()
        .filter(pl.col("family") == "refunds")
        .with_columns(
            pl.coalesce(
                evidence.str.json_path_match("$.terminal_id"),
                evidence.str.json_path_match("$.terminal_ids[0]"),
            ).alias("terminal_id"),
            pl.coalesce(
                evidence.str.json_path_match("$.refunded_fen").cast(pl.Int64, strict=False),
                evidence.str.json_path_match("$.amount_fen").cast(pl.Int64, strict=False),
            ).alias("amount_fen"),
            evidence.str.json_path_match("$.refunds")
            .cast(pl.Int64, strict=False)
            .fill_null(1)
            .alias("refunds"),
        )
    )
    if per_rule is not None:
        findings = by_severity(findings).filter(pl.int_range(pl.len()).over("rule") < per_rule)
    return by_severity(findings).select(
        "finding_id",
        "rule",
        "severity",
        "score",
        "entity_type",
        "entity_id",
        "terminal_id",
        "amount_fen",
        "refunds",
        "window_start",
        "summary",
        "is_new",
    )


def merchant_refund_rates(audit: Audit) -> pl.DataFrame:
    """Per merchant: approved sales and refunds, the refund rate, and its category's median rate.

    Columns: merchant_id, name, category, sales, refunds, refund_fen, refund_rate, category_rate
    (median over the category's merchants with enough sales), rate_vs_category, flagged_refunds.
    Rates need ``MIN_SALES_FOR_RATE`` sales.
    """
    counts = audit.sql(
        "SELECT merchant_id, count(*) FILTER (WHERE kind = 'sale') AS sales, "
        "count(*) FILTER (WHERE kind = 'refund') AS refunds, "
        "coalesce(sum(amount_fen) FILTER (WHERE kind = 'refund'), 0)::BIGINT AS refund_fen "
        "FROM transactions WHERE status = 'approved' GROUP BY ALL"
    )
    flagged = (
        refunded_transactions(audit)
        .select("txn_id")
        .unique()
        .join(
            audit.sql("SELECT txn_id, merchant_id FROM transactions WHERE kind = 'refund'"),
            on="txn_id",
        )
        .group_by("merchant_id")
        .agg(pl.len().alias("flagged_refunds"))
    )
    rate = pl.when(pl.col("sales") >= MIN_SALES_FOR_RATE).then(pl.col("refunds") / pl.col("sales"))
    return (
        audit.table("merchants")
        .select("merchant_id", "name", "category")
        .join(counts, on="merchant_id", how="left")
        .join(flagged, on="merchant_id", how="left")
        .with_columns(pl.col("sales", "refunds", "refund_fen", "flagged_refunds").fill_null(0))
        .with_columns(rate.alias("refund_rate"))
        .with_columns(pl.col("refund_rate").median().over("category").alias("category_rate"))
        .with_columns(
            pl.when(pl.col("category_rate") > 0)
            .then(pl.col("refund_rate") / pl.col("category_rate"))
            .alias("rate_vs_category")
        )
        .sort(["rate_vs_category", "merchant_id"], descending=[True, False], nulls_last=True)
    )


def operator_refund_rates(audit: Audit) -> pl.DataFrame:
    """Per operator who sold or refunded: its refund rate and the median of its peers.

    Columns: operator_id, merchant_id, operator_no, role, can_refund, sales, refunds,
    refund_rate, peer_rate (median rate of the merchant's other operators with enough sales),
    rate_vs_peers, flagged_refunds, findings (the run's findings on the operator).
    Peers are the merchant's other operators allowed to refund (those who may not refund
    none, which says nothing about refunding). Rates need ``MIN_SALES_FOR_RATE`` sales; an
    operator who refunds without selling has none.
    """
    counts = (
        audit.sql(
            "SELECT operator_id, merchant_id, count(*) FILTER (WHERE kind = 'sale') AS sales, "
            "count(*) FILTER (WHERE kind = 'refund') AS refunds FROM transactions WHERE status "
            "= 'approved' GROUP BY ALL"
        )
        .group_by("operator_id")
        .agg(pl.col("merchant_id").first(), pl.col("sales", "refunds").sum())
    )
    flagged = (
        refunded_transactions(audit)
        .select("txn_id")
        .unique()
        .join(
            audit.sql("SELECT txn_id, operator_id FROM transactions WHERE kind = 'refund'"),
            on="txn_id",
        )
        .group_by("operator_id")
        .agg(pl.len().alias("flagged_refunds"))
    )
    findings = (
        audit.findings()
        .filter(pl.col("entity_type") == "operator")
        .group_by(pl.col("entity_id").alias("operator_id"))
        .agg(pl.len().alias("findings"))
    )
    rate = pl.when(pl.col("sales") >= MIN_SALES_FOR_RATE).then(pl.col("refunds") / pl.col("sales"))
    frame = (
        counts.join(
            audit.table("operators").select("operator_id", "operator_no", "role", "can_refund"),
            on="operator_id",
            how="left",
        )
        .join(flagged, on="operator_id", how="left")
        .join(findings, on="operator_id", how="left")
        .with_columns(pl.col("flagged_refunds", "findings").fill_null(0), rate.alias("refund_rate"))
    )
    # the median of the merchant's *other* operators: a self-join within merchants (few operators)
    peers = (
        frame.select("merchant_id", "operator_id", "refund_rate")
        .join(
            frame.filter(pl.col("can_refund").fill_null(False)).select(
                "merchant_id",
                pl.col("operator_id").alias("peer_id"),
                pl.col("refund_rate").alias("peer"),
            ),
            on="merchant_id",
        )
        .filter(pl.col("operator_id") != pl.col("peer_id"))
        .group_by("operator_id")
        .agg(pl.col("peer").median().alias("peer_rate"))
    )
    return (
        frame.join(peers, on="operator_id", how="left")
        .with_columns(
            pl.when(pl.col("peer_rate") > 0)
            .then(pl.col("refund_rate") / pl.col("peer_rate"))
            .alias("rate_vs_peers")
        )
        .select(
            "operator_id",
            "merchant_id",
            "operator_no",
            "role",
            "can_refund",
            "sales",
            "refunds",
            "refund_rate",
            "peer_rate",
            "rate_vs_peers",
            "flagged_refunds",
            "findings",
        )
        .sort(["rate_vs_peers", "operator_id"], descending=[True, False], nulls_last=True)
    )
