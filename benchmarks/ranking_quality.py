"""The daily ranking's quality and speed on several worlds (docs/detection.md, "Ranking for a
daily budget").

For each size (merchants x days), seed and evasion level: `posaudit simulate --lookalikes`,
`posaudit run`, then the ranking's evaluation (`posaudit.ranking_evaluation`, what
`posaudit evaluate --json` prints under ``ranking``) and the time the ranking itself takes
(features and unsupervised scores of every operator-day and merchant-day, in process, the
tables already read). Prints Markdown: per world the precision within the budget and the
average precision of both scores; per scenario and level the recall by the rules at medium or
above, within the top 1 % of each day, and by either, the worst world and the mean.

    python benchmarks/ranking_quality.py [--worlds DIR]

With ``--worlds DIR`` the worlds are kept in DIR (``w-<M>x<D>-e<level>-s<seed>.duckdb``) and a
world already there (its ``.done`` marker written) is not simulated again.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

# run as a script from benchmarks/: its sibling's way of calling the CLI
from detection_quality import posaudit

SIZES = ((40, 14), (80, 30), (200, 30))
SEEDS = (1, 2, 3)
LEVELS = ("0", "0.5")
RECALL_COLUMNS = {
    "rules": "rules (medium+)",
    "unsupervised": "top 1 %",
    "union": "rules or top 1 %",
    "union_after_rules": "rules or top 1 % after rules",
    "unsupervised_test": "top 1 %, test days",
    "supervised_test": "supervised top 1 %, test days",
}


def world(workdir: Path, merchants: int, days: int, seed: int, level: str) -> Path:
    db = workdir / f"w-{merchants}x{days}-e{level}-s{seed}.duckdb"
    done = db.with_suffix(".duckdb.done")
    if done.exists():
        return db
    db.unlink(missing_ok=True)
    size = ["--merchants", str(merchants), "--days", str(days), "--seed", str(seed)]
    posaudit("simulate", "--db", str(db), *size, "--evasion", level, "--lookalikes")
    posaudit("run", "--db", str(db), "--json")
    done.touch()
    return db


def measure(db: Path) -> dict[str, Any]:
    from posaudit.ranking_evaluation import evaluate_ranking, store_tables
    from posaudit.score.ranking import (
        SCORED_MERCHANT_FEATURES,
        SCORED_OPERATOR_FEATURES,
        daily_anomaly_scores,
        merchant_day_features,
        ranking_features_of,
    )
    from posaudit.store import Store

    store = Store.open(db, read_only=True)
    try:
        run = store.query("SELECT run_id FROM pipeline_runs ORDER BY started_at DESC LIMIT 1")
        events = store.query(
            "SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM login_events)"
        )[0][0]
        tables = {name: frame.collect().lazy() for name, frame in store_tables(store).items()}
        started = time.perf_counter()
        operator_days = ranking_features_of(tables).collect()
        merchant_days = merchant_day_features(
            operator_days.lazy(), tables["login_events"], tables["terminals"]
        ).collect()
        daily_anomaly_scores(operator_days.lazy(), features=SCORED_OPERATOR_FEATURES).collect()
        daily_anomaly_scores(merchant_days.lazy(), features=SCORED_MERCHANT_FEATURES).collect()
        ranking_seconds = time.perf_counter() - started
        started = time.perf_counter()
        findings = store.scan("findings", where=f"run_id = '{run[0][0]}'")
        evaluation = evaluate_ranking(tables, findings).to_dict()
        evaluation_seconds = time.perf_counter() - started
    finally:
        store.close()
    return {
        "events": events,
        "ranking_seconds": ranking_seconds,
        "evaluation_seconds": evaluation_seconds,
        **evaluation,
    }


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=Path, help="keep (and reuse) the worlds here")
    args = parser.parse_args()
    workdir = args.worlds or Path(tempfile.mkdtemp(prefix="posaudit-ranking-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        "| world (merchants x days) | evasion | seed | events | ranking s | operator-days "
        "P@100 u / s | P@1% u / s | AP u / s | merchant-days P@1% u / s | AP u / s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    recall: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for merchants, days in SIZES:
        for level in LEVELS:
            for seed in SEEDS:
                result = measure(world(workdir, merchants, days, seed, level))
                op, me = result["scores"]["operator"], result["scores"]["merchant"]

                def pair(scores: dict[str, Any], metric: str) -> str:
                    u = (scores.get("unsupervised") or {}).get(metric)
                    s = (scores.get("supervised") or {}).get(metric)
                    return f"{cell(u)} / {cell(s)}"

                print(
                    f"| {merchants} x {days} | {level} | {seed} | {result['events']:,} | "
                    f"{result['ranking_seconds']:.1f} | {pair(op, 'precision_at_100')} | "
                    f"{pair(op, 'precision_at_1pct')} | {pair(op, 'average_precision')} | "
                    f"{pair(me, 'precision_at_1pct')} | {pair(me, 'average_precision')} |",
                    flush=True,
                )
                for row in result["recall"]:
                    for column in (*RECALL_COLUMNS, "incidents"):
                        if row[column] is not None:
                            recall[(level, row["scenario"])][column].append(row[column])
    for level in LEVELS:
        print(f"\nEvasion {level}: recall per scenario, worst world / mean (incidents)\n")
        print("| scenario | incidents | " + " | ".join(RECALL_COLUMNS.values()) + " |")
        print("| --- | ---: |" + " ---: |" * len(RECALL_COLUMNS))
        for (at, scenario), values in sorted(recall.items()):
            if at != level:
                continue
            cells = [
                f"{min(values[c]):.2f} / {sum(values[c]) / len(values[c]):.2f}"
                if values[c]
                else "-"
                for c in RECALL_COLUMNS
            ]
            incidents = int(sum(values["incidents"]))
            print(f"| {scenario} | {incidents:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
