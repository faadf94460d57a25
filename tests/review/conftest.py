"""A small audited world for the review tests, copied afresh for each test that writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from posaudit.detect.policy import load_policy
from posaudit.run.local import run_pipeline
from posaudit.store import Store
from tests.conftest import build_store

POSAUDIT = [sys.executable, "-m", "posaudit"]


def cli(*args: str | bytes, analyst: str | None = "ana") -> subprocess.CompletedProcess[str]:
    """The command line as an analyst runs it (``analyst``: $POSAUDIT_ANALYST, None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "POSAUDIT_ANALYST"}
    if analyst is not None:
        env["POSAUDIT_ANALYST"] = analyst
    return subprocess.run(
        [*POSAUDIT, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


@pytest.fixture(scope="session")
def audited_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-merchant, 5-day world after one run: findings of several rules and families."""
    path = tmp_path_factory.mktemp("review-world") / "w.duckdb"
    build_store(path, merchants=10, days=5, seed=3)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return path


@pytest.fixture
def world(audited_world: Path, tmp_path: Path) -> Path:
    return Path(shutil.copyfile(audited_world, tmp_path / "audit.duckdb"))


@pytest.fixture(scope="session")
def finding_ids(audited_world: Path) -> list[str]:
    """Three findings of the world, of different rules."""
    store = Store.open(audited_world, read_only=True)
    try:
        rows = store.query(
            "SELECT min(finding_id) FROM findings GROUP BY rule ORDER BY rule LIMIT 3"
        )
    finally:
        store.close()
    assert len(rows) == 3
    return [str(r[0]) for r in rows]


@contextmanager
def held_by_another_process(store: Path) -> Iterator[int]:
    """Another process holding the store for writing, as a run does; its pid."""
    script = (
        "import sys\n"
        "from posaudit.store import Store\n"
        "store = Store.open(sys.argv[1], purpose='run')\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n"
        "store.close()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == "held\n"
            yield holder.pid
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
