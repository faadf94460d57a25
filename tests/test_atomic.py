"""Outputs appear whole or not at all: a failed or killed writer leaves nothing under the final
name, and what a dead writer left is removed by the next one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from posaudit.atomic import partial_path, remove_dead_partials, written_file, written_folder

POSAUDIT = [sys.executable, "-m", "posaudit"]


def a_dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_failed_file_leaves_nothing_and_the_old_one_as_it_was(tmp_path: Path) -> None:
    final = tmp_path / "findings.csv"
    final.write_text("old\n")
    with pytest.raises(OSError, match="disk full"), written_file(final) as part:
        part.write_text("half of the new")
        raise OSError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["findings.csv"]
    assert final.read_text() == "old\n"


def test_a_file_replaces_the_old_one_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "findings.csv"
    final.write_text("old\n")
    with written_file(final) as part:
        part.write_text("new\n")
        assert final.read_text() == "old\n"  # nothing under the final name until the end
    assert final.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["findings.csv"]


def test_a_dead_writers_leftovers_are_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    final = tmp_path / "report.pdf"
    dead = partial_path(final, pid=a_dead_pid())
    dead.write_bytes(b"%PDF-1.7 truncated")
    live = partial_path(final, pid=os.getppid())
    live.write_bytes(b"%PDF-1.7 still being written")
    other = tmp_path / ".report.pdf.partial-notapid"
    other.write_bytes(b"")
    assert remove_dead_partials(final) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_failed_folder_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "export"
    with pytest.raises(RuntimeError), written_folder(final) as part:
        (part / "merchants").mkdir()
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with written_folder(final) as part:
        (part / "merchants").mkdir()
    assert [p.name for p in final.iterdir()] == ["merchants"]


def test_export_of_a_damaged_store_leaves_nothing_that_blocks_the_next(
    sample_store: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.duckdb"
    shutil.copy(sample_store, damaged)
    os.truncate(damaged, damaged.stat().st_size // 2)
    out = tmp_path / "export"
    result = subprocess.run(
        [*POSAUDIT, "export", "--db", str(damaged), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    # one line naming the store (the check on opening finds it cut short)
    assert result.stderr.startswith(f"posaudit: error: {damaged} is a damaged posaudit store")
    assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.duckdb"]
    again = subprocess.run(
        [*POSAUDIT, "export", "--db", str(sample_store), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert (out / "transactions").is_dir()
