"""04-operator-risk: anomaly scores, what drives them, and which operators stand out.

The anomaly score (:mod:`posaudit.score.operators`) ranks operator-days by how far they sit
from their merchant's ordinary day and from the operator's own past; the run keeps the top
as findings. Here the scores are recomputed for every operator-day with the run's own
settings (same seed, same data: the same scores), so the analyst sees the whole distribution,
where the cut falls, and, for the days at the top, which features set them apart. The
operators who stand out are then ranked over every family of findings, not the score alone.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from posaudit.detect.findings import SEVERITY_RANK
from posaudit.notebook.session import Audit, read_only
from posaudit.rules import all_rules
from posaudit.score import operators as scoring

SCORE_RULE: Final = scoring.SCORE_RULE
FEATURE_LABELS: Final[dict[str, str]] = {
    "sale_count": "sales",
    "sale_amount_fen": "sales amount",
    "refund_count": "refunds",
    "refund_amount_fen": "refund amount",
    "refund_rate": "refund rate",
    "refund_card_count": "cards refunded",
    "repeat_card_refund_count": "refunds to repeat cards",
    "full_refund_share": "full refunds",
    "refund_lag_hours_mean": "refund lag",
    "void_count": "voids",
    "wrong_pin_count": "wrong PINs",
    "lockout_count": "lockouts",
    "login_count": "logins",
    "off_hours_share": "off-hours activity",
    "terminal_count": "terminals",
    "sale_count_28d": "sales, 28 days",
    "refund_count_28d": "refunds, 28 days",
    "refund_rate_28d": "refund rate, 28 days",
    "repeat_refund_card_count_28d": "repeat cards, 28 days",
    "refunds_to_repeat_cards_28d": "refunds to repeat cards, 28 days",
}
FAMILIES: Final = ("logins", "pins", "refunds", "scores")


def feature_label(feature: str) -> str:
    """How a model feature reads: 'refunds, 28 days' for ``refund_count_28d``.

    Examples
    --------
    >>> feature_label("refund_count_28d"), feature_label("void_amount_fen_28d")
    ('refunds, 28 days', 'void amount, 28 days')
    """
    if feature in FEATURE_LABELS:
        return FEATURE_LABELS[feature]
    words = (
        feature.removesuffix("_28d").replace("_fen", "").replace("_count", "s").replace("_", " ")
    )
    return f"{words}, 28 days" if feature.endswith("_28d") else words


# Risk points of a rule that fired on an operator, by its worst severity there: one rule counts
# once however many findings it made, so breadth (several kinds of trouble) outranks volume.
RISK_POINTS: Final[dict[str, int]] = {"info": 0, "low": 1, "medium": 2, "high": 4, "critical": 8}


def score_settings(audit: Audit) -> dict[str, float | int]:
    """The run's settings of the anomaly score (its policy over the rule's defaults)."""
    defaults = all_rules()[SCORE_RULE].parameters
    rule = defaults | audit.policy().get("rules", {}).get(SCORE_RULE, {})
    return {
        "seed": int(rule["seed"]),
        "n_estimators": int(rule["n_estimators"]),
        "max_samples": int(rule["max_samples"]),
        "fit_rows": int(rule["fit_rows"]),
        "top_fraction": float(rule["top_fraction"]),
        "min_anomaly_score": float(rule["min_anomaly_score"]),
        "lead_anomaly_score": float(rule["lead_anomaly_score"]),
    }


def score_inputs(audit: Audit) -> list[pl.LazyFrame]:
    """The anomaly score's inputs, read as a run reads them.

    The store computes the per-terminal day sums and picks the refunds with their sales
    (:class:`posaudit.run.read.TableReader`), so the ten million transactions of a large store
    never cross into Python: the same frames the run scored, a fraction of the rows.
    """
    from posaudit.detect.registry import DERIVED_TABLES
    from posaudit.run.read import TableReader

    with read_only(audit.db) as store:
        reader = TableReader(store)
        return [
            (reader.read_derived(name) if name in DERIVED_TABLES else reader.read(name)).lazy()
            for name in all_rules()[SCORE_RULE].inputs
        ]


def operator_day_scores(audit: Audit) -> pl.DataFrame:
    """Every operator-day with its anomaly score, percentile and standout features.

    Adds ``in_findings``: the day is one the run reports (in the top of its week above the
    policy's cut, with a refund to a repeat card or a score above the lead cut), which is
    what the rule kept. The explanation in words is written only for
    the days shown (:func:`with_explanation`): a few hundred, not every operator-day.
    """
    settings = score_settings(audit)
    activity = scoring.operator_day_activity(*score_inputs(audit)).collect()
    scored, _ = scoring.weekly_scores(
        activity,
        seed=int(settings["seed"]),
        n_estimators=int(settings["n_estimators"]),
        max_samples=int(settings["max_samples"]),
        fit_rows=int(settings["fit_rows"]),
    )
    return scored.with_columns(
        scoring.reported_days(
            top_fraction=settings["top_fraction"],
            min_anomaly_score=settings["min_anomaly_score"],
            lead_anomaly_score=settings["lead_anomaly_score"],
        ).alias("in_findings")
    )


def with_explanation(days: pl.DataFrame) -> pl.DataFrame:
    """Operator-days of :func:`operator_day_scores` with ``explanation``: their standout
    features in words, as the run writes them in its findings."""
    return days.lazy().pipe(scoring.explained_operator_days).collect()


def score_distribution(scores: pl.DataFrame, *, bins: int = 50) -> pl.DataFrame:
    """Operator-days per score bin, split by whether the run reports them.

    Columns: score_from, score_to, in_findings, operator_days.
    """
    top = scores.get_column("anomaly_score").max()
    low, high = 0.3, max(0.8, float(top) if isinstance(top, int | float) else 0.8)
    width = (high - low) / bins
    start = ((pl.col("anomaly_score").clip(low, high - 1e-9) - low) / width).floor() * width + low
    return (
        scores.group_by(start.round(6).alias("score_from"), "in_findings")
        .agg(pl.len().alias("operator_days"))
        .with_columns((pl.col("score_from") + width).round(6).alias("score_to"))
        .sort("score_from", "in_findings")
    )


def score_cut(scores: pl.DataFrame) -> float | None:
    """The lowest score the run reports (None when it reports no operator-day).

    Examples
    --------
    >>> scores = pl.DataFrame(
    ...     {"anomaly_score": [0.9, 0.7, 0.6], "in_findings": [True, True, False]}
    ... )
    >>> score_cut(scores), score_cut(scores.with_columns(in_findings=False))
    (0.7, None)
    """
    value = scores.filter(pl.col("in_findings")).get_column("anomaly_score").min()
    return float(value) if value is not None else None  # type: ignore[arg-type]


def top_operator_days(scores: pl.DataFrame, *, top: int = 20) -> pl.DataFrame:
    """The ``top`` operator-days by anomaly score, with what set them apart, in words."""
    return (
        scores.sort(["anomaly_score", "operator_id"], descending=[True, False])
        .head(top)
        .pipe(with_explanation)
        .select(
            "operator_id",
            "operator_no",
            "terminal_id",
            "merchant_id",
            "day",
            "anomaly_score",
            "anomaly_percentile",
            "in_findings",
            "explanation",
            "sale_count",
            "refund_count",
            "repeat_card_refund_count",
            "wrong_pin_count",
            "lockout_count",
        )
    )


def standout_features(scores: pl.DataFrame) -> pl.DataFrame:
    """How often each feature is among the three that set a reported day apart.

    Columns: feature, label, rank (1 = the most telling), operator_days.
    """
    reported = scores.filter(pl.col("in_findings"))
    labels = {f: feature_label(f) for f in scoring.FEATURES}
    return (
        pl.concat(
            [
                reported.select(
                    pl.col(f"standout_feature_{i}").alias("feature"), pl.lit(i).alias("rank")
                )
                for i in range(1, scoring.EXPLAINED_FEATURES + 1)
            ]
        )
        .drop_nulls("feature")
        .group_by("feature", "rank")
        .agg(pl.len().alias("operator_days"))
        .with_columns(
            pl.col("feature").replace_strict(labels, default=pl.col("feature")).alias("label")
        )
        .sort(["operator_days", "feature"], descending=[True, False])
    )


def feature_ratios(scores: pl.DataFrame, *, top: int = 15) -> pl.DataFrame:
    """For the ``top`` operator-days: each model feature against its merchant's median day.

    Long format for a heat map: operator_day ('operator 03 at T000123, 09-02'), rank, feature,
    label, value, median, ratio (value / median, null when the median is 0), excess (how far
    above the median on the model's log scale, 0 when not above).
    """
    days = (
        scores.sort(["anomaly_score", "operator_id"], descending=[True, False])
        .head(top)
        .with_columns(
            pl.format(
                "operator {} at {}, {}",
                "operator_no",
                "terminal_id",
                pl.col("day").dt.strftime("%m-%d"),
            ).alias("operator_day"),
            pl.int_range(1, pl.len() + 1).alias("rank"),
        )
    )
    rows = []
    present = set(scores.columns)
    for feature in scoring.MODEL_FEATURES:
        needed = {
            feature,
            f"{feature}_merchant_median",
            f"{feature}_category_median",
            f"{feature}_vs_median",
        }
        if not needed <= present:
            continue
        median = pl.coalesce(f"{feature}_merchant_median", f"{feature}_category_median")
        rows.append(
            days.select(
                "operator_day",
                "rank",
                pl.lit(feature).alias("feature"),
                pl.lit(feature_label(feature)).alias("label"),
                pl.col(feature).cast(pl.Float64).alias("value"),
                median.cast(pl.Float64).alias("median"),
                pl.col(f"{feature}_vs_median").cast(pl.Float64).alias("ratio"),
                (
                    pl.col(feature).cast(pl.Float64).fill_null(0).log1p()
                    - median.fill_null(0).log1p()
                )
                .clip(lower_bound=0.0)
                .alias("excess"),
            )
        )
    return pl.concat(rows).sort("rank", "feature")


def operator_findings(audit: Audit) -> pl.DataFrame:
    """The run's findings on operators, and on transactions by an operator, per operator.

    Columns: operator_id, finding_id, rule, family, severity, severity_rank, score,
    window_start, summary.
    """
    findings = audit.findings()
    on_operator = findings.filter(pl.col("entity_type") == "operator").with_columns(
        pl.col("entity_id").alias("operator_id")
    )
    by_operator = findings.filter(pl.col("entity_type") == "transaction").with_columns(
        pl.col("evidence").str.json_path_match("$.operator_id").alias("operator_id")
    )
    return (
        pl.concat([on_operator, by_operator])
        .drop_nulls("operator_id")
        .select(
            "operator_id",
            "finding_id",
            "rule",
            "family",
            "severity",
            "severity_rank",
            "score",
            "window_start",
            "summary",
        )
    )


def operator_risk(audit: Audit, scores: pl.DataFrame) -> pl.DataFrame:
    """Operators ranked by what the run found on them, across every family.

    Columns: operator_id, operator_no, role, terminal_id, merchant_id, risk_points, findings,
    one count per family (logins, pins, refunds, scores), worst (severity), rules,
    top_anomaly_score, top_day, explanation (of its highest-scoring day). Ranked by risk
    points (:data:`RISK_POINTS`), then worst severity, then the top anomaly score.
    """
    findings = operator_findings(audit)
    points = (
        findings.group_by("operator_id", "rule")
        .agg(pl.col("severity_rank").max())
        .with_columns(
            pl.col("severity_rank")
            .replace_strict(
                {SEVERITY_RANK[name]: p for name, p in RISK_POINTS.items()}, return_dtype=pl.Int64
            )
            .alias("points")
        )
        .group_by("operator_id")
        .agg(pl.col("points").sum().alias("risk_points"))
    )
    counts = findings.group_by("operator_id").agg(
        pl.len().alias("findings"),
        *((pl.col("family") == family).sum().alias(family) for family in FAMILIES),
        pl.col("severity_rank").max().alias("worst_rank"),
        pl.col("rule").unique().sort().alias("rules"),
    )
    best_day = (
        scores.join(counts.select("operator_id"), on="operator_id", how="semi")
        .sort(["anomaly_score", "day"], descending=[True, False])
        .group_by("operator_id", maintain_order=True)
        .first()
        .pipe(with_explanation)
        .select(
            "operator_id",
            pl.col("anomaly_score").alias("top_anomaly_score"),
            pl.col("day").cast(pl.Datetime("us")).alias("top_day"),
            "explanation",
        )
    )
    names = {rank: name for name, rank in SEVERITY_RANK.items()}
    return (
        audit.table("operators")
        .select("operator_id", "operator_no", "role", "terminal_id", "merchant_id")
        .join(counts, on="operator_id", how="inner")
        .join(points, on="operator_id", how="left")
        .join(best_day, on="operator_id", how="left")
        .with_columns(pl.col("worst_rank").replace_strict(names, default=None).alias("worst"))
        .sort(
            ["risk_points", "worst_rank", "top_anomaly_score", "operator_id"],
            descending=[True, True, True, False],
            nulls_last=True,
        )
        .select(
            "operator_id",
            "operator_no",
            "role",
            "terminal_id",
            "merchant_id",
            "risk_points",
            "findings",
            *FAMILIES,
            "worst",
            "worst_rank",
            "rules",
            "top_anomaly_score",
            "top_day",
            "explanation",
        )
    )


def risk_matrix(risk: pl.DataFrame, *, top: int = 25) -> pl.DataFrame:
    """The ``top`` operators of :func:`operator_risk` by family, long, for a heat map.

    Columns: operator (label), rank, family, findings.
    """
    head = risk.head(top).with_columns(
        pl.format(
            "{} {} at {}",
            pl.col("role").replace({"admin": "administrator", "clerk": "operator"}),
            "operator_no",
            "terminal_id",
        ).alias("operator"),
        pl.int_range(1, pl.len() + 1).alias("rank"),
    )
    return head.select("operator_id", "operator", "rank", *FAMILIES).unpivot(
        index=["operator_id", "operator", "rank"],
        on=list(FAMILIES),
        variable_name="family",
        value_name="findings",
    )


def findings_of(
    findings: pl.DataFrame, operator_ids: list[str], *, per_operator: int = 12
) -> pl.DataFrame:
    """The findings of some operators, most severe first, at most ``per_operator`` each."""
    return (
        findings.filter(pl.col("operator_id").is_in(operator_ids))
        .sort(["severity_rank", "score", "window_start"], descending=[True, True, False])
        .filter(pl.int_range(pl.len()).over("operator_id") < per_operator)
    )


def leaders_findings(
    audit: Audit, risk: pl.DataFrame, *, top: int = 25, per_operator: int = 12
) -> pl.DataFrame:
    """The findings of the first ``top`` operators of :func:`operator_risk` (a linked table)."""
    leaders = risk.head(top).get_column("operator_id").to_list()
    return findings_of(operator_findings(audit), leaders, per_operator=per_operator)
