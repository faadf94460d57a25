"""Reading the review as a whole, for the audit report: every finding's current review, every
case's own state, and the two trails in full.

Only reads; a store without the review tables reads as one where nothing was reviewed yet.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from posaudit.review.snooze import SNOOZE_COLUMNS, SNOOZES
from posaudit.review.trail import COLUMNS, TABLE, current_reviews_sql, select_columns
from posaudit.store import Store

# A finding's current review, as :func:`latest_reviews` returns it.
LATEST_SCHEMA: Final = pl.Schema(
    {
        "finding_id": pl.String(),
        "review_status": pl.String(),
        "decision": pl.String(),
        "assignee": pl.String(),
        "reviewed_at": pl.Datetime("us"),
    }
)
CASE_SCHEMA: Final = pl.Schema({"case_id": pl.String(), "case_status": pl.String()})
TRAIL_SCHEMA: Final = pl.Schema(
    {
        "review_id": pl.Int64(),
        "reviewed_at": pl.Datetime("us"),
        "analyst": pl.String(),
        "finding_id": pl.String(),
        "case_id": pl.String(),
        "status": pl.String(),
        "decision": pl.String(),
        "assignee": pl.String(),
        "note": pl.String(),
        "evidence_events": pl.Int64(),
        "request_id": pl.String(),
        "previous_digest": pl.String(),
        "digest": pl.String(),
    }
)
SNOOZE_SCHEMA: Final = pl.Schema(
    {
        "snooze_id": pl.Int64(),
        "created_at": pl.Datetime("us"),
        "analyst": pl.String(),
        "entity_type": pl.String(),
        "entity_id": pl.String(),
        "rule": pl.String(),
        "until": pl.Datetime("us"),
        "reason": pl.String(),
        "previous_digest": pl.String(),
        "digest": pl.String(),
    }
)


def latest_reviews(store: Store) -> pl.DataFrame:
    """Each reviewed finding's current review (its latest): status, decision, assignee, when.

    A finding missing here was never reviewed: open, undecided and unassigned."""
    if not store.has_table(TABLE):
        return pl.DataFrame(schema=LATEST_SCHEMA)
    return store.frame(
        f"""SELECT finding_id, CAST(status AS VARCHAR) AS review_status,
            CAST(decision AS VARCHAR) AS decision, assignee, reviewed_at
        FROM ({current_reviews_sql(store)}) t"""
    ).cast(dict(LATEST_SCHEMA))  # type: ignore[arg-type]


def case_statuses(store: Store) -> pl.DataFrame:
    """Each reviewed case's own current status (its latest review of the case itself).

    A case missing here was never reviewed: it is open."""
    if not store.has_table(TABLE):
        return pl.DataFrame(schema=CASE_SCHEMA)
    return store.frame(
        f"""SELECT case_id, CAST(status AS VARCHAR) AS case_status
        FROM (SELECT {select_columns(store)} FROM {TABLE}) t
        WHERE finding_id IS NULL AND case_id IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY case_id ORDER BY review_id DESC) = 1"""
    ).cast(dict(CASE_SCHEMA))  # type: ignore[arg-type]


def every_review(store: Store) -> pl.DataFrame:
    """The whole review trail, oldest first, every column (NULL where a store lacks one)."""
    if not store.has_table(TABLE):
        return pl.DataFrame(schema=TRAIL_SCHEMA)
    frame = store.frame(
        f"SELECT {select_columns(store)} FROM {TABLE} ORDER BY review_id"
    ).with_columns(pl.col("status", "decision").cast(pl.String))
    return frame.select(COLUMNS).cast(dict(TRAIL_SCHEMA))  # type: ignore[arg-type]


def every_snooze(store: Store) -> pl.DataFrame:
    """Every snooze ever recorded (lifts included), oldest first."""
    if not store.has_table(SNOOZES):
        return pl.DataFrame(schema=SNOOZE_SCHEMA)
    return store.frame(
        f"SELECT {', '.join(SNOOZE_COLUMNS)} FROM {SNOOZES} ORDER BY snooze_id"
    ).cast(dict(SNOOZE_SCHEMA))  # type: ignore[arg-type]
