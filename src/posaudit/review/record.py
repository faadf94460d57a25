"""Writing reviews: a decision, an assignment, a comment or a reopening, of a finding or a case,
appended to the trail under the writer lock.

Each review is its finding's (or case's) whole state after it (status, decision, assignee),
so the latest review alone says where it stands; what an action does not change is carried
from the review before it. An action on a case is one review of the case and one of each of
its findings the action reaches (:func:`apply_action`). Everything an action writes, and the
store's record of the last review written, is one transaction: a failure or a kill leaves the
trail as it was.

While another posaudit process holds the store, an action is queued on disk instead
(:mod:`posaudit.review.pending`) and applied, in the order it was made, by the next writer
that can: the run holding the store as it ends, or the next review.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import polars as pl

from posaudit.review.action import Action, checked_action, state_of
from posaudit.review.batch import DecisionRow, RefusedRow
from posaudit.review.cases import case_findings, is_case_id
from posaudit.review.evidence import evidence_events
from posaudit.review.pending import (
    Request,
    Settled,
    enqueue,
    pending_requests,
)
from posaudit.review.trail import (
    COLUMNS,
    LAST_DIGEST_KEY,
    LAST_ID_KEY,
    TABLE,
    Review,
    chain_end,
    current_reviews_sql,
    review_digest,
    review_of,
    select_columns,
)
from posaudit.review.values import (
    ReviewError,
    checked_name,
    current_analyst,
)
from posaudit.store import Store
from posaudit.store.errors import StoreLockedError

# How long a review waits for a store another process holds before queueing: another
# analyst's review holds it for a moment, a run for minutes.
LOCK_WAIT_SECONDS: Final = 3.0


def latest_review(
    store: Store, finding_id: str | None = None, *, case_id: str | None = None
) -> Review | None:
    """The current review of a finding, or of a case (``case_id``), or None when it has none."""
    if not store.has_table(TABLE):
        return None
    where, key = (
        ("case_id = ? AND finding_id IS NULL", case_id)
        if case_id is not None
        else ("finding_id = ?", finding_id)
    )
    rows = store.query(
        f"SELECT {select_columns(store)} FROM {TABLE} WHERE {where} "
        "ORDER BY review_id DESC LIMIT 1",
        [key],
    )
    return review_of(rows[0]) if rows else None


def _check_finding(store: Store, finding_id: str) -> None:
    if not store.query("SELECT count(*) FROM findings WHERE finding_id = ?", [finding_id])[0][0]:
        msg = f"unknown finding {finding_id!r}: no such finding in {store.path}"
        raise ReviewError(msg)


def append_review(store: Store, **values: object) -> Review:
    """Append one review after the last one written (:func:`append_reviews`)."""
    return append_reviews(store, [values])[0]


def append_reviews(store: Store, drafts: list[dict[str, object]]) -> list[Review]:
    """Append reviews, in order, after the last one written, with the store's record of the
    last (inside the caller's transaction). Each draft holds a review's fields but its id and
    digests; ``reviewed_at`` defaults to now. One insert, however many."""
    if not drafts:
        return []
    review_id, previous = chain_end(store)
    now = datetime.now(UTC).replace(tzinfo=None)
    written: list[Review] = []
    for values in drafts:
        review_id += 1
        draft = Review(
            review_id=review_id,
            previous_digest=previous,
            digest="",
            **({"reviewed_at": now} | values),  # type: ignore[arg-type]
        )
        review = replace(draft, digest=review_digest(previous, draft.fields()))
        written.append(review)
        previous = review.digest
    frame = pl.DataFrame(
        [{column: getattr(r, column) for column in COLUMNS} for r in written],
        schema={
            column: pl.Int64
            if column in ("review_id", "evidence_events")
            else pl.Datetime("us")
            if column == "reviewed_at"
            else pl.String
            for column in COLUMNS
        },
        orient="row",
    )
    store.append(TABLE, frame)
    store.set_meta(LAST_ID_KEY, str(written[-1].review_id))
    store.set_meta(LAST_DIGEST_KEY, written[-1].digest)
    return written


def latest_reviews(store: Store, finding_ids: list[str]) -> dict[str, Review]:
    """The current review of each of ``finding_ids`` that has one."""
    if not finding_ids or not store.has_table(TABLE):
        return {}
    rows = store.query(
        current_reviews_sql(store, where="list_contains(?::VARCHAR[], finding_id)"),
        [finding_ids],
    )
    return {str(r.finding_id): r for r in map(review_of, rows)}


def _evidence_events(store: Store, finding_ids: list[str]) -> dict[str, int | None]:
    if not finding_ids:
        return {}
    found = store.frame(
        "SELECT finding_id, evidence FROM findings WHERE finding_id IN (SELECT unnest($ids))",
        {"ids": finding_ids},
    )
    return {
        row["finding_id"]: evidence_events(row["evidence"]) for row in found.iter_rows(named=True)
    }


def _reached(store: Store, case_id: str, action: Action) -> list[str]:
    """The case's findings an action on the case reaches: a decision or an assignment those
    not closed (a finding decided on its own keeps its decision); a reopening those closed
    through this case; a comment none."""
    members = case_findings(store, case_id)
    if action.kind == "comment":
        return []
    found = latest_reviews(store, members)
    current = {m: found.get(m) for m in members}
    if action.kind == "reopen":
        return [
            m
            for m, r in current.items()
            if r is not None and r.status == "closed" and r.case_id == case_id
        ]
    return [m for m, r in current.items() if r is None or r.status != "closed"]


def apply_action(store: Store, target: str, action: Action) -> list[Review]:
    """Append the reviews of ``action`` on a finding or a case (inside the caller's transaction,
    the lock held); the first is the target's own. ReviewError for an unknown target."""
    common: dict[str, object] = {
        "analyst": action.analyst,
        "note": action.note,
        "request_id": action.request_id,
    }
    if action.made_at is not None:
        common["reviewed_at"] = action.made_at
    if not is_case_id(target):
        _check_finding(store, target)
        state = action.next_state(latest_review(store, target))
        events = _evidence_events(store, [target]) if state["decision"] else {}
        return [
            append_review(
                store,
                finding_id=target,
                case_id=None,
                evidence_events=events.get(target),
                **state,
                **common,
            )
        ]
    members = _reached(store, target, action)
    state = action.next_state(latest_review(store, case_id=target))
    events = _evidence_events(store, members) if action.kind == "decide" else {}
    before = latest_reviews(store, members)
    drafts: list[dict[str, object]] = [{"finding_id": None, "case_id": target, **state, **common}]
    drafts += [
        {
            "finding_id": member,
            "case_id": target,
            "evidence_events": events.get(member),
            **action.next_state(before.get(member)),
            **common,
        }
        for member in members
    ]
    return append_reviews(store, drafts)


def apply_queued(store: Store) -> Settled:
    """Apply the actions queued while the store was held, oldest first, inside the caller's
    transaction (the lock held); what :meth:`Settled.finish` does once it commits. An action
    already in the trail (applied, then killed before its file was removed) is not applied
    again; one that cannot be (its finding unknown) is set aside with the reason."""
    settled = Settled()
    requests = pending_requests(store.path)
    if not requests:
        return settled
    store.ensure_review_tables()
    applied_before = {
        str(r[0])
        for r in store.query(
            f"SELECT DISTINCT request_id FROM {TABLE} WHERE request_id IS NOT NULL"
        )
    }
    for request in requests:
        if request.request_id in applied_before:
            settled.applied.append(request)
            continue
        try:
            apply_action(store, request.target, request.action)
        except ReviewError as exc:
            settled.rejected.append((request, str(exc)))
            continue
        settled.applied.append(request)
    return settled


@dataclass
class Outcome:
    """What became of an action: recorded (its reviews) or queued (its request, and who held
    the store); and the earlier queued actions applied on the way."""

    reviews: list[Review] = field(default_factory=list)
    queued: Request | None = None
    held_by: str | None = None
    settled: Settled = field(default_factory=Settled)

    @property
    def review(self) -> Review:
        return self.reviews[0]


def _open_waiting(path: Path, purpose: str, wait: float) -> Store:
    """The store opened for writing, trying again for up to ``wait`` seconds while it is held."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return Store.open(path, purpose=purpose)
        except StoreLockedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def record_action(
    path: Path | str,
    target: str,
    action: Action,
    *,
    queue: bool = True,
    purpose: str | None = None,
    wait: float = LOCK_WAIT_SECONDS,
) -> Outcome:
    """Open the store for writing (its lock), apply what was queued, then ``action``.

    While another process holds the store past ``wait`` seconds (another analyst's review
    holds it for a moment; a run for minutes), the action is queued on disk (``queue``) and
    the outcome says so; without ``queue`` StoreLockedError is raised.
    """
    try:
        store = _open_waiting(Path(path), purpose or f"review {action.kind}", wait)
    except StoreLockedError as held:
        if not queue:
            raise
        made = replace(action, made_at=datetime.now(UTC).replace(tzinfo=None))
        return Outcome(queued=enqueue(Path(path), target, made), held_by=str(held))
    try:
        with store.transaction():
            store.ensure_review_tables()
            settled = apply_queued(store)
            reviews = apply_action(store, target, action)
        settled.finish(store.path)
        return Outcome(reviews=reviews, settled=settled)
    finally:
        store.close()


def decide(
    path: Path | str,
    finding_id: str,
    *,
    decision: str,
    status: str = "closed",
    note: object = None,
    analyst: str | None = None,
) -> Review:
    """Record a decision on a finding or a case (closed unless ``status`` says otherwise).

    Every value is checked before the store is opened; an unknown finding, decision or status,
    or a note that is not text, raises ReviewError and writes nothing. ``analyst`` defaults to
    ``$POSAUDIT_ANALYST``, else the OS user. A store held by another process raises
    StoreLockedError (:func:`record` queues instead).
    """
    action = checked_action("decide", decision=decision, status=status, note=note, analyst=analyst)
    return record_action(path, finding_id, action, queue=False, wait=0).review


def assign(
    path: Path | str,
    finding_id: str,
    *,
    assignee: str,
    note: object = None,
    analyst: str | None = None,
) -> Review:
    """Assign a finding or a case to someone; an open one is then in review, others keep their
    status, and the decision stays. Bad input raises ReviewError and writes nothing."""
    action = checked_action("assign", assignee=assignee, note=note, analyst=analyst)
    return record_action(path, finding_id, action, queue=False, wait=0).review


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
            settled = apply_queued(store)
            # one pass: each row's state follows the finding's review before it, which may be
            # an earlier row of the same file
            current = {
                finding: state_of(review)
                for finding, review in latest_reviews(
                    store, sorted({row.finding_id for row in recordable})
                ).items()
            }
            events = _evidence_events(store, sorted({row.finding_id for row in recordable}))
            drafts: list[dict[str, object]] = []
            for row in recordable:
                action = Action(
                    "decide",
                    who,
                    decision=row.decision,
                    status=row.status,
                    assignee=row.assignee,
                    note=row.note,
                )
                state = action.after(current.get(row.finding_id, state_of(None)))
                drafts.append(
                    {
                        "finding_id": row.finding_id,
                        "case_id": None,
                        "evidence_events": events.get(row.finding_id),
                        "analyst": who,
                        "note": row.note,
                        **state,
                    }
                )
                current[row.finding_id] = state
            reviews.extend(append_reviews(store, drafts))
        settled.finish(store.path)
        return RecordedRows(reviews, refused)
    finally:
        store.close()
