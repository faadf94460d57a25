"""A rule's findings survive a panic of Polars' streaming engine: collected again in memory."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from posaudit.run.detect import collect


class StreamingPanics:
    """A plan whose streaming collect panics, as Polars 2.1's does now and then inside a
    string expression; the in-memory engine collects it."""

    def __init__(self, frame: pl.LazyFrame) -> None:
        self.frame = frame
        self.engines: list[str] = []

    def collect(self, engine: str = "auto", **kw: Any) -> pl.DataFrame:
        self.engines.append(engine)
        if engine != "in-memory":
            raise pl.exceptions.PanicException("assertion failed: i < self.len()")
        return self.frame.collect(engine=engine, **kw)


def test_a_streaming_panic_is_collected_again_in_memory() -> None:
    frame = pl.LazyFrame({"summary": ["a", "b"]}).with_columns(
        pl.format("{} seen", "summary").alias("summary")
    )
    plan = StreamingPanics(frame)
    assert collect(plan).equals(frame.collect())  # type: ignore[arg-type]
    assert plan.engines == ["auto", "in-memory"]


def test_any_other_error_is_not_hidden() -> None:
    broken = pl.LazyFrame({"a": [1]}).select(pl.col("missing"))
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        collect(broken)
