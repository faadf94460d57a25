"""Snoozes: one entity's findings of one rule (or of every rule) set aside until a date.

A snoozed finding is still recorded by the runs and listed, marked snoozed; it counts for
nothing in a run's ``--fail-on`` alert or the report's headline. A snooze lasts at most
:data:`MAX_DAYS` days and needs a reason. Snoozes are rows of ``review_snoozes``, append-only
and chained by digests as the reviews are (:mod:`posaudit.review.trail`); for an entity and
a rule the latest row is in force, so lifting a snooze early is a row ending it now.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from posaudit.review.cases import case_entity, case_findings, is_case_id
from posaudit.review.trail import (
    TrailCheck,
    chain_end,
    check_chain,
    recorded_last,
    review_digest,
)
from posaudit.review.values import ReviewError, checked_name, checked_note, current_analyst
from posaudit.store import Store

SNOOZES: Final = "review_snoozes"
MAX_DAYS: Final = 180
LAST_KEYS: Final = ("snooze_last_id", "snooze_last_digest")
SNOOZE_COLUMNS: Final = (
    "snooze_id",
    "created_at",
    "analyst",
    "entity_type",
    "entity_id",
    "rule",
    "until",
    "reason",
    "previous_digest",
    "digest",
)


@dataclass(frozen=True)
class Snooze:
    """One row of ``review_snoozes``."""

    snooze_id: int
    created_at: datetime
    analyst: str
    entity_type: str
    entity_id: str
    rule: str | None
    until: datetime
    reason: str
    previous_digest: str
    digest: str

    @property
    def seq(self) -> int:
        return self.snooze_id

    def fields(self) -> dict[str, object]:
        """What the digest covers: every column but the two digests."""
        return {
            "snooze_id": self.snooze_id,
            "created_at": self.created_at.isoformat(timespec="microseconds"),
            "analyst": self.analyst,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "rule": self.rule,
            "until": self.until.isoformat(timespec="microseconds"),
            "reason": self.reason,
        }


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def checked_until(until: datetime | None, days: int | None, *, now: datetime) -> datetime:
    """The snooze's end from ``until`` or ``days``: after now, at most :data:`MAX_DAYS` on."""
    if (until is None) == (days is None):
        msg = "a snooze needs its end: --days N or --until YYYY-MM-DD (one of them)"
        raise ReviewError(msg)
    end = until if until is not None else now + timedelta(days=days or 0)
    if end <= now:
        msg = f"a snooze must end after now: {end:%Y-%m-%d %H:%M} is past"
        raise ReviewError(msg)
    if end > now + timedelta(days=MAX_DAYS):
        msg = (
            f"a snooze lasts at most {MAX_DAYS} days: {end:%Y-%m-%d} is "
            f"{(end - now).days} days from now"
        )
        raise ReviewError(msg)
    return end


def _target(
    store: Store, target: str, rule: str | None, all_rules: bool
) -> tuple[str, str, str | None]:
    """The entity and rule a snooze of ``target`` (a case, or a finding) covers."""
    if is_case_id(target):
        entity = case_entity(target)
        case_findings(store, target)  # an unknown case is refused
        return entity.entity_type, entity.entity_id, None if all_rules else rule
    rows = store.query(
        "SELECT CAST(entity_type AS VARCHAR), entity_id, rule FROM findings WHERE finding_id = ?",
        [target],
    )
    if not rows:
        msg = f"unknown finding {target!r}: no such finding in {store.path}"
        raise ReviewError(msg)
    kind, entity_id, own_rule = (str(v) for v in rows[0])
    return kind, entity_id, None if all_rules else (rule or own_rule)


def snooze(
    path: Path | str,
    target: str,
    *,
    reason: object,
    rule: str | None = None,
    all_rules: bool = False,
    until: datetime | None = None,
    days: int | None = None,
    lift: bool = False,
    analyst: str | None = None,
) -> Snooze:
    """Snooze a case's entity (every rule unless ``rule``), or a finding's entity for its rule
    (every rule with ``all_rules``), until ``until`` or for ``days``; ``lift`` ends the one in
    force now. Bad input raises ReviewError and writes nothing."""
    now = _now()
    checked_reason = checked_note(reason)
    if checked_reason is None:
        msg = "a snooze needs a reason (--reason)"
        raise ReviewError(msg)
    end = now if lift else checked_until(until, days, now=now)
    who = checked_name(analyst, what="the analyst") if analyst else current_analyst()
    store = Store.open(path, purpose="review snooze")
    try:
        entity_type, entity_id, covered = _target(store, target, rule, all_rules)
        if lift and not _in_force(store, entity_type, entity_id, covered, now):
            msg = f"no snooze in force for {entity_type} {entity_id} ({covered or 'every rule'})"
            raise ReviewError(msg)
        with store.transaction():
            store.ensure_review_tables()
            return _append(
                store,
                created_at=now,
                analyst=who,
                entity_type=entity_type,
                entity_id=entity_id,
                rule=covered,
                until=end,
                reason=checked_reason,
            )
    finally:
        store.close()


def _append(store: Store, **values: object) -> Snooze:
    last_id, previous = chain_end(store, table=SNOOZES, id_column="snooze_id", keys=LAST_KEYS)
    draft = Snooze(
        snooze_id=last_id + 1,
        previous_digest=previous,
        digest="",
        **values,  # type: ignore[arg-type]
    )
    made = replace(draft, digest=review_digest(previous, draft.fields()))
    store.execute(
        f"INSERT INTO {SNOOZES} ({', '.join(SNOOZE_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(SNOOZE_COLUMNS))})",
        [getattr(made, c) for c in SNOOZE_COLUMNS],
    )
    store.set_meta(LAST_KEYS[0], str(made.snooze_id))
    store.set_meta(LAST_KEYS[1], made.digest)
    return made


def _in_force(
    store: Store, entity_type: str, entity_id: str, rule: str | None, now: datetime
) -> bool:
    found = active_snoozes(store, now).filter(
        (pl.col("entity_type") == entity_type)
        & (pl.col("entity_id") == entity_id)
        & (pl.col("rule").is_null() if rule is None else pl.col("rule") == rule)
    )
    return not found.is_empty()


def _latest_sql(store: Store) -> str:
    return (
        f"SELECT * FROM {SNOOZES} QUALIFY row_number() OVER "
        "(PARTITION BY entity_type, entity_id, coalesce(rule, '') ORDER BY snooze_id DESC) = 1"
    )


def active_snoozes(store: Store, at: datetime | None = None) -> pl.DataFrame:
    """The snoozes in force at ``at`` (now), one per entity and rule, soonest to end first."""
    if not store.has_table(SNOOZES):
        return pl.DataFrame(
            schema={
                "snooze_id": pl.Int64,
                "created_at": pl.Datetime("us"),
                "analyst": pl.String,
                "entity_type": pl.String,
                "entity_id": pl.String,
                "rule": pl.String,
                "until": pl.Datetime("us"),
                "reason": pl.String,
            }
        )
    return store.frame(
        f"SELECT {', '.join(SNOOZE_COLUMNS[:-2])} FROM ({_latest_sql(store)}) "
        "WHERE until > $at ORDER BY until, snooze_id",
        {"at": at or _now()},
    )


def snoozed_sql(store: Store, alias: str = "f", at: datetime | None = None) -> str:
    """A SQL condition over ``findings`` as ``alias``: the finding is snoozed at ``at`` (now).
    ``false`` for a store without snoozes."""
    if not store.has_table(SNOOZES):
        return "false"
    moment = (at or _now()).isoformat(sep=" ", timespec="microseconds")
    return (
        f"EXISTS (SELECT 1 FROM ({_latest_sql(store)}) s WHERE s.until > TIMESTAMP '{moment}' "
        f"AND s.entity_type = CAST({alias}.entity_type AS VARCHAR) "
        f"AND s.entity_id = {alias}.entity_id AND (s.rule IS NULL OR s.rule = {alias}.rule))"
    )


def snooze_of(row: tuple[object, ...]) -> Snooze:
    values = dict(zip(SNOOZE_COLUMNS, row, strict=True))
    return Snooze(**values)  # type: ignore[arg-type]


def verify_snoozes(store: Store) -> TrailCheck:
    """Recompute the chain of ``review_snoozes``; name the first row that breaks it."""
    rows = (
        store.query(f"SELECT {', '.join(SNOOZE_COLUMNS)} FROM {SNOOZES} ORDER BY snooze_id")
        if store.has_table(SNOOZES)
        else []
    )
    return check_chain([snooze_of(r) for r in rows], recorded_last(store, LAST_KEYS), noun="snooze")
