"""The review trail's chain: whole after honest writes, and broken where a row was edited,
deleted or inserted behind posaudit's back, with DuckDB itself."""

from __future__ import annotations

import hashlib
import os
import subprocess
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from posaudit.review.trail import COLUMNS, GENESIS, Review, review_digest, review_of
from tests.review.conftest import POSAUDIT, cli
from tests.test_bad_input import refused


@pytest.fixture
def reviewed(world: Path, finding_ids: list[str]) -> Path:
    """The world with a trail of four reviews."""
    first, second, third = finding_ids
    steps = [
        ("assign", first, "--to", "bo"),
        ("decide", first, "--decision", "false_positive", "--note", "deposits"),
        ("decide", second, "--decision", "confirmed_fraud", "--note", "own card"),
        ("decide", third, "--decision", "policy_breach", "--status", "in_review"),
    ]
    for step in steps:
        done = cli("review", *step, "--db", str(world))
        assert done.returncode == 0, done.stderr
    return world


def tamper(world: Path, sql: str, params: list[object] | None = None) -> None:
    con = duckdb.connect(str(world))
    try:
        con.execute(sql, params or [])
    finally:
        con.close()


def verify(world: Path) -> str:
    return refused(cli("review", "verify", "--db", str(world)))


def test_an_honest_trail_verifies(reviewed: Path) -> None:
    done = cli("review", "verify", "--db", str(reviewed))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and not done.stderr
    assert lines[0].startswith("the review trail is whole: 4 reviews, the last review 4 with")


def test_an_edited_note_breaks_the_chain_at_its_row(reviewed: Path) -> None:
    tamper(reviewed, "UPDATE finding_reviews SET note = 'benign' WHERE review_id = 2")
    assert "review 2 breaks the chain: its fields do not give its digest" in verify(reviewed)


def test_an_edited_digest_breaks_the_chain_at_the_next_row(reviewed: Path) -> None:
    """A row edited with its own digest recomputed: the row after it no longer follows."""
    tamper(reviewed, "UPDATE finding_reviews SET analyst = 'mallory' WHERE review_id = 2")
    con = duckdb.connect(str(reviewed))
    try:
        row = con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM finding_reviews WHERE review_id = 2"
        ).fetchone()
        assert row is not None
        review = review_of(row)
        con.execute(
            "UPDATE finding_reviews SET digest = ? WHERE review_id = 2",
            [review_digest(review.previous_digest, review.fields())],
        )
    finally:
        con.close()
    assert "review 3 breaks the chain: the digest before it is not review 2's" in verify(reviewed)


def test_a_deleted_row_breaks_the_chain_at_the_row_after_it(reviewed: Path) -> None:
    tamper(reviewed, "DELETE FROM finding_reviews WHERE review_id = 2")
    assert "review 3 breaks the chain: review 2 before it deleted" in verify(reviewed)


def test_a_deleted_last_row_is_found_by_the_stores_record(reviewed: Path) -> None:
    tamper(reviewed, "DELETE FROM finding_reviews WHERE review_id = 4")
    assert "breaks after review 3: review 4 recorded as written" in verify(reviewed)


def test_a_deleted_trail_is_found_by_the_stores_record(reviewed: Path) -> None:
    tamper(reviewed, "DELETE FROM finding_reviews")
    assert "the review trail is empty, but the store recorded reviews 1-4" in verify(reviewed)


def test_an_inserted_row_breaks_the_chain_at_itself(reviewed: Path, finding_ids: list[str]) -> None:
    tamper(
        reviewed,
        "INSERT INTO finding_reviews (review_id, reviewed_at, analyst, finding_id, status, "
        "decision, assignee, note, previous_digest, digest) VALUES (5, now(), 'mallory', ?, "
        "'closed', 'benign_explained', NULL, NULL, ?, ?)",
        [finding_ids[1], "f" * 64, "e" * 64],
    )
    assert "review 5 breaks the chain: the digest before it is not review 4's" in verify(reviewed)


def test_an_inserted_row_with_a_true_digest_is_found_by_the_stores_record(
    reviewed: Path, finding_ids: list[str]
) -> None:
    con = duckdb.connect(str(reviewed))
    try:
        (last,) = con.execute("SELECT digest FROM finding_reviews WHERE review_id = 4").fetchone()  # type: ignore[misc]
        forged = Review(
            5,
            datetime(2026, 12, 1, 9),
            "mallory",
            finding_ids[1],
            "closed",
            "benign_explained",
            None,
            None,
            last,
            "",
        )
        digest = review_digest(last, forged.fields())
        con.execute(
            "INSERT INTO finding_reviews (review_id, reviewed_at, analyst, finding_id, status, "
            "decision, assignee, note, previous_digest, digest) VALUES (5, ?, 'mallory', ?, "
            "'closed', 'benign_explained', NULL, NULL, ?, ?)",
            [forged.reviewed_at, finding_ids[1], last, digest],
        )
    finally:
        con.close()
    assert "review 5 breaks the chain: the store recorded review 4 as its last" in verify(reviewed)


def test_a_review_written_after_tampering_does_not_cover_it(
    reviewed: Path, finding_ids: list[str]
) -> None:
    """Deleting the last row and deciding again leaves the gap where it was."""
    tamper(reviewed, "DELETE FROM finding_reviews WHERE review_id = 4")
    done = cli(
        "review", "decide", finding_ids[2], "--decision", "false_positive", "--db", str(reviewed)
    )
    assert done.returncode == 0, done.stderr
    assert "review 5: " in done.stdout
    assert "review 5 breaks the chain: review 4 before it deleted" in verify(reviewed)


def test_the_digest_is_sha256_over_the_previous_digest_and_canonical_json() -> None:
    """The encoding docs/review.md gives, written out by hand: anyone can recompute it."""
    review = Review(
        7,
        datetime(2026, 12, 6, 9, 30, 1, 250),
        "王丽",
        "3fa2c1d0e9b8a7f6e5d4",
        "closed",
        "false_positive",
        None,
        'a "quoted"\nnote',
        GENESIS,
        "",
    )
    body = (
        '{"analyst":"王丽","assignee":null,"decision":"false_positive",'
        '"finding_id":"3fa2c1d0e9b8a7f6e5d4","note":"a \\"quoted\\"\\nnote",'
        '"review_id":7,"reviewed_at":"2026-12-06T09:30:01.000250","status":"closed"}'
    )
    expected = hashlib.sha256(("0" * 64 + "\n" + body).encode("utf-8")).hexdigest()
    assert review_digest(GENESIS, review.fields()) == expected


def test_analysts_deciding_at_once_never_fork_the_chain(
    world: Path, finding_ids: list[str]
) -> None:
    """Decisions started together: each lands in the trail (or is queued and lands with the
    next review), and the trail they leave verifies."""
    env = {k: v for k, v in os.environ.items() if k != "POSAUDIT_ANALYST"}
    started = [
        subprocess.Popen(
            [
                *POSAUDIT,
                "review",
                "decide",
                finding,
                "--decision",
                "confirmed_fraud",
                "--db",
                str(world),
            ],
            env=env | {"POSAUDIT_ANALYST": f"analyst-{n}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, finding in enumerate(finding_ids * 2)
    ]
    ended = [(p.wait(timeout=600), *p.communicate()) for p in started]
    assert {code for code, _, _ in ended} == {0}, ended
    # each is recorded, or (its wait for the others past) queued and applied by the next
    queued = sum(out.startswith("queued") for _, out, _ in ended)
    assert sum(out.startswith("review ") for _, out, _ in ended) == 6 - queued
    done = cli("review", "verify", "--db", str(world))
    assert done.returncode == 0, done.stderr
    assert f"whole: {6 - queued} review" in done.stdout
    assert (
        cli("review", "comment", finding_ids[0], "--note", "seen", "--db", str(world)).returncode
        == 0
    )
    done = cli("review", "verify", "--db", str(world))
    assert "whole: 7 reviews" in done.stdout, done.stdout
