"""data_samples/ is exactly what its README's command makes today."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from posaudit.store import Store, read_parquet_table
from posaudit.store.catalogue import WORLD_TABLES, key_column
from tests.conftest import SAMPLE_DAYS, SAMPLE_MERCHANTS, SAMPLE_SEED

SAMPLE = Path(__file__).parents[2] / "data_samples" / "world"
KEYS = {table: key_column(table) for table in WORLD_TABLES}


def test_sample_equals_a_fresh_simulation(sample_store: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        for table, key in KEYS.items():
            fresh = store.frame(f"SELECT * FROM {table} ORDER BY {key}")
            committed = read_parquet_table(SAMPLE, table).collect()
            fresh = fresh.with_columns(
                [
                    pl.col(c).cast(pl.String)
                    for c, t in fresh.schema.items()
                    if isinstance(t, pl.Categorical | pl.Enum)
                ]
            )
            assert committed.height == fresh.height, table
            assert committed.equals(fresh.select(committed.columns)), table
    finally:
        store.close()
    assert (SAMPLE_MERCHANTS, SAMPLE_DAYS, SAMPLE_SEED) == (20, 21, 11)


def test_sample_is_small() -> None:
    size = sum(f.stat().st_size for f in SAMPLE.rglob("*.parquet"))
    assert size < 5 * 2**20
