"""The findings schema every rule returns, and the shared last step that builds it."""

from __future__ import annotations

import hashlib
from typing import Final, Literal

import polars as pl

Severity = Literal["info", "low", "medium", "high", "critical"]
EntityType = Literal["terminal", "operator", "merchant", "transaction", "card"]
SEVERITIES: Final = ("info", "low", "medium", "high", "critical")
# Each severity's place in SEVERITIES: what sorts findings and compares "at or above".
SEVERITY_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(SEVERITIES)}

FINDINGS_SCHEMA: Final = pl.Schema(
    {
        "finding_id": pl.String,
        "rule": pl.String,
        "family": pl.String,
        "severity": pl.String,
        "score": pl.Float64,
        "entity_type": pl.String,
        "entity_id": pl.String,
        "merchant_id": pl.String,
        "window_start": pl.Datetime("us"),
        "window_end": pl.Datetime("us"),
        "summary": pl.String,
        "evidence": pl.String,
    }
)


def _stable_ids(keys: pl.Series) -> pl.Series:
    # Polars' own hash is not stable across versions; finding ids must be.
    return pl.Series(
        [hashlib.sha256(k.encode()).hexdigest()[:20] for k in keys.to_list()], dtype=pl.String
    )


def finding_id(rule: str, entity_type: str, entity_id: str, window_start: pl.Expr) -> pl.Expr:
    """Deterministic id: the same rule, entity and window start always give the same id."""
    key = pl.concat_str(
        [
            pl.lit(rule),
            pl.lit(entity_type),
            pl.col(entity_id).cast(pl.String),
            window_start.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"),
        ],
        separator="|",
    )
    return key.map_batches(_stable_ids, return_dtype=pl.String)


def to_findings(
    frame: pl.LazyFrame,
    *,
    rule: str,
    family: str,
    entity_type: EntityType,
    severity: Severity | pl.Expr,
    score: float | pl.Expr,
    summary: pl.Expr,
    evidence: dict[str, pl.Expr],
    entity_id: str = "entity_id",
    merchant_id: str = "merchant_id",
    window_start: str = "window_start",
    window_end: str = "window_end",
) -> pl.LazyFrame:
    """Shape a rule's hits into the findings schema.

    ``frame`` holds one row per finding with the entity, merchant and window columns named
    by the arguments. ``summary`` is one actionable sentence; ``evidence`` maps names to
    expressions (event ids, counts, thresholds used) and becomes a JSON object. Never put a
    PIN or a PIN digest into either.
    """
    severity_expr = severity if isinstance(severity, pl.Expr) else pl.lit(severity)
    score_expr = score if isinstance(score, pl.Expr) else pl.lit(score)
    return frame.select(
        finding_id(rule, entity_type, entity_id, pl.col(window_start)).alias("finding_id"),
        pl.lit(rule).alias("rule"),
        pl.lit(family).alias("family"),
        severity_expr.cast(pl.String).alias("severity"),
        score_expr.cast(pl.Float64).clip(0.0, 1.0).alias("score"),
        pl.lit(entity_type).alias("entity_type"),
        pl.col(entity_id).cast(pl.String).alias("entity_id"),
        pl.col(merchant_id).cast(pl.String).alias("merchant_id"),
        pl.col(window_start).cast(pl.Datetime("us")).alias("window_start"),
        pl.col(window_end).cast(pl.Datetime("us")).alias("window_end"),
        summary.cast(pl.String).alias("summary"),
        pl.struct(**evidence).struct.json_encode().alias("evidence"),
    )


def empty_findings() -> pl.LazyFrame:
    """A findings LazyFrame with no rows."""
    return pl.LazyFrame(schema=FINDINGS_SCHEMA)


def fen_to_yuan(column: str | pl.Expr) -> pl.Expr:
    """Money for people: fen as yuan with two decimals and the currency, '523.00 CNY'."""
    expr = pl.col(column) if isinstance(column, str) else column
    sign = pl.when(expr < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    size = expr.abs()
    return pl.format("{}{}.{} CNY", sign, size // 100, (size % 100).cast(pl.String).str.zfill(2))
