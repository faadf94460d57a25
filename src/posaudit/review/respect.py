"""What a run does with the analysts' decisions: a finding dismissed stays dismissed until its
evidence grows.

A finding an analyst closed as a false positive or benign and explained keeps that review
when a later run (incremental or full, on either engine) reports it again: it is not new (its
id is the same, :mod:`posaudit.run.record`), and it is counted as dismissed, not as a finding
to look at. When the run reports it with more events inside it than it held when it was
decided (:mod:`posaudit.review.evidence`), the run appends a review reopening it, saying by how
much it grew: the decision was taken on less than there now is. Nothing is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from posaudit.review.evidence import evidence_events
from posaudit.review.record import append_review
from posaudit.review.trail import TABLE, current_reviews_sql
from posaudit.review.values import DISMISSED
from posaudit.store import Store

# Who the trail names for a review a run appends.
RUN_ANALYST: Final = "posaudit"


@dataclass(frozen=True)
class DecisionEffects:
    """The findings open after a run that an analyst dismissed (their review left closed), and
    those the run reopened because their evidence grew."""

    dismissed: int = 0
    reopened: int = 0


def respect_decisions(store: Store, run_id: str, reported: str) -> DecisionEffects:
    """Reopen the dismissed findings among ``reported`` (a table of the run's finding ids, the
    findings already merged) whose evidence grew; inside the run's transaction."""
    if not store.has_table(TABLE):
        return DecisionEffects()
    dismissed = ", ".join(f"'{d}'" for d in DISMISSED)
    latest = f"WITH latest AS ({current_reviews_sql(store)})"
    rows = store.query(
        f"""{latest}
        SELECT l.finding_id, l.review_id, CAST(l.decision AS VARCHAR), l.evidence_events,
            l.assignee, f.evidence
        FROM latest l JOIN findings f USING (finding_id)
        WHERE l.status = 'closed' AND CAST(l.decision AS VARCHAR) IN ({dismissed})
            AND l.finding_id IN (SELECT finding_id FROM {reported})
        ORDER BY l.finding_id"""
    )
    reopened = 0
    for finding_id, review_id, decision, then, assignee, evidence in rows:
        now = evidence_events(str(evidence))
        if then is None or now is None or now <= int(then):  # type: ignore[call-overload]
            continue
        append_review(
            store,
            analyst=RUN_ANALYST,
            finding_id=finding_id,
            case_id=None,
            status="open",
            decision=None,
            assignee=assignee,
            note=(
                f"reopened by {run_id}: its evidence grew from {then} to {now} events "
                f"since review {review_id} closed it as {decision}"
            ),
            evidence_events=now,
        )
        reopened += 1
    # every finding the runs hold open that an analyst dismissed (after the reopenings)
    (still,) = store.query(
        f"""{latest}
        SELECT count(*) FROM latest l JOIN findings f USING (finding_id)
        WHERE f.status = 'open' AND l.status = 'closed'
            AND CAST(l.decision AS VARCHAR) IN ({dismissed})"""
    )[0]
    return DecisionEffects(dismissed=int(still), reopened=reopened)  # type: ignore[call-overload]
