"""The evaluation rule of DESIGN.md on literal frames."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from posaudit.detect.policy import load_policy
from posaudit.evaluate import TOTAL, evaluate, precision_from_reviews, wilson_interval
from posaudit.run.local import run_pipeline
from posaudit.store import Store

T = datetime


def _findings(rows: list[tuple[str, str, str, str, str, datetime, datetime]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        rows,
        schema=[
            "finding_id",
            "rule",
            "severity",
            "entity_type",
            "entity_id",
            "window_start",
            "window_end",
        ],
        orient="row",
    )


def _truth(rows: list[tuple[str, str, str, str, datetime, datetime]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        rows,
        schema=["incident_id", "scenario", "entity_type", "entity_id", "start_ts", "end_ts"],
        orient="row",
    )


OPS = pl.LazyFrame({"operator_id": [f"O{i}" for i in range(2000)]})


def test_overlap_and_entity_decide_a_match() -> None:
    # the hour of both brute-force incidents, and a day inside the lockout incident
    start, end = T(2026, 3, 4, 10), T(2026, 3, 4, 11)
    march_2, march_3 = T(2026, 3, 2), T(2026, 3, 3)
    day = timedelta(days=1)
    truth = _truth(
        [
            ("G1", "pin_brute_force", "operator", "O1", start, end),
            ("G2", "pin_brute_force", "operator", "O2", start, end),
            ("G3", "lockout_not_enforced", "terminal", "T1", T(2026, 3, 1), T(2026, 3, 30)),
        ]
    )
    findings = _findings(
        [
            # touches the incident's end: overlap is inclusive
            ("F1", "pin_brute_force", "high", "operator", "O1", end, T(2026, 3, 4, 12)),
            # right entity, window a day later: no match
            ("F2", "pin_brute_force", "high", "operator", "O2", start + day, end + day),
            # same id but another entity type: no match
            ("F3", "lockout_not_enforced", "high", "operator", "T1", march_2, march_3),
            ("F4", "lockout_not_enforced", "medium", "terminal", "T1", march_2, march_3),
            # info findings are health notes: neither precision nor recall
            ("F5", "network_failure_burst", "info", "operator", "O2", start, end),
        ]
    )
    result = evaluate(findings, truth, OPS)
    recall = dict(result.recall.select("scenario", "recall").iter_rows())
    assert recall == {"lockout_not_enforced": 1.0, "pin_brute_force": 0.5}
    precision = dict(result.precision.select("rule", "precision").iter_rows())
    assert precision == {"lockout_not_enforced": 0.5, "pin_brute_force": 0.5}
    assert "network_failure_burst" not in precision
    # F2 and F3 are unmatched and above 'low'
    assert result.unmatched_above_low == 2
    assert result.unmatched_per_1000_operators == 1.0


def test_a_finding_may_detect_several_incidents_and_an_incident_needs_one_finding() -> None:
    truth = _truth(
        [
            ("G1", "weak_pin", "operator", "O1", T(2026, 1, 1), T(2026, 2, 1)),
            ("G2", "stale_pin", "operator", "O1", T(2026, 1, 15), T(2026, 3, 1)),
        ]
    )
    findings = _findings(
        [("F1", "weak_pins", "medium", "operator", "O1", T(2026, 1, 20), T(2026, 1, 25))]
    )
    result = evaluate(findings, truth, OPS)
    assert result.recall.get_column("recall").to_list() == [1.0, 1.0]
    assert result.precision.get_column("precision").to_list() == [1.0]


def test_a_store_without_labels_says_so_in_one_line(sample_store: Path, tmp_path: Path) -> None:
    """Ingested data has no ground truth: evaluate refuses in one line, exit 2."""
    path = Path(shutil.copy(sample_store, tmp_path / "unlabelled.duckdb"))
    store = Store.open(path)
    try:
        store.execute("DELETE FROM ground_truth")
        run_pipeline(store, load_policy())
    finally:
        store.close()
    done = subprocess.run(
        [sys.executable, "-m", "posaudit", "evaluate", "--db", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"posaudit: error: {path} holds no ground truth (only a simulated world has labels): "
        "nothing to evaluate against\n"
    )


def _reviews(rows: list[tuple[int, str, str | None]]) -> pl.LazyFrame:
    schema = {"review_id": pl.Int64, "finding_id": pl.String, "decision": pl.String}
    return pl.LazyFrame(rows, schema=schema, orient="row")


@pytest.mark.parametrize(
    ("true", "decided", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # Statistics in Medicine 17:857-872, Table I, method 3 (the Wilson score interval);
        # scipy.stats.binomtest(k, n).proportion_ci(method="wilson") gives the same
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # all decided true: the interval still reaches below 1
        (10, 10, 0.7225, 1.0),
    ],
)
def test_the_wilson_interval_on_known_numbers(
    true: int, decided: int, low: float, high: float
) -> None:
    frame = pl.DataFrame({"true": [true], "decided": [decided]})
    bounds = frame.select(wilson_interval(pl.col("true"), pl.col("decided")))
    assert bounds.row(0) == pytest.approx((low, high), abs=5e-5)


def test_the_wilson_interval_of_no_decisions_is_null() -> None:
    frame = pl.DataFrame({"true": [0], "decided": [0]})
    assert frame.select(wilson_interval(pl.col("true"), pl.col("decided"))).row(0) == (None, None)


def test_precision_from_reviews_counts_each_findings_latest_decision() -> None:
    day = (T(2026, 3, 1), T(2026, 3, 2))
    findings = _findings(
        [
            ("F1", "weak_pins", "medium", "operator", "O1", *day),
            ("F2", "weak_pins", "medium", "operator", "O2", *day),
            ("F3", "weak_pins", "low", "operator", "O3", *day),
            ("F4", "weak_pins", "high", "operator", "O4", *day),
            ("F5", "refunds_over_sale", "high", "operator", "O5", *day),
            # a health note: not in precision's population, its decision does not count
            ("F6", "network_failure_burst", "info", "terminal", "T1", *day),
        ]
    )
    reviews = _reviews(
        [
            (1, "F1", "false_positive"),
            (2, "F2", "confirmed_fraud"),
            (3, "F1", "policy_breach"),  # decided again: the later decision is current
            (4, "F3", "benign_explained"),
            (5, "F4", None),  # assigned, not decided
            (6, "F6", "false_positive"),
            (7, "F5", "false_positive"),
        ]
    )
    result = precision_from_reviews(findings, reviews).collect()
    rows = {row.pop("rule"): row for row in result.iter_rows(named=True)}
    assert list(rows) == ["refunds_over_sale", "weak_pins", TOTAL]
    weak = rows["weak_pins"]
    assert (weak["findings"], weak["decided"], weak["decided_true"], weak["decided_false"]) == (
        4,
        3,
        2,
        1,
    )
    assert weak["undecided_share"] == 0.25
    assert weak["precision"] == pytest.approx(2 / 3)
    assert (weak["precision_low"], weak["precision_high"]) == pytest.approx(
        (0.2077, 0.9385), abs=5e-5
    )
    assert rows["refunds_over_sale"]["precision"] == 0.0
    total = rows[TOTAL]
    assert (total["findings"], total["decided"], total["decided_true"]) == (5, 4, 2)
    assert total["precision"] == 0.5


def test_a_rule_without_decisions_has_no_precision() -> None:
    day = (T(2026, 3, 1), T(2026, 3, 2))
    findings = _findings([("F1", "weak_pins", "medium", "operator", "O1", *day)])
    result = precision_from_reviews(findings, _reviews([])).collect()
    row = result.row(0, named=True)
    assert (row["decided"], row["undecided_share"], row["precision"]) == (0, 1.0, None)
    assert (row["precision_low"], row["precision_high"]) == (None, None)
