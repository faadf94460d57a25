"""Report speed: how long `posaudit report` takes for a run, per output format.

Reports on an existing audited store (``--db``), or builds one: simulates a world, runs the
audit, then times the report of the latest run in every format and language asked. The
target is a 10-million-event store's run reported in at most 30 s (all formats, one language).

    python benchmarks/report_bench.py --db data/big.duckdb            # an audited store
    python benchmarks/report_bench.py --world 1700x30      # ~11M events: simulate, run, report
    python benchmarks/report_bench.py --world 200x30 --lang en --lang zh
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from posaudit.report import FORMATS, build_report
from posaudit.store import Store


def audited_store(spec: str, workdir: Path) -> Path:
    """A fresh store of ``spec`` (merchants x days) with one audit run."""
    merchants, days = (int(x) for x in spec.split("x"))
    db = workdir / f"report-bench-{spec}.duckdb"
    db.unlink(missing_ok=True)
    env = os.environ | {"CI": "1"}
    for args in (
        [
            "simulate",
            "--db",
            str(db),
            "--merchants",
            str(merchants),
            "--days",
            str(days),
            "--seed",
            "7",
        ],
        ["run", "--db", str(db)],
    ):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "posaudit", *args], check=True, capture_output=True, env=env
        )
        print(f"{args[0]}: {time.perf_counter() - started:.1f} s")
    return db


def store_size(db: Path) -> tuple[int, int]:
    """(events, findings of the latest run) of an audited store."""
    store = Store.open(db, read_only=True)
    try:
        counts = store.row_counts()
        events = sum(counts[t] for t in ("login_events", "transactions", "pin_events", "lockouts"))
        latest = store.query(
            "SELECT run_id FROM pipeline_runs WHERE status = 'succeeded' "
            "ORDER BY started_at DESC LIMIT 1"
        )
        findings = (
            store.query("SELECT count(*) FROM findings WHERE run_id = ?", [latest[0][0]])
            if latest
            else [(0,)]
        )
        return events, int(findings[0][0])  # type: ignore[call-overload]
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--db", type=Path, help="an audited store to report on")
    source.add_argument(
        "--world",
        default="1700x30",
        help="merchants x days to simulate and audit (default 1700x30)",
    )
    parser.add_argument(
        "--lang", action="append", choices=("en", "zh"), help="language (repeatable; default en)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the store and the reports are written"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="posaudit-report-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = args.db or audited_store(args.world, workdir)
    events, findings = store_size(db)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {date.today()}"
    )
    print(f"store: {db} ({events:,} events; latest run: {findings:,} findings)")
    steps = ("read", "sentences", "sections", *FORMATS)
    # Wall seconds per step (the PDF is laid out in a child process beside the other formats),
    # then the CPU seconds of this process and of the PDF child: on a busy machine the wall
    # time grows, the CPU time does not.
    print("| language | " + " | ".join(steps) + " | total s | CPU s (main + PDF child) |")
    print("|---" * (len(steps) + 3) + "|")
    for lang in args.lang or ["en"]:
        before_self = resource.getrusage(resource.RUSAGE_SELF)
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = build_report(db, workdir / "reports", lang=lang)
        after_self = resource.getrusage(resource.RUSAGE_SELF)
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        main_cpu = (
            after_self.ru_utime + after_self.ru_stime - before_self.ru_utime - before_self.ru_stime
        )
        child_cpu = (
            after_children.ru_utime
            + after_children.ru_stime
            - before_children.ru_utime
            - before_children.ru_stime
        )
        figures = " | ".join(f"{result.seconds.get(step, 0.0):.1f}" for step in steps)
        print(
            f"| {lang} | {figures} | {result.seconds['total']:.1f} "
            f"| {main_cpu:.1f} + {child_cpu:.1f} |"
        )
    print(f"reports in {workdir / 'reports'}")


if __name__ == "__main__":
    main()
