"""Notebook speed: each notebook of notebooks/ executed top to bottom on a given audited store.

Runs every notebook (or those named) in a fresh kernel, one at a time, as the tests do
(jupytext in memory, the parameters injected after the ``parameters`` cell, nbclient), and
prints per notebook: the wall time (kernel start included), the time inside its cells, its
slowest cell, the kernel's peak resident memory, the size of the executed notebook, and the
most rows any of its charts carries. A notebook that fails prints its error and the script
exits 1 after the others have run.

    python benchmarks/notebook_bench.py --db data/big.duckdb
    python benchmarks/notebook_bench.py --db data/big.duckdb --notebook 04-operator-risk --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "notebook"))

from notebook_helpers import (  # noqa: E402  (the tests' helpers, found through sys.path)
    NOTEBOOK_NAMES,
    NOTEBOOKS,
    chart_rows,
    outputs_of,
    prepared_notebook,
)

from posaudit.store import Store  # noqa: E402

# Printed last by the kernel: its own peak resident set (Linux: KiB).
PEAK_CELL = "import resource as _r; print('peak-rss-kib', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss)"


@dataclass(frozen=True)
class Timing:
    name: str
    wall_s: float
    cells_s: float
    slowest_s: float
    slowest_cell: str
    peak_mib: float
    size_mb: float
    charts: int
    max_chart_rows: int
    error: str | None


def _seconds(cell: Any) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def run_notebook(name: str, parameters: dict[str, Any], *, timeout: int) -> Timing:
    """One notebook in a fresh kernel, timed."""
    import nbformat
    from nbclient import NotebookClient

    notebook = prepared_notebook(name, parameters)
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    error = None
    started = time.perf_counter()
    try:
        client.execute()
    except Exception as failure:  # a failed cell, a kernel that died: report it, go on
        error = f"{type(failure).__name__}: {str(failure).strip().splitlines()[-1:]}"
    wall = time.perf_counter() - started
    peak_kib = 0
    for output in notebook.cells[-1].get("outputs", []):
        if output.get("output_type") == "stream" and "peak-rss-kib" in output.get("text", ""):
            peak_kib = int(output["text"].split()[-1])
    notebook.cells.pop()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    slowest = max(code, key=_seconds)
    shown = outputs_of(notebook)
    first_line = next(
        (line for line in slowest.source.splitlines() if line and not line.startswith("#")), ""
    )
    return Timing(
        name=name,
        wall_s=wall,
        cells_s=sum(_seconds(c) for c in code),
        slowest_s=_seconds(slowest),
        slowest_cell=first_line[:60],
        peak_mib=peak_kib / 1024,
        size_mb=len(nbformat.writes(notebook).encode()) / 1e6,
        charts=len(shown.charts),
        max_chart_rows=max((chart_rows(spec) for spec in shown.charts), default=0),
        error=error or (shown.errors[0] if shown.errors else None),
    )


def store_size(db: Path) -> tuple[int, int, int]:
    """(events, merchants, operators) of a store."""
    store = Store.open(db, read_only=True)
    try:
        counts = store.row_counts()
    finally:
        store.close()
    events = sum(counts[t] for t in ("login_events", "transactions", "pin_events", "lockouts"))
    return events, counts["merchants"], counts["operators"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="an audited store")
    parser.add_argument("--run-id", default=None, help="the run to show (default: the latest)")
    parser.add_argument(
        "--notebook",
        action="append",
        choices=NOTEBOOK_NAMES,
        help="a notebook to run (repeatable; default: all, in order)",
    )
    parser.add_argument("--finding-id", default=None, help="for 05: the finding to drill into")
    parser.add_argument("--repeat", type=int, default=1, help="runs per notebook (median shown)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may take")
    args = parser.parse_args()
    db = args.db.resolve()
    events, merchants, operators = store_size(db)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {date.today()}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"store: {db} ({events:,} events, {merchants:,} merchants, {operators:,} operators)")
    print(
        "| notebook | wall s | cells s | slowest cell s | slowest cell | kernel peak MiB "
        "| notebook MB | charts | most chart rows |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    failed = False
    for name in args.notebook or NOTEBOOK_NAMES:
        parameters: dict[str, Any] = {"db": str(db), "run_id": args.run_id}
        if name == "05-finding-drilldown":
            parameters["finding_id"] = args.finding_id
        runs = [run_notebook(name, parameters, timeout=args.timeout) for _ in range(args.repeat)]
        best = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
        spread = (
            f" ({min(r.wall_s for r in runs):.1f}-{max(r.wall_s for r in runs):.1f})"
            if len(runs) > 1
            else ""
        )
        print(
            f"| {name} | {best.wall_s:.1f}{spread} | {best.cells_s:.1f} | {best.slowest_s:.1f} "
            f"| `{best.slowest_cell}` | {statistics.median(r.peak_mib for r in runs):,.0f} "
            f"| {best.size_mb:.1f} | {best.charts} | {best.max_chart_rows:,} |",
            flush=True,
        )
        for run in runs:
            if run.error:
                failed = True
                print(f"  {name} failed: {run.error}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
