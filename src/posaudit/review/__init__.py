"""Analysts' reviews of findings and cases: an append-only trail in the store, chained by digests.

A review is one row of ``finding_reviews``: who, when, which finding (or case), its status,
decision, assignee and a note. Nothing is updated or deleted: a finding's current state is its
latest review. Each row carries the digest of the row before it and its own
(:mod:`posaudit.review.trail`), so :func:`verify_trail` finds the first row that was edited,
deleted or inserted. Writes go through :mod:`posaudit.review.record` under the store's writer
lock, or wait in a queue on disk while another process holds it
(:mod:`posaudit.review.pending`); cases are findings grouped by entity
(:mod:`posaudit.review.cases`); snoozes set an entity's findings aside for a while
(:mod:`posaudit.review.snooze`); runs keep dismissed findings dismissed
(:mod:`posaudit.review.respect`). The queue and a finding's trail are read by
:mod:`posaudit.review.queue`.
"""

from __future__ import annotations

from posaudit.review.action import Action, checked_action
from posaudit.review.queue import case_list, case_trail, finding_with_trail, review_queue
from posaudit.review.record import (
    Outcome,
    apply_queued,
    assign,
    decide,
    record_action,
)
from posaudit.review.respect import DecisionEffects, respect_decisions
from posaudit.review.snooze import active_snoozes, snooze, snoozed_sql, verify_snoozes
from posaudit.review.trail import TrailCheck, verify_trail
from posaudit.review.values import DECISIONS, DISMISSED, STATUSES, UPHELD, ReviewError

__all__ = [
    "DECISIONS",
    "DISMISSED",
    "STATUSES",
    "UPHELD",
    "Action",
    "DecisionEffects",
    "Outcome",
    "ReviewError",
    "TrailCheck",
    "active_snoozes",
    "apply_queued",
    "assign",
    "case_list",
    "case_trail",
    "checked_action",
    "decide",
    "finding_with_trail",
    "record_action",
    "respect_decisions",
    "review_queue",
    "snooze",
    "snoozed_sql",
    "verify_snoozes",
    "verify_trail",
]
