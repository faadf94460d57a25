"""Detection quality on several worlds: `posaudit evaluate` per seed and size (docs/detection.md).

Simulates each world, runs the audit, evaluates against ground truth, and prints Markdown:
the worst recall per scenario and precision per rule across worlds, each world's figures,
and the false-alarm rate of a world without injected fraud.

Every world has the simulator's innocent look-alikes (on by default). Precision is
``evaluate``'s: a finding is true when it detects one of its rule's own scenarios (a score: any
attack); ``precision_any`` beside it credits every incident on the entity. The world table also
gives the alert volume (critical and high per 1,000 operators per day) and, for the world without
fraud, every finding above 'low' per 1,000 operators besides the unmatched ones.

With ``--evasion-curve``: the same worlds' audit at each evasion level instead (small worlds,
several seeds and sizes), printing per scenario its recall by its own rules, by any finding
of severity medium or above, and by a finding at medium or above or the top 1 % of the daily
ranking (evaluate's ``ranking``), the worst across worlds and the mean, and per rule its
precision over all worlds of a level (docs/detection.md, "Recall by evasion level").

    python benchmarks/detection_quality.py
    python benchmarks/detection_quality.py --evasion-curve
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
# The evasion curve: every level on every (merchants, days, seed); small enough that the whole
# curve runs in minutes on two shared cores.
EVASION_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
CURVE_WORLDS = [
    (merchants, days, seed) for merchants, days in ((40, 14), (80, 10)) for seed in (1, 2, 3)
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
        "| critical+high per 1,000 operators per day "
        "| unmatched above low per 1,000 operators "
        "| every finding above low per 1,000 operators (conditions too) |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |")
    for name, (merchants, days, seed, _flags, run, report) in reports.items():
        recall = min(report["recall"], key=lambda r: r["recall"], default=None)
        precision = min(report["precision"], key=lambda r: r["precision"], default=None)
        r_txt = f"{recall['recall']:.3f} ({recall['scenario']})" if recall else "-"
        p_txt = f"{precision['precision']:.3f} ({precision['rule']})" if precision else "-"
        volume = report["alert_volume"]
        above_low = sum(volume["findings"][s] for s in ("medium", "high", "critical"))
        print(
            f"| {name} | {merchants} x {days} | {seed} | {run['findings']:,} "
            f"| {run['seconds']:.1f} | {r_txt} | {p_txt} "
            f"| {volume['per_1000_operators_per_day']['critical+high']:.2f} "
            f"| {report['unmatched_above_low_per_1000_operators']:.2f} "
            f"| {1000 * above_low / report['operators']:.2f} |"
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
    print("\nPrecision per rule, severity above info: own scenarios / any incident (findings).")
    print("\n| rule | " + " | ".join(fraud_worlds) + " |")
    print("| --- |" + " ---: |" * len(fraud_worlds))
    for rule in rules:
        cells = []
        for v in fraud_worlds.values():
            row = next((r for r in v[5]["precision"] if r["rule"] == rule), None)
            cells.append(
                f"{row['precision']:.3f} / {row['precision_any']:.3f} ({row['findings']})"
                if row
                else "-"
            )
        print(f"| {rule} | " + " | ".join(cells) + " |")


def recall_above_low(db: Path, run_id: str) -> dict[str, float]:
    """Per scenario, the recall of the run's findings of severity medium or above."""
    from posaudit.evaluate import ABOVE_LOW, recall_by_scenario
    from posaudit.store import Store

    store = Store.open(db, read_only=True)
    try:
        findings = store.scan("findings", where=f"run_id = '{run_id}'").filter(ABOVE_LOW)
        recall = recall_by_scenario(findings, store.scan("ground_truth")).collect()
    finally:
        store.close()
    return dict(recall.select("scenario", "recall").iter_rows())  # type: ignore[arg-type]


def evasion_curve() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="posaudit-curve-"))
    # level -> one (own-rule recall, medium+ recall, evaluate's precision rows) per world
    own: dict[float, list[dict[str, float]]] = {level: [] for level in EVASION_LEVELS}
    medium: dict[float, list[dict[str, float]]] = {level: [] for level in EVASION_LEVELS}
    budget: dict[float, list[dict[str, float]]] = {level: [] for level in EVASION_LEVELS}
    precision: dict[float, list[list[dict]]] = {level: [] for level in EVASION_LEVELS}
    evaded_levels: dict[str, set[float]] = {}
    for level in EVASION_LEVELS:
        for merchants, days, seed in CURVE_WORLDS:
            db = workdir / f"{level}-{merchants}-{seed}.duckdb"
            size = ["--merchants", str(merchants), "--days", str(days), "--seed", str(seed)]
            posaudit("simulate", "--db", str(db), *size, "--evasion", str(level))
            posaudit("run", "--db", str(db), "--json")
            report = json.loads(posaudit("evaluate", "--db", str(db), "--json"))
            own[level].append({r["scenario"]: r["recall_own"] for r in report["recall"]})
            medium[level].append(recall_above_low(db, report["run_id"]))
            budget[level].append(
                {r["scenario"]: r["union"] for r in report.get("ranking", {}).get("recall", [])}
            )
            precision[level].append(report["precision"])
            for r in report["recall"]:
                if r.get("evasion") is not None:
                    evaded_levels.setdefault(r["scenario"], set()).add(r["evasion"])
            db.unlink()
    scenarios = sorted({s for worlds in own.values() for world in worlds for s in world})
    sizes = sorted({(m, d) for m, d, _ in CURVE_WORLDS})
    seeds = sorted({s for _, _, s in CURVE_WORLDS})
    print(
        f"{len(CURVE_WORLDS)} worlds per level ({', '.join(f'{m} x {d}' for m, d in sizes)} "
        f"merchants x days; seeds {', '.join(map(str, seeds))}). Each cell: worst across worlds "
        "/ mean; '-' where no world had an incident of the scenario."
    )
    for title, table in (
        ("Recall by the scenario's own rules", own),
        ("Recall by any finding of severity medium or above", medium),
        (
            "Recall by a finding of severity medium or above or the top 1 % of the day's "
            "ranking (operator-days and merchant-days; evaluate's ranking, 'either')",
            budget,
        ),
    ):
        print(f"\n{title}.\n")
        print("| scenario | " + " | ".join(f"evasion {level:g}" for level in EVASION_LEVELS) + " |")
        print("| --- |" + " ---: |" * len(EVASION_LEVELS))
        for s in scenarios:
            cells = []
            for level in EVASION_LEVELS:
                values = [world[s] for world in table[level] if s in world]
                cells.append(
                    f"{min(values):.2f} / {sum(values) / len(values):.2f}" if values else "-"
                )
            marker = "" if s in evaded_levels else " (condition: no level)"
            print(f"| {s}{marker} | " + " | ".join(cells) + " |")
    rules = sorted({r["rule"] for worlds in precision.values() for w in worlds for r in w})
    print(
        "\nPrecision per rule, severity above info, over all worlds of a level: own scenarios "
        "/ any incident (findings).\n"
    )
    print("| rule | " + " | ".join(f"evasion {level:g}" for level in EVASION_LEVELS) + " |")
    print("| --- |" + " ---: |" * len(EVASION_LEVELS))
    for rule in rules:
        cells = []
        for level in EVASION_LEVELS:
            rows = [r for w in precision[level] for r in w if r["rule"] == rule]
            found = sum(r["findings"] for r in rows)
            hits = sum(r["true_positives"] for r in rows)
            hits_any = sum(r["true_positives_any"] for r in rows)
            cells.append(
                f"{hits / found:.3f} / {hits_any / found:.3f} ({found:,})" if found else "-"
            )
        print(f"| {rule} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--evasion-curve"]:
        evasion_curve()
    elif sys.argv[1:]:
        raise SystemExit(f"unknown arguments {sys.argv[1:]}: the only option is --evasion-curve")
    else:
        main()
