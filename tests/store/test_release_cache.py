"""A run lets go of the blocks DuckDB cached for its plan, and keeps its memory limit."""

from __future__ import annotations

from pathlib import Path

from posaudit.store import Store


def _cached_mib(store: Store) -> int:
    (used,) = store.query(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'"
    )[0]
    return int(used) // 2**20  # type: ignore[call-overload]


def test_release_cache_evicts_what_a_scan_cached_and_keeps_the_limit(sample_store: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        (limit,) = store.query("SELECT current_setting('memory_limit')")[0]
        store.query("SELECT count(DISTINCT txn_id), sum(amount_fen) FROM transactions")
        assert _cached_mib(store) >= 1
        store.release_cache()
        assert _cached_mib(store) == 0
        assert store.query("SELECT current_setting('memory_limit')")[0][0] == limit
        # the store reads on as before
        assert store.query("SELECT count(*) FROM transactions")[0][0] > 0  # type: ignore[operator]
    finally:
        store.close()
