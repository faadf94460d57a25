"""The oracle analyst: decisions on every finding from the simulator's ground truth, with a
chosen share of mistakes, written as the CSV `posaudit review import` loads.

It checks `posaudit evaluate --labels reviews` against `posaudit evaluate`: an analyst who
decides by the ground truth and errs on a share m of the findings should see each rule's
precision within about m of the precision against the ground truth, and exactly it when m is
0 (tests/review/test_oracle.py).

Every finding of severity above 'info' of the store's latest successful run is decided (the
population of evaluate's precision): confirmed_fraud when it detects an incident its rule is
credited with (posaudit.evaluate.detecting, credited_scenarios), false_positive otherwise;
then round(m x findings) of them, drawn at random with --seed, get the other decision.

Example:
    python scripts/oracle_analyst.py --db data/w.duckdb --mistakes 0.05 --seed 1 \\
        --out decisions.csv
    posaudit review import decisions.csv --db data/w.duckdb
    posaudit evaluate --db data/w.duckdb --labels reviews
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

from posaudit.atomic import written_file
from posaudit.evaluate import ACCUSING, credited_scenarios, detecting
from posaudit.store import Store

TRUE_DECISION = "confirmed_fraud"
FALSE_DECISION = "false_positive"


def oracle_decisions(
    findings: pl.DataFrame, ground_truth: pl.DataFrame, *, mistakes: float, seed: int
) -> pl.DataFrame:
    """finding_id, decision and note for every finding above 'info', in finding_id order."""
    accusing = findings.filter(ACCUSING).sort("finding_id")
    hits = detecting(accusing.lazy(), ground_truth.lazy(), credited_scenarios()).collect()
    decided = (
        accusing.select("finding_id")
        .join(hits.with_columns(pl.lit(True).alias("detects")), on="finding_id", how="left")
        .with_columns(pl.col("detects").fill_null(False))
    )
    wrong = np.zeros(decided.height, dtype=bool)
    count = round(mistakes * decided.height)
    wrong[np.random.default_rng(seed).choice(decided.height, size=count, replace=False)] = True
    decided = decided.with_columns(pl.Series("mistake", wrong))
    says_true = pl.col("detects") != pl.col("mistake")
    return decided.select(
        "finding_id",
        pl.when(says_true)
        .then(pl.lit(TRUE_DECISION))
        .otherwise(pl.lit(FALSE_DECISION))
        .alias("decision"),
        pl.when(pl.col("mistake"))
        .then(pl.lit("oracle analyst: a deliberate mistake"))
        .otherwise(pl.lit("oracle analyst: as the ground truth says"))
        .alias("note"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a simulated, audited store")
    parser.add_argument("--mistakes", type=float, default=0.05, help="share decided wrongly")
    parser.add_argument("--seed", type=int, default=1, help="which findings are mistaken")
    parser.add_argument("--out", type=Path, required=True, help="the CSV of decisions")
    args = parser.parse_args(argv)
    if not 0 <= args.mistakes <= 1:
        parser.error(f"--mistakes is a share between 0 and 1, got {args.mistakes}")
    store = Store.open(args.db, read_only=True)
    try:
        runs = store.query(
            "SELECT run_id FROM pipeline_runs WHERE status = 'succeeded' "
            "ORDER BY started_at DESC, run_id DESC LIMIT 1"
        )
        if not runs:
            parser.error(f"{args.db} has no successful run: run `posaudit run` first")
        ground_truth = store.read("ground_truth")
        if ground_truth.is_empty():
            parser.error(f"{args.db} holds no ground truth: the oracle needs a simulated world")
        findings = store.read("findings", where=f"run_id = '{runs[0][0]}'")
    finally:
        store.close()
    decisions = oracle_decisions(findings, ground_truth, mistakes=args.mistakes, seed=args.seed)
    with written_file(args.out) as part:
        decisions.write_csv(part)
    flipped = decisions.filter(pl.col("note").str.contains("mistake")).height
    print(f"{args.out}: {decisions.height} decisions, {flipped} of them mistaken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
