"""Detection quality against the simulator's ground truth (DESIGN.md's evaluation rule).

A finding detects an incident when it names the incident's entity (same entity type and id)
and its window overlaps the incident's. Recall per scenario = incidents detected / incidents.
Precision per rule = findings detecting some incident / findings, over findings of severity
above 'info'. This module is the only reader of ``ground_truth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

ACCUSING = pl.col("severity") != "info"
ABOVE_LOW = ~pl.col("severity").is_in(["info", "low"])


def no_labels(store_path: object) -> str:
    """What to say of a store without ground truth: ingested data has no labels."""
    return (
        f"{store_path} holds no ground truth (only a simulated world has labels): "
        "nothing to evaluate against"
    )


def matches(findings: pl.LazyFrame, ground_truth: pl.LazyFrame) -> pl.LazyFrame:
    """Pairs of (finding, incident) where the finding detects the incident."""
    return (
        findings.select(
            "finding_id",
            "rule",
            "severity",
            pl.col("entity_type").cast(pl.String),
            "entity_id",
            "window_start",
            "window_end",
        )
        .join(
            ground_truth.select(
                "incident_id",
                "scenario",
                pl.col("entity_type").cast(pl.String),
                "entity_id",
                "start_ts",
                "end_ts",
            ),
            on=["entity_type", "entity_id"],
        )
        .filter(
            (pl.col("window_start") <= pl.col("end_ts"))
            & (pl.col("start_ts") <= pl.col("window_end"))
        )
    )


def recall_by_scenario(
    findings: pl.LazyFrame,
    ground_truth: pl.LazyFrame,
    *,
    rules_for: dict[str, list[str]] | None = None,
) -> pl.LazyFrame:
    """Per scenario: incidents, incidents detected (by any finding above 'info'), recall.

    With ``rules_for`` (scenario -> the rules written for it) also ``recall_own``: the share
    detected by those rules alone, so that a weak-PIN finding on an operator does not count
    as catching that operator's refund abuse.
    """
    pairs = matches(findings.filter(ACCUSING), ground_truth)
    detected = pairs.select("incident_id").unique().with_columns(pl.lit(True).alias("detected"))
    out = ground_truth.select("incident_id", "scenario").join(
        detected, on="incident_id", how="left"
    )
    aggs = [
        pl.len().alias("incidents"),
        pl.col("detected").fill_null(False).sum().alias("detected"),
    ]
    if rules_for is not None:
        own_rules = pl.LazyFrame(
            [(s, r) for s, rules in rules_for.items() for r in rules],
            schema=["scenario", "rule"],
            orient="row",
        )
        own = pairs.join(own_rules, on=["scenario", "rule"]).select("incident_id").unique()
        out = out.join(own.with_columns(pl.lit(True).alias("own")), on="incident_id", how="left")
        aggs.append(pl.col("own").fill_null(False).sum().alias("detected_own"))
    result = (
        out.group_by("scenario")
        .agg(aggs)
        .with_columns((pl.col("detected") / pl.col("incidents")).alias("recall"))
    )
    if rules_for is not None:
        result = result.with_columns(
            (pl.col("detected_own") / pl.col("incidents")).alias("recall_own")
        )
    return result.sort("scenario")


def precision_by_rule(findings: pl.LazyFrame, ground_truth: pl.LazyFrame) -> pl.LazyFrame:
    """Per rule: findings above 'info', how many detect some incident, precision."""
    accusing = findings.filter(ACCUSING)
    hits = matches(accusing, ground_truth).select("finding_id").unique()
    return (
        accusing.select("finding_id", "rule")
        .join(hits.with_columns(pl.lit(True).alias("hit")), on="finding_id", how="left")
        .group_by("rule")
        .agg(
            pl.len().alias("findings"), pl.col("hit").fill_null(False).sum().alias("true_positives")
        )
        .with_columns((pl.col("true_positives") / pl.col("findings")).alias("precision"))
        .sort("rule")
    )


def unmatched_above_low(findings: pl.LazyFrame, ground_truth: pl.LazyFrame) -> pl.LazyFrame:
    """Findings of severity medium or more that detect no incident (false alarms that page)."""
    hits = matches(findings, ground_truth).select("finding_id").unique()
    return findings.filter(ABOVE_LOW).join(hits, on="finding_id", how="anti")


@dataclass
class Evaluation:
    recall: pl.DataFrame
    precision: pl.DataFrame
    unmatched_above_low: int
    operators: int

    @property
    def unmatched_per_1000_operators(self) -> float:
        return 1000 * self.unmatched_above_low / self.operators if self.operators else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "recall": self.recall.to_dicts(),
            "precision": self.precision.to_dicts(),
            "unmatched_above_low": self.unmatched_above_low,
            "operators": self.operators,
            "unmatched_above_low_per_1000_operators": round(self.unmatched_per_1000_operators, 3),
        }


def evaluate(
    findings: pl.LazyFrame, ground_truth: pl.LazyFrame, operators: pl.LazyFrame
) -> Evaluation:
    """Recall per scenario, precision per rule and the false-alarm rate of one run's findings."""
    from posaudit.rules import all_rules

    rules_for: dict[str, list[str]] = {}
    for rule in all_rules().values():
        for scenario in rule.scenarios:
            rules_for.setdefault(scenario, []).append(rule.name)
    recall, precision, unmatched, n_ops = pl.collect_all(
        [
            recall_by_scenario(findings, ground_truth, rules_for=rules_for),
            precision_by_rule(findings, ground_truth),
            unmatched_above_low(findings, ground_truth).select(pl.len()),
            operators.select(pl.len()),
        ]
    )
    return Evaluation(recall, precision, int(unmatched.item()), int(n_ops.item()))
