"""An empty table of a store still has its columns in a Parquet export (no batch totals in an
ingested store, say): readers of the export see it empty, not missing."""

from __future__ import annotations

from pathlib import Path

from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.spark.buckets import scan_table
from posaudit.store import Store
from posaudit.store.db import read_parquet_table


def test_an_empty_table_is_exported_with_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    simulate(path, load_scenario(None, merchants=4, days=2), seed=3)
    store = Store.open(path)
    try:
        store.execute("DELETE FROM batch_totals")
        store.export_parquet(tmp_path / "bucketed", buckets=3)
        store.export_parquet(tmp_path / "plain")
    finally:
        store.close()
    bucketed = scan_table(tmp_path / "bucketed", "batch_totals").collect()
    plain = read_parquet_table(tmp_path / "plain", "batch_totals").collect()
    for frame in (bucketed, plain):
        assert frame.height == 0
        assert {"batch_id", "terminal_id", "txn_count", "fee_fen"} <= set(frame.columns)
