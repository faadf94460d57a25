"""Precision per rule credited only by the rule's own scenarios, on a store's latest run.

`posaudit evaluate` counts a finding as true when it matches any incident of its entity (a
refund burst on a clerk who also has a weak PIN is a true positive there). This script is
stricter: a finding above 'info' is true only if it matches an incident of one of the rule's
own scenarios (``Rule.scenarios``); the operator anomaly score is credited by any attack.
It also prints the recall per scenario by its own rules and the findings above 'low' that
match no attack or condition, per 1,000 operators.

    python benchmarks/own_precision.py data/posaudit.duckdb
"""

from __future__ import annotations

import sys

import polars as pl

from posaudit.evaluate import ABOVE_LOW, ACCUSING, IS_BENIGN, matches
from posaudit.rules import all_rules
from posaudit.store import Store

# Conditions: properties of a PIN or a terminal, not attacks (docs/scenarios.md).
CONDITIONS = ("weak_pin", "default_pin", "stale_pin", "shared_pin", "reused_pin")
CONDITIONS_TOO = (*CONDITIONS, "lockout_not_enforced")
ANY_ATTACK = "operator_anomaly_scores"


def main(path: str) -> None:
    store = Store.open(path, read_only=True)
    try:
        run = store.query(
            "SELECT run_id FROM pipeline_runs WHERE status = 'succeeded' "
            "ORDER BY started_at DESC, run_id DESC"
        )[0][0]
        findings = store.scan("findings", where=f"run_id = '{run}'").collect().lazy()
        truth = store.scan("ground_truth").collect().lazy()
        operators = store.query("SELECT count(*) FROM operators")[0][0]
    finally:
        store.close()
    rules = all_rules()
    own = pl.LazyFrame(
        [(r.name, s) for r in rules.values() for s in r.scenarios],
        schema={"rule": pl.String, "scenario": pl.String},
        orient="row",
    )
    attacks = truth.filter(~IS_BENIGN)
    pairs = matches(findings.filter(ACCUSING), attacks).with_columns(pl.col("rule").cast(pl.String))
    credited = pl.concat(
        [
            pairs.join(own, on=["rule", "scenario"]),
            pairs.filter(
                (pl.col("rule") == ANY_ATTACK) & ~pl.col("scenario").is_in(CONDITIONS_TOO)
            ),
        ],
        how="diagonal_relaxed",
    )
    hit = credited.select("finding_id").unique().with_columns(pl.lit(True).alias("hit"))
    table = (
        findings.filter(ACCUSING)
        .with_columns(pl.col("rule").cast(pl.String))
        .join(hit, on="finding_id", how="left")
        .group_by("rule")
        .agg(pl.len().alias("findings"), pl.col("hit").fill_null(False).sum().alias("own_tp"))
        .with_columns((pl.col("own_tp") / pl.col("findings")).round(3).alias("own_precision"))
        .sort("rule")
        .collect()
    )
    recall = (
        attacks.select("incident_id", "scenario")
        .join(
            credited.select("incident_id").unique().with_columns(pl.lit(True).alias("found")),
            on="incident_id",
            how="left",
        )
        .group_by("scenario")
        .agg(pl.len().alias("incidents"), pl.col("found").fill_null(False).sum().alias("found"))
        .with_columns((pl.col("found") / pl.col("incidents")).round(3).alias("recall_own"))
        .sort("scenario")
        .collect()
    )
    unmatched = (
        findings.filter(ABOVE_LOW)
        .join(matches(findings, attacks).select("finding_id").unique(), on="finding_id", how="anti")
        .with_columns(pl.col("rule").cast(pl.String))
        .group_by("rule")
        .len()
        .collect()
    )
    with pl.Config(tbl_rows=60, tbl_hide_dataframe_shape=True, tbl_formatting="MARKDOWN"):
        print(table)
        print(recall)
        print(unmatched)
    total = int(unmatched.get_column("len").sum()) if unmatched.height else 0
    print(f"unmatched above low: {total} ({total / operators * 1000:.2f} per 1,000 operators)")


if __name__ == "__main__":
    main(sys.argv[1])
