"""Planning a run: full or incremental, and what each rule reads and re-decides.

A run is incremental when the store holds a successful run made with the same policy and the
same code, and the data up to that run's watermark (its latest event time) is unchanged.
Every rule declares its look-back ``L``: whether a finding exists, its window and its evidence
depend on the events from ``L`` before the window's end to the window's end, and later events
change it only within ``L`` (a burst they extend). So new events after the watermark ``W``
can only change findings ending at or after ``W - L``; the run re-decides exactly those,
reading the rule's events from ``W - 2L`` so that each of them has its whole context, and
carries every finding ending earlier over unchanged. A rule whose look-back reaches back
over all the data, and a score (family ``scores``: a model ranks every operator-day against
all others, so any new day can move any rank), is re-run over all the data. A rule with a
finding whose window is longer than its look-back does not fit that promise and is re-run
over all the data too. A rule on states (``Rule.states``: the PIN rules, whose findings last
until an event of their operator ends them) is re-decided instead for the entities whose
state may have changed (:mod:`posaudit.run.states`), over all their events. The findings
after an incremental run therefore equal those of a full run over the same data; the tests
check this for every rule.

Both engines plan here: the Spark engine runs each bucket with the same scopes (its anomaly
score always over all the data), and writes to Parquet with :func:`full_scopes`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Final, Literal, NamedTuple

import polars as pl

from posaudit import __version__
from posaudit.detect.policy import Policy
from posaudit.detect.registry import DERIVED_TABLES, Rule
from posaudit.pins import PinDigester
from posaudit.run.dimensions import dimension_changes, dimensions_kept_by
from posaudit.run.kept import IncrementalScore, kept_week
from posaudit.run.states import ChangedStates, changed_states, state_entities
from posaudit.score.operators import SCORE_RULE
from posaudit.store import Store, StoreError
from posaudit.store.catalogue import DIMENSION_TABLES, EVENT_TIME_COLUMNS, WINDOW_TABLES

Mode = Literal["full", "incremental"]

# Families whose findings rank each entity against the whole population: re-run over all data.
POPULATION_FAMILIES: Final = frozenset({"scores", "merchants"})
# posaudit_meta key holding what the data looked like at the last run's watermark.
FINGERPRINT_KEY: Final = "pipeline.fingerprint"
# The table of the operators' rights as they change (see posaudit.run.dimensions).
RIGHTS_TABLE: Final = "operator_events"


@dataclass(frozen=True)
class RuleScope:
    """What one rule reads and re-decides in a run.

    ``read_from``: the earliest event time the rule reads (None: all events).
    ``recheck_from``: findings ending at or after it are re-decided, earlier ones carried
    over (None: all of the rule's findings are re-decided).
    """

    rule: str
    read_from: datetime | None
    recheck_from: datetime | None
    why_all: str = ""
    # tables the rule reads from a later time than ``read_from``
    table_from: Mapping[str, datetime] = field(default_factory=dict)
    # a rule on states: the entities (values of ``entity_key``, the rule's partition key) it
    # re-decides; its other findings are carried over (None: every entity)
    entities: frozenset[str] | None = None
    entity_key: str = ""

    def since(self, table: str) -> datetime | None:
        """The earliest event time the rule reads of ``table`` (None: all of it)."""
        return self.table_from.get(table, self.read_from)


@dataclass(frozen=True)
class RunPlan:
    mode: Mode
    reason: str
    previous_run_id: str | None
    changed_from: datetime | None  # incremental: every new or changed event is at or after it
    data_from: datetime
    data_to: datetime
    scopes: dict[str, RuleScope]
    # incremental: some events the previous run saw are gone (a day's count fell)
    events_removed: bool = False
    # incremental: the events per table and day up to the previous watermark, as counted now
    counted: Mapping[str, Mapping[str, int]] | None = None
    # incremental: each table's count and sum of event times before a time, as counted now
    settled: Mapping[str, SettledSums] | None = None

    @property
    def rules_over_all_data(self) -> list[str]:
        return over_all_data(self.scopes)


def over_all_data(scopes: Mapping[str, RuleScope]) -> list[str]:
    """The rules that re-decide every finding over all the data."""
    return sorted(name for name, s in scopes.items() if s.read_from is None and s.entities is None)


def full_scopes(rules: Iterable[Rule], why: str = "full run") -> dict[str, RuleScope]:
    """Every rule over all the data, all its findings re-decided."""
    return {r.name: RuleScope(r.name, None, None, why) for r in rules}


def timestamp_literal(value: datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def check_runnable(store: Store, digester: PinDigester) -> None:
    """Refuse, with one line, a store made under another PIN key or holding no transactions."""
    store.check_pin_key(digester.fingerprint)
    if int(store.query("SELECT count(*) FROM transactions")[0][0]) == 0:  # type: ignore[call-overload]
        msg = f"{store.path} holds no transactions: simulate or load data before running the audit"
        raise StoreError(msg)


def data_window(store: Store) -> tuple[datetime, datetime]:
    """First and last event time of the audited event tables (logins and transactions)."""
    union = " UNION ALL ".join(
        f"SELECT min(ts) AS lo, max(ts) AS hi FROM {t}" for t in WINDOW_TABLES
    )
    lo, hi = store.query(f"SELECT min(lo), max(hi) FROM ({union})")[0]
    return lo, hi  # type: ignore[return-value]


def _day_counts(
    store: Store,
    table: str,
    watermark: datetime,
    *,
    known: Mapping[str, int] | None = None,
    since: date | None = None,
) -> dict[str, int]:
    """Events of ``table`` per day up to ``watermark``: the days before ``since`` as
    ``known`` says, the others counted (a scan of only the row groups from ``since`` on;
    every day when either is None)."""
    column = EVENT_TIME_COLUMNS[table]
    if known is None or since is None:
        known, since = {}, None
    low = f"{column} >= {timestamp_literal(datetime.combine(since, time()))} AND " if since else ""
    rows = store.query(
        f"SELECT CAST({column} AS DATE) AS day, count(*) FROM {table} "
        f"WHERE {low}{column} <= ? GROUP BY day",
        [watermark],
    )
    kept = {d: n for d, n in known.items() if since is not None and d < since.isoformat()}
    return kept | {str(day): int(n) for day, n in rows}  # type: ignore[call-overload]


class SettledSums(NamedTuple):
    """The count and the sum of the times (epoch microseconds) of a table's events before
    ``before``."""

    before: datetime
    events: int
    total: int


def _settled(
    store: Store, table: str, column: str, watermark: datetime, *, known: SettledSums | None = None
) -> SettledSums:
    """The count and the sum of the times of ``table``'s events before the watermark's day:
    one pass, no grouping, to tell whether any of those days changed. With ``known`` (the
    same of an earlier day, as the data is now), only the days from it on are read."""
    before = datetime.combine(watermark.date(), time())
    since = known.before if known is not None and known.before <= before else None
    low = f"{column} >= ? AND " if since is not None else ""
    count, total = store.query(
        f"SELECT count(*), coalesce(sum(epoch_us({column})), 0) FROM {table} "
        f"WHERE {low}{column} < ?",
        [since, before] if since is not None else [before],
    )[0]
    if since is not None and known is not None:
        return SettledSums(before, known.events + int(count), known.total + int(total))  # type: ignore[call-overload]
    return SettledSums(before, int(count), int(total))  # type: ignore[call-overload]


def _dimension_hashes(store: Store) -> dict[str, str]:
    """Each dimension table's row count and a hash of its rows."""
    hashes = {}
    for table in DIMENSION_TABLES:
        count, digest = store.query(
            f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {table} t"
        )[0]
        hashes[table] = f"{count}:{digest}"
    return hashes


def data_fingerprint(
    store: Store,
    watermark: datetime,
    *,
    known: Mapping[str, Mapping[str, int]] | None = None,
    recount_from: date | None = None,
    settled: Mapping[str, SettledSums] | None = None,
) -> dict[str, Any]:
    """What the data up to ``watermark`` looks like: events per table and day, dimension hashes.

    The next run compares it with the data as it is then: the earliest day whose count
    changed is where events were loaded late (or deleted), and incremental work starts
    there (a changed dimension is judged by :mod:`posaudit.run.dimensions`). ``known``: the
    counts per day of each table, current before the day ``recount_from``; only the days from
    it on are counted again. ``settled`` holds each table's count and sum of event times
    before the watermark's day, which the next run compares first; given ``settled`` (the
    same before an earlier time, current), only the events from that time on are read for it.
    """
    events = {}
    sums = {}
    for table, column in EVENT_TIME_COLUMNS.items():
        counted = known.get(table, {}) if known is not None else None
        events[table] = _day_counts(store, table, watermark, known=counted, since=recount_from)
        earlier = settled.get(table) if settled is not None else None
        found = _settled(store, table, column, watermark, known=earlier)
        sums[table] = [found.events, found.total]
    dimensions = _dimension_hashes(store)
    return {
        "watermark": watermark.isoformat(),
        "events": events,
        "settled": sums,
        "dimensions": dimensions,
    }


def counts_now(store: Store, before: Mapping[str, Any], watermark: datetime) -> dict[str, Any]:
    """The data up to ``watermark`` as :func:`data_fingerprint` describes it, counting per day
    only the watermark's day for each table whose earlier days are as ``before`` saw them
    (same count and sum of event times), and every day of the others. ``settled`` holds
    each table's count and sum before the watermark's day as they are now."""
    events = {}
    settled = {}
    for table, column in EVENT_TIME_COLUMNS.items():
        seen = before.get("settled", {}).get(table)
        settled[table] = _settled(store, table, column, watermark)
        if seen is not None and [settled[table].events, settled[table].total] == seen:
            known = before["events"].get(table, {})
            events[table] = _day_counts(
                store, table, watermark, known=known, since=watermark.date()
            )
        else:
            events[table] = _day_counts(store, table, watermark)
    dimensions = _dimension_hashes(store)
    return {
        "watermark": watermark.isoformat(),
        "events": events,
        "dimensions": dimensions,
        "settled": settled,
    }


def changed_days(
    now: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]]
) -> list[tuple[str, str]]:
    """The (day, table) pairs whose count of events differs between two fingerprints'
    ``events``."""
    return [
        (day, table)
        for table, counts in now.items()
        for day in set(counts) | set(before.get(table, {}))
        if counts.get(day, 0) != before.get(table, {}).get(day, 0)
    ]


@dataclass(frozen=True)
class PreviousRun:
    """The store's latest successful run, whichever engine made it."""

    run_id: str
    policy_hash: str
    code_version: str
    watermark: datetime | None


def previous_run(store: Store) -> PreviousRun | None:
    rows = store.query(
        "SELECT run_id, policy_hash, code_version, watermark FROM pipeline_runs "
        "WHERE status = 'succeeded' ORDER BY finished_at DESC, run_id DESC LIMIT 1"
    )
    if not rows:
        return None
    run_id, policy_hash, code_version, watermark = rows[0]
    return PreviousRun(str(run_id), str(policy_hash), str(code_version), watermark)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Changes:
    """Since when the data may differ from what the previous run saw, and why: ``since`` is
    None when the run must be full; else every event added or removed since the previous run
    lies at or after it (its watermark, or the start of the earliest day whose events changed
    before it). ``removed``: some day holds fewer events than the previous run saw."""

    since: datetime | None
    why: str
    removed: bool = False
    # the events per table and day up to the previous watermark, as counted now
    counted: Mapping[str, Mapping[str, int]] | None = None
    # each table's count and sum of event times before the previous watermark's day, now
    settled: Mapping[str, SettledSums] | None = None


def changed_since(
    store: Store, policy: Policy, previous: PreviousRun | None, data_to: datetime
) -> Changes:
    """Since when the data may differ from what the previous run saw, and why."""
    if previous is None:
        return Changes(None, "first run on this store")
    name = previous.run_id
    if previous.policy_hash != policy.hash:
        return Changes(None, f"the policy changed since {name}")
    if previous.code_version != __version__:
        return Changes(
            None, f"posaudit changed since {name} ({previous.code_version} -> {__version__})"
        )
    watermark = previous.watermark
    stored = store.meta().get(FINGERPRINT_KEY)
    before = json.loads(stored) if stored else {}
    if watermark is None or before.get("watermark") != watermark.isoformat():
        return Changes(None, f"{name} left no watermark")
    now = counts_now(store, before, watermark)
    days_by_table = changed_days(now["events"], before["events"])
    days = [day for day, _ in days_by_table]
    removed = any(
        counts.get(day, 0) < before["events"].get(table, {}).get(day, 0)
        for table, counts in now["events"].items()
        for day in before["events"].get(table, {})
    )
    since = datetime.fromisoformat(min(days)) if days else watermark
    late = sorted(day for day, table in days_by_table if table == RIGHTS_TABLE)
    if late:
        # a refund's right is read from the first change of it after the refund: a change
        # loaded late rewrites what refunds before it were judged by, back to the one before
        return Changes(
            None, f"operator events changed from {late[0]} on, before {name}'s watermark"
        )
    if not days and data_to <= watermark:
        reason = f"no new data since {name}"
    elif not days:
        reason = f"new data since {name}'s watermark {watermark:%Y-%m-%d %H:%M:%S}"
    else:
        reason = f"new data since {name}, and events changed from {since:%Y-%m-%d} on"
    changed = [t for t, h in now["dimensions"].items() if before["dimensions"].get(t) != h]
    if not dimensions_kept_by(store, name):
        if changed:
            return Changes(None, f"{', '.join(changed)} changed since {name}")
        return Changes(since, reason, removed, now["events"], now["settled"])
    dimensions = dimension_changes(store, since, watermark)
    if not dimensions.explained:
        return Changes(None, f"{dimensions.full} since {name}")
    rows = ", ".join(f"{n:,} {t}" for t, n in dimensions.rows.items() if n)
    if rows:
        reason += f" ({rows} added or changed, each by its events)"
    return Changes(since, reason, removed, now["events"], now["settled"])


def overlong_rules(store: Store, rules: list[Rule], watermark: datetime) -> set[str]:
    """Rules with a finding, among those they would re-decide, longer than their look-back."""
    if not rules:
        return set()
    earliest = min(watermark - r.lookback for r in rules)
    names = ", ".join("'" + r.name + "'" for r in rules)
    candidates = store.frame(
        "SELECT rule, window_start, window_end FROM findings "
        f"WHERE window_end >= {timestamp_literal(earliest)} AND rule IN ({names})"
    )
    limits = pl.DataFrame(
        [
            (r.name, r.lookback, watermark - (r.lookback if r.recheck is None else r.recheck))
            for r in rules
        ],
        schema={
            "rule": pl.String,
            "lookback": pl.Duration("us"),
            "rechecked_from": pl.Datetime("us"),
        },
        orient="row",
    )
    overlong = candidates.join(limits, on="rule").filter(
        (pl.col("window_end") >= pl.col("rechecked_from"))
        & (pl.col("window_end") - pl.col("window_start") > pl.col("lookback"))
    )
    return set(overlong.get_column("rule").unique().to_list())


def score_scope(
    store: Store, rule: Rule, changed_from: datetime, previous_id: str | None
) -> RuleScope:
    """What the anomaly score reads in an incremental run (see :mod:`posaudit.run.kept`)."""
    week = kept_week(store, previous_id)
    if week is None:
        return RuleScope(rule.name, None, None, "no operator-days kept by the previous run")
    if changed_from.date() < week:
        return RuleScope(rule.name, None, None, "events changed before the week it keeps")
    reads = IncrementalScore(changed_from.date())
    # the earliest data it uses: the kept 28-day sums and the refunds to cards, 27 days back
    events = {
        t: reads.events_from for t in rule.inputs if t in EVENT_TIME_COLUMNS or t in DERIVED_TABLES
    }
    return RuleScope(rule.name, reads.refunds_from, reads.events_from, table_from=events)


def state_scope(store: Store, rule: Rule, policy: Policy, changed: ChangedStates) -> RuleScope:
    """A rule on states re-decides the entities whose state may have changed, over all their
    events (:mod:`posaudit.run.states`)."""
    entities = state_entities(store, rule, rule.parameters | policy.parameters(rule.name), changed)
    kind = rule.partition_key.removesuffix("_id") + "s"
    return RuleScope(
        rule.name,
        None,
        None,
        f"re-decides the {len(entities):,} {kind} whose state changed",
        entities=entities,
        entity_key=rule.partition_key,
    )


def reading_last(scope: RuleScope, spans: Mapping[str, timedelta], data_to: datetime) -> RuleScope:
    """``scope`` reading each table of ``spans`` only for its span before ``data_to``, when
    it read more (``Rule.reads_last``: the rule uses no earlier row, whatever it
    re-decides)."""
    table_from = dict(scope.table_from)
    for table, span in spans.items():
        since = scope.since(table)
        table_from[table] = data_to - span if since is None else max(since, data_to - span)
    return replace(scope, table_from=table_from)


def plan_run(store: Store, policy: Policy, rules: list[Rule], *, full: bool = False) -> RunPlan:
    """Decide full or incremental, and what each rule reads and re-decides."""
    data_from, data_to = data_window(store)
    previous = previous_run(store)
    previous_id = previous.run_id if previous else None
    changes = (
        Changes(None, "requested (--full)")
        if full
        else changed_since(store, policy, previous, data_to)
    )
    changed_from, reason = changes.since, changes.why
    if changed_from is None:
        return RunPlan("full", reason, previous_id, None, data_from, data_to, full_scopes(rules))
    starts = {
        table: store.query(f"SELECT min({column}) FROM {table}")[0][0]
        for table, column in EVENT_TIME_COLUMNS.items()
    }
    overlong = overlong_rules(store, rules, changed_from)
    states: ChangedStates | None = None
    scopes = {}
    for r in rules:
        if r.states:
            states = states or changed_states(store, changed_from, data_to)
            scopes[r.name] = state_scope(store, r, policy, states)
            continue
        recheck_from = changed_from - (r.lookback if r.recheck is None else r.recheck)
        read_from = recheck_from - r.lookback
        table_from = (
            {
                t: recheck_from - back
                for t, back in r.reads(r.parameters | policy.parameters(r.name)).items()
            }
            if r.reads is not None
            else {}
        )
        # a derived table starts where the store table it comes from starts
        sources = [DERIVED_TABLES[t].source if t in DERIVED_TABLES else t for t in r.inputs]
        firsts: list[datetime] = [starts[t] for t in sources if starts.get(t) is not None]  # type: ignore[misc]
        if r.name == SCORE_RULE:
            scopes[r.name] = score_scope(store, r, changed_from, previous_id)
            continue
        if r.family in POPULATION_FAMILIES:
            why = "ranks the whole population"
        elif r.name in overlong:
            why = "a finding spans more than its look-back"
        elif not firsts or read_from <= min(firsts):
            why = "its look-back covers all the data"
            if table_from:
                # the tables it reads whole are the ones read whole anyway
                scopes[r.name] = RuleScope(r.name, None, recheck_from, why, table_from)
                continue
        else:
            scopes[r.name] = RuleScope(r.name, read_from, recheck_from, table_from=table_from)
            continue
        scopes[r.name] = RuleScope(r.name, None, None, why)
    for r in rules:
        if r.reads_last:
            scopes[r.name] = reading_last(scopes[r.name], r.reads_last, data_to)
    return RunPlan(
        "incremental",
        reason,
        previous_id,
        changed_from,
        data_from,
        data_to,
        scopes,
        events_removed=changes.removed,
        counted=changes.counted,
        settled=changes.settled,
    )
