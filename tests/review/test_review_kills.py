"""Decisions and kills: a decision the analyst was told is saved (recorded or queued) is never
lost, whatever moment a SIGKILL lands on the command that saved it or on the run applying it.

The kills land after delays spread over each command's measured length, so they fall while it
starts, waits for the lock, writes its queue file, commits, and after it is done.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from posaudit.review.pending import pending_requests, queue_folder
from posaudit.store import Store
from tests.review.conftest import POSAUDIT, held_by_another_process

SHARES = (0.1, 0.3, 0.5, 0.7, 0.85, 1.0, 1.2)


def killed_after(args: list[str], delay: float) -> str:
    """Start posaudit with ``args``, SIGKILL it after ``delay`` seconds; what it printed."""
    env = os.environ | {"POSAUDIT_ANALYST": "ana"}
    with subprocess.Popen(
        [*POSAUDIT, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    ) as process:
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        out, _ = process.communicate(timeout=60)
    return out


def length_of(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [*POSAUDIT, *args],
        capture_output=True,
        text=True,
        env=os.environ | {"POSAUDIT_ANALYST": "ana"},
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - start


def decided(world: Path) -> dict[str, str]:
    """Each finding's current decision (request ids of queued ones apart)."""
    store = Store.open(world, read_only=True)
    try:
        if not store.has_table("finding_reviews"):
            return {}
        rows = store.query(
            "SELECT finding_id, CAST(decision AS VARCHAR) FROM finding_reviews "
            "QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY review_id DESC) = 1"
        )
    finally:
        store.close()
    return {str(f): str(d) for f, d in rows}


def whole(world: Path) -> None:
    done = subprocess.run(
        [*POSAUDIT, "review", "verify", "--db", str(world)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_decision_reported_recorded_survives_a_kill_at_any_moment(
    world: Path, finding_ids: list[str]
) -> None:
    finding = finding_ids[0]
    decisions = ("false_positive", "confirmed_fraud")
    length = length_of(["review", "comment", finding, "--note", "timing", "--db", str(world)])
    for n, share in enumerate(SHARES):
        decision = decisions[n % 2]
        said = killed_after(
            ["review", "decide", finding, "--decision", decision, "--db", str(world)],
            length * share,
        )
        if said.startswith("review "):  # told it is recorded: it is
            assert decided(world)[finding] == decision, (share, said)
        whole(world)
        assert not Path(f"{world}.staging").exists()


@pytest.mark.slow
def test_a_queued_decision_survives_a_kill_of_its_command_or_of_the_run_applying_it(
    world: Path, finding_ids: list[str]
) -> None:
    """While a run holds the store, decisions are queued (their commands killed at any moment);
    then runs applying the queue are killed at any moment: every decision that was reported
    queued ends in the trail once, none twice."""
    told: dict[str, str] = {}
    with held_by_another_process(world):
        length = length_of(
            ["review", "decide", finding_ids[2], "--decision", "policy_breach", "--db", str(world)]
        )
        told[finding_ids[2]] = "policy_breach"
        for n, share in enumerate(SHARES):
            finding = finding_ids[n % 2]
            decision = ("false_positive", "benign_explained", "confirmed_fraud")[n % 3]
            said = killed_after(
                ["review", "decide", finding, "--decision", decision, "--db", str(world)],
                length * share,
            )
            if said.startswith("queued"):
                told[finding] = decision
        queued = pending_requests(world)
        # every decision reported queued is on disk and reads whole (a command killed while
        # writing leaves at most a hidden partial file, never read as a request)
        on_disk = {(r.target, r.action.decision) for r in queued}
        assert set(told.items()) <= on_disk
        assert all(not p.name.startswith(".") for p in queue_folder(world).glob("*.json"))
    spare = Path(shutil.copyfile(world, world.with_name("spare.duckdb")))
    run_length = length_of(["run", "--quiet", "--db", str(spare)])
    for share in (0.2, 0.5, 0.8, 0.95):
        killed_after(["run", "--quiet", "--db", str(world)], run_length * share)
        whole(world)
    done = subprocess.run(
        [*POSAUDIT, "run", "--json", "--quiet", "--db", str(world)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert pending_requests(world) == []
    # the latest queued decision on each finding is current (queued in the order made)
    latest_made = {r.target: r.action.decision for r in queued}
    now = decided(world)
    for finding, decision in latest_made.items():
        assert now[finding] == decision
    # each request applied once
    store = Store.open(world, read_only=True)
    try:
        counts = store.query(
            "SELECT request_id, count(*) FROM finding_reviews WHERE request_id IS NOT NULL "
            "GROUP BY ALL"
        )
    finally:
        store.close()
    assert {r.request_id for r in queued} == {str(r) for r, _ in counts}
    assert {int(n) for _, n in counts} == {1}
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "succeeded"
    whole(world)
