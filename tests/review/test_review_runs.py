"""Runs and reviews together: decisions survive runs, grown evidence reopens, snoozes keep
findings out of the alert, cases decide many findings at once, and queued decisions land."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from posaudit.detect.policy import load_policy
from posaudit.review import case_trail, snooze
from posaudit.review.pending import pending_requests, queue_folder
from posaudit.run.local import run_pipeline
from posaudit.store import Store
from tests.conftest import build_store
from tests.review.conftest import cli
from tests.test_bad_input import refused


def run_line(world: Path, *args: str) -> dict[str, object]:
    done = cli("run", "--db", str(world), "--json", *args)
    assert done.returncode in (0, 4), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def reviews_of(world: Path, target: str) -> list[dict[str, object]]:
    done = cli("review", "show", target, "--db", str(world), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["reviews"]


def one_finding(world: Path, rule: str) -> dict[str, object]:
    store = Store.open(world, read_only=True)
    try:
        found = store.frame(
            "SELECT * FROM findings WHERE rule = $rule ORDER BY finding_id LIMIT 1", {"rule": rule}
        ).to_dicts()
    finally:
        store.close()
    assert found, rule
    return found[0]


def decide(world: Path, target: str, decision: str, *extra: str) -> str:
    done = cli("review", "decide", target, "--decision", decision, "--db", str(world), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_dismissed_finding_stays_closed_through_full_and_incremental_runs(world: Path) -> None:
    finding = one_finding(world, "refund_bursts")
    decide(world, str(finding["finding_id"]), "false_positive", "--note", "a wedding deposit")
    for args in (("--full",), ()):
        line = run_line(world, *args)
        assert line["new"] == 0
        assert line["dismissed"] == 1 and line["reopened_by_evidence"] == 0
    (only,) = reviews_of(world, str(finding["finding_id"]))
    assert only["decision"] == "false_positive" and only["status"] == "closed"
    assert only["evidence_events"] == json.loads(str(finding["evidence"]))["refunds"]


def test_a_dismissed_finding_whose_evidence_grows_is_reopened_and_says_why(world: Path) -> None:
    finding = one_finding(world, "pin_brute_force")
    evidence = json.loads(str(finding["evidence"]))
    decide(world, str(finding["finding_id"]), "benign_explained", "--note", "staff training")
    # two more wrong PINs inside the finding's window, as a late file would bring them
    terminal, number = evidence["terminal_id"], evidence["operator_no"]
    con = duckdb.connect(str(world))
    try:
        for n in (1, 2):
            con.execute(
                "INSERT INTO login_events VALUES (?, ?, ?, ?, ?, 'wrong_pin')",
                [
                    f"LATE{n}",
                    finding["window_start"] + timedelta(seconds=n),
                    terminal,
                    number,
                    f"{terminal}-{number}",
                ],
            )
    finally:
        con.close()
    line = run_line(world, "--full")
    assert line["reopened_by_evidence"] == 1 and line["dismissed"] == 0
    decided, reopened = reviews_of(world, str(finding["finding_id"]))
    assert reopened["analyst"] == "posaudit" and reopened["status"] == "open"
    assert reopened["decision"] is None
    before = decided["evidence_events"]
    assert reopened["evidence_events"] > before
    assert f"grew from {before} to {reopened['evidence_events']} events" in reopened["note"]
    assert f"since review {decided['review_id']} closed it as benign_explained" in reopened["note"]
    # reopened once: the next run, with nothing more, leaves it as it is
    line = run_line(world)
    assert line["reopened_by_evidence"] == 0
    assert len(reviews_of(world, str(finding["finding_id"]))) == 2
    assert cli("review", "verify", "--db", str(world)).returncode == 0


def test_a_case_is_decided_assigned_and_reopened_as_one(world: Path) -> None:
    store = Store.open(world, read_only=True)
    try:
        (case_id,) = store.query(
            "SELECT 'case-' || CAST(entity_type AS VARCHAR) || '-' || entity_id FROM findings "
            "GROUP BY ALL HAVING count(*) >= 3 ORDER BY count(*) DESC, 1 LIMIT 1"
        )[0]
        members = case_trail(store, case_id).findings["finding_id"].to_list()
    finally:
        store.close()
    alone = members[0]
    decide(world, alone, "confirmed_fraud", "--note", "decided on its own")
    assigned = cli("review", "assign", case_id, "--to", "bo", "--db", str(world))
    assert assigned.returncode == 0, assigned.stderr
    said = decide(world, case_id, "false_positive", "--note", "the hotel's deposits")
    assert f"case {case_id} closed as false_positive" in said
    assert f"and {len(members) - 1} of the case's findings with it" in said
    shown = json.loads(cli("review", "show", case_id, "--db", str(world), "--json").stdout)
    decisions = {f["finding_id"]: f["decision"] for f in shown["findings"]}
    assert decisions.pop(alone) == "confirmed_fraud"  # its own decision kept
    assert set(decisions.values()) == {"false_positive"}
    assert [r["status"] for r in shown["reviews"]] == ["in_review", "closed"]
    reopened = cli("review", "reopen", case_id, "--note", "new refunds", "--db", str(world))
    assert reopened.returncode == 0, reopened.stderr
    shown = json.loads(cli("review", "show", case_id, "--db", str(world), "--json").stdout)
    states = {f["finding_id"]: (f["review_status"], f["decision"]) for f in shown["findings"]}
    assert states.pop(alone) == ("closed", "confirmed_fraud")
    assert set(states.values()) == {("open", None)}
    cases = json.loads(cli("review", "list", "--cases", "--json", "--db", str(world)).stdout)
    (row,) = [c for c in cases if c["case_id"] == case_id]
    assert row["status"] == "open" and row["undecided"] == len(members) - 1
    assert cli("review", "verify", "--db", str(world)).returncode == 0


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--days", "30"], "a snooze needs a reason"),
        (["--days", "181", "--reason", "x"], "a snooze lasts at most 180 days"),
        (["--until", "2020-01-01", "--reason", "x"], "a snooze must end after now"),
        (["--reason", "x"], "a snooze needs its end"),
        (["--days", "3", "--reason", "x", "--rule", "nope"], "unknown rule 'nope'"),
        (["--lift", "--reason", "x"], "no snooze in force"),
    ],
)
def test_a_bad_snooze_is_one_line_and_nothing_written(
    world: Path, finding_ids: list[str], args: list[str], problem: str
) -> None:
    before = world.read_bytes()
    refused(cli("review", "snooze", finding_ids[0], "--db", str(world), *args), problem)
    assert world.read_bytes() == before


def test_an_unknown_case_is_refused(world: Path) -> None:
    refused(
        cli(
            "review",
            "decide",
            "case-operator-NOPE",
            "--decision",
            "false_positive",
            "--db",
            str(world),
        ),
        "unknown case 'case-operator-NOPE': no finding",
    )
    refused(
        cli("review", "snooze", "case-robot-1", "--days", "3", "--reason", "x", "--db", str(world)),
        "unknown case 'case-robot-1'",
    )


def test_a_snoozed_rule_is_recorded_but_not_alerted(tmp_path: Path, audited_world: Path) -> None:
    """A rule switched on for the first time reports new findings; the entity whose findings
    of that rule an analyst snoozed is recorded and listed, but no part of the alert."""
    rule = "pin_brute_force"
    target = one_finding(audited_world, rule)
    entity = (str(target["entity_type"]), str(target["entity_id"]))
    # the same world as the audited one, audited first without the rule, then with it
    world, fresh = tmp_path / "w.duckdb", tmp_path / "fresh.duckdb"
    build_store(world, merchants=10, days=5, seed=3)
    shutil.copyfile(world, fresh)
    off = tmp_path / "off.toml"
    off.write_text(f"[rules.{rule}]\nenabled = false\n", encoding="utf-8")
    store = Store.open(world)
    try:
        run_pipeline(store, load_policy(off))
        others = store.query(
            "SELECT count(*) FROM findings "
            "WHERE CAST(entity_type AS VARCHAR) = ? AND entity_id = ?",
            list(entity),
        )[0][0]
    finally:
        store.close()
    if not others:
        pytest.skip("the entity has no finding of another rule to hold its case")
    case_id = f"case-{entity[0]}-{entity[1]}"
    made = snooze(world, case_id, rule=rule, days=30, reason="router replaced", analyst="ana")
    assert made.rule == rule and made.entity_id == entity[1]
    line = run_line(world, "--fail-on", "info")
    # the same run without the snooze, on a copy audited the same way
    store = Store.open(fresh)
    try:
        run_pipeline(store, load_policy(off))
    finally:
        store.close()
    plain = run_line(fresh, "--fail-on", "info")
    snoozed_new = plain["new"] - line["new"] + line["snoozed"]
    assert line["new"] == plain["new"] and line["snoozed"] >= 1 and snoozed_new == plain["new"]
    assert (
        sum(line["new_by_severity"].values())
        == sum(plain["new_by_severity"].values()) - line["snoozed"]
    )
    queue = json.loads(
        cli("review", "list", "--json", "--case", case_id, "--db", str(world)).stdout
    )
    assert any(r["snoozed"] and r["rule"] == rule for r in queue)
    assert not any(r["snoozed"] and r["rule"] != rule for r in queue)
    lifted = cli(
        "review",
        "snooze",
        case_id,
        "--rule",
        rule,
        "--lift",
        "--reason",
        "done",
        "--db",
        str(world),
    )
    assert lifted.returncode == 0, lifted.stderr
    queue = json.loads(
        cli("review", "list", "--json", "--case", case_id, "--db", str(world)).stdout
    )
    assert not any(r["snoozed"] for r in queue)
    verified = cli("review", "verify", "--db", str(world))
    assert "the snooze trail is whole: 2 snoozes" in verified.stdout, verified.stdout
    con = duckdb.connect(str(world))
    try:
        con.execute("UPDATE review_snoozes SET reason = 'because' WHERE snooze_id = 1")
    finally:
        con.close()
    refused(cli("review", "verify", "--db", str(world)), "snooze 1 breaks the chain")


def test_decisions_queued_while_a_run_holds_the_store_land_with_it(
    world: Path, finding_ids: list[str]
) -> None:
    holder = Store.open(world, purpose="run")
    try:
        for finding in finding_ids[:2]:
            said = decide(world, finding, "policy_breach")
            assert said.startswith("queued, not yet recorded")
        refused(
            cli(
                "review",
                "snooze",
                finding_ids[0],
                "--days",
                "3",
                "--reason",
                "x",
                "--db",
                str(world),
            ),
            "locked",
            code=3,
        )
    finally:
        holder.close()
    # a kill after the commit and before the files are removed: the file of an applied
    # decision still there must not apply twice
    kept = [p.read_bytes() for p in sorted(queue_folder(world).glob("*.json"))]
    line = run_line(world)
    assert line["queued_reviews_applied"] == 2
    assert pending_requests(world) == []
    for n, body in enumerate(kept):
        (queue_folder(world) / f"again-{n}.json").write_bytes(body)
    line = run_line(world)
    assert line["queued_reviews_applied"] == 2  # found in the trail: removed, not applied again
    for finding in finding_ids[:2]:
        (only,) = reviews_of(world, finding)
        assert only["decision"] == "policy_breach" and only["request_id"]
    assert pending_requests(world) == []


def test_a_queued_decision_on_a_finding_gone_is_set_aside_with_the_reason(
    world: Path, finding_ids: list[str]
) -> None:
    holder = Store.open(world, purpose="run")
    try:
        decide(world, "0" * 20, "policy_breach")
    finally:
        holder.close()
    done = cli("review", "comment", finding_ids[0], "--note", "seen", "--db", str(world))
    assert done.returncode == 0
    assert "could not be applied: unknown finding '00000000000000000000'" in done.stderr
    pending = cli("review", "pending", "--db", str(world)).stdout
    assert "0 queued, 1 not applied" in pending and "unknown finding" in pending
