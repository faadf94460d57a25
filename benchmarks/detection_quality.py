"""Detection quality on several worlds: `posaudit evaluate` per seed and size (docs/detection.md).

Simulates each world, runs the audit, evaluates against ground truth, and prints Markdown:
the worst recall per scenario and precision per rule across worlds, each world's figures,
and the false-alarm rate of a world without injected fraud.

    python benchmarks/detection_quality.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

# (name, merchants, days, seed, extra flags)
WORLDS = [
    ("default", 200, 30, 7, []),
    ("seed 1, small", 60, 30, 1, []),
    ("seed 2, wide", 500, 14, 2, []),
    ("seed 3, long", 80, 60, 3, []),
    ("no fraud", 400, 30, 4, ["--no-fraud"]),
]


def posaudit(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"posaudit {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="posaudit-quality-"))
    reports = {}
    for name, merchants, days, seed, flags in WORLDS:
        db = workdir / f"{seed}.duckdb"
        size = ["--merchants", str(merchants), "--days", str(days), "--seed", str(seed)]
        posaudit("simulate", "--db", str(db), *size, *flags)
        run = json.loads(posaudit("run", "--db", str(db), "--json"))
        report = json.loads(posaudit("evaluate", "--db", str(db), "--json"))
        reports[name] = (merchants, days, seed, flags, run, report)
        db.unlink()
    print(
        "| world | merchants x days | seed | findings | run s | min recall | min precision "
        "| unmatched above low per 1,000 operators |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | --- | ---: |")
    for name, (merchants, days, seed, _flags, run, report) in reports.items():
        recall = min(report["recall"], key=lambda r: r["recall"], default=None)
        precision = min(report["precision"], key=lambda r: r["precision"], default=None)
        r_txt = f"{recall['recall']:.3f} ({recall['scenario']})" if recall else "-"
        p_txt = f"{precision['precision']:.3f} ({precision['rule']})" if precision else "-"
        print(
            f"| {name} | {merchants} x {days} | {seed} | {run['findings']:,} "
            f"| {run['seconds']:.1f} | {r_txt} | {p_txt} "
            f"| {report['unmatched_above_low_per_1000_operators']:.2f} |"
        )
    fraud_worlds = {k: v for k, v in reports.items() if not v[3]}
    scenarios = sorted({r["scenario"] for v in fraud_worlds.values() for r in v[5]["recall"]})
    print("\nRecall per scenario: by any finding / by the scenario's own rules (incidents).")
    print("\n| scenario | " + " | ".join(fraud_worlds) + " |")
    print("| --- |" + " ---: |" * len(fraud_worlds))
    for s in scenarios:
        cells = []
        for v in fraud_worlds.values():
            row = next((r for r in v[5]["recall"] if r["scenario"] == s), None)
            cells.append(
                f"{row['recall']:.3f} / {row['recall_own']:.3f} ({row['incidents']})"
                if row
                else "-"
            )
        print(f"| {s} | " + " | ".join(cells) + " |")
    rules = sorted({r["rule"] for v in fraud_worlds.values() for r in v[5]["precision"]})
    print("\nPrecision per rule, severity above info (findings).")
    print("\n| rule | " + " | ".join(fraud_worlds) + " |")
    print("| --- |" + " ---: |" * len(fraud_worlds))
    for rule in rules:
        cells = []
        for v in fraud_worlds.values():
            row = next((r for r in v[5]["precision"] if r["rule"] == rule), None)
            cells.append(f"{row['precision']:.3f} ({row['findings']})" if row else "-")
        print(f"| {rule} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
