"""Deciding, assigning, listing and showing reviews through the command line, as analysts do."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from posaudit.store import Store
from tests.review.conftest import cli


def queue(world: Path, *filters: str) -> list[dict[str, object]]:
    result = cli("review", "list", "--db", str(world), "--json", *filters)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def trail(world: Path, finding_id: str) -> list[dict[str, object]]:
    result = cli("review", "show", finding_id, "--db", str(world), "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["finding"]["finding_id"] == finding_id
    return shown["reviews"]


def test_assign_then_decide_moves_a_finding_through_the_queue(
    world: Path, finding_ids: list[str]
) -> None:
    first, second, _ = finding_ids
    before = queue(world)
    assert {row["review_status"] for row in before} == {"open"}
    assert all(row["reviews"] == 0 and row["decision"] is None for row in before)

    assigned = cli("review", "assign", first, "--to", "bo", "--db", str(world), analyst="ana")
    assert assigned.returncode == 0, assigned.stderr
    assert f"review 1: finding {first} in_review, assigned to bo, by ana" in assigned.stdout
    decided = cli(
        "review",
        "decide",
        first,
        "--decision",
        "false_positive",
        "--note",
        "the hotel refunds deposits this way\nsee ticket 12",
        "--db",
        str(world),
        analyst="bo",
    )
    assert decided.returncode == 0, decided.stderr
    assert f"review 2: finding {first} closed as false_positive" in decided.stdout

    closed = queue(world, "--status", "closed")
    assert [row["finding_id"] for row in closed] == [first]
    assert closed[0]["decision"] == "false_positive"
    assert closed[0]["assignee"] == "bo" and closed[0]["analyst"] == "bo"
    assert closed[0]["reviews"] == 2
    in_review = cli("review", "assign", second, "--to", "cy", "--db", str(world))
    assert in_review.returncode == 0, in_review.stderr
    assert [r["finding_id"] for r in queue(world, "--status", "in_review")] == [second]
    undecided = queue(world, "--decision", "undecided")
    assert len(undecided) == len(before) - 1
    assert first not in {row["finding_id"] for row in undecided}
    # open reviews first, then those in review, the closed last
    order = [row["review_status"] for row in queue(world)]
    assert order == sorted(order, key=["open", "in_review", "closed"].index)

    reviews = trail(world, first)
    assert [(r["review_id"], r["analyst"], r["status"], r["decision"]) for r in reviews] == [
        (1, "ana", "in_review", None),
        (2, "bo", "closed", "false_positive"),
    ]
    assert reviews[1]["note"] == "the hotel refunds deposits this way\nsee ticket 12"
    assert reviews[1]["previous_digest"] == reviews[0]["digest"]
    shown = cli("review", "show", first, "--db", str(world))
    assert shown.returncode == 0, shown.stderr
    assert "false_positive" in shown.stdout and "hotel" in shown.stdout


def test_list_filters_by_rule_and_family(world: Path, finding_ids: list[str]) -> None:
    every = queue(world)
    rule = str(every[0]["rule"])
    family = str(every[0]["family"])
    by_rule = queue(world, "--rule", rule)
    by_family = queue(world, "--family", family)
    assert by_rule and {row["rule"] for row in by_rule} == {rule}
    assert len(by_rule) == sum(row["rule"] == rule for row in every)
    assert {row["family"] for row in by_family} == {family}
    assert len(by_family) == sum(row["family"] == family for row in every) < len(every)
    table = cli("review", "list", "--db", str(world), "--rule", rule)
    assert table.returncode == 0, table.stderr
    assert f"{len(by_rule):,} finding" in table.stdout.splitlines()[-1]


def test_two_decisions_on_one_finding_both_stay_and_the_later_is_current(
    world: Path, finding_ids: list[str]
) -> None:
    finding = finding_ids[2]
    for analyst, decision in (("ana", "confirmed_fraud"), ("bo", "benign_explained")):
        done = cli(
            "review",
            "decide",
            finding,
            "--decision",
            decision,
            "--db",
            str(world),
            analyst=analyst,
        )
        assert done.returncode == 0, done.stderr
    reviews = trail(world, finding)
    assert [(r["analyst"], r["decision"]) for r in reviews] == [
        ("ana", "confirmed_fraud"),
        ("bo", "benign_explained"),
    ]
    (current,) = [row for row in queue(world) if row["finding_id"] == finding]
    assert current["decision"] == "benign_explained" and current["analyst"] == "bo"
    assert queue(world, "--decision", "confirmed_fraud") == []
    assert cli("review", "verify", "--db", str(world)).returncode == 0


def test_a_decision_can_leave_a_finding_in_review(world: Path, finding_ids: list[str]) -> None:
    done = cli(
        "review",
        "decide",
        finding_ids[0],
        "--decision",
        "policy_breach",
        "--status",
        "in_review",
        "--db",
        str(world),
    )
    assert done.returncode == 0, done.stderr
    (row,) = queue(world, "--decision", "policy_breach")
    assert row["review_status"] == "in_review"


def test_the_analyst_is_the_os_user_without_posaudit_analyst(
    world: Path, finding_ids: list[str]
) -> None:
    done = cli("review", "assign", finding_ids[0], "--to", "bo", "--db", str(world), analyst=None)
    assert done.returncode == 0, done.stderr
    assert trail(world, finding_ids[0])[0]["analyst"] == getpass.getuser()


def test_a_store_made_before_reviews_lists_them_open_and_gains_the_table_on_first_write(
    world: Path, finding_ids: list[str]
) -> None:
    store = Store.open(world)
    try:
        store.execute("DROP TABLE finding_reviews")
        store.execute("DROP TYPE review_status_t")
        store.execute("DROP TYPE review_decision_t")
        assert not store.has_table("finding_reviews")
    finally:
        store.close()
    assert {row["review_status"] for row in queue(world)} == {"open"}
    assert trail(world, finding_ids[0]) == []
    assert cli("review", "verify", "--db", str(world)).stdout.startswith(
        "the review trail is empty"
    )
    # bad input writes nothing, not even the table
    assert cli("review", "decide", "nope", "--decision", "false_positive", "--db", str(world))
    store = Store.open(world, read_only=True)
    try:
        assert not store.has_table("finding_reviews")
    finally:
        store.close()
    done = cli(
        "review", "decide", finding_ids[0], "--decision", "false_positive", "--db", str(world)
    )
    assert done.returncode == 0, done.stderr
    assert [r["decision"] for r in trail(world, finding_ids[0])] == ["false_positive"]
    assert cli("review", "verify", "--db", str(world)).returncode == 0
