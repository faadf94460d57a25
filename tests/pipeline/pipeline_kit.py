"""Helpers shared by the tests of scheduled runs: running posaudit, reading a store back."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl

from posaudit.detect.policy import load_policy
from posaudit.pins import pin_digester
from posaudit.run.local import run_pipeline
from posaudit.run.record import RunSummary
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.store import Store
from posaudit.store.catalogue import TABLE_NAMES

POSAUDIT = [sys.executable, "-m", "posaudit"]
# posaudit paused or failing at a named point of a run (see hooked_run.py)
HOOKED = [sys.executable, str(Path(__file__).with_name("hooked_run.py"))]
REPO = Path(__file__).resolve().parents[2]
DATA_SAMPLES = REPO / "data_samples" / "world"
FINDING_COLUMNS = [
    "finding_id",
    "rule",
    "window_start",
    "window_end",
    "severity",
    "score",
    "entity_type",
    "entity_id",
    "merchant_id",
    "summary",
    "evidence",
]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSAUDIT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def hooked_cli(point: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`posaudit ARGS` with a run that stops at ``point`` (``name:fail`` fails there)."""
    return subprocess.run(
        [*HOOKED, point, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def summary_line(stdout: str) -> dict[str, Any]:
    """The JSON summary: the last line on stdout."""
    return json.loads(stdout.strip().splitlines()[-1])


def copy(source: Path, target: Path) -> Path:
    shutil.copy(source, target)
    return target


def run_here(path: Path, *, full: bool = False, policy: Path | None = None) -> RunSummary:
    """A run in this process (no start-up cost), as `posaudit run` does it."""
    store = Store.open(path)
    try:
        return run_pipeline(store, load_policy(policy), full=full)
    finally:
        store.close()


def append_days(path: Path, days: int = 1) -> None:
    """`posaudit simulate --append --days N`: continue the store's world."""
    simulate(path, load_scenario(None, days=days), seed=0, append=True)


def frame(path: Path, sql: str) -> pl.DataFrame:
    store = Store.open(path, read_only=True)
    try:
        return store.frame(sql)
    finally:
        store.close()


def findings(path: Path, where: str = "status = 'open'") -> pl.DataFrame:
    return frame(
        path,
        "SELECT finding_id, run_id, first_run_id, rule, "
        "CAST(severity AS VARCHAR) AS severity, score, "
        "CAST(entity_type AS VARCHAR) AS entity_type, entity_id, merchant_id, "
        "window_start, window_end, summary, "
        "CAST(evidence AS VARCHAR) AS evidence, status, resolved_run_id "
        f"FROM findings WHERE {where} ORDER BY finding_id",
    )


def comparable(found: pl.DataFrame) -> pl.DataFrame:
    """Findings without run bookkeeping; evidence lists in a fixed order (rules list event ids
    of equal time in either order)."""

    def canonical(text: str) -> str:
        value = json.loads(text)
        return json.dumps(
            {k: sorted(v, key=str) if isinstance(v, list) else v for k, v in value.items()},
            sort_keys=True,
        )

    return (
        found.select(FINDING_COLUMNS)
        .with_columns(pl.col("evidence").map_elements(canonical, return_dtype=pl.String))
        .sort("finding_id")
    )


def snapshot(path: Path) -> dict[str, pl.DataFrame]:
    """Every table of the store, row for row, in a fixed order."""
    store = Store.open(path, read_only=True)
    try:
        out = {}
        for table in TABLE_NAMES:
            rows = store.frame(f"SELECT * FROM {table}")
            rows = rows.with_columns(
                pl.col(c).cast(pl.String)
                for c, t in rows.schema.items()
                if isinstance(t, pl.Enum | pl.Categorical)
            )
            out[table] = rows.sort(rows.columns, nulls_last=True)
        return out
    finally:
        store.close()


def file_bytes(path: Path) -> dict[str, bytes]:
    """The store file and its write-ahead log (if any), byte for byte."""
    return {
        p.name: p.read_bytes() for p in (path, path.with_name(path.name + ".wal")) if p.exists()
    }


def store_from_parquet(root: Path, path: Path) -> Path:
    """A store holding the world of a Parquet export (data_samples/world)."""
    fingerprint = pin_digester().fingerprint
    return Store.from_parquet(
        root, path, code_version="data_samples", pin_key_fingerprint=fingerprint
    )


class Paused:
    """`posaudit run` paused at a named point until killed (see hooked_run.py)."""

    def __init__(self, *args: str, point: str):
        self.process = subprocess.Popen(
            [*HOOKED, point, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        try:
            self.wait_for(f"paused at {point}")
        except BaseException:
            self.kill()
            raise

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, marker: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            if self.process.poll() is not None and self.lines.empty():
                msg = (
                    f"posaudit exited {self.process.returncode} before {marker!r}: {''.join(seen)}"
                )
                raise AssertionError(msg)
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line)
            if marker in line:
                return
        msg = f"no {marker!r} within {timeout} s: {''.join(seen)}"
        raise AssertionError(msg)

    def kill(self) -> int:
        """SIGKILL, then wait; the exit status (-9 when it was still running)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        code = self.process.wait(timeout=60)
        self._pump_thread.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code
