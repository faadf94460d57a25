"""The review trail as a table to hand over: every review, or each finding's current one.

Columns are read by name from ``finding_reviews`` as the store holds it, so a column added to
the trail later is exported too. Values are as stored (a note exactly as written), so an
auditor can recompute the digests from the export and ``posaudit review import`` reads the
current decisions back.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from posaudit.review.trail import COLUMNS, TABLE, current_reviews_sql
from posaudit.store import Store

# The finding's own columns a current decision is exported with, before the review's.
FINDING_COLUMNS: Final = (
    "finding_id",
    "rule",
    "family",
    "severity",
    "entity_type",
    "entity_id",
    "window_start",
    "window_end",
)


def _trail_columns(store: Store) -> list[str]:
    """The trail's columns in the table's order (those of this version when it has none yet)."""
    if not store.has_table(TABLE):
        return list(COLUMNS)
    rows = store.query(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' "
        "AND table_name = ? ORDER BY column_index",
        [TABLE],
    )
    return [str(row[0]) for row in rows]


def _as_text(columns: list[str], *, prefix: str = "") -> str:
    # ENUMs as their words, so the export reads the same in every tool
    return ", ".join(f'CAST({prefix}"{c}" AS VARCHAR) AS "{c}"' for c in columns)


def review_trail(store: Store) -> pl.DataFrame:
    """Every review, every column of the trail, in ``review_id`` order (no rows, the columns
    of this version, when the store has no trail yet)."""
    columns = _trail_columns(store)
    if not store.has_table(TABLE):
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    enums = _enum_columns(store)
    selected = ", ".join(_as_text([c]) if c in enums else f'"{c}"' for c in columns)
    return store.frame(f"SELECT {selected} FROM {TABLE} ORDER BY review_id")


def _enum_columns(store: Store) -> set[str]:
    rows = store.query(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' "
        "AND table_name = ? AND data_type LIKE 'ENUM%'",
        [TABLE],
    )
    return {str(row[0]) for row in rows}


def current_reviews(store: Store) -> pl.DataFrame:
    """One row per reviewed finding, its latest review: the finding's rule, family, severity,
    entity and window, then every column of that review; in ``finding_id`` order."""
    review_columns = [c for c in _trail_columns(store) if c != "finding_id"]
    if not store.has_table(TABLE):
        return pl.DataFrame(schema=dict.fromkeys([*FINDING_COLUMNS, *review_columns], pl.String))
    enums = _enum_columns(store)
    finding = ", ".join(
        f'CAST(f."{c}" AS VARCHAR) AS "{c}"' if c in ("severity", "entity_type") else f'f."{c}"'
        for c in FINDING_COLUMNS
    )
    review = ", ".join(
        _as_text([c], prefix="r.") if c in enums else f'r."{c}"' for c in review_columns
    )
    return store.frame(
        f"""
        WITH latest AS ({current_reviews_sql(store, columns="*")})
        SELECT {finding}, {review}
        FROM latest r JOIN findings f USING (finding_id)
        ORDER BY f.finding_id
        """
    )
