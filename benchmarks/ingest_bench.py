"""Ingest speed: `posaudit ingest` of a lakala-tms export, against DuckDB's bare read_csv.

    python benchmarks/ingest_bench.py --db data/bench10m.duckdb     # a store to export
    python benchmarks/ingest_bench.py --db data/bench10m.duckdb --repeat 3 --baseline /tmp/old/src

The store is exported once with `posaudit export --layout lakala-tms` (outside the timing).
Then, each in a fresh child process: `posaudit ingest --mapping lakala-tms` of the export into
a new store, end to end (rows/s, peak resident memory); and the physical limit, DuckDB's own
`CREATE TABLE t AS SELECT * FROM read_csv(...)` over the same files, no validation. DuckDB
reads UTF-8 only, so the GB18030 files are first transcoded as a stream, timed on its own.
With ``--repeat`` each measurement is repeated (median and range); with ``--baseline`` (the
``src`` folder of another checkout) each ingest is followed by one of that code, so that a
slow minute of a shared machine shows in both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from measure import child

# Transcodes every CSV of a folder to UTF-8 in another, as a stream in large blocks (a block
# is cut at a line feed, never inside a GB18030 character); prints the seconds it took.
TRANSCODE = """
import codecs, sys, time
from pathlib import Path
source, target = Path(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
for path in sorted(source.glob("*.csv")):
    decoder = codecs.getincrementaldecoder("gb18030")()
    with path.open("rb") as inp, (target / path.name).open("wb") as out:
        while block := inp.read(16 << 20):
            out.write(decoder.decode(block).encode("utf-8"))
        out.write(decoder.decode(b"", final=True).encode("utf-8"))
print(time.perf_counter() - started)
"""

# The physical limit: DuckDB reads each file into a table of its own, nothing checked; prints
# the seconds and the rows.
READ_CSV = """
import sys, time
from pathlib import Path
import duckdb
folder, store = Path(sys.argv[1]), sys.argv[2]
con = duckdb.connect(store)
con.execute("SET enable_progress_bar = false")
started = time.perf_counter()
rows = 0
for number, path in enumerate(sorted(folder.glob("*.csv"))):
    con.execute(f"CREATE TABLE t{number} AS SELECT * FROM read_csv(?)", [str(path)])
    rows += con.execute(f"SELECT count(*) FROM t{number}").fetchone()[0]
con.close()
print(time.perf_counter() - started, rows)
"""


def spread(values: list[float], digits: int = 1) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:,.{digits}f}"
    return f"{middle:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the store to export")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (median, range)")
    parser.add_argument("--baseline", type=Path, help="src folder of another version to interleave")
    parser.add_argument("--export", type=Path, help="an export of --db made before: reused")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="posaudit-ingest-bench-"))
    python = sys.executable
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load {load_average()}"
    )
    export = args.export
    if export is None:
        export = work / "export"
        child(
            [
                python,
                "-m",
                "posaudit",
                "export",
                "--db",
                str(args.db),
                "--layout",
                "lakala-tms",
                "--out",
                str(export),
            ]
        )
    size = sum(p.stat().st_size for p in export.glob("*.csv"))
    print(f"export: {len(list(export.glob('*.csv')))} files, {size / 2**20:,.0f} MiB")

    def ingest(src: Path | None) -> tuple[float, float, dict[str, object]]:
        store = work / "ingested.duckdb"
        store.unlink(missing_ok=True)
        env = {"PYTHONPATH": str(src)} if src else {}
        wall, peak, out = child(
            [
                python,
                "-m",
                "posaudit",
                "ingest",
                "--db",
                str(store),
                "--mapping",
                "lakala-tms",
                "--json",
                str(export),
            ],
            env,
        )
        store.unlink(missing_ok=True)
        return wall, peak, json.loads(out.strip().splitlines()[-1])

    utf8 = work / "utf8"
    transcodes, limits, runs, baseline = [], [], [], []
    rows_limit = 0
    for _ in range(args.repeat):
        shutil.rmtree(utf8, ignore_errors=True)
        utf8.mkdir()
        _, _, out = child([python, "-c", TRANSCODE, str(export), str(utf8)])
        transcodes.append(float(out.split()[0]))
        limit_store = work / "limit.duckdb"
        limit_store.unlink(missing_ok=True)
        _, peak, out = child([python, "-c", READ_CSV, str(utf8), str(limit_store)])
        seconds, rows = out.split()
        limits.append((float(seconds), peak))
        rows_limit = int(rows)
        limit_store.unlink(missing_ok=True)
        runs.append(ingest(None))
        if args.baseline:
            baseline.append(ingest(args.baseline))

    rows = int(runs[0][2]["rows_read"])  # type: ignore[call-overload]
    print(f"rows: {rows:,} read by ingest, {rows_limit:,} by read_csv\n")
    print("| measure | seconds | rows/s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: |")
    limit_rate = [rows_limit / s for s, _ in limits]
    print(
        f"| read_csv limit (CREATE TABLE AS SELECT * FROM read_csv, UTF-8 files) | "
        f"{spread([s for s, _ in limits], 2)} | {spread(limit_rate, 0)} | "
        f"{max(p for _, p in limits):,.0f} |"
    )
    print(f"| transcoding GB18030 to UTF-8 (stream, alone) | {spread(transcodes, 2)} | | |")
    both = [rows_limit / (s + t) for (s, _), t in zip(limits, transcodes, strict=True)]
    print(f"| read_csv limit with the transcoding | | {spread(both, 0)} | |")
    for label, done in (("posaudit ingest", runs), ("the code before", baseline)):
        if not done:
            continue
        walls = [w for w, _, _ in done]
        inner = [float(d["seconds"]) for _, _, d in done]  # type: ignore[arg-type]
        peak = max(p for _, p, _ in done)
        print(
            f"| {label}, process | {spread(walls)} | {spread([rows / w for w in walls], 0)} | "
            f"{peak:,.0f} |"
        )
        print(
            f"| {label}, in process (summary seconds) | {spread(inner)} | "
            f"{spread([rows / s for s in inner], 0)} | |"
        )
    process_rate = statistics.median(rows / w for w, _, _ in runs)
    print(
        f"\nratio ingest / read_csv limit: {process_rate / statistics.median(limit_rate):.2f} "
        f"(whole process against read_csv alone), "
        f"{process_rate / statistics.median(both):.2f} (against read_csv with the transcoding)"
    )
    if baseline:
        same = all(
            {k: d[k] for k in ("rows_read", "rows_loaded", "rows_quarantined")}
            == {k: b[k] for k in ("rows_read", "rows_loaded", "rows_quarantined")}
            for (_, _, d), (_, _, b) in zip(runs, baseline, strict=True)
        )
        print(f"same rows read, loaded and quarantined as the code before: {same}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
