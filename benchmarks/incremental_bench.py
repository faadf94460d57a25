"""Incremental runs against full runs: one new day on a store of N days.

Builds a world of ``--days`` days, audits it once (the previous night's run), appends one
day, then times, on copies of that store, the nightly incremental run (`posaudit run`) and a
full run over the same data (`posaudit run --full`), each ``--repeat`` times, as a scheduler
starts them (a fresh process each). Checks that both leave the same open findings, prints
what every rule read in the incremental run and why, and what each rule costs over all the
data. Figures go to docs/benchmarks.md under "Incremental runs".

    .venv/bin/python benchmarks/incremental_bench.py --merchants 200 --days 30 --repeat 3

With ``--engine spark`` the runs are Spark runs (``--master``, default local[2]) over a
bucketed export: the previous night's run makes it, and each timed run, the night and the
full one, starts from a copy of it and brings it up to date first (the ``export`` stage).
One night runs before the timed ones (a day appended, the export brought up to date): the
first update of an export rewrites each bucket's single file, later ones only the last days'.
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

import duckdb
import polars as pl

from posaudit.detect.policy import load_policy
from posaudit.detect.registry import DERIVED_TABLES
from posaudit.pins import pin_digester
from posaudit.rules import all_rules
from posaudit.run.detect import collect, shaped_findings
from posaudit.run.inputs import derived_inputs
from posaudit.run.plan import POPULATION_FAMILIES, data_window, plan_run
from posaudit.run.read import TableReader
from posaudit.store import Store

POSAUDIT = [sys.executable, "-m", "posaudit"]


def posaudit(*args: str) -> tuple[float, dict[str, object]]:
    """Wall seconds and the JSON summary of one posaudit command, with its peak resident
    memory in MiB under ``peak_mib`` (the process's own, from the kernel's accounting)."""
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([*POSAUDIT, *args], stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode not in (0, 4):
        sys.exit(f"posaudit {' '.join(args)} exited {child.returncode}: {stderr.strip()}")
    lines = stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return wall, summary | {"peak_mib": usage.ru_maxrss / 1024}


def open_findings(path: Path) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(
            "SELECT finding_id, rule, window_start, window_end, "
            "CAST(severity AS VARCHAR) AS severity, score, "
            "summary FROM findings WHERE status = 'open' ORDER BY finding_id"
        ).pl()
    finally:
        con.close()


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    names = (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    model = next(names, platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM; "
        f"{platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, polars {pl.__version__}, "
        f"duckdb {duckdb.__version__}; load average at start {load}"
    )


def scopes(path: Path, policy: Path | None) -> list[tuple[str, str]]:
    """What each rule read in the incremental run, planned as the run planned it."""
    store = Store.open(path, read_only=True)
    try:
        rules = [r for r in all_rules().values() if load_policy(policy).enabled(r.name)]
        plan = plan_run(store, load_policy(policy), rules)
    finally:
        store.close()
    out = []
    for name, scope in plan.scopes.items():
        cuts = "".join(
            f", {t} from {since:%Y-%m-%d %H:%M}" for t, since in sorted(scope.table_from.items())
        )
        if scope.recheck_from is None:
            out.append((name, f"all data ({scope.why_all})"))
            continue
        recheck = f"re-decides findings ending from {scope.recheck_from:%Y-%m-%d %H:%M}"
        if scope.read_from is None:
            out.append((name, f"other tables whole{cuts}, {recheck}"))
        else:
            out.append((name, f"events from {scope.read_from:%Y-%m-%d %H:%M}{cuts}, {recheck}"))
    return out


def rule_costs(path: Path, policy: Path | None) -> list[tuple[str, float]]:
    """Seconds each rule takes alone over all the data (tables already in memory)."""
    store = Store.open(path, read_only=True)
    try:
        rules = [r for r in all_rules().values() if load_policy(policy).enabled(r.name)]
        reader = TableReader(store)
        began = time.perf_counter()
        derived = derived_inputs(
            rules, reader.read("operators"), window=data_window(store), digester=pin_digester()
        )
        costs = [("(PIN exclusion list and data window)", time.perf_counter() - began)]
        for r in rules:
            tables = {
                t: (reader.read_derived(t) if t in DERIVED_TABLES else reader.read(t)).lazy()
                for t in r.inputs
                if t not in derived
            } | derived
            began = time.perf_counter()
            parameters = r.parameters | load_policy(policy).parameters(r.name)
            # as the run collects: again in memory should the streaming engine panic
            collect(shaped_findings(r(tables, **parameters)))
            costs.append((r.name, time.perf_counter() - began))
    finally:
        store.close()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--start",
        default=None,
        help="First day of the world (YYYY-MM-DD); the appended day's weekday decides whether "
        "the night completes a week (the anomaly score then fits the week's own model).",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--work", type=Path, default=None, help="Folder for the stores (default: a temporary one)."
    )
    parser.add_argument(
        "--max-lookback-days",
        type=int,
        default=None,
        help="Audit with a policy switching off the score and every rule that looks back further.",
    )
    parser.add_argument(
        "--off",
        default="",
        help="Comma-separated rules to switch off in both runs, by a policy (to measure what a "
        "nightly run would take if they cost it nothing).",
    )
    parser.add_argument("--engine", choices=("local", "spark"), default="local")
    parser.add_argument("--master", default="local[2]", help="Spark master (--engine spark).")
    parser.add_argument("--buckets", type=int, default=8, help="Buckets (--engine spark).")
    args = parser.parse_args()
    spark = args.engine == "spark"
    off = [name for name in args.off.split(",") if name]
    unknown = sorted(set(off) - set(all_rules()))
    if unknown:
        sys.exit(f"--off: no rule named {', '.join(unknown)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="posaudit-incremental-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {datetime.now():%Y-%m-%d %H:%M}  {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(f"# {machine()}")

    # the simulated world is kept in --work and reused by later invocations with the same size
    start = f"-{args.start}" if args.start else ""
    world = work / f"world-{args.merchants}m-{args.days}d-seed{args.seed}{start}.duckdb"
    if not world.exists():
        size = ["--merchants", str(args.merchants), "--days", str(args.days)]
        first_day = ["--start", args.start] if args.start else []
        posaudit("simulate", "--db", str(world), *size, "--seed", str(args.seed), *first_day)
    base = work / "base.duckdb"
    for leftover in [*work.glob("base.duckdb*"), *work.glob("incremental-*"), *work.glob("full-*")]:
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    shutil.rmtree(work / "export-base", ignore_errors=True)
    shutil.copy(world, base)
    policy = None
    if args.max_lookback_days is not None:
        off += [
            r.name
            for r in all_rules().values()
            if r.lookback.days > args.max_lookback_days or r.family in POPULATION_FAMILIES
        ]
        print(f"# rules looking back more than {args.max_lookback_days} days, and the score: off")
    if off:
        policy = work / "rules-off-policy.toml"
        policy.write_text(
            "".join(f"[rules.{name}]\nenabled = false\n" for name in dict.fromkeys(off))
        )
        print(f"# policy: {', '.join(dict.fromkeys(off))} off")
    with_policy = ["--policy", str(policy)] if policy else []

    def engine(export: Path) -> list[str]:
        if not spark:
            return []
        return ["--engine", "spark", "--master", args.master, "--parquet", str(export)]

    with_policy += ["--buckets", str(args.buckets)] if spark else []
    _, first = posaudit(
        "run", "--db", str(base), "--json", "--quiet", *with_policy, *engine(work / "export-base")
    )
    if spark:
        posaudit("simulate", "--db", str(base), "--append", "--days", "1")
        night = ["run", "--db", str(base), "--json", "--quiet", *with_policy]
        wall, warm = posaudit(*night, *engine(work / "export-base"))
        print(
            f"# a night before the timed ones: {warm['mode']}, {wall:.1f} s, the export's "
            f"update {warm['stage_seconds']['export']:.1f} s"  # type: ignore[index]
        )
    posaudit("simulate", "--db", str(base), "--append", "--days", "1")
    print(
        f"# store: {args.days} days, {args.merchants} merchants, "
        f"audited once ({first['findings']:,} findings); one day appended"
    )

    timings: dict[str, list[tuple[float, dict[str, object]]]] = {"incremental": [], "full": []}
    for i in range(args.repeat):
        for mode in ("incremental", "full"):
            copy = work / f"{mode}-{i}.duckdb"
            shutil.copy(base, copy)
            export = work / f"{mode}-{i}-export"
            if spark:
                shutil.copytree(work / "export-base", export)
            extra = ["--full"] if mode == "full" else []
            timings[mode].append(
                posaudit(
                    "run",
                    "--db",
                    str(copy),
                    "--json",
                    "--quiet",
                    *extra,
                    *with_policy,
                    *engine(export),
                )
            )
    keys = ["finding_id", "window_start", "window_end"]
    pairs = [
        (open_findings(work / f"incremental-{i}.duckdb"), open_findings(work / f"full-{i}.duckdb"))
        for i in range(args.repeat)
    ]
    same = all(a.select(keys).equals(b.select(keys)) for a, b in pairs)
    # rules whose summary or score differ between the two: rules that break ties arbitrarily
    # differ the same way between two full runs
    summary_differs = pl.col("summary") != pl.col("summary_full")
    score_differs = pl.col("score") != pl.col("score_full")
    unsettled = sorted(
        {
            rule
            for a, b in pairs
            for rule in a.join(b, on=keys, suffix="_full")
            .filter(summary_differs | score_differs)
            .get_column("rule")
        }
    )

    def median(mode: str, key: str | None = None) -> float:
        if key is None:
            return statistics.median(w for w, _ in timings[mode])
        if key.startswith("stage:"):
            return statistics.median(s["stage_seconds"][key[6:]] for _, s in timings[mode])  # type: ignore[index]
        return statistics.median(float(s[key]) for _, s in timings[mode])  # type: ignore[arg-type]

    inc, full = timings["incremental"][0][1], timings["full"][0][1]
    stages = (
        ["start", "export", "buckets", "score", "driver", "write"]
        if spark
        else ["plan", "read", "detect", "write"]
    )
    print()
    print(
        "| run | run seconds (median) | wall seconds, process (median) "
        f"| peak memory MiB (median) | rows read | {' | '.join(stages)} |"
    )
    print("| --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(stages))
    for mode, summary in (("incremental", inc), ("full", full)):
        by_stage = " | ".join(f"{median(mode, 'stage:' + stage):.2f}" for stage in stages)
        print(
            f"| {mode} | {median(mode, 'seconds'):.2f} | {median(mode):.2f} "
            f"| {median(mode, 'peak_mib'):.0f} | {summary['rows_read']:,} | {by_stage} |"
        )
    if spark:
        print("(peak memory: the driver's Python process; the JVM and its workers are apart)")
    last_day = datetime.fromisoformat(str(inc["data_to"]))
    print()
    print(f"the night's last event: {last_day:%A %Y-%m-%d %H:%M}")
    print(
        f"incremental / full: "
        f"{median('incremental', 'seconds') / median('full', 'seconds'):.0%} of the run's "
        f"seconds, {median('incremental') / median('full'):.0%} of the process wall time; "
        f"same finding ids and windows: {same}, "
        f"other columns differ in: {', '.join(unsettled) or 'none'} "
        f"({inc['findings']:,}; {inc['new']:,} new, {inc['carried']:,} carried over, "
        f"{inc['resolved']:,} resolved); "
        f"{inc['rules_over_all_data']} of {len(scopes(base, policy))} rules over all data"
    )
    print()
    print("What each rule read in the incremental run:")
    for name, text in scopes(base, policy):
        print(f"- {name}: {text}")
    if not spark:
        print()
        print("Seconds per rule alone, over all the data (tables in memory):")
        for name, seconds in rule_costs(base, policy):
            print(f"- {name}: {seconds:.2f}")
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
