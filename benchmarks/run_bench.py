"""Detection speed: all rules and scores over a store, against one bare pass over its tables.

    python benchmarks/run_bench.py --db data/bench.duckdb     # a store made by `posaudit simulate`
    python benchmarks/run_bench.py --db data/bench.duckdb --repeat 5 --baseline /tmp/old/src

Prints the full run's wall time and peak memory (a fresh child process each), the bare pass's
(read every table the rules read, the columns and rows the run reads, and do one group-by each),
and their ratio. With ``--repeat`` the runs are repeated (median and range); with
``--baseline`` (the ``src`` folder of another checkout) each run of this code is followed by
one of that code on the same store, so that a slow minute of a shared machine shows in both.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from measure import child

BARE_PASS = """
import sys, time
import polars as pl
from posaudit.detect.policy import load_policy
from posaudit.detect.registry import DERIVED_INPUTS, DERIVED_TABLES
from posaudit.pins import pin_digester
from posaudit.run.inputs import derived_inputs
from posaudit.run.plan import data_window
from posaudit.run.read import TableReader, store_columns_used
from posaudit.rules import all_rules
from posaudit.store import Store
store = Store.open(sys.argv[1], read_only=True)
rules = list(all_rules().values())
# the PIN exclusion list is built, not read: outside the pass
derived = derived_inputs(
    rules, store.read("operators"), window=data_window(store), digester=pin_digester()
)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=1, help="runs of the audit (median, range)")
    parser.add_argument("--baseline", type=Path, help="src folder of another version to interleave")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="posaudit-run-bench-"))
    copy = work / "store.duckdb"
    shutil.copy(args.db, copy)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {date.today()}"
    )
    bare_wall, bare_peak, out = child([sys.executable, "-c", BARE_PASS, str(copy)])
    bare_inner = float(out.strip().splitlines()[-1])
    import json
    import statistics

    def run(src: Path | None) -> tuple[float, float, dict[str, object]]:
        shutil.copy(args.db, copy)
        env = {"PYTHONPATH": str(src)} if src else {}
        wall, peak, out = child(
            [sys.executable, "-m", "posaudit", "run", "--db", str(copy), "--json"], env
        )
        return wall, peak, json.loads(out.strip().splitlines()[-1])

    runs, baseline = [], []
    for _ in range(args.repeat):
        runs.append(run(None))
        if args.baseline:
            baseline.append(run(args.baseline))

    def spread(values: list[float]) -> str:
        middle = statistics.median(values)
        return (
            f"{middle:.1f}"
            if len(values) == 1
            else f"{middle:.1f} ({min(values):.1f}-{max(values):.1f})"
        )

    print("| measure | wall s | peak RSS MiB |")
    print("| --- | ---: | ---: |")
    print(f"| bare pass (process) | {bare_wall:.1f} | {bare_peak:,.0f} |")
    print(f"| bare pass (read + one group-by per table, in process) | {bare_inner:.1f} | |")
    for label, done in (("posaudit run", runs), ("baseline run", baseline)):
        if not done:
            continue
        seconds = [float(d["seconds"]) for _, _, d in done]  # type: ignore[arg-type]
        walls = spread([w for w, _, _ in done])
        peak = max(p for _, p, _ in done)
        print(f"| {label} (process) | {walls} | {peak:,.0f} |")
        print(f"| {label} (in process, as recorded in pipeline_runs) | {spread(seconds)} | |")
    summary = runs[0][2]
    stages = {
        k: statistics.median(float(d["stage_seconds"][k]) for _, _, d in runs)  # type: ignore[index]
        for k in summary["stage_seconds"]
    }
    seconds = statistics.median(float(d["seconds"]) for _, _, d in runs)  # type: ignore[arg-type]
    print(
        f"\nrows read: {summary['rows_read']:,}; findings: {summary['findings']:,}; "
        f"stages (median): {', '.join(f'{k} {v:.2f}' for k, v in stages.items())}; "
        f"ratio run / bare pass: {seconds / bare_inner:.2f} (in process), "
        f"{statistics.median(w for w, _, _ in runs) / bare_wall:.2f} (whole processes)"
    )
    if baseline:
        same = {d["findings"] for _, _, d in runs} == {d["findings"] for _, _, d in baseline}
        print(f"baseline findings: {baseline[0][2]['findings']:,} (same count: {same})")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
