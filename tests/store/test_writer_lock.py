"""One writer at a time: every writer holds the store's lock for the whole of its work, a
second is refused at once with exit 3, and nothing a dead writer left is ever read."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from posaudit.store import Store, StoreError
from posaudit.store.lock import acquire, holds, lock_path, release

POSAUDIT = [sys.executable, "-m", "posaudit"]

# A writer that takes the store the way `simulate --append` does and waits, inside its staged
# copy, until told to finish (a line on stdin) or killed.
HOLDER = textwrap.dedent(
    """
    import sys
    from posaudit.store import Store
    with Store.staged(sys.argv[1], append=True) as store:
        print("held", flush=True)
        sys.stdin.readline()
    print("done", flush=True)
    """
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSAUDIT, *args], capture_output=True, text=True, timeout=600, check=False
    )


class Holder:
    def __init__(self, store: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line == "held\n", line + (self.process.stderr.read() if self.process.stderr else "")

    def finish(self) -> int:
        _, err = self.process.communicate("\n", timeout=120)
        assert err == "", err
        return self.process.returncode

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=60)
        return self.process.returncode


def days_in(path: Path) -> int:
    store = Store.open(path, read_only=True)
    try:
        simulated = "SELECT max(first_day + days) FROM simulations"
        return int(store.query(simulated)[0][0])  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.fixture
def world(sample_store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(sample_store, tmp_path / "world.duckdb"))


def test_a_second_writer_is_refused_while_an_append_writes(world: Path) -> None:
    """An append and a run while another append holds the store: both refused, exit 3, and
    nothing of theirs is lost or half-written; the holder's work lands."""
    before = days_in(world)
    holder = Holder(world)
    try:
        append = cli("simulate", "--db", str(world), "--append", "--days", "2")
        assert append.returncode == 3, append.stderr
        assert append.stderr.count("\n") == 1
        assert append.stderr.startswith(
            f"posaudit: error: {world} is locked by another posaudit process (pid "
        )
        assert "simulate --append" in append.stderr
        run = cli("run", "--db", str(world), "--json")
        assert run.returncode == 3, run.stderr
        assert '"status": "locked"' in run.stdout.splitlines()[-1]
    finally:
        assert holder.finish() == 0
    assert days_in(world) == before
    assert not lock_path(world).exists()
    # once the holder is done, the same append goes through
    assert cli("simulate", "--db", str(world), "--append", "--days", "2").returncode == 0
    assert days_in(world) == before + 2


def test_two_appends_at_once_lose_nothing(world: Path) -> None:
    """Two appends started together: one lands whole, the other is refused (exit 3); no exit 0
    whose days are missing."""
    before = days_in(world)
    commands = [
        subprocess.Popen(
            [*POSAUDIT, "simulate", "--db", str(world), "--append", "--days", str(days)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for days in (3, 5)
    ]
    codes = [c.wait(timeout=600) for c in commands]
    for command in commands:
        command.communicate()
    added = days_in(world) - before
    assert sorted(codes) in ([0, 0], [0, 3]), codes
    if codes == [0, 0]:  # one after the other: both landed
        assert added == 8
    else:
        assert added == (3 if codes[0] == 0 else 5)


def test_a_killed_writer_leaves_nothing_that_blocks_or_is_read(world: Path) -> None:
    """kill -9 inside an append: the store is as it was; the stale lock file and staged copy
    block nothing, the copy is never read, and the next writer removes it."""
    before = world.read_bytes()
    holder = Holder(world)
    staging = world.with_name(world.name + ".staging")
    assert staging.exists() and lock_path(world).exists()
    assert holder.kill() == -9
    assert world.read_bytes() == before
    # what a disk-full or killed copy leaves: a truncated file
    staging.write_bytes(before[: len(before) // 3])
    run = cli("run", "--db", str(world), "--quiet")
    assert run.returncode == 0, run.stderr
    assert cli("simulate", "--db", str(world), "--append", "--days", "1").returncode == 0
    assert not staging.exists()
    assert not lock_path(world).exists()


def test_a_run_holds_the_lock_for_its_whole_work(world: Path) -> None:
    store = Store.open(world)
    try:
        assert holds(world)
        append = cli("simulate", "--db", str(world), "--append", "--days", "1")
        assert append.returncode == 3, append.stderr
        assert "locked" in append.stderr and f"pid {os.getpid()}: write" in append.stderr
    finally:
        store.close()
    assert not holds(world)
    assert not lock_path(world).exists()


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    acquire(store, purpose="first")
    acquire(store, purpose="second")
    release(store)
    assert holds(store) and lock_path(store).exists()
    release(store)
    assert not holds(store) and not lock_path(store).exists()


def test_a_lock_file_in_an_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        folder = Path("/proc/self")  # not even root creates files there
    else:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
    with pytest.raises(StoreError, match=r"cannot lock the store .* for writing: "):
        acquire(folder / "s.duckdb", purpose="write")
