"""Reading a run's tables: the columns the rules use, each table read once, cut per rule.

The columns are found, not declared: each rule's plan runs once over empty tables that note
the columns Polars' optimised plan asks of them (:func:`columns_used`), and a run keeps what
it found for the next run of the same code and policy. :class:`TableReader` then reads each
store table whole or from an event time on, only those columns, and derived tables (the
approved refunds with their sales) over just the source rows they can use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, NamedTuple

import polars as pl
from polars.io.plugins import register_io_source

from posaudit.detect.policy import Policy
from posaudit.detect.registry import DERIVED_INPUTS, DERIVED_TABLES, DerivedTable, Rule
from posaudit.run.detect import shaped_findings
from posaudit.run.inputs import empty_derived_inputs
from posaudit.run.kept import (
    COLUMNS_KEY,
    REFUNDS_FRAME,
    Reach,
    built_for,
    day_start,
    days_kept_by,
    days_reached,
    keep_value,
    kept_day_rows,
    kept_refunds,
    kept_value,
    reach_rows,
)
from posaudit.run.plan import RuleScope, timestamp_literal
from posaudit.store import Store
from posaudit.store.catalogue import EVENT_TIME_COLUMNS

# Tables read at once, each through its own connection: two read a 10 M-event store's inputs
# in 2.6 s where one after the other took 3.4 s (measured).
READ_THREADS: Final = 2


@dataclass(frozen=True)
class ColumnsUsed:
    """The columns a run reads: of each store table, and of each derived table's source."""

    tables: dict[str, list[str] | None]
    derived: dict[str, list[str] | None]


def _recording_source(
    name: str, schema: pl.Schema, seen: dict[str, set[str] | None]
) -> pl.LazyFrame:
    """An empty LazyFrame of ``schema`` that notes in ``seen[name]`` the columns a plan reads."""

    def source(
        with_columns: list[str] | None, _predicate: object, _n_rows: object, _batch_size: object
    ) -> Iterator[pl.DataFrame]:
        _note(seen, name, with_columns)
        empty = pl.DataFrame(schema=schema)
        yield empty if with_columns is None else empty.select(with_columns)

    source.table = name  # type: ignore[attr-defined]  # how the plan's scan names its table
    return register_io_source(source, schema=schema)


def _note(seen: dict[str, set[str] | None], name: str, columns: list[str] | None) -> None:
    """Note that a plan reads ``columns`` of ``name`` (all of them when None)."""
    if columns is None:
        seen[name] = None
    elif name not in seen or seen[name] is not None:
        seen.setdefault(name, set()).update(columns)  # type: ignore[union-attr]


def _note_planned(
    plan: pl.LazyFrame, seen: dict[str, set[str] | None], inputs: Mapping[str, object]
) -> None:
    """Note the columns ``plan``'s optimised plan asks of each recording source it scans.

    Running a plan over empty tables calls only the scans the engine gets to: a join whose
    other side came out empty skips its own, and a rule's column read nowhere but there would
    be missed (then read as nulls). The optimised plan names every scan with its projection.
    Polars offers the optimised plan only through its plan visitor, which cannot show some
    nodes (a Python function over a frame) but still leads past them; should the visitor
    fail, the tables are read whole: more to read, nothing wrong.
    """
    try:
        traverser = plan._ldf.visit()
        pending = [traverser.get_node()]
        while pending:
            traverser.set_node(pending.pop())
            pending.extend(traverser.get_inputs())
            try:
                node = traverser.view_current_node()
            except NotImplementedError:  # a node it cannot show is no scan
                continue
            if type(node).__name__ == "PythonScan":
                function, columns = node.options[0], node.options[1]
                name = getattr(getattr(function, "io_source", None), "table", None)
                if name is not None:
                    _note(seen, name, None if columns is None else list(columns))
    except Exception:  # the visitor is Polars' internal API: read whole instead
        for name in inputs:
            seen[name] = None


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

    Each rule's optimised plan names the columns it asks of each table, and the plan runs
    once over empty tables that note them too; nothing is declared by hand, so a rule that
    starts using a column gets it.
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
        plan = table(source)
        _note_planned(plan, derived_seen, {name: source})
        derived_frames[name] = plan.collect().lazy()
    for r in rules:
        tables = {
            n: derived.get(n)
            if n in DERIVED_INPUTS
            else derived_frames[n]
            if n in DERIVED_TABLES
            else _recording_source(n, schemas[n], seen)
            for n in r.inputs
        }
        parameters = r.parameters | policy.parameters(r.name)
        plan = shaped_findings(r(tables, **parameters))  # type: ignore[arg-type]
        recorded = {n: f for n, f in tables.items() if n not in DERIVED_TABLES}
        _note_planned(plan, seen, {n: f for n, f in recorded.items() if n not in DERIVED_INPUTS})
        plan.collect()
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
    schemas = {n: plain_strings(store.read(n, where="false")).schema for n in sorted(stored)}
    return columns_used(rules, policy, schemas, derived)


@dataclass(frozen=True)
class ColumnsToRead:
    """The columns a run reads, and whether an earlier run of this code and policy kept them
    (:mod:`posaudit.run.kept`); ``kept_for``: the digest they are kept under."""

    columns: ColumnsUsed
    kept_for: str
    was_kept: bool

    def keep(self, store: Store) -> None:
        """Keep the columns for the next run, when they were not kept (in its transaction)."""
        if not self.was_kept:
            value = {"tables": self.columns.tables, "derived": self.columns.derived}
            keep_value(store, COLUMNS_KEY, self.kept_for, value)


def columns_to_read(store: Store, rules: list[Rule], policy: Policy) -> ColumnsToRead:
    """The columns the rules read: as kept for this code and policy, else found anew."""
    kept_for = built_for(policy.hash, *sorted(r.name for r in rules))
    kept = kept_value(store, COLUMNS_KEY, kept_for)
    if kept is not None:
        return ColumnsToRead(ColumnsUsed(**kept), kept_for, was_kept=True)
    found = store_columns_used(store, rules, policy, empty_derived_inputs(rules))
    return ColumnsToRead(found, kept_for, was_kept=False)


def derived_rows(table: DerivedTable, since: datetime | None, *, earlier: bool = True) -> list[str]:
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
        conditions.append(f"{EVENT_TIME_COLUMNS[table.source]} >= {timestamp_literal(since)}")
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
        before = f"{EVENT_TIME_COLUMNS[table.source]} < {timestamp_literal(since)}"
        parts.append(f"{kind} AND {before} AND {key} NOT IN {names} AND {named} IN {names}")
    return parts


def plain_strings(frame: pl.DataFrame) -> pl.DataFrame:
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
    """How a run reads the refunds frame with what the previous run kept
    (:mod:`posaudit.run.kept`).

    ``changed_from``: the kept rows before it are current, so only the refunds from it on are
    computed from the transactions; None: nothing current is kept, and the frame is computed
    whole (so that this run can keep it).
    """

    changed_from: datetime | None


@dataclass(frozen=True)
class KeptDays:
    """How a run reads the frames of days (``DerivedTable.per_day``) with what the previous
    run kept (:mod:`posaudit.run.kept`): the days before ``changed_day`` are taken from the
    tables run ``run_id`` kept, but those the new rows reopen (``changed_day`` None: every
    frame is computed whole, so that this run can keep it)."""

    changed_day: date | None
    run_id: str | None = None


class DaysToKeep(NamedTuple):
    """A frame of days to keep: its rows, the first day and the earlier days they replace
    (None: they are the whole frame), and the keys of its rows that reach and are reached."""

    rows: pl.DataFrame
    redone: tuple[date, list[date]] | None
    reach: Reach | None


# The rows of a table a rule on states reads before the others' window: those naming one of
# its entities (the key column, and the entities' values).
History = tuple[str, frozenset[str]]

# A table read only for the history of a rule's entities: no other rule reads its rows.
NOTHING_ELSE: Final = datetime.max


class TableReader:
    """Reads store tables once, whole or from an event time on, only the columns asked for.

    With ``kept``, the refunds frame is read with the kept one, and :attr:`refunds_to_keep`
    then holds what the run can keep: the frame, and the time from which its rows are new
    (None: all are). With ``days``, the frames of days read whole are read with the kept
    ones, and :attr:`days_to_keep` holds what the run can keep of each.
    """

    def __init__(
        self,
        store: Store,
        columns: ColumnsUsed | None = None,
        kept: KeptRefunds | None = None,
        days: KeptDays | None = None,
    ):
        self.store = store
        self.columns = columns
        self.kept = kept
        self.days = days
        self.refunds_to_keep: tuple[pl.DataFrame, datetime | None] | None = None
        self.days_to_keep: dict[str, DaysToKeep] = {}
        self.rows_read = 0
        self._counting = threading.Lock()
        self._frames: dict[str, tuple[datetime | None, pl.DataFrame]] = {}
        self._derived: dict[str, tuple[datetime | None, pl.DataFrame]] = {}
        # per table read in part: its other columns, as nulls of their types
        self._unread: dict[str, list[pl.Expr]] = {}

    def read(
        self,
        name: str,
        since: datetime | None = None,
        connection: Store | None = None,
        history: History | None = None,
    ) -> pl.DataFrame:
        """Rows of ``name`` with event time at or after ``since`` (all rows when None), and
        with ``history`` the earlier rows of its entities (only those when ``since`` is
        :data:`NOTHING_ELSE`).

        ``connection``: the store through another connection (see :meth:`read_all`).
        """
        connection = connection or self.store
        column = EVENT_TIME_COLUMNS.get(name)
        if column is None:
            since, history = None, None
        held = self._frames.get(name)
        if held is not None and (held[0] is None or (since is not None and held[0] <= since)):
            frame = held[1]
            if since is None or held[0] == since or column is None:
                return frame
            return frame.filter(pl.col(column) >= since)
        where: list[str] = []
        params = None
        if history is not None and since is not None:
            key, entities = history
            before = "" if since is NOTHING_ELSE else f"{column} < {timestamp_literal(since)} AND "
            where.append(f"{before}list_contains($entities, {key})")
            params = {"entities": sorted(entities)}
        if since is not None and since is not NOTHING_ELSE:
            where.append(f"{column} >= {timestamp_literal(since)}")
        wanted = self.columns.tables.get(name) if self.columns else None
        frame = plain_strings(connection.read(name, columns=wanted, where=where, params=params))
        with self._counting:
            self.rows_read += frame.height
        # with the history of some entities, the rows read reach back to the data's start
        self._frames[name] = (None if history is not None else since, frame)
        if wanted is not None:
            whole = plain_strings(connection.read(name, where="false")).schema
            self._unread[name] = [
                pl.lit(None, dtype=t).alias(c) for c, t in whole.items() if c not in frame.columns
            ]
        return frame

    def with_unread_columns(self, name: str, frame: pl.LazyFrame) -> pl.LazyFrame:
        """``frame`` (of table ``name``) with the columns left unread, as nulls of their types.

        Polars checks a rule's plan against its tables' columns before it finds those the
        plan uses: a column that a rule selects and then drops unused (``pin_digest``, for
        the stale PINs) must exist. Its nulls are never made: the optimised plan drops it.
        """
        unread = self._unread.get(name)
        return frame.with_columns(unread) if unread else frame

    def read_derived(
        self, name: str, since: datetime | None = None, connection: Store | None = None
    ) -> pl.DataFrame:
        """The derived table ``name`` from ``since`` on, over the source rows it can use.

        From ``since`` on it is whole; before it, it holds the rows linked to those after it
        (a refund's earlier refunds of the same sale), which the rules need and which by their
        look-back cannot change a finding they re-decide otherwise. A frame defined by a query
        is computed by the store, from the source's rows from ``since`` on; its rows are the
        rows read.
        """
        connection = connection or self.store
        table = DERIVED_TABLES[name]
        kept = self.kept if name == REFUNDS_FRAME else None
        if kept is not None and kept.changed_from is None:
            since = None
        held = self._derived.get(name)
        if held is not None and (held[0] is None or (since is not None and held[0] <= since)):
            return held[1]
        current = kept.changed_from if kept is not None else None
        if current is not None and since is not None and since <= current:
            return self._with_kept_refunds(table, since, current, connection)
        if since is None and table.per_day and table.sql is not None and self.days is not None:
            return self._days(table, connection)
        if table.sql is not None:
            time_column = EVENT_TIME_COLUMNS.get(table.source)
            cut = f"{time_column} >= {timestamp_literal(since)}" if since and time_column else None
            over: dict[str, str | None] = {table.source: cut, **dict.fromkeys(table.joined)}
            if since is not None:
                # a table joined by day: from the start of the day the source's cut starts
                day = day_start(since.date())
                for joined in table.joined_by_day:
                    over[joined] = f"{EVENT_TIME_COLUMNS[joined]} >= {timestamp_literal(day)}"
            frame = plain_strings(connection.read_query(table.sql, over=over))
            with self._counting:
                self.rows_read += frame.height
            self._derived[name] = (since, frame)
            return frame
        wanted = self.columns.derived.get(name) if self.columns else None
        rows = plain_strings(
            connection.read(table.source, columns=wanted, where=derived_rows(table, since))
        )
        with self._counting:
            self.rows_read += rows.height
        frame = table(rows.lazy()).collect()
        self._derived[name] = (since, frame)
        if kept is not None and since is None:
            self.refunds_to_keep = (frame, None)
        return frame

    def _days(self, table: DerivedTable, connection: Store) -> pl.DataFrame:
        """The frame of days ``table`` whole: the days from the changed day on and the earlier
        days new rows reach computed from the source, the others as kept (all computed when
        nothing current is kept). Its rows read are the rows computed and the rows kept."""
        assert table.sql is not None and self.days is not None
        joined = dict.fromkeys(table.joined)
        changed = self.days.changed_day
        if changed is None or not days_kept_by(connection, table, self.days.run_id):
            frame = plain_strings(
                connection.read_query(table.sql, over={table.source: None, **joined})
            )
            reach = reach_rows(connection, table, None) if table.reaches is not None else None
            with self._counting:
                self.rows_read += frame.height
            self._derived[table.name] = (None, frame)
            self.days_to_keep[table.name] = DaysToKeep(frame, None, reach)
            return frame
        start = day_start(changed)
        column = EVENT_TIME_COLUMNS[table.source]
        cut = f"{column} >= {timestamp_literal(start)}"
        redo: list[date] = []
        reach = None
        if table.reaches is not None:
            reach = reach_rows(connection, table, start)
            redo = days_reached(connection, table, reach, changed)
            if redo:
                # rare: a refund to the card of an earlier cash-like sale, or a cash-like sale
                # of a card refunded before; those days read every row that reaches
                days = ", ".join(f"DATE '{day}'" for day in redo)
                cut = f"{cut} OR CAST({column} AS DATE) IN ({days}) OR ({table.reaches})"
        day = pl.col(table.time_column)
        fresh = plain_strings(
            connection.read_query(table.sql, over={table.source: cut, **joined})
        ).filter((day >= changed) | day.is_in(redo))
        earlier = plain_strings(kept_day_rows(connection, table, before=changed, besides=redo))
        with self._counting:
            self.rows_read += fresh.height + earlier.height
        frame = pl.concat([earlier.cast(fresh.schema), fresh])
        self._derived[table.name] = (None, frame)
        self.days_to_keep[table.name] = DaysToKeep(fresh, (changed, redo), reach)
        return frame

    def _with_kept_refunds(
        self, table: DerivedTable, since: datetime, changed_from: datetime, connection: Store
    ) -> pl.DataFrame:
        """The refunds frame from ``since`` on: the refunds from ``changed_from`` on computed
        with their sales, the rest (and their earlier refunds of the same sales) as kept."""
        wanted = self.columns.derived.get(table.name) if self.columns else None
        own = derived_rows(table, changed_from, earlier=False)[0]
        rows = plain_strings(connection.read(table.source, columns=wanted, where=own))
        if table.linked is not None:
            # the rows they name, by a list of keys: DuckDB reads ten million transactions'
            # ids for it in 0.05 s, where a sub-query naming them took 0.34 s (measured)
            named, key = table.linked
            names = rows.get_column(named).drop_nulls().unique()
            names = names.filter(~names.is_in(rows.get_column(key).implode()))
            linked = connection.read(
                table.source,
                columns=wanted,
                where=f"{key} IN (SELECT unnest($names))",
                params={"names": names.to_list()},
            )
            rows = pl.concat([rows, plain_strings(linked).cast(rows.schema)])
        fresh = table(rows.lazy()).collect()
        earlier = kept_refunds(
            connection,
            since=since,
            before=changed_from,
            names=fresh.filter(pl.col(table.time_column) >= since).get_column("original_txn_id"),
        )
        with self._counting:
            self.rows_read += rows.height + earlier.height
        frame = pl.concat([plain_strings(earlier).cast(fresh.schema), fresh]).sort(
            table.time_column, "txn_id"
        )
        self._derived[table.name] = (since, frame)
        self.refunds_to_keep = (frame, changed_from)
        return frame

    def read_all(
        self,
        wanted: Mapping[str, datetime | None],
        histories: Mapping[str, History] | None = None,
    ) -> dict[str, pl.DataFrame]:
        """Each table or derived table of ``wanted`` from its time on (and the history of
        the entities ``histories`` names, by table), read on ``READ_THREADS`` threads, each
        through its own connection, the largest first."""
        histories = histories or {}
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
                    else self.read(name, wanted[name], local.store, histories.get(name))
                )

            with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="posaudit-read") as pool:
                list(pool.map(read_one, order))
        return {name: frames[name] for name in sorted(frames)}

    def earliest(self, names: tuple[str, ...], default: datetime) -> datetime:
        """The earliest event time read from ``names`` (``default`` where read whole)."""
        starts = [held[0] for name, held in self._frames.items() if name in names]
        return min((s if s is not None else default for s in starts), default=default)


class ReadPlan(NamedTuple):
    """What a run reads of each table for its rules (:func:`reading_plan`).

    ``needed``: each table's or derived table's earliest time read (None: whole;
    :data:`NOTHING_ELSE`: only the history below); ``history``: the tables of which the
    rows of some entities are read before that time, as a rule on states needs them.
    """

    needed: dict[str, datetime | None]
    history: dict[str, History]


def reading_plan(
    rules: list[Rule], scopes: Mapping[str, RuleScope], has_column: Callable[[str, str], bool]
) -> ReadPlan:
    """What to read of each table so that every rule has its window, each table read once.

    ``has_column(table, column)``: whether a store table has that column.
    """
    needed: dict[str, datetime | None] = {}
    histories: dict[str, History | None] = {}
    for r in rules:
        scope = scopes[r.name]
        for name in set(r.inputs) - DERIVED_INPUTS:
            since = scope.since(name)
            if (
                since is None
                and scope.entities is not None
                and name in EVENT_TIME_COLUMNS
                and has_column(name, scope.entity_key)
            ):
                # a rule on states: the whole history of its entities only
                _add_history(histories, name, (scope.entity_key, scope.entities))
                continue
            if (name not in EVENT_TIME_COLUMNS and name not in DERIVED_TABLES) or since is None:
                needed[name] = None
            elif needed.get(name, since) is not None:
                needed[name] = min(needed.get(name, since), since)  # type: ignore[type-var]
    # a table another rule reads whole holds every entity's history already
    history = {
        name: h
        for name, h in histories.items()
        if h is not None and (name not in needed or needed[name] is not None)
    }
    for name, wanted in histories.items():
        if wanted is None:
            needed[name] = None
        elif name in history:
            needed.setdefault(name, NOTHING_ELSE)
    return ReadPlan(needed, history)


def cut_to_scope(
    rule: Rule, scope: RuleScope, frames: Mapping[str, pl.DataFrame], plan: ReadPlan
) -> dict[str, pl.LazyFrame]:
    """``rule``'s input tables out of the tables read by ``plan``, each cut to its window."""
    cut = {}
    for name in set(rule.inputs) - DERIVED_INPUTS:
        frame = frames[name].lazy()
        since = scope.since(name)
        # a derived table keeps its linked rows before the window (see read_derived)
        if not (
            since is None
            or name not in EVENT_TIME_COLUMNS
            or (plan.needed[name] == since and name not in plan.history)
        ):
            frame = frame.filter(pl.col(EVENT_TIME_COLUMNS[name]) >= since)
        cut[name] = frame
    return cut


def read_inputs(
    reader: TableReader,
    rules: list[Rule],
    scopes: Mapping[str, RuleScope],
    *,
    read_first: Rule | None = None,
    when_read: Callable[[dict[str, pl.LazyFrame]], object] | None = None,
    after_first: Callable[[], object] | None = None,
) -> dict[str, dict[str, pl.LazyFrame]]:
    """Each rule's input tables, cut to its own read window; every table read once.

    ``read_first``: a rule whose tables are read before the others', handed to ``when_read``
    as soon as they are (so that it can run while the rest is read); ``after_first`` is
    called then, before the rest is read (to let go of what DuckDB cached reading them,
    which no other read may be running for).
    """
    plan = reading_plan(rules, scopes, lambda name, key: key in reader.store.schema(name))
    needed, history = plan

    def cut(r: Rule) -> dict[str, pl.LazyFrame]:
        tables = cut_to_scope(r, scopes[r.name], frames, plan)
        return {name: reader.with_unread_columns(name, f) for name, f in tables.items()}

    frames: dict[str, pl.DataFrame] = {}
    if read_first is not None and when_read is not None:
        first_tables = set(read_first.inputs) - DERIVED_INPUTS
        frames |= reader.read_all({n: needed[n] for n in first_tables}, history)
        when_read(cut(read_first))
        if after_first is not None:
            after_first()
    frames |= reader.read_all({n: s for n, s in needed.items() if n not in frames}, history)
    return {r.name: cut(r) for r in rules}


# -- the same reads over frames (a bucket of a Parquet export) ------------------------------


def rows_since(
    frame: pl.LazyFrame, table: str, since: datetime | None, history: History | None = None
) -> pl.LazyFrame:
    """The rows of store table ``table`` in ``frame`` that :meth:`TableReader.read` reads."""
    column = EVENT_TIME_COLUMNS.get(table)
    if column is None or since is None:
        return frame
    time_ = pl.col(column)
    wanted = None if since is NOTHING_ELSE else time_ >= since
    if history is not None:
        key, entities = history
        wanted_keys = pl.Series(sorted(entities), dtype=pl.String).implode()
        theirs = pl.col(key).cast(pl.String).is_in(wanted_keys)
        earlier = theirs if since is NOTHING_ELSE else (time_ < since) & theirs
        wanted = earlier if wanted is None else wanted | earlier
    return frame.filter(wanted) if wanted is not None else frame


def derived_from_frames(
    table: DerivedTable, sources: Mapping[str, pl.LazyFrame], since: datetime | None
) -> pl.LazyFrame:
    """Derived table ``table`` from ``since`` on, over the rows of ``sources`` (store tables by
    name) that :meth:`TableReader.read_derived` reads for it from the store."""
    source = sources[table.source]
    if since is None:
        return table(source, *(sources[j] for j in table.joined))
    column = pl.col(EVENT_TIME_COLUMNS[table.source])
    if table.sql is not None:
        day = day_start(since.date())
        joined = [
            sources[j].filter(pl.col(EVENT_TIME_COLUMNS[j]) >= day)
            if j in table.joined_by_day
            else sources[j]
            for j in table.joined
        ]
        return table(source.filter(column >= since), *joined)
    kind = pl.lit(value=True)
    for name, values in table.rows.items():
        kind = kind & pl.col(name).cast(pl.String).is_in(list(values))
    own = kind & (column >= since)
    if table.linked is None:
        return table(source.filter(own))
    named, key = table.linked
    names = (
        source.filter(own & pl.col(named).is_not_null()).select(named).collect().to_series()
    ).implode()
    # its own rows, the rows they name, and its earlier rows naming the same (see derived_rows)
    wanted = own | pl.col(key).is_in(names) | (kind & pl.col(named).is_in(names))
    return table(source.filter(wanted.fill_null(value=False)))


def inputs_from_frames(
    rules: list[Rule], tables: Mapping[str, pl.LazyFrame], scopes: Mapping[str, RuleScope]
) -> dict[str, dict[str, pl.LazyFrame]]:
    """Each rule's input tables out of whole ``tables`` (store tables by name), read and cut
    as :func:`read_inputs` reads and cuts them from the store; each table read once."""
    plan = reading_plan(rules, scopes, lambda name, key: key in tables[name].collect_schema())
    frames = {
        name: (
            derived_from_frames(DERIVED_TABLES[name], tables, since)
            if name in DERIVED_TABLES
            else rows_since(tables[name], name, since, plan.history.get(name))
        ).collect()
        for name, since in plan.needed.items()
    }
    return {r.name: cut_to_scope(r, scopes[r.name], frames, plan) for r in rules}


def _add_history(histories: dict[str, History | None], name: str, wanted: History) -> None:
    """Add the history of ``wanted``'s entities to what is read of table ``name``; rules on
    states keyed by different columns read it whole (None)."""
    if name not in histories:
        histories[name] = wanted
        return
    held = histories[name]
    if held is None or held[0] != wanted[0]:
        histories[name] = None
    else:
        histories[name] = (held[0], held[1] | wanted[1])
