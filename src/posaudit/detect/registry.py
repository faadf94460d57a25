"""The rule registry: what each rule reads, how it partitions, how far it looks back.

A rule registers itself with :func:`rule`. Its positional parameters are named after the
tables it reads (the runner passes those LazyFrames); its keyword-only parameters are its
thresholds, whose values come from the policy file section named after the rule.

A frame several rules share (the approved refunds with their sales, say) registers itself
with :func:`derived_table`; a rule names it as an input like a store table, and the runner
computes it once per run instead of once per rule. A frame that reduces many rows to few
(counts per operator and day) registers itself with :func:`derived_query`: it is defined by
one SQL query, which the store runs where the data lies and Polars runs over frames in
memory, so millions of rows never cross into the run to be counted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Literal

import polars as pl

PartitionKey = Literal["terminal_id", "operator_id", "merchant_id", "card_token"]
Family = Literal[
    "logins", "pins", "privileges", "refunds", "sales", "ledger", "merchants", "scores"
]

# Inputs that are not store tables but are supplied by the runner.
DERIVED_INPUTS: Final = frozenset(
    {"weak_pin_digests", "default_pin_digests", "data_window", "common_default_pin_digests"}
)

RuleFunction = Callable[..., pl.LazyFrame]


@dataclass(frozen=True)
class DerivedTable:
    """A frame computed from one store table, shared by the rules that name it.

    ``rows`` (column -> allowed values) and ``linked`` (``(from_column, to_column)``) say
    which rows of ``source`` the function can use: those matching ``rows``, and the rows whose
    ``to_column`` one of them names in ``from_column`` (a refund's sale); the function uses
    no other row, so the rows matching ``rows`` that name the same value are the other
    refunds of that sale. A reader may read only those; the
    function gives the same frame from the whole table, which is what the rule tests use.
    ``time_column`` is the frame's event time, by which a run cuts it to a rule's window.

    A frame defined by a query (``sql`` set) reads ``source`` and the ``joined`` tables whole
    (from a run's start time on for ``source``); its function runs the same query in Polars.
    ``joined_by_day``: joined event tables whose rows the query joins to the source's only on
    their day, so that a run reads them from the start of the day its cut of ``source``
    starts.

    ``per_day``: the frame has a row per day (``time_column`` a date) computed from the
    source's rows of that day; but the days that the query ``reached_by`` names, with
    ``reach_key`` values (columns ``day`` and the key's), read whatever their day the source's
    rows matching the condition ``reaches`` that share the values (a cash-like sale's day
    reads every refund to its card at the merchant). ``reached_by`` reads only ``source``,
    and names a day from that day's rows. A nightly run keeps such a frame and computes only
    the new days and the earlier days that new rows reach (:mod:`posaudit.run.kept`).
    ``rolled_up``, a query over the kept rows (named ``{kept}``), gives fewer rows that every
    reader of the frame reads as it reads them (a rule that adds counts up over the days and
    reads only the first and last day): a night reads the kept days so.
    """

    name: str
    function: Callable[..., pl.LazyFrame]
    source: str
    rows: dict[str, tuple[str, ...]]
    linked: tuple[str, str] | None
    time_column: str
    joined: tuple[str, ...] = ()
    joined_by_day: tuple[str, ...] = ()
    sql: str | None = None
    per_day: bool = False
    reaches: str | None = None
    reached_by: str | None = None
    reach_key: tuple[str, ...] = ()
    rolled_up: str | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        """The tables the frame is computed from, ``source`` first."""
        return (self.source, *self.joined)

    def __call__(self, *sources: pl.LazyFrame) -> pl.LazyFrame:
        return self.function(*sources)


DERIVED_TABLES: dict[str, DerivedTable] = {}


def derived_table(
    *,
    source: str,
    rows: dict[str, tuple[str, ...]],
    linked: tuple[str, str] | None = None,
    time_column: str = "ts",
) -> Callable[[Callable[[pl.LazyFrame], pl.LazyFrame]], Callable[[pl.LazyFrame], pl.LazyFrame]]:
    """Register a shared frame computed from ``source``; the function is returned unchanged."""

    def register(
        function: Callable[[pl.LazyFrame], pl.LazyFrame],
    ) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
        DERIVED_TABLES[function.__name__] = DerivedTable(
            name=function.__name__,
            function=function,
            source=source,
            rows=rows,
            linked=linked,
            time_column=time_column,
        )
        return function

    return register


def derived_query(
    name: str,
    *,
    sql: str,
    source: str,
    joined: tuple[str, ...] = (),
    joined_by_day: tuple[str, ...] = (),
    time_column: str,
    per_day: bool = False,
    reaches: str | None = None,
    reached_by: str | None = None,
    reach_key: tuple[str, ...] = (),
    rolled_up: str | None = None,
) -> Callable[..., pl.LazyFrame]:
    """Register a shared frame defined by ``sql`` over ``source`` and the ``joined`` tables.

    The query names the tables as the store does and keeps to the SQL both DuckDB and
    Polars run (explicit casts, ``CASE WHEN`` rather than ``FILTER``). Returns the frame's
    Polars function: the source frames in, the query's result out, lazily. ``joined_by_day``,
    ``per_day``, ``reaches``, ``reached_by``, ``reach_key`` and ``rolled_up``: see
    :class:`DerivedTable`.
    """
    if not set(joined_by_day) <= set(joined):
        msg = f"derived table {name}: a table joined by day is one of the joined tables"
        raise ValueError(msg)
    if rolled_up is not None and not per_day:
        msg = f"derived table {name}: only a frame of days is rolled up"
        raise ValueError(msg)
    if (reaches is None) != (reached_by is None) or (reaches is None) != (not reach_key):
        msg = f"derived table {name}: reaches, reached_by and reach_key come together"
        raise ValueError(msg)
    if reaches is not None and not per_day:
        msg = f"derived table {name}: only a frame of days reaches the rows of other days"
        raise ValueError(msg)
    sources = (source, *joined)

    def function(*frames: pl.LazyFrame) -> pl.LazyFrame:
        context = pl.SQLContext(dict(zip(sources, frames, strict=True)), eager=False)
        return context.execute(sql)

    function.__name__ = function.__qualname__ = name
    DERIVED_TABLES[name] = DerivedTable(
        name=name,
        function=function,
        source=source,
        rows={},
        linked=None,
        time_column=time_column,
        joined=tuple(joined),
        joined_by_day=tuple(joined_by_day),
        sql=sql,
        per_day=per_day,
        reaches=reaches,
        reached_by=reached_by,
        reach_key=reach_key,
        rolled_up=rolled_up,
    )
    return function


def with_derived_tables(
    names: tuple[str, ...] | set[str], tables: dict[str, pl.LazyFrame]
) -> dict[str, pl.LazyFrame]:
    """``tables`` plus every derived table among ``names`` that it lacks, computed from it."""
    out = dict(tables)
    for name in names:
        if name not in out and name in DERIVED_TABLES:
            table = DERIVED_TABLES[name]
            out[name] = table(*(out[s] for s in table.sources))
    return out


@dataclass(frozen=True)
class Rule:
    """A registered rule and what the runner needs to know to run it anywhere."""

    name: str
    family: Family
    function: RuleFunction
    entity_type: str
    partition_key: PartitionKey
    lookback: timedelta
    scenarios: tuple[str, ...]
    inputs: tuple[str, ...] = field(default=())
    parameters: dict[str, Any] = field(default_factory=dict)
    # For an incremental run: how long before the first changed event a finding may end and
    # still change (None: the look-back), and how far before that each table named here
    # must be read, given the rule's thresholds (the others: the look-back).
    recheck: timedelta | None = None
    reads: Callable[[Mapping[str, Any]], Mapping[str, timedelta]] | None = None
    # A rule on states (the PIN rules): each finding lasts until an event of its entity ends
    # it, so an incremental run re-decides only the entities with new events, and those whose
    # unchanged state passes a whole multiple of the parameter named by ``state_age`` (days).
    states: bool = False
    state_age: str | None = None
    # A rule on states kept by events other than PIN events (a terminal's runs of wrong PINs):
    # a SQL query of the store giving the values of the partition key whose state the events
    # from ``$since`` on can change (``$name``: the rule's parameter ``name``). A night
    # re-decides those from the first changed time less the look-back, those with a finding
    # that may still run on, and those added since the previous run.
    state_events: str | None = None
    # Tables of which the rule reads only this span before the data's end, whatever it
    # re-decides (the last two months of logins for an account never used).
    reads_last: Mapping[str, timedelta] | None = None

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.function) or ""
        return doc.split("\n\n")[0].replace("\n", " ")

    def __call__(self, tables: dict[str, pl.LazyFrame], **thresholds: Any) -> pl.LazyFrame:
        """The rule's findings over ``tables`` (store tables by name; derived ones computed)."""
        tables = with_derived_tables(self.inputs, tables)
        return self.function(*(tables[name] for name in self.inputs), **thresholds)


RULES: dict[str, Rule] = {}


def rule(
    *,
    family: Family,
    entity_type: str,
    partition_key: PartitionKey,
    lookback: timedelta,
    scenarios: tuple[str, ...] = (),
    recheck: timedelta | None = None,
    reads: Callable[[Mapping[str, Any]], Mapping[str, timedelta]] | None = None,
    states: bool = False,
    state_age: str | None = None,
    state_events: str | None = None,
    reads_last: Mapping[str, timedelta] | None = None,
) -> Callable[[RuleFunction], RuleFunction]:
    """Register a rule function; the function itself is returned unchanged.

    ``recheck`` and ``reads`` narrow what an incremental run reads and re-decides for a
    rule whose look-back is long only for some of its tables; ``states``, ``state_age`` and
    ``state_events`` for a rule whose findings are states; ``reads_last`` for one that reads
    only the last span of a table (see :class:`Rule`).
    """

    def register(function: RuleFunction) -> RuleFunction:
        signature = inspect.signature(function)
        inputs = tuple(
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        parameters = {
            p.name: p.default for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY
        }
        RULES[function.__name__] = Rule(
            name=function.__name__,
            family=family,
            function=function,
            entity_type=entity_type,
            partition_key=partition_key,
            lookback=lookback,
            scenarios=scenarios,
            inputs=inputs,
            parameters=parameters,
            recheck=recheck,
            reads=reads,
            states=states,
            state_age=state_age,
            state_events=state_events,
            reads_last=reads_last,
        )
        return function

    return register
