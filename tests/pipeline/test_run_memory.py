"""A night lets go of what DuckDB cached while it read, before the rules run."""

from __future__ import annotations

from pathlib import Path

from pipeline_kit import append_days, copy, run_here

from posaudit.detect.policy import load_policy
from posaudit.run.local import run_pipeline
from posaudit.store import Store


def _cached_mib(store: Store) -> int:
    (used,) = store.query(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'"
    )[0]
    return int(used) // 2**20  # type: ignore[call-overload]


def test_a_night_lets_go_of_what_it_read_before_the_rules_run(
    sample_store: Path, tmp_path: Path
) -> None:
    """Once every table is read, and the score has read what it keeps, the blocks DuckDB
    cached for the reading are let go: the rules and the score run on the frames alone."""
    path = copy(sample_store, tmp_path / "night.duckdb")
    run_here(path)
    append_days(path)
    store = Store.open(path)
    cached: dict[str, int] = {}

    def on_event(kind: str, _fields: dict[str, object]) -> None:
        with store.cursor() as cursor:
            cached[kind] = _cached_mib(cursor)

    try:
        summary = run_pipeline(store, load_policy(), on_event=on_event)
    finally:
        store.close()
    assert summary.mode == "incremental", summary.reason
    assert cached["read"] == 0
    # what the write reads is cached again: the measure sees blocks when there are some
    assert cached["write"] >= 1
