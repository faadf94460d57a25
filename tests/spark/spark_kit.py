"""Helpers shared by the Spark engine's tests: stores, exports, comparing findings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl

from posaudit.store import Store

REPO = Path(__file__).resolve().parents[2]
DATA_SAMPLES = REPO / "data_samples" / "world"
# Floating-point scores may differ in the last bits when Polars' kernels see the rows in
# other chunks or another order; everything else a person reads must be identical.
SCORE_TOLERANCE = 1e-9
EXACT_COLUMNS = [
    "finding_id",
    "rule",
    "family",
    "severity",
    "entity_type",
    "entity_id",
    "merchant_id",
    "window_start",
    "window_end",
    "summary",
]


def normalized_evidence(text: str) -> object:
    """Evidence with lists as sets and floats rounded: lists of event ids follow row order
    where events tie in time, and an export holds rows in another order than the store."""

    def norm(value: object) -> object:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return sorted((norm(v) for v in value), key=repr)
        if isinstance(value, float):
            return round(value, 9)
        return value

    return norm(json.loads(text))


def copy_store(source: Path, target: Path) -> Path:
    shutil.copy(source, target)
    return target


def store_findings(path: Path) -> pl.DataFrame:
    """The open findings of a store, in a stable order, as the engines compare them."""
    store = Store.open(path, read_only=True)
    try:
        return store.frame(
            "SELECT finding_id, rule, family, CAST(severity AS VARCHAR) AS severity, score, "
            "CAST(entity_type AS VARCHAR) AS entity_type, entity_id, merchant_id, window_start, "
            "window_end, summary, CAST(evidence AS VARCHAR) AS evidence FROM findings "
            "WHERE status = 'open' ORDER BY finding_id"
        )
    finally:
        store.close()


def assert_same_findings(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Same finding ids with the same content; scores within SCORE_TOLERANCE."""
    got, want = got.sort("finding_id"), want.sort("finding_id")
    assert got.height == want.height, (got.height, want.height)
    assert got.get_column("finding_id").to_list() == want.get_column("finding_id").to_list()
    for column in EXACT_COLUMNS:
        left, right = got.get_column(column), want.get_column(column)
        differs = left.ne_missing(right)
        rules = sorted(set(got.filter(differs).get_column("rule")))
        examples = list(
            zip(
                got.filter(differs).get_column("entity_id")[:3],
                left.filter(differs)[:3],
                right.filter(differs)[:3],
                strict=True,
            )
        )
        assert not differs.any(), f"{column}: {differs.sum()} findings of {rules} differ {examples}"
    evidence = zip(
        got.get_column("evidence").to_list(), want.get_column("evidence").to_list(), strict=True
    )
    differ = sum(normalized_evidence(a) != normalized_evidence(b) for a, b in evidence)
    assert differ == 0, f"evidence: {differ} findings differ"
    gap = (got.get_column("score") - want.get_column("score")).abs().max()
    assert gap is not None and gap <= SCORE_TOLERANCE, gap  # type: ignore[operator]


def wrong_pins_loaded_late(path: Path, *, days_in: int, hour: int = 0) -> None:
    """Thirty wrong PINs by one operator, ``days_in`` days after the world's first day at
    ``hour`` o'clock, twenty seconds apart, loaded now (ids ``L99000000`` on)."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "INSERT INTO login_events SELECT 'L' || CAST(99000000 + i AS VARCHAR), "
            "CAST(f.ts AS DATE) + to_days($days_in) + to_hours($hour) "
            "+ INTERVAL (i * 20) SECOND, "
            "o.terminal_id, o.operator_no, o.operator_id, 'wrong_pin' FROM range(30) r(i), "
            "(SELECT * FROM operators ORDER BY operator_id LIMIT 1) o, "
            "(SELECT min(ts) AS ts FROM login_events) f",
            {"days_in": days_in, "hour": hour},
        )
    finally:
        con.close()
