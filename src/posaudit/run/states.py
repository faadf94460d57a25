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

A rule may keep a state by other events (``Rule.state_events``): a terminal's runs of wrong
PINs without a lockout, counted over its whole history, change only where one operator made
more wrong PINs there than the policy allows in a row, and a looser lockout setting holds
until the terminal's row changes (a full run). Such a rule re-decides the terminals its query
names from the first changed time less its look-back, those whose findings reach that time,
and those added since.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from posaudit.detect.registry import Rule
from posaudit.run.kept import kept_table
from posaudit.store import Store
from posaudit.store.catalogue import CATALOGUE, DIMENSION_TABLES

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


def _dimension_of(key: str) -> str | None:
    """The dimension table whose rows ``key`` names (``terminal_id``: terminals)."""
    return next((t for t in DIMENSION_TABLES if CATALOGUE[t].key == key), None)


def entities_by_events(
    store: Store, rule: Rule, parameters: Mapping[str, Any], changed: ChangedStates
) -> frozenset[str]:
    """What a rule on states kept by other events than a PIN's (``Rule.state_events``)
    re-decides: the values of its partition key its query gives from the first changed time
    less its look-back on, those of its findings that end there or later (or not yet), and
    those added to their dimension since the previous run kept its copy."""
    assert rule.state_events is not None
    key = rule.partition_key
    since = changed.since - rule.lookback
    named = set(re.findall(r"\$(\w+)", rule.state_events)) - {"since"}
    values: dict[str, object] = {"since": since} | {n: parameters[n] for n in named}
    column = "merchant_id" if key == "merchant_id" else "entity_id"
    parts = [
        rule.state_events,
        f"SELECT {column} FROM findings WHERE rule = $rule "
        "AND (window_end IS NULL OR window_end >= $since)",
    ]
    values["rule"] = rule.name
    dimension = _dimension_of(key)
    if dimension is not None:
        kept = kept_table(dimension)
        added = f" WHERE {key} NOT IN (SELECT {key} FROM {kept})" if store.has_table(kept) else ""
        parts.append(f"SELECT {key} FROM {dimension}{added}")
    rows = store.frame(" UNION ".join(f"({p})" for p in parts), values)
    return frozenset(str(v) for v in rows.to_series() if v is not None)


def state_entities(
    store: Store, rule: Rule, parameters: Mapping[str, Any], changed: ChangedStates
) -> frozenset[str]:
    """What ``rule`` (on states) re-decides: operators, or merchants when it compares a
    merchant's operators with each other (its partition key); for a rule kept by other
    events, :func:`entities_by_events`."""
    if rule.state_events is not None:
        return entities_by_events(store, rule, parameters, changed)
    age = parameters.get(rule.state_age) if rule.state_age else None
    operators = changed.operators(store, int(age) if age is not None else None)
    if rule.partition_key == "merchant_id":
        return changed.merchants(store, operators)
    return operators
