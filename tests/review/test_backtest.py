"""`posaudit backtest`: the findings another policy would gain or lose, with their decisions.

The replay is checked against real runs: the store's runs with each policy, on copies, give
the findings the backtest must find gained and lost; decisions recorded with the review
commands must be counted where their findings land; and the store must not change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.detect.policy import Policy, load_policy
from posaudit.review import assign, decide
from posaudit.run.backtest import policy_comparison
from posaudit.run.local import run_pipeline
from posaudit.store import Store
from tests.review.conftest import cli

# One threshold loosened (more refund bursts), one tightened (PINs stale later: other
# findings, with other window starts); both change findings in the review world.
NEW_POLICY = """\
[rules.refund_bursts]
min_refunds = 3

[rules.stale_pins]
max_age_days = 150
"""
TRUE, FALSE = ("confirmed_fraud", "policy_breach"), ("false_positive", "benign_explained")


def open_findings(path: Path) -> dict[str, str]:
    """The store's open findings: after a full run, that run's findings (id -> rule)."""
    store = Store.open(path, read_only=True)
    try:
        rows = store.query("SELECT finding_id, rule FROM findings WHERE status = 'open'")
    finally:
        store.close()
    return {str(f): str(r) for f, r in rows}


def run_with(path: Path, policy: Policy) -> None:
    store = Store.open(path)
    try:
        run_pipeline(store, policy, full=True)
    finally:
        store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Trial:
    """The review world's findings under each policy, by runs, and a store with decisions."""

    policy: Path
    current: dict[str, str]
    new: dict[str, str]
    tried: Path  # the new policy's run last
    reviewed: Path  # the new policy tried, decisions recorded, then the default run again
    decisions: dict[str, str | None]


@pytest.fixture(scope="module")
def trial(audited_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Trial:
    folder = tmp_path_factory.mktemp("backtest")
    policy = folder / "new.toml"
    policy.write_text(NEW_POLICY, encoding="utf-8")
    current = open_findings(audited_world)
    tried = Path(shutil.copyfile(audited_world, folder / "tried.duckdb"))
    run_with(tried, load_policy(policy))
    new = open_findings(tried)
    gained = sorted(set(new) - set(current))
    lost = sorted(set(current) - set(new))
    kept = sorted(set(current) & set(new))
    assert {new[f] for f in gained} == {"refund_bursts", "stale_pins"}
    assert {current[f] for f in lost} == {"stale_pins"}
    reviewed = Path(shutil.copyfile(tried, folder / "reviewed.duckdb"))
    decisions: dict[str, str | None] = {
        gained[0]: "confirmed_fraud",
        gained[-1]: "false_positive",
        lost[0]: "policy_breach",  # decided false first, below: the latest review counts
        lost[-1]: "benign_explained",
        kept[0]: "confirmed_fraud",
        kept[-1]: None,  # assigned, not decided
    }
    decide(reviewed, lost[0], decision="false_positive", analyst="ana")
    for finding_id, decision in decisions.items():
        if decision is None:
            assign(reviewed, finding_id, assignee="wang.li", analyst="ana")
        else:
            decide(reviewed, finding_id, decision=decision, analyst="ana")
    # the default policy is the store's current one again, and the tried findings resolved
    run_with(reviewed, load_policy())
    assert open_findings(reviewed) == current
    return Trial(policy, current, new, tried, reviewed, decisions)


def expected_rows(trial: Trial) -> dict[str, dict[str, dict[str, int]]]:
    """Per rule: each group's findings and decisions, from the runs' findings."""
    current, new = set(trial.current), set(trial.new)
    groups = {"current": current, "new": new, "gained": new - current, "lost": current - new}
    rule_of = trial.current | trial.new
    expected: dict[str, dict[str, dict[str, int]]] = {}
    for group, ids in groups.items():
        for finding_id in ids:
            counts = expected.setdefault(rule_of[finding_id], {}).setdefault(group, Counter())
            decision = trial.decisions.get(finding_id)
            side = "true" if decision in TRUE else "false" if decision in FALSE else None
            counts["findings"] += 1
            counts[f"decided_{side}" if side else "undecided"] += 1
    return expected


def backtest_json(store: Path, policy: Path, *extra: str) -> dict[str, object]:
    result = cli("backtest", "--db", str(store), "--policy", str(policy), "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_gained_and_lost_are_what_runs_of_each_policy_find(trial: Trial) -> None:
    before = digest(trial.reviewed)
    files = sorted(trial.reviewed.parent.iterdir())
    document = backtest_json(trial.reviewed, trial.policy)
    # read-only: the store byte for byte as it was, no lock file nor log beside it
    assert digest(trial.reviewed) == before
    assert sorted(trial.reviewed.parent.iterdir()) == files
    assert document["current_policy"]["run_id"] == "run-00003"  # type: ignore[index]
    assert document["new_policy"]["policy_hash"] == load_policy(trial.policy).hash  # type: ignore[index]
    expected = expected_rows(trial)
    rows = {row["rule"]: row for row in document["rules"]}  # type: ignore[attr-defined]
    for rule, row in rows.items():
        for group in ("current", "new", "gained", "lost"):
            want = expected.get(rule, {}).get(group, Counter())
            got = {k: row[group][k] for k in ("findings", "decided_true", "decided_false")}
            assert got == {k: want[k] for k in got}, (rule, group)
            assert row[group]["undecided"] == want["undecided"], (rule, group)
        assert row["kept"] == row["current"]["findings"] - row["lost"]["findings"]
    assert set(expected) <= set(rows)
    total = document["total"]
    assert total["gained"]["findings"] == len(set(trial.new) - set(trial.current))  # type: ignore[index]
    assert total["lost"]["findings"] == len(set(trial.current) - set(trial.new))  # type: ignore[index]
    # every decision lands once in each policy's findings that hold its finding
    assert total["gained"]["decided_true"] == 1 and total["gained"]["decided_false"] == 1  # type: ignore[index]
    assert total["lost"]["decided_true"] == 1 and total["lost"]["decided_false"] == 1  # type: ignore[index]
    assert total["current"]["precision"] == pytest.approx(2 / 3)  # type: ignore[index]
    assert total["new"]["precision"] == pytest.approx(2 / 3)  # type: ignore[index]


def test_only_the_rules_asked_for(trial: Trial) -> None:
    document = backtest_json(trial.reviewed, trial.policy, "--rule", "stale_pins")
    (row,) = document["rules"]  # type: ignore[misc]
    assert row["rule"] == "stale_pins"
    assert document["total"] | {"rule": "stale_pins"} == row  # type: ignore[operator]
    lost = {f for f, r in trial.current.items() if f not in trial.new}
    assert row["lost"]["findings"] == len(lost)


def test_the_current_policy_is_the_latest_runs(trial: Trial) -> None:
    # the store's latest run used the new policy: replaying it against itself changes nothing
    document = backtest_json(trial.tried, trial.policy, "--rule", "stale_pins")
    (row,) = document["rules"]  # type: ignore[misc]
    assert document["current_policy"]["run_id"] == "run-00002"  # type: ignore[index]
    assert row["gained"]["findings"] == row["lost"]["findings"] == 0
    assert row["current"]["findings"] == sum(r == "stale_pins" for r in trial.new.values())


def test_the_tables_name_every_rule_and_the_decisions(trial: Trial) -> None:
    result = cli("backtest", "--db", str(trial.reviewed), "--policy", str(trial.policy))
    assert result.returncode == 0, result.stderr
    for words in ("run-00003's policy", "refunds_after_suspicious_login", "total", "precision"):
        assert words in result.stdout, words
    stale = next(line for line in result.stdout.splitlines() if "stale_pins" in line)
    lost = len(set(trial.current) - set(trial.new))
    assert f"{lost:,}" in stale.split()


def test_a_store_without_the_review_trail_is_all_undecided(trial: Trial, tmp_path: Path) -> None:
    old = Path(shutil.copyfile(trial.reviewed, tmp_path / "old.duckdb"))
    con = duckdb.connect(str(old))
    con.execute("DROP TABLE finding_reviews")
    con.close()
    total = backtest_json(old, trial.policy)["total"]
    for group in ("current", "new", "gained", "lost"):
        assert total[group]["undecided"] == total[group]["findings"], group  # type: ignore[index]
        assert total[group].get("precision") is None  # type: ignore[index]
    result = cli("backtest", "--db", str(old), "--policy", str(trial.policy))
    assert "no finding of either policy has a decision yet" in result.stdout


@pytest.mark.parametrize(
    ("policy_text", "message"),
    [
        (None, "policy file {policy} does not exist"),
        ("[rules.refund_bursts\n", "{policy} is not valid TOML"),
        ("[rules.refund_storms]\nmin_refunds = 3\n", "{policy}: unknown key 'rules.refund_storms'"),
        (
            "[rules.refund_bursts]\nmin_refunds = 0\n",
            "{policy}: 'rules.refund_bursts.min_refunds' must be positive (got 0)",
        ),
    ],
)
def test_a_bad_policy_file_is_one_line_and_exit_2(
    world: Path, tmp_path: Path, policy_text: str | None, message: str
) -> None:
    policy = tmp_path / "p.toml"
    if policy_text is not None:
        policy.write_text(policy_text, encoding="utf-8")
    before = digest(world)
    result = cli("backtest", "--db", str(world), "--policy", str(policy))
    assert result.returncode == 2 and not result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"posaudit: error: {message.format(policy=policy)}")
    assert digest(world) == before


def test_an_unknown_rule_is_one_line_and_exit_2(trial: Trial) -> None:
    result = cli("backtest", "--db", str(trial.reviewed), "--policy", str(trial.policy), "--rule",
                 "stale_pins", "--rule", "refund_storms")  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("posaudit: error: unknown rule 'refund_storms': the rules are ")
    assert "stale_pins" in line and not result.stdout


def test_a_store_without_events_is_one_line_and_exit_2(trial: Trial, world: Path) -> None:
    con = duckdb.connect(str(world))
    con.execute("DELETE FROM transactions")
    con.close()
    result = cli("backtest", "--db", str(world), "--policy", str(trial.policy))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"posaudit: error: {world} holds no transactions: simulate or load data before running "
        "the audit"
    ]


def test_a_store_being_written_is_exit_3(trial: Trial, world: Path) -> None:
    writer = Store.open(world, purpose="run")
    try:
        result = cli("backtest", "--db", str(world), "--policy", str(trial.policy))
    finally:
        writer.close()
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"posaudit: error: {world} is in use by another posaudit process (the store is locked)"
    ]


def test_the_comparison_counts_severity_changes_and_precision() -> None:
    def findings(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=["finding_id", "rule", "severity"], orient="row")

    current = findings([("a", "x", "low"), ("b", "x", "high"), ("c", "y", "medium")])
    new = findings([("a", "x", "high"), ("b", "x", "low"), ("d", "y", "low")])
    decisions = pl.DataFrame(
        {
            "finding_id": ["a", "b", "c", "d", "e"],
            # e: a finding neither policy reports
            "decision": [
                "confirmed_fraud",
                "benign_explained",
                "false_positive",
                None,
                "policy_breach",
            ],
        }
    )
    table = policy_comparison(current, new, decisions, rules=["x", "y", "z"])
    rows = {row["rule"]: row for row in table.to_dicts()}
    assert list(rows) == ["x", "y", "z", "total"]
    x, y, z, total = rows["x"], rows["y"], rows["z"], rows["total"]
    assert (x["kept"], x["severity_raised"], x["severity_lowered"]) == (2, 1, 1)
    assert x["current_precision"] == x["new_precision"] == 0.5
    assert (y["gained_findings"], y["gained_undecided"]) == (1, 1)
    assert (y["lost_findings"], y["lost_decided_false"]) == (1, 1)
    assert y["current_precision"] == 0.0 and y["new_precision"] is None
    assert z["current_findings"] == z["new_findings"] == 0 and z["current_precision"] is None
    assert total["current_findings"] == 3 and total["new_findings"] == 3
    assert total["current_precision"] == pytest.approx(1 / 3)


def test_a_current_policy_this_posaudit_cannot_read_is_one_line_and_exit_2(
    trial: Trial, world: Path
) -> None:
    con = duckdb.connect(str(world))
    con.execute("UPDATE pipeline_runs SET policy_toml = '[rules.refund_storms]\nmin_refunds = 3\n'")
    con.close()
    result = cli("backtest", "--db", str(world), "--policy", str(trial.policy))
    assert result.returncode == 2 and not result.stdout
    assert result.stderr.strip().splitlines() == [
        "posaudit: error: the policy of run-00001 (pipeline_runs): unknown key "
        "'rules.refund_storms'"
    ]
