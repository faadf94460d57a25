"""Reading reviews: the queue of findings with their current review, and one finding's trail.

A finding never reviewed is in the queue as open, undecided and unassigned, with no reviews.
A store made before the trail existed reads the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from posaudit.review.cases import case_entity, case_findings, case_sql
from posaudit.review.snooze import snoozed_sql
from posaudit.review.trail import COLUMNS, TABLE, Review, review_of, select_columns
from posaudit.review.values import ReviewError, checked_decision, checked_status
from posaudit.store import Store

# The decision filter's word for findings without a decision.
UNDECIDED: Final = "undecided"
_EMPTY_TRAIL: Final = (
    "SELECT * FROM (VALUES (NULL::BIGINT, NULL::TIMESTAMP, NULL::VARCHAR, NULL::VARCHAR, "
    "NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::BIGINT, "
    f"NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR)) AS t({', '.join(COLUMNS)}) WHERE false"
)
# The queue's columns, in order; the finding's own status (open or resolved by the runs) apart
# from its review status.
QUEUE_COLUMNS: Final = (
    "finding_id",
    "rule",
    "family",
    "severity",
    "score",
    "entity_type",
    "entity_id",
    "window_start",
    "window_end",
    "finding_status",
    "case_id",
    "snoozed",
    "review_status",
    "decision",
    "assignee",
    "reviews",
    "reviewed_at",
    "analyst",
)


def _trail_source(store: Store) -> str:
    if not store.has_table(TABLE):
        return f"({_EMPTY_TRAIL})"
    return f"(SELECT {select_columns(store)} FROM {TABLE})"


def review_queue(
    store: Store,
    *,
    status: str | None = None,
    decision: str | None = None,
    rule: str | None = None,
    family: str | None = None,
    case: str | None = None,
) -> pl.DataFrame:
    """Findings with their current review, filtered: open reviews first, then by severity and
    score, highest first. ``decision`` may be ``undecided``; ``case`` a case's findings."""
    conditions: list[str] = []
    params: dict[str, str] = {}
    if case is not None:
        case_entity(case)  # a malformed case id is refused
        conditions.append("case_id = $case")
        params["case"] = case
    if status is not None:
        conditions.append("review_status = $status")
        params["status"] = checked_status(status)
    if decision == UNDECIDED:
        conditions.append("decision IS NULL")
    elif decision is not None:
        conditions.append("decision = $decision")
        params["decision"] = checked_decision(decision)
    for name, value in (("rule", rule), ("family", family)):
        if value is not None:
            conditions.append(f"{name} = ${name}")
            params[name] = value
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"""
        WITH trail AS (SELECT * FROM {_trail_source(store)}),
        latest AS (
            SELECT *, count(*) OVER (PARTITION BY finding_id) AS reviews FROM trail
            WHERE finding_id IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY review_id DESC) = 1
        ),
        queue AS (
            SELECT f.finding_id, f.rule, f.family, CAST(f.severity AS VARCHAR) AS severity,
                f.score, CAST(f.entity_type AS VARCHAR) AS entity_type, f.entity_id,
                f.window_start, f.window_end, f.status AS finding_status,
                {case_sql("f")} AS case_id, {snoozed_sql(store, "f")} AS snoozed,
                coalesce(CAST(l.status AS VARCHAR), 'open') AS review_status,
                CAST(l.decision AS VARCHAR) AS decision, l.assignee,
                coalesce(l.reviews, 0) AS reviews, l.reviewed_at, l.analyst,
                f.severity AS severity_order
            FROM findings f LEFT JOIN latest l USING (finding_id)
        )
        SELECT {", ".join(QUEUE_COLUMNS)} FROM queue {where}
        ORDER BY CASE review_status WHEN 'open' THEN 0 WHEN 'in_review' THEN 1 ELSE 2 END,
            severity_order DESC, score DESC, finding_id
    """
    return store.frame(sql, params)


@dataclass(frozen=True)
class FindingTrail:
    """A finding as the runs recorded it, and every review of it, oldest first."""

    finding: dict[str, object]
    reviews: list[Review]

    @property
    def current(self) -> Review | None:
        return self.reviews[-1] if self.reviews else None


def finding_with_trail(store: Store, finding_id: str) -> FindingTrail:
    """The finding and its reviews; ReviewError when the store has no such finding."""
    found = store.frame(
        "SELECT * FROM findings WHERE finding_id = $id", {"id": finding_id}
    ).to_dicts()
    if not found:
        msg = f"unknown finding {finding_id!r}: no such finding in {store.path}"
        raise ReviewError(msg)
    rows = (
        store.query(
            f"SELECT {select_columns(store)} FROM {TABLE} WHERE finding_id = ? ORDER BY review_id",
            [finding_id],
        )
        if store.has_table(TABLE)
        else []
    )
    return FindingTrail(found[0], [review_of(row) for row in rows])


# The case list's columns, in order.
CASE_COLUMNS: Final = (
    "case_id",
    "entity_type",
    "entity_id",
    "findings",
    "undecided",
    "top_severity",
    "status",
    "decision",
    "assignee",
    "snoozed",
    "reviewed_at",
)


def case_list(store: Store, *, status: str | None = None) -> pl.DataFrame:
    """Every case (an entity with findings): its findings, how many are undecided, their
    highest severity, and the case's own current review (never reviewed as a whole: open
    while any of its findings is not closed); open cases first, then by that severity and the
    number undecided."""
    findings = review_queue(store)
    if findings.is_empty():
        return pl.DataFrame(schema={c: pl.String for c in CASE_COLUMNS})
    rank = {name: i for i, name in enumerate(("info", "low", "medium", "high", "critical"))}
    grouped = findings.group_by("case_id", "entity_type", "entity_id").agg(
        pl.len().alias("findings"),
        pl.col("decision").is_null().sum().alias("undecided"),
        pl.col("severity")
        .sort_by(pl.col("severity").replace_strict(rank, return_dtype=pl.Int8))
        .last()
        .alias("top_severity"),
        pl.col("snoozed").all().alias("snoozed"),
        (pl.col("review_status") != "closed").sum().alias("unclosed"),
    )
    own = store.frame(
        f"""SELECT case_id, CAST(status AS VARCHAR) AS status,
            CAST(decision AS VARCHAR) AS decision, assignee, reviewed_at
        FROM {_trail_source(store)} t WHERE finding_id IS NULL AND case_id IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY case_id ORDER BY review_id DESC) = 1"""
    )
    # a case never reviewed as a whole is open while any of its findings is
    cases = grouped.join(own, on="case_id", how="left").with_columns(
        pl.col("status").fill_null(
            pl.when(pl.col("unclosed") > 0).then(pl.lit("open")).otherwise(pl.lit("closed"))
        )
    )
    if status is not None:
        cases = cases.filter(pl.col("status") == checked_status(status))
    order = {"open": 0, "in_review": 1, "closed": 2}
    return cases.sort(
        pl.col("status").replace_strict(order, return_dtype=pl.Int8),
        pl.col("top_severity").replace_strict(rank, return_dtype=pl.Int8),
        "undecided",
        "case_id",
        descending=[False, True, True, False],
    ).select(CASE_COLUMNS)


@dataclass(frozen=True)
class CaseTrail:
    """A case's findings with their current review, and the case's own reviews, oldest first."""

    case_id: str
    findings: pl.DataFrame
    reviews: list[Review]

    @property
    def current(self) -> Review | None:
        return self.reviews[-1] if self.reviews else None


def case_trail(store: Store, case_id: str) -> CaseTrail:
    """The case and its reviews; ReviewError when no finding names its entity."""
    case_findings(store, case_id)
    rows = (
        store.query(
            f"SELECT {select_columns(store)} FROM {TABLE} "
            "WHERE case_id = ? AND finding_id IS NULL ORDER BY review_id",
            [case_id],
        )
        if store.has_table(TABLE)
        else []
    )
    return CaseTrail(case_id, review_queue(store, case=case_id), [review_of(r) for r in rows])
