"""Writers killed at many moments, and two writers of every kind at once: nothing lost, nothing
half-written, the store never left locked.

A kill lands wherever the process is after a delay; the delays are spread over the whole of
each command's work (measured first, on the same machine), so the kills fall while it starts,
reads, copies, simulates, writes and renames. Whatever the moment, the store afterwards is
either byte for byte what it was, or holds the command's whole work; and the next writer of
any kind goes through.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from posaudit.store import Store
from posaudit.store.lock import lock_path

POSAUDIT = [sys.executable, "-m", "posaudit"]
# Moments of a kill, as shares of the command's measured length: early (start-up, the lock),
# middle (reading, copying, simulating), late (writing, the rename) and after it should be done.
KILL_SHARES = (0.05, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97, 1.1)
WRITERS = {
    "append": ["simulate", "--append", "--days", "2"],
    "run": ["run", "--quiet"],
}


def command(kind: str, store: Path) -> list[str]:
    return [*POSAUDIT, *WRITERS[kind][:1], "--db", str(store), *WRITERS[kind][1:]]


def state(path: Path) -> tuple[int, int, int]:
    """What a writer's whole work changes: days simulated, successful runs, open findings."""
    store = Store.open(path, read_only=True)
    try:
        days = store.query("SELECT coalesce(max(first_day + days), 0) FROM simulations")[0][0]
        runs = store.query("SELECT count(*) FROM pipeline_runs WHERE status = 'succeeded'")[0][0]
        found = store.query("SELECT count(*) FROM findings WHERE status = 'open'")[0][0]
        return int(days), int(runs), int(found)  # type: ignore[arg-type]
    finally:
        store.close()


def findings_of(path: Path) -> pl.DataFrame:
    store = Store.open(path, read_only=True)
    try:
        return store.frame(
            "SELECT finding_id, rule, window_start, window_end, score, "
            "CAST(severity AS VARCHAR) AS severity FROM findings WHERE status = 'open' "
            "ORDER BY finding_id"
        )
    finally:
        store.close()


@pytest.fixture(scope="module")
def audited(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store audited once: appends and runs both have work to do on a copy of it."""
    path = tmp_path_factory.mktemp("audited") / "audited.duckdb"
    shutil.copy(sample_store, path)
    done = subprocess.run(
        [*POSAUDIT, "run", "--db", str(path), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return path


def whole(kind: str, audited: Path, folder: Path) -> tuple[Path, float]:
    """The command's whole work on a copy, uninterrupted, and how long it took."""
    path = Path(shutil.copy(audited, folder / f"whole-{kind}.duckdb"))
    began = time.monotonic()
    done = subprocess.run(command(kind, path), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return path, time.monotonic() - began


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_writer_killed_at_any_moment_loses_nothing(
    kind: str, audited: Path, tmp_path: Path, tally: Any
) -> None:
    complete, seconds = whole(kind, audited, tmp_path)
    before_state, after_state = state(audited), state(complete)
    assert before_state != after_state
    original = audited.read_bytes()
    for share in KILL_SHARES:
        path = Path(shutil.copy(audited, tmp_path / "killed.duckdb"))
        process = subprocess.Popen(
            command(kind, path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(seconds * share)
        process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=120)
        if path.read_bytes() == original:
            outcome = "store as it was"
        else:
            assert state(path) == after_state, f"killed at {share:.0%}: half of the work is in"
            if kind == "run":
                assert findings_of(path).equals(findings_of(complete))
            outcome = "work complete" if code != 0 else "finished before the kill"
        tally.record(f"kill -9 of {kind}", outcome)
        # nothing the dead writer left blocks or is read: the same work goes through now
        again = subprocess.run(command(kind, path), capture_output=True, text=True, check=False)
        assert again.returncode == 0, f"after a kill at {share:.0%}: {again.stderr}"
        assert not lock_path(path).exists()
        assert not path.with_name(path.name + ".staging").exists()
        path.unlink()


PAIRS = [("append", "append"), ("append", "run"), ("run", "append"), ("run", "run")]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_two_writers_at_once_never_lose_a_success(
    first: str, second: str, audited: Path, tmp_path: Path, tally: Any
) -> None:
    """Started together, either one is refused (exit 3) and the other lands whole, or they went
    one after the other and both landed: never an exit 0 whose work is missing."""
    path = Path(shutil.copy(audited, tmp_path / "busy.duckdb"))
    before = state(path)
    processes = [
        subprocess.Popen(
            command(kind, path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for kind in (first, second)
    ]
    results = [p.communicate(timeout=600) for p in processes]
    codes = [p.returncode for p in processes]
    assert all(code in (0, 3) for code in codes), results
    for code, (_, err) in zip(codes, results, strict=True):
        if code == 3:
            assert err.count("\n") == 1 and "is locked by another posaudit process" in err, err
    days, runs, _ = state(path)
    landed = [kind for kind, code in zip((first, second), codes, strict=True) if code == 0]
    assert days == before[0] + 2 * landed.count("append")
    # a run with nothing new to read still records itself
    assert runs == before[1] + landed.count("run")
    assert not lock_path(path).exists()
    tally.record(
        "two writers at once", "both landed" if len(landed) == 2 else "one refused, one landed"
    )
