"""Simulation throughput and memory: `make bench` (figures go to docs/benchmarks.md).

Each world is simulated in a fresh child process (`posaudit simulate`), so its peak resident
memory is measured alone. Prints one Markdown table row per world.

    python benchmarks/simulate_bench.py                  # 10M-event world + memory vs days
    python benchmarks/simulate_bench.py --huge           # also the 100M-event world
    python benchmarks/simulate_bench.py --world 500x10   # one world: merchants x days
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

# smallest first: peak RSS of children only grows
WORLDS = ["300x10", "300x20", "300x40", "1700x30"]
HUGE = "5000x120"


def run_world(spec: str, workdir: Path) -> dict[str, float]:
    merchants, days = (int(x) for x in spec.split("x"))
    db = workdir / f"bench-{spec}.duckdb"
    db.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    shape = ["--merchants", str(merchants), "--days", str(days)]
    result = subprocess.run(
        [sys.executable, "-m", "posaudit", "simulate", "--db", str(db), *shape, "--seed", "1"],
        capture_output=True,
        text=True,
        env=os.environ | {"CI": "1"},
        check=True,
    )
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    events = int(re.search(r"([\d,]+) events in", result.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    size = db.stat().st_size
    db.unlink()
    return {
        "merchants": merchants,
        "days": days,
        "events": events,
        "seconds": wall,
        "events_per_s": events / wall,
        "peak_mib": max(peak_kib, before) / 1024,
        "db_mib": size / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--world", action="append", help="merchants x days, e.g. 500x10 (repeatable)"
    )
    parser.add_argument(
        "--huge", action="store_true", help=f"also simulate the 100M-event world ({HUGE})"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores are written")
    args = parser.parse_args()
    worlds = args.world or [*WORLDS, *([HUGE] if args.huge else [])]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="posaudit-bench-"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {date.today()}"
    )
    print("| merchants x days | events | wall s | events/s | peak RSS MiB | store MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for spec in worlds:
        # ru_maxrss of children is the maximum over all children so far: run the small
        # worlds first or in separate invocations to read each one's own peak.
        r = run_world(spec, workdir)
        print(
            f"| {spec} | {r['events']:,.0f} | {r['seconds']:.1f} | {r['events_per_s']:,.0f} | "
            f"{r['peak_mib']:,.0f} | {r['db_mib']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
