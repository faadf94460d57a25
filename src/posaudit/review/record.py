"""Writing reviews: a decision or an assignment, appended to the trail under the writer lock.

Each review is the finding's whole state after it (status, decision, assignee), so the latest
review alone says where a finding stands; what an action does not change is carried from the
review before it. The new row, and the store's record of the last review written, are one
transaction: a failure or a kill leaves the trail as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from posaudit.review.batch import DecisionRow, RefusedRow
from posaudit.review.trail import (
    COLUMNS,
    GENESIS,
    LAST_DIGEST_KEY,
    LAST_ID_KEY,
    TABLE,
    Review,
    recorded_last,
    review_digest,
    review_of,
)
from posaudit.review.values import (
    Decision,
    ReviewError,
    ReviewStatus,
    checked_decision,
    checked_name,
    checked_note,
    checked_status,
    current_analyst,
)
from posaudit.store import Store


def latest_review(store: Store, finding_id: str) -> Review | None:
    """The finding's current review, or None when it has none."""
    if not store.has_table(TABLE):
        return None
    rows = store.query(
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE finding_id = ? "
        "ORDER BY review_id DESC LIMIT 1",
        [finding_id],
    )
    return review_of(rows[0]) if rows else None


def _check_finding(store: Store, finding_id: str) -> None:
    if not store.query("SELECT count(*) FROM findings WHERE finding_id = ?", [finding_id])[0][0]:
        msg = f"unknown finding {finding_id!r}: no such finding in {store.path}"
        raise ReviewError(msg)


def _append(
    store: Store,
    finding_id: str,
    *,
    analyst: str,
    status: ReviewStatus,
    decision: Decision | None,
    assignee: str | None,
    note: str | None,
) -> Review:
    """Append one review after the last one written, with the store's record of it."""
    last = recorded_last(store)
    highest = int(store.query(f"SELECT coalesce(max(review_id), 0) FROM {TABLE}")[0][0])  # type: ignore[call-overload]
    if last is None:
        # before the first review, or a store whose record is gone: follow the table's last row
        rows = store.query(f"SELECT digest FROM {TABLE} ORDER BY review_id DESC LIMIT 1")
        previous = str(rows[0][0]) if rows else GENESIS
    else:
        previous = last[1]
    # after the last review written, and after any row put there since: a gap or a row that
    # does not follow stays visible to `verify`, never covered
    review_id = max(highest, last[0] if last else 0) + 1
    fields: dict[str, object] = {
        "review_id": review_id,
        "reviewed_at": datetime.now(UTC).replace(tzinfo=None),
        "analyst": analyst,
        "finding_id": finding_id,
        "status": status,
        "decision": decision,
        "assignee": assignee,
        "note": note,
    }
    draft = Review(**fields, previous_digest=previous, digest="")  # type: ignore[arg-type]
    review = Review(
        **fields,  # type: ignore[arg-type]
        previous_digest=previous,
        digest=review_digest(previous, draft.fields()),
    )
    store.execute(
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [getattr(review, column) for column in COLUMNS],
    )
    store.set_meta(LAST_ID_KEY, str(review.review_id))
    store.set_meta(LAST_DIGEST_KEY, review.digest)
    return review


def _write(path: Path | str, finding_id: str, purpose: str, **change: object) -> Review:
    """Open the store for writing (its lock), check the finding, append the review."""
    store = Store.open(path, purpose=purpose)
    try:
        _check_finding(store, finding_id)
        with store.transaction():
            store.ensure_review_tables()
            before = latest_review(store, finding_id)
            state = _next_state(before, change)
            return _append(store, finding_id, **state)  # type: ignore[arg-type]
    finally:
        store.close()


def _next_state(before: Review | None, change: dict[str, object]) -> dict[str, object]:
    """The finding's state after ``change``; what it leaves out carried from ``before``."""
    state: dict[str, object] = {
        "status": before.status if before else "open",
        "decision": before.decision if before else None,
        "assignee": before.assignee if before else None,
    }
    if change.pop("start_review", False) and state["status"] == "open":
        state["status"] = "in_review"
    return state | {k: v for k, v in change.items() if v is not None or k == "note"}


def decide(
    path: Path | str,
    finding_id: str,
    *,
    decision: str,
    status: str = "closed",
    note: object = None,
    analyst: str | None = None,
) -> Review:
    """Record a decision on a finding (closed unless ``status`` says otherwise).

    Every value is checked before the store is opened; an unknown finding, decision or status,
    or a note that is not text, raises ReviewError and writes nothing. ``analyst`` defaults to
    ``$POSAUDIT_ANALYST``, else the OS user.
    """
    change = {
        "decision": checked_decision(decision),
        "status": checked_status(status),
        "note": checked_note(note),
        "analyst": checked_name(analyst, what="the analyst") if analyst else current_analyst(),
    }
    return _write(path, finding_id, "review decide", **change)


def assign(
    path: Path | str,
    finding_id: str,
    *,
    assignee: str,
    note: object = None,
    analyst: str | None = None,
) -> Review:
    """Assign a finding to someone; an open finding is then in review, others keep their status.

    The decision stays as it was. Bad input raises ReviewError and writes nothing.
    """
    change = {
        "assignee": checked_name(assignee, what="the assignee"),
        "note": checked_note(note),
        "analyst": checked_name(analyst, what="the analyst") if analyst else current_analyst(),
        "start_review": True,
    }
    return _write(path, finding_id, "review assign", **change)


@dataclass(frozen=True)
class RecordedRows:
    """What :func:`decide_many` did: the reviews written, in the rows' order, and the rows
    refused because the store holds no such finding."""

    reviews: list[Review]
    refused: list[RefusedRow]


def decide_many(
    path: Path | str, rows: Sequence[DecisionRow], *, analyst: str | None = None
) -> RecordedRows:
    """Record checked decisions (:mod:`posaudit.review.batch`) in one transaction, in order.

    The rows are appended to the trail one after another under one hold of the writer lock;
    a row naming a finding the store does not hold is refused and the others are recorded.
    Each row is a decision as :func:`decide` records it; an empty ``assignee`` keeps the
    finding's assignee. A failure or a kill records none of them.
    """
    who = checked_name(analyst, what="the analyst") if analyst else current_analyst()
    store = Store.open(path, purpose="review import")
    try:
        wanted = sorted({row.finding_id for row in rows})
        known = {
            str(found[0])
            for found in store.query(
                "SELECT finding_id FROM findings WHERE list_contains(?::VARCHAR[], finding_id)",
                [wanted],
            )
        }
        refused = [
            RefusedRow(
                row.line, f"unknown finding {row.finding_id!r}: no such finding in {store.path}"
            )
            for row in rows
            if row.finding_id not in known
        ]
        recordable = [row for row in rows if row.finding_id in known]
        reviews: list[Review] = []
        if not recordable:  # nothing written, not even the trail's table on an older store
            return RecordedRows(reviews, refused)
        with store.transaction():
            store.ensure_review_tables()
            for row in recordable:
                change: dict[str, object] = {
                    "decision": row.decision,
                    "status": row.status,
                    "note": row.note,
                    "assignee": row.assignee,
                    "analyst": who,
                }
                state = _next_state(latest_review(store, row.finding_id), change)
                reviews.append(_append(store, row.finding_id, **state))  # type: ignore[arg-type]
        return RecordedRows(reviews, refused)
    finally:
        store.close()
