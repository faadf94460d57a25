"""Detection speed: all rules and scores over a store, against one bare pass over its tables.

    python benchmarks/run_bench.py --db data/bench.duckdb     # a store made by `posaudit simulate`

Prints the full run's wall time and peak memory (a fresh child process each), the bare pass's
(read every table the rules read, the columns and rows the run reads, and do one group-by each),
and their ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BARE_PASS = """
import sys, time
import polars as pl
from posaudit.detect.policy import load_policy
from posaudit.detect.registry import DERIVED_INPUTS, DERIVED_TABLES, all_rules
from posaudit.pipeline import TableReader, data_window, derived_inputs, store_columns_used
from posaudit.pins import pin_key
from posaudit.store import Store
store = Store.open(sys.argv[1], read_only=True)
rules = list(all_rules().values())
# the PIN exclusion list is built, not read: outside the pass
derived = derived_inputs(rules, store.read("operators"), window=data_window(store), key=pin_key())
started = time.perf_counter()
# the columns and rows the run reads, read the same way; one group-by per table
names = sorted({n for r in rules for n in r.inputs} - DERIVED_INPUTS - set(DERIVED_TABLES))
used = store_columns_used(store, rules, load_policy(), derived)
reader = TableReader(store, used)
tables = {name: reader.read(name).lazy() for name in names}
tables |= {name: reader.read_derived(name).lazy() for name in DERIVED_TABLES}
keys = {"transactions": "terminal_id", "login_events": "terminal_id", "lockouts": "terminal_id",
        "pin_events": "operator_id", "operators": "terminal_id", "terminals": "merchant_id",
        "merchants": "category", "approved_refunds": "operator_id"}
pl.collect_all([tables[t].group_by(k).agg(pl.len()) for t, k in keys.items() if t in tables])
print(time.perf_counter() - started)
"""

def child(args: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, check=True, env=os.environ | {"CI": "1"})
    wall = time.perf_counter() - started
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return wall, peak, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="posaudit-run-bench-"))
    copy = work / "store.duckdb"
    shutil.copy(args.db, copy)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today()}")
    bare_wall, bare_peak, out = child([sys.executable, "-c", BARE_PASS, str(copy)])
    bare_inner = float(out.strip().splitlines()[-1])
    run_wall, run_peak, out = child([sys.executable, "-m", "posaudit", "run", "--db", str(copy), "--json"])
    import json

    summary = json.loads(out.strip().splitlines()[-1])
    print("| measure | wall s | peak RSS MiB |")
    print("| --- | ---: | ---: |")
    print(f"| bare pass (process) | {bare_wall:.1f} | {bare_peak:,.0f} |")
    print(f"| bare pass (read + one group-by per table, in process) | {bare_inner:.1f} | |")
    print(f"| posaudit run (process) | {run_wall:.1f} | {run_peak:,.0f} |")
    print(f"| posaudit run (in process, as recorded in pipeline_runs) | {summary['seconds']:.1f} | |")
    print(f"\nrows read: {summary['rows_read']:,}; findings: {summary['findings']:,}; "
          f"ratio run / bare pass: {summary['seconds'] / bare_inner:.2f} (in process), "
          f"{run_wall / bare_wall:.2f} (whole processes)")  # fmt: skip
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
