"""Detection runs: full or incremental, idempotent, atomic, and one writer at a time.

Rules are pure; this module is the wiring. A run reads the tables the enabled rules name,
supplies the derived inputs (the PIN exclusion list, the default-PIN digests, the data
window), collects all rules together so Polars shares their work, and merges the findings
into the store in one transaction with a ``pipeline_runs`` row.

Incremental runs
----------------
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
over all the data too. The findings after an incremental run therefore equal those of a full
run over the same data; the tests check this for every rule.

Findings and runs
-----------------
A finding's id is deterministic (rule, entity, window start), so re-runs never duplicate it.
``first_run_id`` is the run that first reported it and ``run_id`` the latest run whose result
includes it (an incremental run includes the findings it carries over). A finding a run no
longer reports is marked ``resolved`` with ``resolved_run_id``, never deleted, and opens
again if a later run reports it. Everything a run writes commits in one transaction: a run
that fails or is killed leaves the store as it was (a failure is then recorded as a
``failed`` row of its own).
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
from polars.io.plugins import register_io_source

from posaudit import __version__
from posaudit.atomic import written_file
from posaudit.config import ConfigError, merge_settings, parse_toml, read_text_file
from posaudit.detect.findings import FINDINGS_SCHEMA, SEVERITIES
from posaudit.detect.policy import Policy
from posaudit.detect.registry import (
    DERIVED_INPUTS,
    DERIVED_TABLES,
    DerivedTable,
    Rule,
    with_derived_tables,
)
from posaudit.kept import (
    COLUMNS_KEY,
    REFUNDS_FRAME,
    IncrementalScore,
    built_for,
    context_rows,
    day_start,
    forget_kept,
    forget_kept_refunds,
    incremental_scores,
    keep_exclusion_list,
    keep_value,
    kept_exclusion_list,
    kept_refund_cards,
    kept_refunds,
    kept_value,
    kept_week,
    refunds_kept_by,
    write_kept,
    write_kept_refunds,
)
from posaudit.pins import PinDigester, exclusion_list, pin_digester
from posaudit.rules import all_rules
from posaudit.score.models import WeekModel
from posaudit.score.operators import (
    SCORE_RULE,
    anomaly_findings,
    operator_day_activity,
    preload_model,
    weekly_scores,
)
from posaudit.store import Store, StoreError
from posaudit.store.db import EVENT_TIME_COLUMN
from posaudit.untrusted import csv_safe

Mode = Literal["full", "incremental"]
StepKind = Literal["detect", "findings", "evaluate", "report"]
# Receives each stage of a run as it ends: its name and its figures.
EventSink = Callable[[str, Mapping[str, object]], None]

# The acquirer's factory defaults for administrator PINs (public knowledge: vendor manuals).
ACQUIRER_DEFAULT_PINS: Final = ("000000", "123456")
# Families whose findings rank each entity against the whole population: re-run over all data.
POPULATION_FAMILIES: Final = frozenset({"scores"})
# Rules collected at once (see collect_findings): more than two measured slower on 2 cores.
COLLECT_THREADS: Final = 2
# Tables read at once, each through its own connection: two read a 10 M-event store's inputs
# in 2.6 s where one after the other took 3.4 s (measured).
READ_THREADS: Final = 2
# Tables without an event time: always read whole.
DIMENSION_TABLES: Final = ("merchants", "terminals", "operators")
# The tables that define the data window (first and last event) and the watermark.
WINDOW_TABLES: Final = ("login_events", "transactions")
# posaudit_meta key holding what the data looked like at the last run's watermark.
FINGERPRINT_KEY: Final = "pipeline.fingerprint"
SEVERITY_RANK: Final = {name: rank for rank, name in enumerate(SEVERITIES)}
# The column of a run's table of open findings counting those of rules the run did not run.
NOT_RUN_COLUMN: Final = "rule not run"

# Named points of a run where the kill tests pause (or fail) it: $POSAUDIT_TEST_HOOK=point[:fail].
TEST_HOOK_ENV: Final = "POSAUDIT_TEST_HOOK"
HOOK_POINTS: Final = ("locked", "read", "computed", "writing", "committed")


class PipelineError(ConfigError):
    """A pipeline definition that cannot be used; the message is one line for the user."""


def _hook(point: str) -> None:
    """Pause (or fail) at ``point`` when $POSAUDIT_TEST_HOOK names it; a no-op otherwise."""
    wanted = os.environ.get(TEST_HOOK_ENV)
    if not wanted:
        return
    name, _, action = wanted.partition(":")
    if name != point:
        return
    if action == "fail":
        msg = f"test hook: failing at {point}"
        raise RuntimeError(msg)
    sys.stderr.write(f"posaudit: test hook: paused at {point}\n")
    sys.stderr.flush()
    time.sleep(3600)


# -- planning ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class RunPlan:
    mode: Mode
    reason: str
    previous_run_id: str | None
    changed_from: datetime | None  # incremental: every new or changed event is at or after it
    data_from: datetime
    data_to: datetime
    scopes: dict[str, RuleScope]

    @property
    def rules_over_all_data(self) -> list[str]:
        return sorted(name for name, scope in self.scopes.items() if scope.read_from is None)


def _ts_literal(value: datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def data_window(store: Store) -> tuple[datetime, datetime]:
    """First and last event time of the audited event tables (logins and transactions)."""
    union = " UNION ALL ".join(
        f"SELECT min(ts) AS lo, max(ts) AS hi FROM {t}" for t in WINDOW_TABLES
    )
    lo, hi = store.query(f"SELECT min(lo), max(hi) FROM ({union})")[0]
    return lo, hi  # type: ignore[return-value]


def data_fingerprint(store: Store, watermark: datetime) -> dict[str, Any]:
    """What the data up to ``watermark`` looks like: events per table and day, dimension hashes.

    The next run compares it with the data as it is then: the earliest day whose count
    changed is where events were loaded late (or deleted), and incremental work starts
    there. A changed dimension table (merchants, terminals, operators) needs a full run.
    """
    events = {}
    for table, column in EVENT_TIME_COLUMN.items():
        rows = store.query(
            f"SELECT CAST({column} AS DATE) AS day, count(*) FROM {table} WHERE {column} <= ? GROUP BY day",
            [watermark],
        )
        events[table] = {str(day): int(n) for day, n in rows}  # type: ignore[call-overload]
    dimensions = {}
    for table in DIMENSION_TABLES:
        count, digest = store.query(
            f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {table} t"
        )[0]
        dimensions[table] = f"{count}:{digest}"
    return {"watermark": watermark.isoformat(), "events": events, "dimensions": dimensions}


def _previous_run(store: Store) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT run_id, policy_hash, code_version, watermark FROM pipeline_runs "
        "WHERE status = 'succeeded' ORDER BY finished_at DESC, run_id DESC LIMIT 1"
    )
    if not rows:
        return None
    keys = ("run_id", "policy_hash", "code_version", "watermark")
    return dict(zip(keys, rows[0], strict=True))


def _changed_from(
    store: Store, policy: Policy, previous: dict[str, Any] | None, data_to: datetime
) -> tuple[datetime | None, str]:
    """Since when the data may differ from what the previous run saw, and why.

    ``(None, why)`` when the run must be full; else ``(time, why)``: every event added or
    removed since the previous run lies at or after ``time`` (its watermark, or the start of
    the earliest day whose events changed before it).
    """
    if previous is None:
        return None, "first run on this store"
    name = previous["run_id"]
    if previous["policy_hash"] != policy.hash:
        return None, f"the policy changed since {name}"
    if previous["code_version"] != __version__:
        return None, f"posaudit changed since {name} ({previous['code_version']} -> {__version__})"
    watermark: datetime | None = previous["watermark"]
    stored = store.meta().get(FINGERPRINT_KEY)
    before = json.loads(stored) if stored else {}
    if watermark is None or before.get("watermark") != watermark.isoformat():
        return None, f"{name} left no watermark"
    now = data_fingerprint(store, watermark)
    changed = [t for t, h in now["dimensions"].items() if before["dimensions"].get(t) != h]
    if changed:
        return None, f"{', '.join(changed)} changed since {name}"
    days = [
        day
        for table, counts in now["events"].items()
        for day in set(counts) | set(before["events"].get(table, {}))
        if counts.get(day, 0) != before["events"].get(table, {}).get(day, 0)
    ]
    if not days and data_to <= watermark:
        return watermark, f"no new data since {name}"
    if not days:
        return watermark, f"new data since {name}'s watermark {watermark:%Y-%m-%d %H:%M:%S}"
    first = datetime.fromisoformat(min(days))
    return first, f"new data since {name}, and events changed from {first:%Y-%m-%d} on"


def _overlong_rules(store: Store, rules: list[Rule], watermark: datetime) -> set[str]:
    """Rules with a finding, among those they would re-decide, longer than their look-back."""
    if not rules:
        return set()
    earliest = min(watermark - r.lookback for r in rules)
    names = ", ".join("'" + r.name + "'" for r in rules)
    candidates = store.frame(
        "SELECT rule, window_start, window_end FROM findings "
        f"WHERE window_end >= {_ts_literal(earliest)} AND rule IN ({names})"
    )
    limits = pl.DataFrame(
        [(r.name, r.lookback, watermark - (r.lookback if r.recheck is None else r.recheck))
         for r in rules],
        schema={"rule": pl.String, "lookback": pl.Duration("us"), "rechecked_from": pl.Datetime("us")},
        orient="row",
    )  # fmt: skip
    overlong = candidates.join(limits, on="rule").filter(
        (pl.col("window_end") >= pl.col("rechecked_from"))
        & (pl.col("window_end") - pl.col("window_start") > pl.col("lookback"))
    )
    return set(overlong.get_column("rule").unique().to_list())


def _score_scope(
    store: Store, rule: Rule, changed_from: datetime, previous_id: str | None
) -> RuleScope:
    """What the anomaly score reads in an incremental run (see :mod:`posaudit.kept`)."""
    week = kept_week(store, previous_id)
    if week is None:
        return RuleScope(rule.name, None, None, "no operator-days kept by the previous run")
    if changed_from.date() < week:
        return RuleScope(rule.name, None, None, "events changed before the week it keeps")
    reads = IncrementalScore(changed_from.date())
    # the earliest data it uses: the kept 28-day sums and the refunds to cards, 27 days back
    events = {
        t: reads.events_from for t in rule.inputs if t in EVENT_TIME_COLUMN or t in DERIVED_TABLES
    }
    return RuleScope(rule.name, reads.refunds_from, reads.events_from, table_from=events)


def plan_run(store: Store, policy: Policy, rules: list[Rule], *, full: bool = False) -> RunPlan:
    """Decide full or incremental, and what each rule reads and re-decides."""
    data_from, data_to = data_window(store)
    previous = _previous_run(store)
    previous_id = str(previous["run_id"]) if previous else None
    changed_from, reason = (
        (None, "requested (--full)") if full else _changed_from(store, policy, previous, data_to)
    )
    if changed_from is None:
        scopes = {r.name: RuleScope(r.name, None, None, "full run") for r in rules}
        return RunPlan("full", reason, previous_id, None, data_from, data_to, scopes)
    starts = {
        table: _scalar(store, f"SELECT min({column}) FROM {table}")
        for table, column in EVENT_TIME_COLUMN.items()
    }
    overlong = _overlong_rules(store, rules, changed_from)
    scopes = {}
    for r in rules:
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
        firsts: list[datetime] = [starts[t] for t in sources if starts.get(t) is not None]
        if r.name == SCORE_RULE:
            scopes[r.name] = _score_scope(store, r, changed_from, previous_id)
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
    return RunPlan("incremental", reason, previous_id, changed_from, data_from, data_to, scopes)


# -- reading -------------------------------------------------------------------------------


def _recording_source(
    name: str, schema: pl.Schema, seen: dict[str, set[str] | None]
) -> pl.LazyFrame:
    """An empty LazyFrame of ``schema`` that notes in ``seen[name]`` the columns a plan reads."""

    def source(
        with_columns: list[str] | None, _predicate: object, _n_rows: object, _batch_size: object
    ) -> Iterator[pl.DataFrame]:
        if with_columns is None:
            seen[name] = None
        elif name not in seen or seen[name] is not None:
            seen.setdefault(name, set()).update(with_columns)  # type: ignore[union-attr]
        empty = pl.DataFrame(schema=schema)
        yield empty if with_columns is None else empty.select(with_columns)

    return register_io_source(source, schema=schema)


@dataclass(frozen=True)
class ColumnsUsed:
    """The columns a run reads: of each store table, and of each derived table's source."""

    tables: dict[str, list[str] | None]
    derived: dict[str, list[str] | None]


def _ordered(columns: set[str] | None, schema: pl.Schema) -> list[str] | None:
    if columns is None:
        return None
    # a plan that only counts rows still needs one column to count
    return [c for c in schema.names() if c in columns] or schema.names()[:1]


def columns_used(
    rules: list[Rule],
    policy: Policy,
    schemas: Mapping[str, pl.Schema],
    derived: Mapping[str, pl.LazyFrame],
) -> ColumnsUsed:
    """Which columns the rules read, found by Polars' projection pushdown.

    Each rule's plan runs once over empty tables that record the columns the optimised plan
    asks of them; nothing is declared by hand, so a rule that starts using a column gets it.
    Derived tables are computed whole, from the columns their own plan reads.
    """
    seen: dict[str, set[str] | None] = {}
    derived_seen: dict[str, set[str] | None] = {}
    shared = {n for r in rules for n in r.inputs if n in DERIVED_TABLES}
    derived_frames = {}
    for name in sorted(shared):
        table = DERIVED_TABLES[name]
        if table.sql is not None:
            # the store runs the query: nothing of its sources crosses into the run
            empty = [pl.LazyFrame(schema=schemas[s]) for s in table.sources]
            derived_frames[name] = table(*empty).collect().lazy()
            continue
        source = _recording_source(name, schemas[table.source], derived_seen)
        derived_frames[name] = table(source).collect().lazy()
    for r in rules:
        tables = {
            n: derived.get(n)
            if n in DERIVED_INPUTS
            else derived_frames[n]
            if n in DERIVED_TABLES
            else _recording_source(n, schemas[n], seen)
            for n in r.inputs
        }
        _shaped(r(tables, **(r.parameters | policy.parameters(r.name)))).collect()  # type: ignore[arg-type]
    return ColumnsUsed(
        tables={n: _ordered(c, schemas[n]) for n, c in seen.items()},
        derived={
            n: _ordered(c, schemas[DERIVED_TABLES[n].source]) for n, c in derived_seen.items()
        },
    )


def store_columns_used(
    store: Store, rules: list[Rule], policy: Policy, derived: Mapping[str, pl.LazyFrame]
) -> ColumnsUsed:
    """:func:`columns_used` for the tables of ``store`` the rules read."""
    stored = {n for r in rules for n in r.inputs} - DERIVED_INPUTS - set(DERIVED_TABLES)
    stored |= {
        s for r in rules for n in r.inputs if n in DERIVED_TABLES for s in DERIVED_TABLES[n].sources
    }
    schemas = {n: _plain_strings(store.read(n, where="false")).schema for n in sorted(stored)}
    return columns_used(rules, policy, schemas, derived)


def _derived_rows(
    table: DerivedTable, since: datetime | None, *, earlier: bool = True
) -> list[str]:
    """SQL conditions, each selecting other rows, for the rows of ``table.source`` that the
    derived table can use (see DerivedTable): its own rows from ``since`` on, the rows they
    name, and (from ``since`` on only, unless ``earlier`` is false) its earlier own rows
    naming the same as they do."""
    conditions = [
        f"{column} IN ({', '.join(repr(v) for v in values)})"
        for column, values in table.rows.items()
    ]
    kind = " AND ".join(conditions) or "true"
    if since is not None:
        conditions.append(f"{EVENT_TIME_COLUMN[table.source]} >= {_ts_literal(since)}")
    own = " AND ".join(conditions) or "true"
    if table.linked is None:
        return [own]
    named, key = table.linked
    names = f"(SELECT {named} FROM {table.source} WHERE {own} AND {named} IS NOT NULL)"
    parts = [own, f"NOT ({own}) AND {key} IN {names}"]
    if since is not None and earlier:
        # Earlier rows of its own kind that name the same (the other refunds of a refund's
        # sale). Only those: the table's function drops any other row, and asking for them
        # would test every row of the source (measured: 1.9 s against 0.26 s over ten million
        # transactions).
        before = f"{EVENT_TIME_COLUMN[table.source]} < {_ts_literal(since)}"
        parts.append(f"{kind} AND {before} AND {key} NOT IN {names} AND {named} IN {names}")
    return parts


def _plain_strings(frame: pl.DataFrame) -> pl.DataFrame:
    """Categorical columns (DuckDB ENUMs) as plain strings.

    Polars keeps the categories of Categorical columns in state shared across the process;
    string kernels running in parallel over such columns (many stores audited in one
    process) have ended in a Polars 2.1 panic. Plain strings share nothing.
    """
    return frame.with_columns(
        pl.col(c).cast(pl.String)
        for c, t in frame.schema.items()
        if isinstance(t, pl.Categorical | pl.Enum)
    )


@dataclass(frozen=True)
class KeptRefunds:
    """How a run reads the refunds frame with what the previous run kept (:mod:`posaudit.kept`).

    ``changed_from``: the kept rows before it are current, so only the refunds from it on are
    computed from the transactions; None: nothing current is kept, and the frame is computed
    whole (so that this run can keep it).
    """

    changed_from: datetime | None


class TableReader:
    """Reads store tables once, whole or from an event time on, only the columns asked for.

    With ``kept``, the refunds frame is read with the kept one, and :attr:`refunds_to_keep`
    then holds what the run can keep: the frame, and the time from which its rows are new
    (None: all are).
    """

    def __init__(
        self, store: Store, columns: ColumnsUsed | None = None, kept: KeptRefunds | None = None
    ):
        self.store = store
        self.columns = columns
        self.kept = kept
        self.refunds_to_keep: tuple[pl.DataFrame, datetime | None] | None = None
        self.rows_read = 0
        self._counting = threading.Lock()
        self._frames: dict[str, tuple[datetime | None, pl.DataFrame]] = {}
        self._derived: dict[str, tuple[datetime | None, pl.DataFrame]] = {}

    def read(
        self, name: str, since: datetime | None = None, via: Store | None = None
    ) -> pl.DataFrame:
        """Rows of ``name`` with event time at or after ``since`` (all rows when None).

        ``via``: the store through another connection (see :meth:`read_all`).
        """
        via = via or self.store
        column = EVENT_TIME_COLUMN.get(name)
        if column is None:
            since = None
        held = self._frames.get(name)
        if held is not None and (held[0] is None or (since is not None and held[0] <= since)):
            frame = held[1]
            if since is None or held[0] == since or column is None:
                return frame
            return frame.filter(pl.col(column) >= since)
        where = f"{column} >= {_ts_literal(since)}" if since is not None else None
        wanted = self.columns.tables.get(name) if self.columns else None
        frame = _plain_strings(via.read(name, columns=wanted, where=where))
        with self._counting:
            self.rows_read += frame.height
        self._frames[name] = (since, frame)
        return frame

    def read_derived(
        self, name: str, since: datetime | None = None, via: Store | None = None
    ) -> pl.DataFrame:
        """The derived table ``name`` from ``since`` on, over the source rows it can use.

        From ``since`` on it is whole; before it, it holds the rows linked to those after it
        (a refund's earlier refunds of the same sale), which the rules need and which by their
        look-back cannot change a finding they re-decide otherwise. A frame defined by a query
        is computed by the store, from the source's rows from ``since`` on; its rows are the
        rows read.
        """
        via = via or self.store
        table = DERIVED_TABLES[name]
        kept = self.kept if name == REFUNDS_FRAME else None
        if kept is not None and kept.changed_from is None:
            since = None
        held = self._derived.get(name)
        if held is not None and (held[0] is None or (since is not None and held[0] <= since)):
            return held[1]
        current = kept.changed_from if kept is not None else None
        if current is not None and since is not None and since <= current:
            return self._with_kept_refunds(table, since, current, via)
        if table.sql is not None:
            time_column = EVENT_TIME_COLUMN.get(table.source)
            cut = f"{time_column} >= {_ts_literal(since)}" if since and time_column else None
            over = {table.source: cut, **dict.fromkeys(table.joined)}
            frame = _plain_strings(via.read_query(table.sql, over=over))
            with self._counting:
                self.rows_read += frame.height
            self._derived[name] = (since, frame)
            return frame
        wanted = self.columns.derived.get(name) if self.columns else None
        rows = _plain_strings(
            via.read(table.source, columns=wanted, where=_derived_rows(table, since))
        )
        with self._counting:
            self.rows_read += rows.height
        frame = table(rows.lazy()).collect()
        self._derived[name] = (since, frame)
        if kept is not None and since is None:
            self.refunds_to_keep = (frame, None)
        return frame

    def _with_kept_refunds(
        self, table: DerivedTable, since: datetime, changed_from: datetime, via: Store
    ) -> pl.DataFrame:
        """The refunds frame from ``since`` on: the refunds from ``changed_from`` on computed
        with their sales, the rest (and their earlier refunds of the same sales) as kept."""
        wanted = self.columns.derived.get(table.name) if self.columns else None
        where = _derived_rows(table, changed_from, earlier=False)
        rows = _plain_strings(via.read(table.source, columns=wanted, where=where))
        fresh = table(rows.lazy()).collect()
        earlier = kept_refunds(
            via,
            since=since,
            before=changed_from,
            names=fresh.filter(pl.col(table.time_column) >= since).get_column("original_txn_id"),
        )
        with self._counting:
            self.rows_read += rows.height + earlier.height
        frame = pl.concat([_plain_strings(earlier).cast(fresh.schema), fresh]).sort(
            table.time_column, "txn_id"
        )
        self._derived[table.name] = (since, frame)
        self.refunds_to_keep = (frame, changed_from)
        return frame

    def read_all(self, wanted: Mapping[str, datetime | None]) -> dict[str, pl.DataFrame]:
        """Each table or derived table of ``wanted`` from its time on, read on
        ``READ_THREADS`` threads, each through its own connection, the largest first."""
        order = sorted(wanted, key=lambda n: (n not in DERIVED_TABLES, n))
        store, local, opening = self.store, threading.local(), threading.Lock()
        frames: dict[str, pl.DataFrame] = {}
        with ExitStack() as cursors:

            def read_one(name: str) -> None:
                if not hasattr(local, "store"):
                    with opening:
                        local.store = cursors.enter_context(store.cursor())
                frames[name] = (
                    self.read_derived(name, wanted[name], local.store)
                    if name in DERIVED_TABLES
                    else self.read(name, wanted[name], local.store)
                )

            with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="posaudit-read") as pool:
                list(pool.map(read_one, order))
        return {name: frames[name] for name in sorted(frames)}

    def earliest(self, names: tuple[str, ...], default: datetime) -> datetime:
        """The earliest event time read from ``names`` (``default`` where read whole)."""
        starts = [held[0] for name, held in self._frames.items() if name in names]
        return min((s if s is not None else default for s in starts), default=default)


def read_inputs(
    reader: TableReader,
    rules: list[Rule],
    scopes: Mapping[str, RuleScope],
    *,
    first: Rule | None = None,
    then: Callable[[dict[str, pl.LazyFrame]], object] | None = None,
) -> dict[str, dict[str, pl.LazyFrame]]:
    """Each rule's input tables, cut to its own read window; every table read once.

    ``first``: a rule whose tables are read before the others', handed to ``then`` as soon
    as they are (so that it can run while the rest is read).
    """
    needed: dict[str, datetime | None] = {}
    for r in rules:
        for name in set(r.inputs) - DERIVED_INPUTS:
            since = _since(scopes[r.name], name)
            if (name not in EVENT_TIME_COLUMN and name not in DERIVED_TABLES) or since is None:
                needed[name] = None
            elif needed.get(name, since) is not None:
                needed[name] = min(needed.get(name, since), since)  # type: ignore[type-var]

    def cut(r: Rule) -> dict[str, pl.LazyFrame]:
        return {
            name: (
                frames[name].lazy()
                # a derived table keeps its linked rows before the window (see read_derived)
                if (since := _since(scopes[r.name], name)) is None
                or name not in EVENT_TIME_COLUMN
                or needed[name] == since
                else frames[name].lazy().filter(pl.col(EVENT_TIME_COLUMN[name]) >= since)
            )
            for name in set(r.inputs) - DERIVED_INPUTS
        }

    frames: dict[str, pl.DataFrame] = {}
    if first is not None and then is not None:
        frames |= reader.read_all({n: needed[n] for n in set(first.inputs) - DERIVED_INPUTS})
        then(cut(first))
    frames |= reader.read_all({n: s for n, s in needed.items() if n not in frames})
    return {r.name: cut(r) for r in rules}


def _since(scope: RuleScope, table: str) -> datetime | None:
    return scope.table_from.get(table, scope.read_from)


# What each runner-supplied input looks like.
DERIVED_INPUT_SCHEMAS: Final = {
    "weak_pin_digests": pl.Schema(
        {"pin_digest": pl.String, "weakness_class": pl.String, "operator_no": pl.String}
    ),
    "default_pin_digests": pl.Schema({"pin_digest": pl.String}),
    "data_window": pl.Schema({"data_from": pl.Datetime("us"), "data_to": pl.Datetime("us")}),
}


def derived_inputs(
    rules: list[Rule],
    operators: pl.DataFrame,
    *,
    window: tuple[datetime, datetime],
    digester: PinDigester,
    exclusion: pl.DataFrame | None = None,
) -> dict[str, pl.LazyFrame]:
    """The runner-supplied inputs the rules ask for: exclusion list, default PINs, data window.

    ``exclusion``: the exclusion list for ``digester``'s key and these operators, when
    already built.
    """
    wanted = {name for r in rules for name in r.inputs} & DERIVED_INPUTS
    out: dict[str, pl.LazyFrame] = {}
    if "weak_pin_digests" in wanted:
        if exclusion is None:
            exclusion = exclusion_list(digester=digester, operator_nos=_operator_numbers(operators))
        out["weak_pin_digests"] = exclusion.lazy()
    if "default_pin_digests" in wanted:
        digests = digester.digests(pl.Series(ACQUIRER_DEFAULT_PINS, dtype=pl.String))
        out["default_pin_digests"] = pl.LazyFrame({"pin_digest": digests})
    if "data_window" in wanted:
        out["data_window"] = pl.LazyFrame({"data_from": [window[0]], "data_to": [window[1]]})
    return {
        name: frame.cast(dict(DERIVED_INPUT_SCHEMAS[name]))  # type: ignore[arg-type]
        for name, frame in out.items()
    }


def _operator_numbers(operators: pl.DataFrame) -> list[str]:
    return sorted(operators.get_column("operator_no").drop_nulls().unique().cast(pl.String))


def empty_derived_inputs(rules: list[Rule]) -> dict[str, pl.LazyFrame]:
    """The derived inputs the rules ask for, empty: enough to plan what the rules read."""
    wanted = {name for r in rules for name in r.inputs} & DERIVED_INPUTS
    return {name: pl.LazyFrame(schema=DERIVED_INPUT_SCHEMAS[name]) for name in wanted}


# -- detecting -----------------------------------------------------------------------------


def _shaped(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(FINDINGS_SCHEMA.names()).cast(dict(FINDINGS_SCHEMA))  # type: ignore[arg-type]


def rule_findings(
    rules: list[Rule],
    inputs: Mapping[str, Mapping[str, pl.LazyFrame]],
    derived: Mapping[str, pl.LazyFrame],
    policy: Policy,
    scopes: Mapping[str, RuleScope],
) -> list[pl.LazyFrame]:
    """One findings LazyFrame per rule, cut to the findings the rule re-decides; none collected."""
    frames = []
    for r in rules:
        tables = {**inputs[r.name], **derived}
        frame = _shaped(r(tables, **(r.parameters | policy.parameters(r.name))))
        recheck_from = scopes[r.name].recheck_from
        if recheck_from is not None:
            frame = frame.filter(pl.col("window_end") >= recheck_from)
        frames.append(frame)
    return frames


def collect_findings(rules: list[Rule], frames: list[pl.LazyFrame]) -> list[pl.DataFrame]:
    """Collect each rule's findings, two rules at a time, the population rules first.

    One rule's plan rarely keeps two cores busy, and ``pl.collect_all`` ran the rules one
    after another (measured: 5.1 s for what two threads collect in 3.5 s on a 10 M-event
    store). The anomaly score is the longest and runs while the others share the other core.
    """
    order = sorted(range(len(frames)), key=lambda i: rules[i].family not in POPULATION_FAMILIES)
    with ThreadPoolExecutor(COLLECT_THREADS, thread_name_prefix="posaudit-rule") as pool:
        if any(r.family == "scores" for r in rules):
            # the model's library loads while the other rules run (measured: 0.6 s less)
            preload_model()
        done = dict(zip(order, pool.map(lambda i: frames[i].collect(), order), strict=True))
    return [done[i] for i in range(len(frames))]


def findings_for_tables(
    rules: list[Rule],
    tables: Mapping[str, pl.LazyFrame],
    policy: Policy,
    *,
    window: tuple[datetime, datetime],
    digester: PinDigester,
) -> pl.DataFrame:
    """All findings of ``rules`` over ``tables`` (store tables by name), one per finding id.

    The whole detection step without the store: derived inputs, every rule over all the
    rows given, the findings schema. An engine that splits the data into buckets (each
    holding every row of the partitions it covers) calls this once per bucket.
    """
    operators = (
        tables["operators"].collect()
        if "operators" in tables
        else pl.DataFrame({"operator_no": []}, schema={"operator_no": pl.String})
    )
    derived = derived_inputs(rules, operators, window=window, digester=digester)
    shared = {n for r in rules for n in r.inputs if n in DERIVED_TABLES}
    tables = {
        **tables,
        **{
            n: f.collect().lazy()
            for n, f in with_derived_tables(shared, dict(tables)).items()
            if n in shared
        },
    }
    inputs = {r.name: {n: tables[n] for n in set(r.inputs) - DERIVED_INPUTS} for r in rules}
    scopes = {r.name: RuleScope(r.name, None, None, "all rows given") for r in rules}
    frames = collect_findings(rules, rule_findings(rules, inputs, derived, policy, scopes))
    if not frames:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    return one_per_finding_id(pl.concat(frames))


def one_per_finding_id(findings: pl.DataFrame) -> pl.DataFrame:
    """One finding per id, the same one on every run: the strongest, then the latest-ending.

    Two hits of a rule on one entity with the same window start share an id; which of them
    a parallel collect returns first varies, so the choice is made here, by content.
    """
    return (
        findings.sort(
            ["finding_id", "score", "window_end", "summary", "evidence"],
            descending=[False, True, True, False, False],
        )
        .unique("finding_id", keep="first", maintain_order=True)
        .sort("family", "rule", "window_start", "finding_id")
    )


def _outside_lookback(rule: Rule, scope: RuleScope, findings: pl.DataFrame) -> bool:
    """True when a windowed rule produced a finding its look-back cannot vouch for."""
    if scope.read_from is None or findings.is_empty():
        return False
    too_long = (pl.col("window_end") - pl.col("window_start")) > rule.lookback
    return bool(
        findings.select((too_long | (pl.col("window_start") < scope.read_from)).any()).item()
    )


# -- writing -------------------------------------------------------------------------------


def next_run_id(store: Store) -> str:
    return f"run-{_count(store, 'SELECT count(*) FROM pipeline_runs') + 1:05d}"


@dataclass
class MergeCounts:
    new: int = 0
    seen: int = 0  # open after the run and known before: re-decided or carried over
    carried: int = 0  # of ``seen``: carried over unchanged, outside what the run re-decided
    reopened: int = 0  # of ``seen``: resolved before, reported again
    resolved: int = 0
    # open findings of rules the run did not run (switched off in the policy): kept as they
    # were, open and of the run that last ran their rule; neither seen nor resolved
    not_run: int = 0
    rules_not_run: list[str] = field(default_factory=list)


def merge_findings(
    store: Store, findings: pl.DataFrame, run_id: str, scopes: Mapping[str, RuleScope]
) -> MergeCounts:
    """Merge a run's findings into the store (inside the caller's transaction).

    New ones are inserted; known ones refreshed (and reopened if resolved); open findings in
    what the run re-decided but did not report are resolved; the other open findings (older
    than what an incremental run re-decides, see the module docstring) are carried over.
    Findings of rules the run did not run at all (switched off in the policy) are left as they
    were: nothing decided they are gone, so they stay open, under the run that last ran their
    rule, and are counted apart (``not_run``), never as resolved.
    """
    counts = MergeCounts()
    store.execute("CREATE TEMP TABLE _run_findings AS SELECT * FROM findings LIMIT 0")
    store.execute("CREATE TEMP TABLE _run_scope (rule VARCHAR, recheck_from TIMESTAMP)")
    try:
        for column in ("first_run_id", "status", "resolved_run_id"):
            store.execute(f"ALTER TABLE _run_findings DROP COLUMN {column}")
        staged = findings.with_columns(pl.lit(run_id).alias("run_id"))
        if staged.height:
            store.append(
                "_run_findings",
                staged.select(["finding_id", "run_id", *FINDINGS_SCHEMA.names()[1:]]),
            )
        scope_frame = pl.DataFrame(
            {"rule": list(scopes), "recheck_from": [s.recheck_from for s in scopes.values()]},
            schema={"rule": pl.String, "recheck_from": pl.Datetime("us")},
        )
        if scope_frame.height:
            store.append("_run_scope", scope_frame)
        # open findings of a rule the run did not run: untouched
        not_run = "status = 'open' AND rule NOT IN (SELECT rule FROM _run_scope)"
        counts.not_run = _count(store, f"SELECT count(*) FROM findings WHERE {not_run}")
        counts.rules_not_run = [
            str(r[0]) for r in store.query(f"SELECT DISTINCT rule FROM findings WHERE {not_run} ORDER BY rule")
        ]
        # open, not reported, of a rule the run ran, and in what that rule re-decided
        unreported = (
            "f.status = 'open' AND f.finding_id NOT IN (SELECT finding_id FROM _run_findings) AND EXISTS "
            "(SELECT 1 FROM _run_scope s WHERE s.rule = f.rule AND (s.recheck_from IS NULL "
            "OR f.window_end >= s.recheck_from))"
        )
        counts.resolved = _count(store, f"SELECT count(*) FROM findings f WHERE {unreported}")
        store.execute(
            f"UPDATE findings SET status = 'resolved', resolved_run_id = ? WHERE finding_id IN "
            f"(SELECT f.finding_id FROM findings f WHERE {unreported})",
            [run_id],
        )
        carried = (
            "status = 'open' AND finding_id NOT IN (SELECT finding_id FROM _run_findings) "
            "AND rule IN (SELECT rule FROM _run_scope)"
        )
        counts.carried = _count(store, f"SELECT count(*) FROM findings WHERE {carried}")
        store.execute(f"UPDATE findings SET run_id = ? WHERE {carried}", [run_id])
        known = _count(
            store, "SELECT count(*) FROM _run_findings n JOIN findings f USING (finding_id)"
        )
        counts.reopened = _count(
            store,
            "SELECT count(*) FROM _run_findings n JOIN findings f USING (finding_id) WHERE f.status <> 'open'",
        )
        store.execute(
            "UPDATE findings SET run_id = n.run_id, severity = n.severity, score = n.score, merchant_id = n.merchant_id, "
            "window_end = n.window_end, summary = n.summary, evidence = n.evidence, status = 'open', "
            "resolved_run_id = NULL FROM _run_findings n WHERE findings.finding_id = n.finding_id"
        )
        store.execute(
            "INSERT INTO findings SELECT n.finding_id, n.run_id, n.run_id, n.rule, n.family, n.severity, n.score, "
            "n.entity_type, n.entity_id, n.merchant_id, n.window_start, n.window_end, n.summary, n.evidence, 'open', NULL "
            "FROM _run_findings n ANTI JOIN findings f USING (finding_id)"
        )
        counts.new = findings.height - known
        counts.seen = known + counts.carried
    finally:
        store.execute("DROP TABLE _run_findings")
        store.execute("DROP TABLE _run_scope")
    return counts


def _scalar(store: Store, sql: str, params: list[object] | None = None) -> Any:
    return store.query(sql, params)[0][0]


def _count(store: Store, sql: str) -> int:
    return int(_scalar(store, sql))


# -- the run -------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What a run did, for the command line, logs and the scheduler's JSON line."""

    run_id: str
    mode: Mode
    reason: str
    previous_run_id: str | None
    started_at: datetime
    finished_at: datetime
    seconds: float
    rows_read: int
    data_from: datetime
    data_to: datetime
    watermark: datetime
    counts: MergeCounts
    findings_open: int
    rules_over_all_data: list[str]
    policy_hash: str
    code_version: str
    new_by_severity: dict[str, int] = field(default_factory=dict)
    open_by_family_and_severity: pl.DataFrame = field(default_factory=pl.DataFrame)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def new(self) -> int:
        return self.counts.new

    @property
    def seen(self) -> int:
        return self.counts.seen

    @property
    def resolved(self) -> int:
        return self.counts.resolved

    def new_at_or_above(self, severity: str) -> int:
        """New findings of this run at or above ``severity``."""
        floor = SEVERITY_RANK[severity]
        return sum(n for s, n in self.new_by_severity.items() if SEVERITY_RANK[s] >= floor)

    def to_record(self) -> dict[str, object]:
        """The summary as a flat JSON-ready dict (the scheduler's line)."""
        return {
            "run_id": self.run_id, "status": "succeeded", "mode": self.mode, "reason": self.reason,
            "previous_run_id": self.previous_run_id, "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(), "seconds": round(self.seconds, 3),
            "data_from": self.data_from.isoformat(), "data_to": self.data_to.isoformat(),
            "watermark": self.watermark.isoformat(), "rows_read": self.rows_read,
            "findings": self.findings_open, "new": self.new, "seen": self.seen, "carried": self.counts.carried,
            "reopened": self.counts.reopened, "resolved": self.resolved,
            "not_run": self.counts.not_run, "rules_not_run": self.counts.rules_not_run,
            "new_by_severity": self.new_by_severity,
            "rules_over_all_data": len(self.rules_over_all_data), "policy_hash": self.policy_hash,
            "code_version": self.code_version,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }  # fmt: skip


def run_pipeline(
    store: Store,
    policy: Policy,
    *,
    full: bool = False,
    on_event: EventSink | None = None,
    digester: PinDigester | None = None,
) -> RunSummary:
    """Run every enabled rule (incrementally when possible) and record the run. Raises StoreError.

    ``store`` must be open for writing: its writer lock makes this process the only
    writer. A failure after planning is recorded as a ``failed`` run and re-raised; the
    findings are then untouched. ``digester``: the PIN key's, else :func:`pin_digester`'s.
    """
    emit = on_event or (lambda _name, _fields: None)
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    started_at = datetime.now().replace(microsecond=0)
    started = time.perf_counter()
    digester = pin_digester() if digester is None else digester
    store.check_pin_key(digester.fingerprint)
    _hook("locked")
    if _count(store, "SELECT count(*) FROM transactions") == 0:
        msg = f"{store.path} holds no transactions: simulate or load data before running the audit"
        raise StoreError(msg)
    plan = plan_run(store, policy, rules, full=full)
    planned = time.perf_counter() - started
    run_id = next_run_id(store)
    emit("plan", {"run_id": run_id, "mode": plan.mode, "reason": plan.reason, "previous_run_id": plan.previous_run_id,
                  "rules": len(rules), "rules_over_all_data": len(plan.rules_over_all_data)})  # fmt: skip
    try:
        summary = _execute(store, policy, rules, plan, run_id, started_at, started, emit, digester)
    except Exception as exc:
        record_failed_run(
            store, policy, run_id=run_id, mode=plan.mode, engine="local", started_at=started_at,
            seconds=time.perf_counter() - started, exc=exc,
        )  # fmt: skip
        raise
    summary.stage_seconds = {"plan": planned, **summary.stage_seconds}
    return summary


def _execute(
    store: Store,
    policy: Policy,
    rules: list[Rule],
    plan: RunPlan,
    run_id: str,
    started_at: datetime,
    started: float,
    emit: EventSink,
    digester: PinDigester,
) -> RunSummary:
    stages: dict[str, float] = {}
    mark = time.perf_counter()
    scopes = dict(plan.scopes)
    if SCORE_RULE in scopes and _score_fits(scopes[SCORE_RULE], plan.data_to):
        preload_model()  # while the store is read
    score = next((r for r in rules if r.name == SCORE_RULE), None)
    others = [r for r in rules if r is not score]
    scoring: list[Future[ScoreOutcome]] = []
    # The anomaly score, the longest step, starts on its own thread as soon as its tables are
    # read, while the others are read; the PIN exclusion list, when not kept, is built on a
    # second thread while the store is read.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="posaudit-score") as score_pool:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="posaudit-derive") as pool:
            operators = store.read("operators")
            made = _made_once(store, rules, policy, operators, digester=digester)
            building = pool.submit(
                derived_inputs,
                rules,
                operators,
                window=(plan.data_from, plan.data_to),
                digester=digester,
                exclusion=made.exclusion,
            )
            used = made.columns or store_columns_used(
                store, rules, policy, empty_derived_inputs(rules)
            )
            current = plan.changed_from is not None and refunds_kept_by(store, plan.previous_run_id)
            reader = TableReader(store, used, KeptRefunds(plan.changed_from if current else None))
            inputs = read_inputs(
                reader,
                rules,
                scopes,
                first=score,
                then=lambda tables: scoring.append(
                    score_pool.submit(
                        _score, store, score, tables, policy, scopes[SCORE_RULE], reader.kept  # type: ignore[arg-type]
                    )
                ),
            )
            derived = building.result()
        stages["read"] = time.perf_counter() - mark
        emit("read", {"rows": reader.rows_read, "seconds": round(stages["read"], 3)})
        _hook("read")

        mark = time.perf_counter()
        frames = dict(
            zip(
                [r.name for r in others],
                collect_findings(others, rule_findings(others, inputs, derived, policy, scopes)),
                strict=True,
            )
        )
        # A windowed rule whose findings outgrow its look-back is re-run over all the data.
        redo = [r for r in others if _outside_lookback(r, scopes[r.name], frames[r.name])]
        if redo:
            for r in redo:
                scopes[r.name] = RuleScope(
                    r.name, None, None, "a finding spans more than its look-back"
                )
            again = read_inputs(reader, redo, scopes)
            frames |= dict(
                zip(
                    [r.name for r in redo],
                    collect_findings(redo, rule_findings(redo, again, derived, policy, scopes)),
                    strict=True,
                )
            )
        with store.transaction():
            # What the next run starts from and owes nothing to the score is written while
            # the score, often the longest step, still runs on its own thread.
            _keep_read(store, run_id, reader, made, derived)
            kept: ScoreOutcome | None = scoring[0].result() if scoring else None
            if score is not None and kept is not None:
                frames[score.name] = kept.findings
                scopes[score.name] = RuleScope(
                    score.name, scopes[score.name].read_from, kept.recheck_from,
                    scopes[score.name].why_all,
                )  # fmt: skip
            findings = one_per_finding_id(
                pl.concat([frames[r.name] for r in rules])
                if rules
                else pl.DataFrame(schema=FINDINGS_SCHEMA)
            )
            stages["detect"] = time.perf_counter() - mark
            over_all = sorted(name for name, s in scopes.items() if s.read_from is None)
            emit("detect", {"rules": len(rules), "rules_over_all_data": len(over_all),
                            "findings": findings.height, "seconds": round(stages["detect"], 3)})  # fmt: skip
            _hook("computed")

            mark = time.perf_counter()
            read_from = reader.earliest(WINDOW_TABLES, plan.data_from)
            written = write_run(
                store, findings, run_id=run_id, scopes=scopes, policy=policy, mode=plan.mode,
                engine="local", started_at=started_at, started=started, data_from=read_from,
                data_to=plan.data_to, rows_read=reader.rows_read, in_transaction=True,
                also=lambda: _keep_score(store, run_id, kept),
            )  # fmt: skip
    counts = written.counts
    stages["write"] = time.perf_counter() - mark
    emit("write", {"new": counts.new, "seen": counts.seen, "carried": counts.carried, "resolved": counts.resolved,
                   "not_run": counts.not_run, "seconds": round(stages["write"], 3)})  # fmt: skip
    _hook("committed")
    return RunSummary(
        run_id=run_id, mode=plan.mode, reason=plan.reason, previous_run_id=plan.previous_run_id,
        started_at=started_at, finished_at=datetime.now().replace(microsecond=0),
        seconds=time.perf_counter() - started, rows_read=reader.rows_read, data_from=read_from,
        data_to=plan.data_to, watermark=plan.data_to, counts=counts, findings_open=counts.new + counts.seen,
        rules_over_all_data=over_all, policy_hash=policy.hash, code_version=__version__,
        new_by_severity=written.new_by_severity,
        open_by_family_and_severity=written.open_by_family_and_severity, stage_seconds=stages,
    )  # fmt: skip


@dataclass(frozen=True)
class MadeOnce:
    """What a run found kept of what the code computes once for a store (:mod:`posaudit.kept`):
    the columns the rules read and the PIN exclusion list (None: not kept, or kept for other
    code, policy, key or operators), and the digests they are kept under; ``digester`` seals
    and unseals the list."""

    columns_for: str
    columns: ColumnsUsed | None
    exclusion_for: str
    exclusion: pl.DataFrame | None
    digester: PinDigester

    def keep(
        self, store: Store, columns: ColumnsUsed, derived: Mapping[str, pl.LazyFrame]
    ) -> None:
        """Keep what was not kept, after a run that used ``columns`` and ``derived``."""
        if self.columns is None:
            value = {"tables": columns.tables, "derived": columns.derived}
            keep_value(store, COLUMNS_KEY, self.columns_for, value)
        if self.exclusion is None and "weak_pin_digests" in derived:
            exclusion = derived["weak_pin_digests"].collect()
            keep_exclusion_list(store, self.exclusion_for, exclusion, digester=self.digester)


def _made_once(
    store: Store,
    rules: list[Rule],
    policy: Policy,
    operators: pl.DataFrame,
    *,
    digester: PinDigester,
) -> MadeOnce:
    columns_for = built_for(policy.hash, *sorted(r.name for r in rules))
    columns = kept_value(store, COLUMNS_KEY, columns_for)
    exclusion_for = built_for(digester.fingerprint, *_operator_numbers(operators))
    wanted = any("weak_pin_digests" in r.inputs for r in rules)
    exclusion = None
    if wanted:
        digests = store.frame("SELECT DISTINCT pin_digest FROM pin_events").get_column("pin_digest")
        exclusion = kept_exclusion_list(store, exclusion_for, digester=digester, digests=digests)
    return MadeOnce(
        columns_for,
        ColumnsUsed(**columns) if columns is not None else None,
        exclusion_for,
        exclusion,
        digester,
    )


def _keep_read(
    store: Store,
    run_id: str,
    reader: TableReader,
    made: MadeOnce,
    derived: Mapping[str, pl.LazyFrame],
) -> None:
    """Keep what the next run starts from and the score does not decide (:mod:`posaudit.kept`):
    the refunds frame (or mark it as nobody's), the planned columns and the exclusion list."""
    assert reader.columns is not None
    made.keep(store, reader.columns, derived)
    refunds = reader.refunds_to_keep
    if refunds is not None:
        write_kept_refunds(store, run_id, refunds[0], changed_from=refunds[1])
    else:
        forget_kept_refunds(store)


def _keep_score(store: Store, run_id: str, score: ScoreOutcome | None) -> None:
    """Keep the score's operator-days and models for the next run, or mark them as nobody's."""
    if score is not None:
        write_kept(store, run_id, score.days, score.models, changed_day=score.changed_day)
    else:
        forget_kept(store)


@dataclass(frozen=True)
class ScoreOutcome:
    """The anomaly score's part of a run: its findings, and what the run keeps for the next.

    ``changed_day``: the first day whose operator-days were recomputed (None: all of them);
    ``recheck_from``: the first day whose findings were re-decided (None: all).
    """

    findings: pl.DataFrame
    days: pl.DataFrame
    models: dict[date, WeekModel]
    changed_day: date | None
    recheck_from: datetime | None


def _score_fits(scope: RuleScope, data_to: datetime) -> bool:
    """Whether the score will fit a model: in a full run, and when the data reaches the end
    of the week of the changed day (which then gets its own model)."""
    if scope.recheck_from is None or scope.read_from is None:
        return True
    monday = scope.recheck_from.date() - timedelta(days=scope.recheck_from.weekday())
    return data_to.date() >= monday + timedelta(days=6)


def _score(
    store: Store,
    rule: Rule,
    tables: Mapping[str, pl.LazyFrame],
    policy: Policy,
    scope: RuleScope,
    refunds: KeptRefunds | None = None,
) -> ScoreOutcome:
    """Run the anomaly score, over all the data or from the changed day on with what the
    previous run kept (:mod:`posaudit.kept`); ``refunds``: how the run reads the refunds."""
    thresholds = rule.parameters | policy.parameters(rule.name)
    frames = with_derived_tables(rule.inputs, dict(tables))
    inputs = [frames[name] for name in rule.inputs]
    forest = {k: thresholds[k] for k in ("seed", "n_estimators", "max_samples", "fit_rows")}
    finding = {
        k: thresholds[k]
        for k in ("top_fraction", "medium_anomaly_score", "min_anomaly_score", "seed")
    }
    if scope.read_from is None:
        days = operator_day_activity(*inputs).collect()
        scored, models = weekly_scores(days, **forest)
        changed_day, recheck_from = None, None
    else:
        assert scope.recheck_from is not None
        changed_day = scope.recheck_from.date()
        with store.cursor() as cursor:
            context = context_rows(cursor, changed_day).lazy()
            cards = _refund_cards(cursor, frames["approved_refunds"], changed_day, refunds)
            days = operator_day_activity(
                *inputs, refund_cards=cards.lazy(), context=context
            ).collect()
            scored, models, score_from = incremental_scores(cursor, days, changed_day, thresholds)
        recheck_from = day_start(score_from)
    findings = _shaped(anomaly_findings(scored.lazy(), **finding)).collect()
    return ScoreOutcome(findings, days, models, changed_day, recheck_from)


def _refund_cards(
    store: Store, refunds: pl.LazyFrame, changed_day: date, kept: KeptRefunds | None
) -> pl.DataFrame:
    """The refunds to cards the score reads in an incremental run, 27 days back: from the
    kept refunds and the run's own (``refunds``, from ``changed_day`` on) when the kept
    ones are current, else from the transactions."""
    reads = IncrementalScore(changed_day)
    if kept is None or kept.changed_from is None or kept.changed_from < reads.events_from:
        return TableReader(store).read_derived("approved_refund_cards", reads.refunds_from)
    earlier = kept_refund_cards(store, since=reads.refunds_from, before=reads.events_from)
    new = refunds.filter(
        (pl.col("ts") >= reads.events_from)
        & pl.col("operator_id").is_not_null()
        & pl.col("card_token").is_not_null()
    ).select(earlier.columns)
    return pl.concat([earlier.lazy(), new.cast(earlier.schema)]).collect()  # type: ignore[arg-type]


@dataclass(frozen=True)
class WrittenRun:
    """What merging a run's findings left in the store."""

    counts: MergeCounts
    new_by_severity: dict[str, int]
    open_by_family_and_severity: pl.DataFrame


def write_run(
    store: Store,
    findings: pl.DataFrame,
    *,
    run_id: str,
    scopes: Mapping[str, RuleScope],
    policy: Policy,
    mode: Mode,
    engine: Literal["local", "spark"],
    started_at: datetime,
    started: float,
    data_from: datetime,
    data_to: datetime,
    rows_read: int,
    also: Callable[[], None] | None = None,
    in_transaction: bool = False,
) -> WrittenRun:
    """Merge a run's findings, record the run and the data's fingerprint, in one transaction.

    Either engine ends its run here. ``started`` is the run's ``time.perf_counter()`` at its
    start; ``data_to`` is the watermark the next run starts from. ``also`` writes the rest of
    the run's state in the same transaction; ``in_transaction``: the caller's transaction,
    which it commits, is the one (it may hold more of the run's state).
    """
    with nullcontext() if in_transaction else store.transaction():
        counts = merge_findings(store, findings, run_id, scopes)
        if also is not None:
            also()
        _hook("writing")
        open_now = store.frame(
            "SELECT family, CAST(severity AS VARCHAR) AS severity, count(*) AS n FROM findings "
            "WHERE status = 'open' GROUP BY ALL"
        )
        new_rows = store.query(
            "SELECT CAST(severity AS VARCHAR), count(*) FROM findings WHERE first_run_id = ? GROUP BY ALL",
            [run_id],
        )
        not_run = counts.rules_not_run
        not_run_by_family = store.frame(
            "SELECT family, count(*) AS n FROM findings WHERE status = 'open' AND rule IN "
            f"({', '.join(f'$r{i}' for i in range(len(not_run)))}) GROUP BY ALL",
            {f"r{i}": rule for i, rule in enumerate(not_run)},
        ) if not_run else None  # fmt: skip
        seconds = time.perf_counter() - started
        store.execute(
            "INSERT INTO pipeline_runs (run_id, started_at, finished_at, status, mode, engine, data_from, data_to, "
            "watermark, rows_read, findings_total, findings_new, findings_seen, findings_resolved, policy_hash, "
            "policy_toml, code_version, seconds) "
            "VALUES (?, ?, ?, 'succeeded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, started_at, datetime.now().replace(microsecond=0), mode, engine, data_from, data_to, data_to,
             rows_read, counts.new + counts.seen, counts.new, counts.seen, counts.resolved, policy.hash,
             policy.text, __version__, round(seconds, 3)],
        )  # fmt: skip
        fingerprint = json.dumps(data_fingerprint(store, data_to))
        store.set_meta(FINGERPRINT_KEY, fingerprint)
    by_severity = {str(s): int(n) for s, n in new_rows}  # type: ignore[call-overload]
    table = pivot_by_severity(open_now)
    if not_run_by_family is not None:
        # the open findings the run left as they were, of rules switched off in its policy
        table = table.join(
            not_run_by_family.rename({"n": NOT_RUN_COLUMN}), on="family", how="left"
        ).with_columns(pl.col(NOT_RUN_COLUMN).fill_null(0))
    return WrittenRun(
        counts=counts,
        new_by_severity={s: by_severity[s] for s in SEVERITIES if s in by_severity},
        open_by_family_and_severity=table,
    )


def pivot_by_severity(counts: pl.DataFrame) -> pl.DataFrame:
    """family x severity counts, severities in order, zeros filled."""
    if counts.is_empty():
        return pl.DataFrame({"family": []}, schema={"family": pl.String})
    wide = counts.pivot(on="severity", index="family", values="n").fill_null(0).sort("family")
    present = [s for s in SEVERITIES if s in wide.columns]
    return wide.select("family", *present)


def record_failed_run(
    store: Store,
    policy: Policy,
    *,
    run_id: str,
    mode: Mode,
    engine: Literal["local", "spark"],
    started_at: datetime,
    seconds: float,
    exc: BaseException,
) -> None:
    """Record a failed run in its own transaction; the findings stay as they were."""
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
    try:
        with store.transaction():
            store.execute(
                "INSERT INTO pipeline_runs (run_id, started_at, finished_at, status, mode, engine, policy_hash, "
                "policy_toml, code_version, seconds, error) VALUES (?, ?, ?, 'failed', ?, ?, ?, ?, ?, ?, ?)",
                [run_id, started_at, datetime.now().replace(microsecond=0), mode, engine, policy.hash,
                 policy.text, __version__, round(seconds, 3), error],
            )  # fmt: skip
    except Exception:  # the original error is the one to report
        pass


# -- logs ----------------------------------------------------------------------------------


def event_line(event: str, fields: Mapping[str, object], *, as_json: bool) -> str:
    """One structured log line: logfmt (``event=read rows=12``) or a JSON object."""
    stamp = datetime.now().isoformat(timespec="seconds")
    if as_json:
        return json.dumps({"ts": stamp, "event": event, **fields}, default=str)
    parts = [f"ts={stamp}", f"event={event}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        if not text or any(c in text for c in ' "=\t'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


# -- pipeline definitions ------------------------------------------------------------------

_PIPELINE_DEFAULTS: Final[dict[str, Any]] = {
    "name": "",
    "description": "",
    "mode": "incremental",
    "fail_on": "",
    "out": "out",
    "policy": "",
}
_STEP_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "detect": {},
    "findings": {"folder": "{date}", "which": "new", "formats": ["csv", "jsonl"]},
    "evaluate": {"folder": "{date}"},
    "report": {"folder": "{date}", "formats": ["html"], "lang": "en", "timeout_minutes": 60},
}
_FINDINGS_WHICH: Final = ("new", "open")
_FINDINGS_FORMATS: Final = ("csv", "jsonl", "parquet")
_REPORT_FORMATS: Final = ("html", "pdf", "xlsx", "csv", "parquet")
_PLACEHOLDERS: Final = frozenset({"date", "run_id", "pipeline"})


@dataclass(frozen=True)
class Step:
    kind: StepKind
    options: dict[str, Any]

    def options_without(self, *names: str) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in names}


@dataclass(frozen=True)
class PipelineDefinition:
    """A scheduled run: which steps, which policy, which outputs and where they go."""

    path: Path
    name: str
    description: str
    mode: Mode
    fail_on: str | None
    out: Path
    policy: Path | None
    steps: tuple[Step, ...]


def load_pipeline(path: Path) -> PipelineDefinition:
    """Read and check a pipeline definition (TOML); raises PipelineError with one clear line."""
    source = str(path)
    text = read_text_file(path, what="pipeline", error=PipelineError)
    raw = parse_toml(text, source=str(path), error=PipelineError)
    unknown = set(raw) - {"pipeline", "steps"}
    if unknown:
        msg = f"{source}: unknown table '{sorted(unknown)[0]}' (a pipeline has [pipeline] and [[steps]])"
        raise PipelineError(msg)
    settings = dict(_PIPELINE_DEFAULTS)
    try:
        merge_settings(settings, raw.get("pipeline", {}), source=source, where="pipeline")
    except ConfigError as exc:
        raise PipelineError(str(exc)) from None
    if settings["mode"] not in ("full", "incremental"):
        msg = f"{source}: 'pipeline.mode' is 'incremental' or 'full', not {settings['mode']!r}"
        raise PipelineError(msg)
    fail_on = settings["fail_on"] or None
    if fail_on is not None and fail_on not in SEVERITIES:
        msg = f"{source}: 'pipeline.fail_on' is one of {', '.join(SEVERITIES)}, not {fail_on!r}"
        raise PipelineError(msg)
    steps = tuple(_step(source, i, table) for i, table in enumerate(raw.get("steps", []), start=1))
    kinds = [s.kind for s in steps]
    if not kinds or kinds[0] != "detect" or kinds.count("detect") != 1:
        msg = f'{source}: the first of the [[steps]] must be step = "detect", and only the first'
        raise PipelineError(msg)
    policy = Path(settings["policy"]) if settings["policy"] else None
    if policy is not None and not policy.is_absolute():
        policy = Path(path).parent / policy
    return PipelineDefinition(
        path=Path(path), name=settings["name"] or Path(path).stem, description=settings["description"],
        mode=settings["mode"], fail_on=fail_on, out=Path(settings["out"]), policy=policy, steps=steps,
    )  # fmt: skip


def _step(source: str, number: int, table: object) -> Step:
    where = f"steps[{number}]"
    if not isinstance(table, dict) or not isinstance(table.get("step"), str):
        msg = f"{source}: {where} needs step = one of {', '.join(_STEP_DEFAULTS)}"
        raise PipelineError(msg)
    kind = table["step"]
    if kind not in _STEP_DEFAULTS:
        msg = f"{source}: {where}: unknown step {kind!r} (known: {', '.join(_STEP_DEFAULTS)})"
        raise PipelineError(msg)
    options = json.loads(json.dumps(_STEP_DEFAULTS[kind]))
    try:
        merge_settings(
            options, {k: v for k, v in table.items() if k != "step"}, source=source, where=where
        )
    except ConfigError as exc:
        raise PipelineError(str(exc)) from None
    if "folder" in options:
        names = {
            name
            for _, name, _, _ in string.Formatter().parse(options["folder"])
            if name is not None
        }
        if names - _PLACEHOLDERS:
            msg = f"{source}: {where}.folder: unknown placeholder {{{sorted(names - _PLACEHOLDERS)[0]}}} (known: date, run_id, pipeline)"
            raise PipelineError(msg)
    allowed = {"findings": _FINDINGS_FORMATS, "report": _REPORT_FORMATS}.get(kind, ())
    for value in options.get("formats", []):
        if value not in allowed:
            msg = (
                f"{source}: {where}.formats: unknown format {value!r} (known: {', '.join(allowed)})"
            )
            raise PipelineError(msg)
    if kind == "findings" and options["which"] not in _FINDINGS_WHICH:
        msg = f"{source}: {where}.which is 'new' or 'open', not {options['which']!r}"
        raise PipelineError(msg)
    if kind == "report" and options["lang"] not in ("en", "zh"):
        msg = f"{source}: {where}.lang is 'en' or 'zh', not {options['lang']!r}"
        raise PipelineError(msg)
    return Step(kind, options)


@dataclass
class StepResult:
    step: str
    status: Literal["ok", "failed"]
    seconds: float
    files: list[str] = field(default_factory=list)
    error: str | None = None

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {
            "step": self.step,
            "status": self.status,
            "seconds": round(self.seconds, 3),
        }
        if self.files:
            record["files"] = self.files
        if self.error:
            record["error"] = self.error
        return record


def step_folder(step: Step, out: Path, *, summary: RunSummary, pipeline: str) -> Path:
    values = {"date": f"{summary.data_to:%Y-%m-%d}", "run_id": summary.run_id, "pipeline": pipeline}
    return out / step.options["folder"].format_map(values)


def run_step(step: Step, *, db: Path, out: Path, summary: RunSummary, pipeline: str) -> StepResult:
    """Run one output step after the detect step; a failure is returned, not raised."""
    began = time.perf_counter()
    try:
        folder = step_folder(step, out, summary=summary, pipeline=pipeline)
        folder.mkdir(parents=True, exist_ok=True)
        if step.kind == "findings":
            files = write_findings_files(
                db, folder, run_id=summary.run_id, **step.options_without("folder")
            )
        elif step.kind == "evaluate":
            files = [write_evaluation(db, folder, run_id=summary.run_id)]
        elif step.kind == "report":
            files = run_report(db, folder, run_id=summary.run_id, formats=step.options["formats"],
                               lang=step.options["lang"], timeout_minutes=step.options["timeout_minutes"])  # fmt: skip
        else:
            files = []
    except Exception as exc:  # a failed output step is reported; the other steps still run
        text = str(exc).strip().splitlines()
        return StepResult(
            step.kind,
            "failed",
            time.perf_counter() - began,
            error=text[-1] if text else type(exc).__name__,
        )
    return StepResult(step.kind, "ok", time.perf_counter() - began, files=[str(f) for f in files])


def write_findings_files(
    db: Path, folder: Path, *, run_id: str, which: str, formats: list[str]
) -> list[Path]:
    """The run's new (or all open) findings as CSV / JSON Lines / Parquet files in ``folder``."""
    where = "first_run_id = ?" if which == "new" else "status = 'open' AND run_id = ?"
    store = Store.open(db, read_only=True)
    try:
        frame = store.frame(
            "SELECT finding_id, first_run_id, run_id, rule, family, CAST(severity AS VARCHAR) AS severity, score, "
            "CAST(entity_type AS VARCHAR) AS entity_type, entity_id, merchant_id, window_start, window_end, summary, "
            f"CAST(evidence AS VARCHAR) AS evidence, status FROM findings WHERE {where.replace('?', repr(run_id))} "
            "ORDER BY finding_id"
        )
    finally:
        store.close()
    frame = frame.sort(
        pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8), "family", "rule", "window_start",
        "finding_id", descending=[True, False, False, False, False],
    )  # fmt: skip
    paths = []
    for fmt in formats:
        path = folder / f"findings-{which}-{run_id}.{fmt}"
        # each file appears whole or not at all (a full disk leaves no file that looks done)
        with written_file(path) as part:
            if fmt == "csv":
                csv_safe(frame).write_csv(part)
            elif fmt == "jsonl":
                rows = (
                    row | {"evidence": json.loads(row["evidence"])}
                    for row in frame.iter_rows(named=True)
                )
                part.write_text(
                    "".join(json.dumps(row, default=str) + "\n" for row in rows), encoding="utf-8"
                )
            else:
                frame.write_parquet(part)
        paths.append(path)
    return paths


def write_evaluation(db: Path, folder: Path, *, run_id: str) -> Path:
    """Recall and precision of the run against the simulator's labels, as JSON."""
    from posaudit.evaluate import evaluate

    store = Store.open(db, read_only=True)
    try:
        if _count(store, "SELECT count(*) FROM ground_truth") == 0:
            msg = f"{db} holds no ground truth (a simulated world has it): nothing to evaluate against"
            raise StoreError(msg)
        findings = store.scan("findings", where=f"run_id = '{run_id}'")
        result = evaluate(findings, store.scan("ground_truth"), store.scan("operators"))
    finally:
        store.close()
    path = folder / f"evaluation-{run_id}.json"
    path.write_text(json.dumps({"run_id": run_id, **result.to_dict()}, indent=2), encoding="utf-8")
    return path


def run_report(
    db: Path, folder: Path, *, run_id: str, formats: list[str], lang: str, timeout_minutes: int
) -> list[Path]:
    """The run's report through ``posaudit report`` (its own process: heavy renderers stay apart)."""
    command = [sys.executable, "-m", "posaudit", "report", "--db", str(db), "--run", run_id, "--out", str(folder),
               "--format", ",".join(formats), "--lang", lang]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_minutes * 60, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        msg = f"posaudit report exited {done.returncode}: {lines[-1] if lines else 'no message'}"
        raise RuntimeError(msg)
    return sorted(p for p in folder.iterdir() if p.is_file() and run_id in p.name)


def step_summary(
    definition: PipelineDefinition | None, results: list[StepResult]
) -> dict[str, object]:
    if definition is None:
        return {}
    return {"pipeline": definition.name, "steps": [r.to_record() for r in results]}
