"""The oracle analyst: decisions taken from the ground truth, with a share of mistakes, give
`evaluate --labels reviews` the precision `evaluate` finds against the ground truth, within
the share of mistakes (exactly, without mistakes)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from posaudit.store import Store
from tests.review.conftest import cli

ORACLE = Path(__file__).resolve().parents[2] / "scripts" / "oracle_analyst.py"
# Rules with fewer findings than this are left out of the comparison with mistakes: one
# mistaken finding among 5 moves precision by 0.2, which says nothing about the labels.
ENOUGH_FINDINGS = 20


def mistaken_share_bound(n: int, mistakes: float, *, chance: float = 0.001) -> float:
    """The share of a rule's n findings that the oracle gets wrong, exceeded with a chance
    below ``chance``.

    Each mistaken finding moves its rule's precision by 1/n, so |difference| <= mistaken / n.
    The oracle draws its mistakes among all findings without replacement, so a rule's count
    of them is hypergeometric, less spread than Binomial(n, m): the binomial's upper quantile
    bounds it. For n = 25 and m = 0.05 it is 0.24 (a mean of 1.25 mistakes, 6 allowed); for
    n = 138, 0.116 (6.9 mistakes, 16 allowed). A correct count fails a rule with a chance
    below 1 in 1,000.
    """
    tail, allowed = 1.0, 0
    while True:
        tail -= math.comb(n, allowed) * mistakes**allowed * (1 - mistakes) ** (n - allowed)
        if tail <= chance:
            return allowed / n
        allowed += 1


def with_a_third_of_the_incidents_unlabelled(world: Path) -> Path:
    """The world with every third incident's label gone: the findings that detected only those
    are false positives to the ground truth, so its precision is below 1 for several rules (in
    the simulated world every finding above 'info' detects an incident) and a count of decided
    true that ignored the decisions would not pass."""
    store = Store.open(world)
    try:
        store.execute(
            "DELETE FROM ground_truth WHERE incident_id IN (SELECT incident_id FROM ("
            "SELECT incident_id, row_number() OVER (ORDER BY incident_id) AS n FROM ground_truth"
            ") WHERE n % 3 = 0)"
        )
    finally:
        store.close()
    return world


def oracle(world: Path, out: Path, *, mistakes: float, seed: int) -> str:
    done = subprocess.run(
        [
            sys.executable,
            str(ORACLE),
            "--db",
            str(world),
            "--mistakes",
            str(mistakes),
            "--seed",
            str(seed),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def precisions(world: Path, *labels: str) -> dict[str, dict[str, float]]:
    done = cli("evaluate", "--json", "--db", str(world), *labels)
    assert done.returncode == 0, done.stderr
    return {row["rule"]: row for row in json.loads(done.stdout)["precision"]}


def imported(world: Path, decisions: Path) -> None:
    done = cli("review", "import", str(decisions), "--db", str(world), analyst="oracle")
    assert done.returncode == 0, done.stderr
    verified = cli("review", "verify", "--db", str(world))
    assert verified.returncode == 0, verified.stderr


@pytest.mark.parametrize("seed", [1, 2])
def test_precision_from_an_oracles_decisions_is_within_its_mistakes(
    world: Path, tmp_path: Path, seed: int
) -> None:
    mistakes = 0.05
    world = with_a_third_of_the_incidents_unlabelled(world)
    decisions = tmp_path / "decisions.csv"
    said = oracle(world, decisions, mistakes=mistakes, seed=seed)
    truth = precisions(world)
    assert any(row["precision"] < 0.9 for row in truth.values())
    findings = sum(int(row["findings"]) for row in truth.values())
    assert f"{findings} decisions, {round(mistakes * findings)} of them mistaken" in said
    imported(world, decisions)
    reviewed = precisions(world, "--labels", "reviews")
    assert set(reviewed) == set(truth)
    # each rule's decided true: its true positives, less the mistaken confirmations, plus the
    # mistaken false positives (the oracle's notes name its mistakes)
    mistaken = pl.read_csv(decisions).filter(pl.col("note").str.contains("mistake"))
    store = Store.open(world, read_only=True)
    try:
        rule_of = dict(store.query("SELECT finding_id, rule FROM findings"))
    finally:
        store.close()
    for rule, row in truth.items():
        wrong = mistaken.filter(
            pl.col("finding_id").replace_strict(rule_of, return_dtype=pl.String) == rule
        )
        said_true = wrong.filter(pl.col("decision") == "confirmed_fraud").height
        said_false = wrong.height - said_true
        assert reviewed[rule]["decided_true"] == row["true_positives"] - said_false + said_true
    compared = 0
    for rule, row in truth.items():
        n = int(row["findings"])
        assert reviewed[rule]["findings"] == n
        assert reviewed[rule]["decided"] == n
        assert reviewed[rule]["undecided_share"] == 0.0
        if n < ENOUGH_FINDINGS:
            continue
        allowance = mistaken_share_bound(n, mistakes) - mistakes
        difference = abs(reviewed[rule]["precision"] - row["precision"])
        assert difference <= mistakes + allowance, (rule, n, difference)
        compared += 1
    assert compared >= 2  # the world has rules with enough findings to compare


def test_without_mistakes_the_precisions_agree_exactly(world: Path, tmp_path: Path) -> None:
    world = with_a_third_of_the_incidents_unlabelled(world)
    decisions = tmp_path / "decisions.csv"
    oracle(world, decisions, mistakes=0.0, seed=1)
    imported(world, decisions)
    truth = precisions(world)
    reviewed = precisions(world, "--labels", "reviews")
    assert {r: row["precision"] for r, row in reviewed.items()} == {
        r: row["precision"] for r, row in truth.items()
    }
    assert {r: row["decided_true"] for r, row in reviewed.items()} == {
        r: row["true_positives"] for r, row in truth.items()
    }


def test_the_oracles_mistakes_are_seeded(audited_world: Path, tmp_path: Path) -> None:
    first, again, other = (tmp_path / f"{name}.csv" for name in ("first", "again", "other"))
    world = Path(shutil.copyfile(audited_world, tmp_path / "w.duckdb"))
    oracle(world, first, mistakes=0.05, seed=4)
    oracle(world, again, mistakes=0.05, seed=4)
    oracle(world, other, mistakes=0.05, seed=5)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()
