"""The analysts' review on a large store: recording a decision, listing the queue.

Times, inside one process (the interpreter's start and imports apart, which
`farm-bench` measures from outside, docs/benchmarks.md):

- a decision: what `posaudit review decide` does: open the store for writing (its lock),
  apply what was queued, check the finding, append the review, commit, close;
- the floor beside it: opening the store for writing and closing it, nothing written;
- the queue: what `posaudit review list` reads (every finding with its current review);
- the floor beside it: reading the same findings' columns with no review joined.

    python benchmarks/review_bench.py --db /path/to/10m-events.duckdb [--decisions 20]

The store must have findings (a run); the decisions are appended to its trail (use a copy).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from posaudit.review import checked_action, record_action, review_queue
from posaudit.store import Store


def _median_ms(samples: list[float]) -> str:
    low, mid, high = (x * 1000 for x in (min(samples), statistics.median(samples), max(samples)))
    return f"{mid:.1f} ms (min {low:.1f}, max {high:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--decisions", type=int, default=20)
    args = parser.parse_args()

    store = Store.open(args.db, read_only=True)
    try:
        events = sum(
            int(store.query(f"SELECT count(*) FROM {t}")[0][0])  # type: ignore[call-overload]
            for t in ("login_events", "pin_events", "lockouts", "transactions")
        )
        ids = [
            str(r[0])
            for r in store.query(
                "SELECT finding_id FROM findings ORDER BY finding_id LIMIT ?", [args.decisions]
            )
        ]
        findings = int(store.query("SELECT count(*) FROM findings")[0][0])  # type: ignore[call-overload]
    finally:
        store.close()
    print(f"store: {args.db} ({events:,} events, {findings:,} findings)")

    decisions, floors = [], []
    for finding_id in ids:
        action = checked_action("decide", decision="false_positive", note="bench", analyst="bench")
        start = time.perf_counter()
        record_action(args.db, finding_id, action, queue=False, wait=0)
        decisions.append(time.perf_counter() - start)
        start = time.perf_counter()
        Store.open(args.db, purpose="bench").close()
        floors.append(time.perf_counter() - start)
    print(f"record a decision: {_median_ms(decisions)}")
    print(f"floor, open the store for writing and close it: {_median_ms(floors)}")

    listing, reading = [], []
    for _ in range(5):
        start = time.perf_counter()
        store = Store.open(args.db, read_only=True)
        queue = review_queue(store)
        store.close()
        listing.append(time.perf_counter() - start)
        start = time.perf_counter()
        store = Store.open(args.db, read_only=True)
        store.frame(
            "SELECT finding_id, rule, family, CAST(severity AS VARCHAR) AS severity, score, "
            "CAST(entity_type AS VARCHAR) AS entity_type, entity_id, window_start, window_end, "
            "status FROM findings ORDER BY severity DESC, score DESC, finding_id"
        )
        store.close()
        reading.append(time.perf_counter() - start)
    print(f"list the queue ({queue.height:,} findings): {_median_ms(listing)}")
    print(f"floor, read the findings' columns sorted: {_median_ms(reading)}")


if __name__ == "__main__":
    main()
