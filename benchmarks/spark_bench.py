"""The Spark engine against the local engine: wall time, per-event overhead, bucket counts.

    python benchmarks/spark_bench.py --store 5M=data/s5m.duckdb --store 10M=data/s10m.duckdb \\
        --store 20M=data/s20m.duckdb --sweep 10M --sweep-buckets 8,32,128

For each store (a copy each time, so every run is the store's first): the local engine
(`posaudit run --full --json`), the bucketed export, and the Spark engine in local mode
(`posaudit run --engine spark --parquet EXPORT --json`), each a fresh process; then whether
both engines found the same finding ids. For the ``--sweep`` store, the Spark run again per
bucket count and with the groupby strategy. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

EXPORT = """
import sys, time
from pathlib import Path
from posaudit.spark.export import export_buckets
from posaudit.store import Store
store = Store.open(sys.argv[1], read_only=True)
started = time.perf_counter()
export_buckets(store, Path(sys.argv[2]), buckets=int(sys.argv[3]))
print(time.perf_counter() - started)
"""

FINDING_IDS = """
import sys
from posaudit.store import Store
store = Store.open(sys.argv[1], read_only=True)
rows = store.query("SELECT finding_id FROM findings WHERE status = 'open'")
print(",".join(sorted(r[0] for r in rows)))
"""


def _tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants (driver, JVM, Python workers)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def child(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory of the whole process tree (MiB, sampled) and stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            args, stdout=out, stderr=err, text=True, env=os.environ | {"CI": "1"}
        )
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, _tree_rss_mib(process.pid))
            time.sleep(0.5)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"{' '.join(args)} exited {process.returncode}: {err.read().strip()[-2000:]}")
        return wall, peak, out.read()


def events(db: Path) -> int:
    code = (
        "import sys; from posaudit.store import Store; "
        "from posaudit.store.catalogue import EVENT_TABLES; "
        "s = Store.open(sys.argv[1], read_only=True); "
        "print(sum(int(s.query(f'SELECT count(*) FROM {t}')[0][0]) for t in EVENT_TABLES))"
    )
    return int(child([sys.executable, "-c", code, str(db)])[2].strip())


def posaudit(*args: str) -> tuple[float, float, dict[str, object]]:
    wall, peak, out = child([sys.executable, "-m", "posaudit", "run", *args, "--json", "--quiet"])
    return wall, peak, json.loads(out.strip().splitlines()[-1])


def finding_ids(db: Path) -> str:
    return child([sys.executable, "-c", FINDING_IDS, str(db)])[2].strip()


def spark_run(
    store: Path, work: Path, *, buckets: int, strategy: str, reuse: Path | None = None
) -> dict[str, object]:
    copy = work / f"spark-{buckets}-{strategy}.duckdb"
    shutil.copy(store, copy)
    export = reuse or work / f"export-{buckets}"
    export_s = None
    if reuse is None:
        shutil.rmtree(export, ignore_errors=True)
        export_s = float(
            child([sys.executable, "-c", EXPORT, str(copy), str(export), str(buckets)])[2]
        )
    wall, peak, record = posaudit(
        "--db",
        str(copy),
        "--engine",
        "spark",
        "--parquet",
        str(export),
        "--spark-strategy",
        strategy,
    )
    ids = finding_ids(copy)
    copy.unlink()
    return {
        "wall": wall,
        "peak": peak,
        "record": record,
        "export_s": export_s,
        "export": export,
        "ids": ids,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", action="append", required=True, help="LABEL=PATH of a simulated store"
    )
    parser.add_argument("--buckets", type=int, default=8, help="buckets of the main runs")
    parser.add_argument("--repeat", type=int, default=1, help="runs per store (medians)")
    parser.add_argument("--sweep", help="LABEL of the store to run again per bucket count")
    parser.add_argument("--sweep-buckets", default="8,32,128")
    args = parser.parse_args()
    stores = dict(item.split("=", 1) for item in args.store)
    work = Path(tempfile.mkdtemp(prefix="posaudit-spark-bench-", dir=Path("data").resolve()))
    load = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {datetime.now():%Y-%m-%d %H:%M}, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print()
    print(
        "| store | events | local s | export s | spark s | of which start / buckets / score / "
        "write | score: activity / medians + sample / fit / scoring | overhead us/event "
        "| local / spark peak MiB | same ids |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |")
    for label, path in stores.items():
        store = Path(path)
        n = events(store)
        local_walls, spark_runs = [], []
        for attempt in range(args.repeat):
            local_copy = work / "local.duckdb"
            shutil.copy(store, local_copy)
            local_wall, local_peak, _ = posaudit("--db", str(local_copy), "--full")
            local_walls.append(local_wall)
            local_ids = finding_ids(local_copy)
            local_copy.unlink()
            reuse = spark_runs[0]["export"] if attempt else None
            spark_runs.append(
                spark_run(store, work, buckets=args.buckets, strategy="shards", reuse=reuse)  # type: ignore[arg-type]
            )
        spark = spark_runs[0] | {"wall": statistics.median(float(r["wall"]) for r in spark_runs)}  # type: ignore[arg-type]
        run_stages = ("start", "buckets", "score", "write")
        score_stages = ("score_activity", "score_sample", "score_fit", "score_buckets")
        stages = {
            k: statistics.median(r["record"]["stage_seconds"][k] for r in spark_runs)  # type: ignore[index]
            for k in (*run_stages, *score_stages)
        }
        local_wall = statistics.median(local_walls)
        overhead = (float(spark["wall"]) - local_wall) / n * 1e6  # type: ignore[arg-type]
        walls = [float(r["wall"]) for r in spark_runs]  # type: ignore[arg-type]
        spread = f" ({min(walls):.0f}-{max(walls):.0f})"
        print(
            f"| {label} | {n:,} | {local_wall:.1f} | {spark['export_s']:.1f} | "
            f"{spark['wall']:.1f}{spread if args.repeat > 1 else ''} | {stages['start']:.1f} / "
            f"{stages['buckets']:.1f} / {stages['score']:.1f} / {stages['write']:.1f} | "
            f"{stages['score_activity']:.1f} / {stages['score_sample']:.1f} / "
            f"{stages['score_fit']:.1f} / {stages['score_buckets']:.1f} | {overhead:.2f} | "
            f"{local_peak:,.0f} / {spark['peak']:,.0f} | "
            f"{all(r['ids'] == local_ids for r in spark_runs)} |",
            flush=True,
        )
        if label == args.sweep:
            sweep_store, sweep_export, sweep_ids = store, spark["export"], local_ids
        else:
            shutil.rmtree(spark["export"])  # type: ignore[arg-type]
    if args.sweep:
        print()
        print("| buckets | strategy | export s | spark s | buckets s | score s | same ids |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
        runs = [(b, "shards", None) for b in map(int, args.sweep_buckets.split(","))]
        runs.append((args.buckets, "groupby", sweep_export))
        for buckets, strategy, reuse in runs:
            spark = spark_run(
                sweep_store,
                work,
                buckets=buckets,
                strategy=strategy,
                reuse=reuse,  # type: ignore[arg-type]
            )
            stages = spark["record"]["stage_seconds"]  # type: ignore[index]
            export_s = "-" if spark["export_s"] is None else f"{spark['export_s']:.1f}"
            print(
                f"| {buckets} | {strategy} | {export_s} | {spark['wall']:.1f} | "
                f"{stages['buckets']:.1f} | {stages['score']:.1f} | {spark['ids'] == sweep_ids} |",
                flush=True,
            )
            if reuse is None:
                shutil.rmtree(spark["export"])  # type: ignore[arg-type]
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
