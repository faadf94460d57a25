"""The entities whose state may have changed since the previous run: what a rule on states
re-decides in an incremental run.

A PIN finding describes a state (:mod:`posaudit.detect.pins`): it begins with a PIN event and
lasts until the next one, or the operator's removal, and an open one names no end. Between
those events only one thing changes it: an unchanged PIN passing a whole multiple of the age
limit (a stale PIN's severity and score grow at each). So a night re-decides only the
operators with a PIN event or an operator event (a right granted or revoked, a removal) at or
after the first changed time, those added to the operators table since the previous run, those
removed in that time, and, for a rule with an age, those whose current PIN passes a multiple of
it between the first changed time and the data's end. Every other finding of the rule is
carried over as it is, and equals what a full run gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from posaudit.detect.registry import Rule
from posaudit.run.kept import kept_table
from posaudit.store import Store

US_PER_DAY: Final = 86_400_000_000


@dataclass(frozen=True)
class ChangedStates:
    """The operators whose state may have changed from ``since`` to ``data_to``: by their
    events (``by_events``), and those whose current PIN passes a multiple of an age."""

    since: datetime
    data_to: datetime
    by_events: frozenset[str]

    def operators(self, store: Store, age_days: int | None) -> frozenset[str]:
        """The operators a rule with the age ``age_days`` (None: no age) re-decides."""
        if age_days is None or age_days < 1:
            return self.by_events
        limit = age_days * US_PER_DAY
        # the multiples of the limit strictly passed: (age - 1 us) // limit, at each end
        rows = store.query(
            "SELECT operator_id FROM ("
            "SELECT operator_id, max(ts) AS set_at FROM pin_events WHERE ts <= ? "
            "GROUP BY operator_id) "
            "WHERE set_at < ? AND (epoch_us(?::TIMESTAMP) - epoch_us(set_at) - 1) // ? <> "
            "(epoch_us(?::TIMESTAMP) - epoch_us(set_at) - 1) // ?",
            [self.data_to, self.since, self.data_to, limit, self.since, limit],
        )
        return self.by_events | {str(r[0]) for r in rows}

    def merchants(self, store: Store, operators: frozenset[str]) -> frozenset[str]:
        """The merchants of ``operators``: what a rule comparing a merchant's operators
        re-decides."""
        if not operators:
            return frozenset()
        rows = store.query(
            "SELECT DISTINCT merchant_id FROM operators WHERE list_contains(?, operator_id)",
            [sorted(operators)],
        )
        return frozenset(str(r[0]) for r in rows if r[0] is not None)


def changed_states(store: Store, since: datetime, data_to: datetime) -> ChangedStates:
    """The operators with an event at or after ``since``, removed since then, or added to
    the operators table since the previous run kept its copy."""
    kept = kept_table("operators")
    added = (
        f"UNION SELECT operator_id FROM operators WHERE operator_id NOT IN "
        f"(SELECT operator_id FROM {kept}) "
        if store.has_table(kept)
        else "UNION SELECT operator_id FROM operators "
    )
    rows = store.query(
        "SELECT operator_id FROM pin_events WHERE ts >= ? "
        "UNION SELECT operator_id FROM operator_events WHERE ts >= ? "
        "UNION SELECT operator_id FROM operators WHERE disabled_at >= ? " + added,
        [since, since, since],
    )
    return ChangedStates(since, data_to, frozenset(str(r[0]) for r in rows if r[0] is not None))


def state_entities(
    store: Store, rule: Rule, parameters: Mapping[str, Any], changed: ChangedStates
) -> frozenset[str]:
    """What ``rule`` (on states) re-decides: operators, or merchants when it compares a
    merchant's operators with each other (its partition key)."""
    age = parameters.get(rule.state_age) if rule.state_age else None
    operators = changed.operators(store, int(age) if age is not None else None)
    if rule.partition_key == "merchant_id":
        return changed.merchants(store, operators)
    return operators
