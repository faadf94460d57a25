"""The chain of the review trail: each review's digest, and the check that the trail is whole.

A review's digest is the SHA-256, in hex, of the digest of the review before it, a line feed,
and the review's canonical encoding: its fields as JSON with sorted keys, no spaces, text in
UTF-8 and the time as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (UTC). The fields added since the trail
first shipped (:data:`LATER_FIELDS`) are encoded only when they hold a value, so every digest
written before them still holds. The first review follows :data:`GENESIS`. Anyone can
recompute the chain from the table alone (docs/review.md). Snoozes
(:mod:`posaudit.review.snooze`) are chained the same way in a chain of their own.

The store also records the last review it wrote (its id and digest, in ``posaudit_meta``), so
a review deleted from the end of the trail, or one inserted after it, is found too. A writer
of the whole file can rewrite the chain and that record together: an auditor who keeps the
last digest ``verify`` printed can tell, as the digest is then no longer in the trail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from posaudit.store import Store

TABLE: Final = "finding_reviews"
GENESIS: Final = "0" * 64
# posaudit_meta's record of the last review written: its id and its digest.
LAST_ID_KEY: Final = "review_last_id"
LAST_DIGEST_KEY: Final = "review_last_digest"
COLUMNS: Final = (
    "review_id",
    "reviewed_at",
    "analyst",
    "finding_id",
    "case_id",
    "status",
    "decision",
    "assignee",
    "note",
    "evidence_events",
    "request_id",
    "previous_digest",
    "digest",
)
# Fields the trail gained after it first shipped: in a review's digest only when not NULL.
LATER_FIELDS: Final = ("case_id", "evidence_events", "request_id")


@dataclass(frozen=True)
class Review:
    """One row of the trail."""

    review_id: int
    reviewed_at: datetime
    analyst: str
    finding_id: str | None
    status: str
    decision: str | None
    assignee: str | None
    note: str | None
    previous_digest: str
    digest: str
    case_id: str | None = None
    evidence_events: int | None = None
    request_id: str | None = None

    @property
    def seq(self) -> int:
        """Its place in the chain."""
        return self.review_id

    @property
    def target(self) -> str:
        """What was reviewed: the finding, else the case."""
        return self.finding_id or self.case_id or ""

    def fields(self) -> dict[str, object]:
        """What the digest covers: every column but the two digests (the later ones when set)."""
        fields: dict[str, object] = {
            "review_id": self.review_id,
            "reviewed_at": self.reviewed_at.isoformat(timespec="microseconds"),
            "analyst": self.analyst,
            "finding_id": self.finding_id,
            "status": self.status,
            "decision": self.decision,
            "assignee": self.assignee,
            "note": self.note,
        }
        for name in LATER_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields

    def to_record(self) -> dict[str, object]:
        return self.fields() | {"previous_digest": self.previous_digest, "digest": self.digest}


def canonical(fields: dict[str, object]) -> bytes:
    """The bytes a review's digest is taken over (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def review_digest(previous_digest: str, fields: dict[str, object]) -> str:
    """The digest of a review with ``fields``, following ``previous_digest``."""
    return hashlib.sha256(previous_digest.encode("ascii") + b"\n" + canonical(fields)).hexdigest()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def review_of(row: tuple[object, ...]) -> Review:
    """A review from a row of the table read in :data:`COLUMNS` order (:func:`select_columns`)."""
    values = dict(zip(COLUMNS, row, strict=True))
    events = values["evidence_events"]
    return Review(
        review_id=int(values["review_id"]),  # type: ignore[call-overload]
        reviewed_at=values["reviewed_at"],  # type: ignore[arg-type]
        analyst=str(values["analyst"]),
        finding_id=_text(values["finding_id"]),
        case_id=_text(values["case_id"]),
        status=str(values["status"]),
        decision=_text(values["decision"]),
        assignee=_text(values["assignee"]),
        note=_text(values["note"]),
        evidence_events=None if events is None else int(events),  # type: ignore[call-overload]
        request_id=_text(values["request_id"]),
        previous_digest=str(values["previous_digest"]),
        digest=str(values["digest"]),
    )


def select_columns(store: Store) -> str:
    """:data:`COLUMNS` as a select list over the trail as it is: a column a trail made before
    it lacks reads as NULL (such a store gains it on its next review)."""
    have = {
        str(r[0])
        for r in store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [TABLE]
        )
    }
    return ", ".join(c if c in have else f"NULL AS {c}" for c in COLUMNS)


def current_reviews_sql(store: Store, columns: str | None = None, where: str = "") -> str:
    """The SQL of each reviewed finding's current review: its row with the highest
    ``review_id`` (reviews of a case alone left out). ``columns``: the select list (default
    :data:`COLUMNS`, NULL where the trail lacks one); ``where``: a condition on the rows."""
    condition = f" AND ({where})" if where else ""
    return (
        f"SELECT {columns or select_columns(store)} FROM {TABLE} "
        f"WHERE finding_id IS NOT NULL{condition} "
        "QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY review_id DESC) = 1"
    )


def recorded_last(
    store: Store, keys: tuple[str, str] = (LAST_ID_KEY, LAST_DIGEST_KEY)
) -> tuple[int, str] | None:
    """The last row of a chain the store recorded writing (id, digest), or None before the
    first; ``keys`` name the record in ``posaudit_meta`` (the reviews' by default)."""
    meta = store.meta()
    id_key, digest_key = keys
    if id_key not in meta or digest_key not in meta:
        return None
    return int(meta[id_key]), meta[digest_key]


def chain_end(
    store: Store,
    *,
    table: str = TABLE,
    id_column: str = "review_id",
    keys: tuple[str, str] = (LAST_ID_KEY, LAST_DIGEST_KEY),
) -> tuple[int, str]:
    """The id of a chain's last row and its digest, where the next row follows: after the
    last row the store recorded writing and after any row put there since, so a gap or a row
    that does not follow stays visible to `verify`, never covered. Before the first row, or
    in a store whose record is gone, the digest is the table's last row's (or :data:`GENESIS`)."""
    last = recorded_last(store, keys)
    highest = int(store.query(f"SELECT coalesce(max({id_column}), 0) FROM {table}")[0][0])  # type: ignore[call-overload]
    if last is None:
        rows = store.query(f"SELECT digest FROM {table} ORDER BY {id_column} DESC LIMIT 1")
        return highest, str(rows[0][0]) if rows else GENESIS
    return max(highest, last[0]), last[1]


@dataclass(frozen=True)
class TrailCheck:
    """What :func:`verify_trail` found: ``problem`` is None when the chain is whole."""

    reviews: int
    last_id: int | None
    last_digest: str | None
    problem: str | None
    noun: str = "review"

    @property
    def whole(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        """The one line ``posaudit review verify`` prints."""
        if self.problem is not None:
            return self.problem
        if self.last_id is None:
            return f"the {self.noun} trail is empty, and whole"
        return (
            f"the {self.noun} trail is whole: {plural(self.reviews, self.noun)}, "
            f"the last {self.noun} {self.last_id} with digest {self.last_digest}"
        )


def plural(count: int, noun: str) -> str:
    """``1 review``, ``2 reviews``, ``1,000 reviews``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def verify_trail(store: Store) -> TrailCheck:
    """Recompute the chain of ``finding_reviews`` and name the first row that breaks it."""
    rows = (
        store.query(f"SELECT {select_columns(store)} FROM {TABLE} ORDER BY review_id")
        if store.has_table(TABLE)
        else []
    )
    return check_chain([review_of(row) for row in rows], recorded_last(store))


class Link(Protocol):
    """A row of a chain: its place, its fields and its two digests."""

    @property
    def seq(self) -> int: ...
    @property
    def previous_digest(self) -> str: ...
    @property
    def digest(self) -> str: ...
    def fields(self) -> dict[str, object]: ...


def check_chain(
    reviews: Sequence[Link], recorded: tuple[int, str] | None, *, noun: str = "review"
) -> TrailCheck:
    """The check of a chain's rows in order against the last one the store recorded.

    ``noun`` names a row in the messages ("review", "snooze")."""
    previous_id, previous_digest = 0, GENESIS
    for review in reviews:
        rid = review.seq
        if rid != previous_id + 1:
            missing = (
                f"{noun} {previous_id + 1}"
                if rid == previous_id + 2
                else f"{noun}s {previous_id + 1}-{rid - 1}"
            )
            return _broken(reviews, f"{noun} {rid} breaks the chain: {missing} before it deleted")
        if review.previous_digest != previous_digest:
            return _broken(
                reviews,
                f"{noun} {rid} breaks the chain: the digest before it is not {noun} "
                f"{previous_id}'s (it or the {noun} before it was replaced or inserted)"
                if rid > 1
                else f"{noun} {rid} breaks the chain: it does not start from the first digest",
            )
        if review_digest(previous_digest, review.fields()) != review.digest:
            return _broken(
                reviews,
                f"{noun} {rid} breaks the chain: its fields do not give its digest (edited)",
            )
        previous_id, previous_digest = rid, review.digest
    last = (previous_id, previous_digest) if reviews else None
    if recorded is not None and (last is None or recorded[0] > last[0]):
        kept = previous_id  # 0 when the trail is empty
        first_gone = kept + 1
        gone = (
            f"{noun} {first_gone}"
            if recorded[0] == first_gone
            else f"{noun}s {first_gone}-{recorded[0]}"
        )
        problem = (
            f"the {noun} trail breaks after {noun} {kept}: {gone} recorded as written "
            "and deleted since"
            if kept
            else f"the {noun} trail is empty, but the store recorded {gone} as written: deleted"
        )
        return _broken(reviews, problem)
    if recorded is not None and last is not None and recorded != last:
        if recorded[0] < last[0]:
            problem = (
                f"{noun} {recorded[0] + 1} breaks the chain: the store recorded {noun} "
                f"{recorded[0]} as its last, so it was inserted"
            )
        else:
            problem = (
                f"{noun} {last[0]} breaks the chain: its digest is not the one the store "
                "recorded when it was written (the trail was rewritten)"
            )
        return _broken(reviews, problem)
    if recorded is None and last is not None:
        return _broken(
            reviews,
            f"{noun} 1 breaks the chain: the store recorded no {noun} as written "
            "(the trail was inserted, or that record deleted)",
        )
    if last is None:
        return TrailCheck(0, None, None, problem=None, noun=noun)
    return TrailCheck(len(reviews), last[0], last[1], problem=None, noun=noun)


def _broken(reviews: Sequence[Link], problem: str) -> TrailCheck:
    """A chain found broken: ``problem`` is the line to print."""
    return TrailCheck(len(reviews), None, None, problem=problem)
