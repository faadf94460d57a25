"""The store's queries behind the rules, each timed alone as a run sends it.

    python benchmarks/query_bench.py --db data/bench.duckdb                 # every query
    python benchmarks/query_bench.py --db data/bench.duckdb card_repeats    # some of them

Each derived table defined by a query runs over the whole store (a full run's cut) through
the store's own ``read_query``, into Polars; the best of ``--repeat`` runs is printed with the
rows returned. Reads the store only. Queries run one at a time: a run reads two at once, so
each takes longer there (the read stage of `posaudit run` prints the total).
"""

from __future__ import annotations

import argparse
import time
import warnings

import posaudit.rules  # noqa: F401  (registers every rule and derived table)
from posaudit.detect.registry import DERIVED_TABLES
from posaudit.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("names", nargs="*", help="derived tables (default: every query)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the demo PIN key's warning: no PIN is read here
    names = args.names or sorted(n for n, t in DERIVED_TABLES.items() if t.sql)
    store = Store.open(args.db, read_only=True)
    try:
        print(f"{'query':32s} {'best s':>7s} {'rows':>10s}")
        for name in names:
            table = DERIVED_TABLES[name]
            over = {table.source: None, **dict.fromkeys(table.joined)}
            best, rows = float("inf"), 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                rows = store.read_query(table.sql, over=over).height
                best = min(best, time.perf_counter() - started)
            print(f"{name:32s} {best:7.2f} {rows:>10,}", flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    main()
