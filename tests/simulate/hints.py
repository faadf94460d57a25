"""The check that a simulated world hides its labels: only ``ground_truth`` may name them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl


def assert_no_hint(world: Mapping[str, pl.DataFrame], hints: Iterable[str]) -> None:
    """No column name, and no text value, of a table but ``ground_truth`` holds a hint."""
    words = tuple(hints)
    for table, frame in world.items():
        if table == "ground_truth":
            continue
        for column in frame.columns:
            assert not any(hint in column for hint in words), (table, column)
        for column in frame.select(pl.col(pl.String, pl.Categorical, pl.Enum)).columns:
            values = frame.get_column(column).cast(pl.String).unique().drop_nulls().to_list()
            assert not [v for v in values if any(hint in v for hint in words)], (table, column)
