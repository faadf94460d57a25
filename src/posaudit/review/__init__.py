"""Analysts' reviews of findings: an append-only trail in the store, chained by digests.

A review is one row of ``finding_reviews``: who, when, which finding, its status, decision,
assignee and a note. Nothing is updated or deleted: a finding's current state is its latest
review. Each row carries the digest of the row before it and its own
(:mod:`posaudit.review.trail`), so :func:`verify_trail` finds the first row that was edited,
deleted or inserted. Writes go through :mod:`posaudit.review.record` under the store's writer
lock; the queue and a finding's trail are read by :mod:`posaudit.review.queue`.
"""

from __future__ import annotations

from posaudit.review.queue import finding_with_trail, review_queue
from posaudit.review.record import assign, decide
from posaudit.review.trail import TrailCheck, verify_trail
from posaudit.review.values import DECISIONS, STATUSES, ReviewError

__all__ = [
    "DECISIONS",
    "STATUSES",
    "ReviewError",
    "TrailCheck",
    "assign",
    "decide",
    "finding_with_trail",
    "review_queue",
    "verify_trail",
]
