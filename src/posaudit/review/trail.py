"""The chain of the review trail: each review's digest, and the check that the trail is whole.

A review's digest is the SHA-256, in hex, of the digest of the review before it, a line feed,
and the review's canonical encoding: its fields as JSON with sorted keys, no spaces, text in
UTF-8 and the time as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (UTC). The first review follows
:data:`GENESIS`. Anyone can recompute the chain from the table alone (docs/review.md).

The store also records the last review it wrote (its id and digest, in ``posaudit_meta``), so
a review deleted from the end of the trail, or one inserted after it, is found too. A writer
of the whole file can rewrite the chain and that record together: an auditor who keeps the
last digest ``verify`` printed can tell, as the digest is then no longer in the trail.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final

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
    "status",
    "decision",
    "assignee",
    "note",
    "previous_digest",
    "digest",
)


@dataclass(frozen=True)
class Review:
    """One row of the trail."""

    review_id: int
    reviewed_at: datetime
    analyst: str
    finding_id: str
    status: str
    decision: str | None
    assignee: str | None
    note: str | None
    previous_digest: str
    digest: str

    def fields(self) -> dict[str, object]:
        """What the digest covers: every column but the two digests."""
        return {
            "review_id": self.review_id,
            "reviewed_at": self.reviewed_at.isoformat(timespec="microseconds"),
            "analyst": self.analyst,
            "finding_id": self.finding_id,
            "status": self.status,
            "decision": self.decision,
            "assignee": self.assignee,
            "note": self.note,
        }

    def to_record(self) -> dict[str, object]:
        return self.fields() | {"previous_digest": self.previous_digest, "digest": self.digest}


def canonical(fields: dict[str, object]) -> bytes:
    """The bytes a review's digest is taken over (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def review_digest(previous_digest: str, fields: dict[str, object]) -> str:
    """The digest of a review with ``fields``, following ``previous_digest``."""
    return hashlib.sha256(previous_digest.encode("ascii") + b"\n" + canonical(fields)).hexdigest()


def review_of(row: tuple[object, ...]) -> Review:
    """A review from a row of the table read in :data:`COLUMNS` order."""
    values = dict(zip(COLUMNS, row, strict=True))
    return Review(
        review_id=int(values["review_id"]),  # type: ignore[call-overload]
        reviewed_at=values["reviewed_at"],  # type: ignore[arg-type]
        analyst=str(values["analyst"]),
        finding_id=str(values["finding_id"]),
        status=str(values["status"]),
        decision=None if values["decision"] is None else str(values["decision"]),
        assignee=None if values["assignee"] is None else str(values["assignee"]),
        note=None if values["note"] is None else str(values["note"]),
        previous_digest=str(values["previous_digest"]),
        digest=str(values["digest"]),
    )


def recorded_last(store: Store) -> tuple[int, str] | None:
    """The last review the store recorded writing (id, digest), or None before the first."""
    meta = store.meta()
    if LAST_ID_KEY not in meta or LAST_DIGEST_KEY not in meta:
        return None
    return int(meta[LAST_ID_KEY]), meta[LAST_DIGEST_KEY]


@dataclass(frozen=True)
class TrailCheck:
    """What :func:`verify_trail` found: ``problem`` is None when the chain is whole."""

    reviews: int
    last_id: int | None
    last_digest: str | None
    problem: str | None

    @property
    def whole(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        """The one line ``posaudit review verify`` prints."""
        if self.problem is not None:
            return self.problem
        if self.last_id is None:
            return "the review trail is empty, and whole"
        return (
            f"the review trail is whole: {self.reviews:,} reviews, "
            f"the last review {self.last_id} with digest {self.last_digest}"
        )


def verify_trail(store: Store) -> TrailCheck:
    """Recompute the chain of ``finding_reviews`` and name the first row that breaks it."""
    rows = (
        store.query(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY review_id")
        if store.has_table(TABLE)
        else []
    )
    return check_chain([review_of(row) for row in rows], recorded_last(store))


def check_chain(reviews: list[Review], recorded: tuple[int, str] | None) -> TrailCheck:
    """The check of reviews in id order against the last review the store recorded."""
    previous_id, previous_digest = 0, GENESIS
    for review in reviews:
        rid = review.review_id
        if rid != previous_id + 1:
            missing = (
                f"review {previous_id + 1}"
                if rid == previous_id + 2
                else f"reviews {previous_id + 1}-{rid - 1}"
            )
            return _broken(reviews, f"review {rid} breaks the chain: {missing} before it deleted")
        if review.previous_digest != previous_digest:
            return _broken(
                reviews,
                f"review {rid} breaks the chain: the digest before it is not review "
                f"{previous_id}'s (it or the review before it was replaced or inserted)"
                if rid > 1
                else f"review {rid} breaks the chain: it does not start from the first digest",
            )
        if review_digest(previous_digest, review.fields()) != review.digest:
            return _broken(
                reviews,
                f"review {rid} breaks the chain: its fields do not give its digest (edited)",
            )
        previous_id, previous_digest = rid, review.digest
    last = (previous_id, previous_digest) if reviews else None
    if recorded is not None and (last is None or recorded[0] > last[0]):
        kept = previous_id  # 0 when the trail is empty
        first_gone = kept + 1
        gone = (
            f"review {first_gone}"
            if recorded[0] == first_gone
            else f"reviews {first_gone}-{recorded[0]}"
        )
        problem = (
            f"the review trail breaks after review {kept}: {gone} recorded as written "
            "and deleted since"
            if kept
            else f"the review trail is empty, but the store recorded {gone} as written: deleted"
        )
        return _broken(reviews, problem)
    if recorded is not None and last is not None and recorded != last:
        if recorded[0] < last[0]:
            problem = (
                f"review {recorded[0] + 1} breaks the chain: the store recorded review "
                f"{recorded[0]} as its last, so it was inserted"
            )
        else:
            problem = (
                f"review {last[0]} breaks the chain: its digest is not the one the store "
                "recorded when it was written (the trail was rewritten)"
            )
        return _broken(reviews, problem)
    if recorded is None and last is not None:
        return _broken(
            reviews,
            "review 1 breaks the chain: the store recorded no review as written "
            "(the trail was inserted, or that record deleted)",
        )
    if last is None:
        return TrailCheck(0, None, None, problem=None)
    return TrailCheck(len(reviews), last[0], last[1], problem=None)


def _broken(reviews: list[Review], problem: str) -> TrailCheck:
    return TrailCheck(len(reviews), None, None, problem=problem)
