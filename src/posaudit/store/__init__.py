"""The store: one DuckDB file, the system of record. The only package that imports duckdb.

Everything else sees tables as Polars LazyFrames and hands Arrow or Polars frames back to be
written. Writes happen inside one transaction per command, so a failed or killed command
leaves the store as it was. What each table is (its key, time column, kind) is in
:mod:`posaudit.store.catalogue`, beside ``schema.sql``.
"""

from __future__ import annotations

from posaudit.store.db import (
    SCHEMA_VERSION,
    Store,
    default_db_path,
    environment_error,
    read_parquet_table,
)
from posaudit.store.errors import StoreError, StoreLockedError

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreLockedError",
    "default_db_path",
    "environment_error",
    "read_parquet_table",
]
