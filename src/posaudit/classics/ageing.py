"""Ageing: refunds by days after their sale, and open findings by days open
(docs/classics.md).

**Refunds.** Each approved refund is aged by the whole days from its original sale to the
refund, in the bands an auditor reads against the refund window (15 days, docs/domain.md):
the same day, 1-7, 8-15, 16-30, 31-90 and over 90 days; a refund naming no sale the store
holds is "no sale on record".

**Findings.** Each open finding is aged by the days of data since it was first raised: from
the data's end when its first run read it (that run's watermark) to the latest run's. Days of
data, not of the calendar, so that a store audited once and one audited nightly read alike.
Bands 0-7, 8-30, 31-60, 61-90 and over 90 days, by severity, with how many an analyst has
decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from posaudit.store import Store

# (label, lowest day, highest day) of each band; None: no bound.
REFUND_BANDS: Final = (
    ("same day", 0, 0),
    ("1-7 days", 1, 7),
    ("8-15 days", 8, 15),
    ("16-30 days", 16, 30),
    ("31-90 days", 31, 90),
    ("over 90 days", 91, None),
)
NO_SALE: Final = "no sale on record"
FINDING_BANDS: Final = (
    ("0-7 days", 0, 7),
    ("8-30 days", 8, 30),
    ("31-60 days", 31, 60),
    ("61-90 days", 61, 90),
    ("over 90 days", 91, None),
)
SEVERITIES: Final = ("critical", "high", "medium", "low", "info")


def _band(days: str, bands: tuple[tuple[str, int, int | None], ...]) -> str:
    cases = " ".join(
        f"WHEN {days} >= {low}{'' if high is None else f' AND {days} <= {high}'} THEN '{label}'"
        for label, low, high in bands
    )
    return f"CASE {cases} END"


REFUND_AGES_SQL: Final = f"""
SELECT band, CAST(COUNT(*) AS BIGINT) AS refunds, CAST(SUM(amount_fen) AS BIGINT) AS amount_fen
FROM (
    SELECT
        CASE WHEN s.ts IS NULL THEN '{NO_SALE}'
            ELSE {_band("DATE_DIFF('day', CAST(s.ts AS DATE), CAST(r.ts AS DATE))", REFUND_BANDS)}
        END AS band,
        r.amount_fen AS amount_fen
    FROM transactions AS r
    LEFT JOIN transactions AS s ON s.txn_id = r.original_txn_id AND s.kind = 'sale'
    WHERE r.kind = 'refund' AND r.status = 'approved'
) AS a
GROUP BY band
"""

# A finding's latest review holds its decision now (null: undecided, or reopened).
DECIDED_SQL: Final = """
    SELECT finding_id, decision FROM (
        SELECT finding_id, decision,
            ROW_NUMBER() OVER (PARTITION BY finding_id ORDER BY review_id DESC) AS newest
        FROM finding_reviews WHERE finding_id IS NOT NULL
    ) AS r
    WHERE newest = 1
"""
# A store no analyst has reviewed in may lack the review tables: nothing is decided there.
NONE_DECIDED_SQL: Final = (
    "SELECT CAST(NULL AS VARCHAR) AS finding_id, CAST(NULL AS VARCHAR) AS decision WHERE FALSE"
)
FINDING_AGES_SQL: Final = f"""
WITH latest AS (
    SELECT data_to FROM pipeline_runs
    WHERE status = 'succeeded' AND data_to IS NOT NULL
    ORDER BY finished_at DESC, run_id DESC LIMIT 1
), decided AS ({{decided}}), aged AS (
    SELECT CAST(f.severity AS VARCHAR) AS severity,
        DATE_DIFF('day', CAST(r.data_to AS DATE), CAST(latest.data_to AS DATE)) AS days,
        d.decision IS NOT NULL AS is_decided
    FROM findings AS f
    JOIN pipeline_runs AS r ON r.run_id = f.first_run_id
    CROSS JOIN latest
    LEFT JOIN decided AS d ON d.finding_id = f.finding_id
    WHERE f.status = 'open'
)
SELECT severity, {_band("days", FINDING_BANDS)} AS band,
    CAST(COUNT(*) AS BIGINT) AS findings,
    CAST(SUM(CASE WHEN is_decided THEN 1 ELSE 0 END) AS BIGINT) AS decided
FROM aged
GROUP BY ALL
"""


def finding_ages_sql(store: Store) -> str:
    """The open findings' ages, reading the decisions where the store has reviews."""
    decided = DECIDED_SQL if store.has_table("finding_reviews") else NONE_DECIDED_SQL
    return FINDING_AGES_SQL.replace("{decided}", decided)


@dataclass(frozen=True)
class Ageing:
    """``refunds``: band, refunds, amount_fen, every band in order. ``findings``: band,
    severity, findings, decided, every band and severity in order."""

    refunds: pl.DataFrame
    findings: pl.DataFrame


def ageing(store: Store) -> Ageing:
    """The store's refunds by age after their sale, and its open findings by days open."""
    refund_bands = [label for label, _, _ in REFUND_BANDS] + [NO_SALE]
    refunds = (
        pl.DataFrame({"band": refund_bands})
        .join(store.frame(REFUND_AGES_SQL), on="band", how="left")
        .with_columns(pl.col("refunds", "amount_fen").fill_null(0).cast(pl.Int64))
    )
    grid = pl.DataFrame({"band": [label for label, _, _ in FINDING_BANDS]}).join(
        pl.DataFrame({"severity": list(SEVERITIES)}), how="cross"
    )
    findings = (
        grid.join(store.frame(finding_ages_sql(store)), on=["band", "severity"], how="left")
        .with_columns(pl.col("findings", "decided").fill_null(0).cast(pl.Int64))
        .select("band", "severity", "findings", "decided")
    )
    return Ageing(refunds, findings)


__all__ = ["FINDING_BANDS", "NO_SALE", "REFUND_BANDS", "SEVERITIES", "Ageing", "ageing"]
