"""Bad input to the review commands, and a store another writer holds: one line on stderr, the
documented exit code, and nothing written (the store byte for byte as it was, no lock left)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posaudit.review import ReviewError, decide
from posaudit.store import Store
from tests.review.conftest import cli
from tests.test_bad_input import refused

FINDING = "{finding}"  # stands for a finding of the world in the cases below


def reviews_in(world: Path) -> int:
    store = Store.open(world, read_only=True)
    try:
        return int(store.query("SELECT count(*) FROM finding_reviews")[0][0])  # type: ignore[call-overload]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["decide", "0000nosuchfinding000", "--decision", "false_positive"],
            ["unknown finding '0000nosuchfinding000'"],
        ),
        (["assign", "0000nosuchfinding000", "--to", "bo"], ["unknown finding"]),
        (["show", "0000nosuchfinding000"], ["unknown finding"]),
        (
            ["decide", FINDING, "--decision", "fraud"],
            ["unknown decision 'fraud'", "confirmed_fraud, policy_breach"],
        ),
        (
            ["decide", FINDING, "--decision", "false_positive", "--status", "done"],
            ["unknown status 'done'", "open, in_review, closed"],
        ),
        (
            ["decide", FINDING, "--decision", "false_positive", "--note", "ok\x1b[2Jwiped"],
            ["the note holds the control character U+001B"],
        ),
        (
            ["decide", FINDING, "--decision", "false_positive", "--note", b"caf\xe9 latin-1"],
            ["the note is not text", "not UTF-8"],
        ),
        (
            ["decide", FINDING, "--decision", "false_positive", "--note", "x" * 10_001],
            ["the note is 10,001 characters long, past the limit of 10,000"],
        ),
        (["decide", FINDING, "--decision", "false_positive", "--note", " "], ["the note is empty"]),
        (["assign", FINDING, "--to", ""], ["the assignee is empty"]),
        (["assign", FINDING, "--to", "bo\nroot"], ["the assignee holds the control character"]),
        (["list", "--status", "done"], ["unknown status 'done'"]),
        (["list", "--decision", "maybe"], ["unknown decision 'maybe'"]),
        (["list", "--rule", "no_such_rule"], ["unknown rule 'no_such_rule'", "weak_pins"]),
        (["list", "--family", "cards"], ["unknown family 'cards'", "refunds"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    world: Path, finding_ids: list[str], args: list[str | bytes], needles: list[str]
) -> None:
    before = world.read_bytes()
    args = [finding_ids[0] if a == FINDING else a for a in args]
    refused(cli("review", args[0], *args[1:], "--db", str(world)), *needles)
    assert world.read_bytes() == before
    assert sorted(p.name for p in world.parent.iterdir()) == ["audit.duckdb"]


def test_an_analyst_name_that_is_not_one_line_is_refused(
    world: Path, finding_ids: list[str]
) -> None:
    before = world.read_bytes()
    result = cli(
        "review", "assign", finding_ids[0], "--to", "bo", "--db", str(world), analyst="ana\x1b]0;"
    )
    refused(result, "$POSAUDIT_ANALYST holds the control character U+001B")
    assert world.read_bytes() == before


def test_a_note_that_is_not_text_is_refused_by_the_library(
    world: Path, finding_ids: list[str]
) -> None:
    with pytest.raises(ReviewError, match=r"the note is not text \(got bytes\)"):
        decide(world, finding_ids[0], decision="false_positive", note=b"bytes")
    assert reviews_in(world) == 0


def test_a_missing_store_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.duckdb"
    refused(cli("review", "verify", "--db", str(missing)), f"no store at {missing}")
    assert not missing.exists()


def test_a_decision_on_a_held_store_is_queued_then_applied_by_the_next_review(
    world: Path, finding_ids: list[str]
) -> None:
    holder = Store.open(world, purpose="run")  # a run holding the store
    try:
        queued = cli(
            "review", "decide", finding_ids[0], "--decision", "false_positive", "--db", str(world)
        )
        assert queued.returncode == 0, queued.stderr
        assert queued.stdout.startswith("queued, not yet recorded:"), queued.stdout
        assert "(pid" in queued.stdout and "run" in queued.stdout
        # a typo is still refused at once, not queued
        refused(
            cli("review", "decide", finding_ids[0], "--decision", "fraud", "--db", str(world)),
            "unknown decision 'fraud'",
        )
        pending = cli("review", "pending", "--db", str(world))
        assert "1 queued, 0 not applied" in pending.stdout
        assert f"decide {finding_ids[0]}" in pending.stdout
    finally:
        holder.close()
    assert reviews_in(world) == 0
    done = cli("review", "assign", finding_ids[0], "--to", "bo", "--db", str(world))
    assert done.returncode == 0, done.stderr
    assert "applied first 1 review action queued while the store was held" in done.stdout
    assert reviews_in(world) == 2
    shown = json.loads(cli("review", "show", finding_ids[0], "--db", str(world), "--json").stdout)
    first, second = shown["reviews"]
    assert first["decision"] == "false_positive" and first["request_id"]
    assert second["assignee"] == "bo" and second["decision"] == "false_positive"
    assert "0 queued" in cli("review", "pending", "--db", str(world)).stdout
