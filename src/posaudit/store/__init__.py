"""The store: one DuckDB file, the system of record. The only package that imports duckdb.

Everything else sees tables as Polars LazyFrames and hands Arrow or Polars frames back to be
written. Writes happen inside one transaction per command, so a failed or killed command
leaves the store as it was.
"""

from __future__ import annotations

from posaudit.store.db import (
    EVENT_TABLES,
    SCHEMA_VERSION,
    TABLES,
    Store,
    default_db_path,
    environment_error,
    read_parquet_table,
)
from posaudit.store.errors import StoreError, StoreLockedError

__all__ = [
    "EVENT_TABLES",
    "SCHEMA_VERSION",
    "TABLES",
    "Store",
    "StoreError",
    "StoreLockedError",
    "default_db_path",
    "environment_error",
    "read_parquet_table",
]
