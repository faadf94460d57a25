"""What an analyst asks of a finding or a case (decide, assign, comment, reopen), its values
checked before any store is opened, and the state it leaves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from posaudit.review.trail import Review
from posaudit.review.values import (
    ReviewError,
    checked_decision,
    checked_name,
    checked_note,
    checked_status,
    current_analyst,
)

ActionKind = Literal["decide", "assign", "comment", "reopen"]
ACTION_KINDS: Final[tuple[ActionKind, ...]] = ("decide", "assign", "comment", "reopen")


@dataclass(frozen=True)
class Action:
    """What an analyst asks of a finding or a case, its values already checked."""

    kind: ActionKind
    analyst: str
    decision: str | None = None
    status: str | None = None
    assignee: str | None = None
    note: str | None = None
    made_at: datetime | None = None  # when it was asked: now, or when it was queued
    request_id: str | None = None  # a queued action's request

    def next_state(self, before: Review | None) -> dict[str, object]:
        """The state after this action over ``before`` (None: never reviewed)."""
        return self.after(state_of(before))

    def after(self, before: Mapping[str, object]) -> dict[str, object]:
        """The state (status, decision, assignee) after this action over the state ``before``."""
        state = dict(before)
        if self.kind == "decide":
            state |= {"status": self.status or "closed", "decision": self.decision}
            if self.assignee is not None:  # an import's row may name one
                state["assignee"] = self.assignee
        elif self.kind == "assign":
            state["assignee"] = self.assignee
            if state["status"] == "open":
                state["status"] = "in_review"
        elif self.kind == "reopen":
            state |= {"status": "open", "decision": None}
        return state


def state_of(review: Review | None) -> dict[str, object]:
    """What a review says of where its finding stands; never reviewed: open, undecided and
    unassigned."""
    return {
        "status": review.status if review else "open",
        "decision": review.decision if review else None,
        "assignee": review.assignee if review else None,
    }


def checked_action(
    kind: str,
    *,
    decision: str | None = None,
    status: str | None = None,
    assignee: object = None,
    note: object = None,
    analyst: str | None = None,
) -> Action:
    """An action with every value checked (ReviewError, before any store is opened)."""
    if kind not in ACTION_KINDS:
        msg = f"unknown action {kind!r}: an action is one of {', '.join(ACTION_KINDS)}"
        raise ReviewError(msg)
    who = checked_name(analyst, what="the analyst") if analyst else current_analyst()
    checked_text = checked_note(note)
    if kind == "decide":
        if decision is None:
            msg = "a decision is needed: one of confirmed_fraud, policy_breach, ..."
            raise ReviewError(msg)
        return Action(
            "decide",
            who,
            decision=checked_decision(decision),
            status=checked_status(status or "closed"),
            note=checked_text,
        )
    if kind == "assign":
        return Action(
            "assign", who, assignee=checked_name(assignee, what="the assignee"), note=checked_text
        )
    if kind == "comment" and checked_text is None:
        msg = "a comment needs a note (--note)"
        raise ReviewError(msg)
    return Action(kind, who, note=checked_text)  # type: ignore[arg-type]
