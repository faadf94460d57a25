"""The store's table catalogue: what each table of ``schema.sql`` is, in one place beside it.

``schema.sql`` says what columns a table has; this says what the table is for: its key, its
event-time column, whether its rows are dimensions or events, and how a row reaches its
merchant when a bucketed export splits the data by merchant. The store, the local and Spark
engines, the exports and the notebooks read these facts here, so a new table or a renamed
time column is written down once. A test keeps the catalogue and ``schema.sql`` in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

# dimension: reference rows (merchants, terminals, operators), always read whole;
# event: rows in time, read by window; labels: the simulation's ground truth (evaluation only);
# findings and runs: what the audit and the simulation wrote; meta: the store's own settings;
# ingest: what `posaudit ingest` recorded (files loaded, rows quarantined), added to a store
# made before them on its first ingest; reviews: the analysts' append-only trail of decisions on
# findings, added to a store made before it on its first review.
TableKind = Literal["dimension", "event", "labels", "findings", "runs", "meta", "ingest", "reviews"]


@dataclass(frozen=True)
class MerchantLink:
    """How a row reaches its merchant: the row's column naming the merchant (or the terminal or
    operator that belongs to one), and the table mapping that column to a ``merchant_id``."""

    column: str
    table: str


@dataclass(frozen=True)
class TableFacts:
    """What one table of the store is.

    ``key``: the column a row is known by, and the order of rows in an export.
    ``time_column``: an event table's time, for Parquet partitioning and look-back windows.
    ``merchant``: set for the tables detection reads, which a bucketed export partitions by
    their merchant's bucket. ``bounds_window``: whether the table's first and last event bound
    the data window and the watermark of a run. ``added_in``: the store schema version that
    brought the table; opening an older store for writing creates it, a read-only open reads it
    empty.
    ``holds``: what its rows are, as an analyst would say it.
    """

    name: str
    kind: TableKind
    key: str
    holds: str
    time_column: str | None = None
    merchant: MerchantLink | None = None
    bounds_window: bool = False
    added_in: int = 1

    def __post_init__(self) -> None:
        # A time column is what makes a table an event table: windows and partitions rely on it.
        if (self.kind == "event") != (self.time_column is not None):
            msg = f"table {self.name}: an event table has a time column, and only an event table"
            raise ValueError(msg)
        if self.bounds_window and self.kind != "event":
            msg = f"table {self.name}: only an event table can bound the data window"
            raise ValueError(msg)

    @property
    def bucketed(self) -> bool:
        """Whether a bucketed export partitions this table by its merchant's bucket."""
        return self.merchant is not None


_TABLES: Final = (
    TableFacts(
        "merchants",
        "dimension",
        key="merchant_id",
        holds="shops, with category, fee class and opening hours",
        merchant=MerchantLink("merchant_id", "merchants"),
    ),
    TableFacts(
        "terminals",
        "dimension",
        key="terminal_id",
        holds="POS terminals, with their lockout setting",
        merchant=MerchantLink("merchant_id", "terminals"),
    ),
    TableFacts(
        "operators",
        "dimension",
        key="operator_id",
        holds="people who log in to a terminal, with their permissions",
        merchant=MerchantLink("merchant_id", "operators"),
    ),
    TableFacts(
        "pin_events",
        "event",
        key="event_id",
        holds="PIN set, changed or reset (digests only, never a PIN)",
        time_column="ts",
        merchant=MerchantLink("operator_id", "operators"),
    ),
    TableFacts(
        "login_events",
        "event",
        key="event_id",
        holds="every login attempt and its outcome",
        time_column="ts",
        merchant=MerchantLink("terminal_id", "terminals"),
        bounds_window=True,
    ),
    TableFacts(
        "lockouts",
        "event",
        key="lockout_id",
        holds="operators locked out, and how they were unlocked",
        time_column="locked_at",
        merchant=MerchantLink("terminal_id", "terminals"),
    ),
    TableFacts(
        "transactions",
        "event",
        key="txn_id",
        holds="sales, voids, refunds and transfers",
        time_column="ts",
        merchant=MerchantLink("merchant_id", "transactions"),
        bounds_window=True,
    ),
    TableFacts(
        "operator_events",
        "event",
        key="event_id",
        holds="operators added and deleted, permissions granted and revoked, and by whom",
        time_column="ts",
        merchant=MerchantLink("operator_id", "operators"),
        added_in=3,
    ),
    TableFacts(
        "batch_totals",
        "event",
        key="batch_id",
        holds="each batch's own count and sums when its terminal settled it",
        time_column="settled_at",
        merchant=MerchantLink("merchant_id", "batch_totals"),
        added_in=3,
    ),
    TableFacts(
        "ground_truth",
        "labels",
        key="incident_id",
        holds="labels of simulated incidents (evaluation only, never read by detection)",
    ),
    TableFacts("findings", "findings", key="finding_id", holds="what the audit runs found"),
    TableFacts("pipeline_runs", "runs", key="run_id", holds="the audit runs"),
    TableFacts(
        "simulations",
        "runs",
        key="simulation_id",
        holds="the simulations that wrote into the store",
    ),
    TableFacts(
        "ingested_files",
        "ingest",
        key="ingest_id",
        holds="the files ingested: fingerprint, mapping, rows loaded, duplicate, quarantined",
    ),
    TableFacts(
        "quarantine",
        "ingest",
        key="ingest_id",
        holds="rows an ingest could not trust, with the reason (card numbers masked)",
    ),
    TableFacts(
        "finding_reviews",
        "reviews",
        key="review_id",
        holds="analysts' reviews of findings and cases: status, decision, note, chained digests",
    ),
    TableFacts(
        "review_snoozes",
        "reviews",
        key="snooze_id",
        holds="snoozes of a rule (or all) for one entity, with expiry and reason, chained",
    ),
    TableFacts(
        "posaudit_meta",
        "meta",
        key="key",
        holds="the store's own settings: schema version, PIN-key fingerprint",
    ),
)

# Every table of the store by name, in the order the store lists, counts and exports them.
CATALOGUE: Final[Mapping[str, TableFacts]] = MappingProxyType({t.name: t for t in _TABLES})

TABLE_NAMES: Final = tuple(CATALOGUE)
# Tables whose rows are events in time; what "events" counts everywhere.
EVENT_TABLES: Final = tuple(t.name for t in _TABLES if t.kind == "event")
# Tables without an event time: always read whole.
DIMENSION_TABLES: Final = tuple(t.name for t in _TABLES if t.kind == "dimension")
# The tables detection reads; a bucketed export partitions them by their merchant's bucket.
BUCKETED_TABLES: Final = tuple(t.name for t in _TABLES if t.bucketed)
# The tables a simulated world fills: who is in it, what happens, the labels of what it injected.
WORLD_TABLES: Final = tuple(t.name for t in _TABLES if t.kind in ("dimension", "event", "labels"))
# The tables an ingest records into; a store made before them gains them on its first ingest.
INGEST_TABLES: Final = tuple(t.name for t in _TABLES if t.kind == "ingest")
# The analysts' review trail; a store made before it gains it on its first review.
REVIEW_TABLES: Final = tuple(t.name for t in _TABLES if t.kind == "reviews")
# The tables a store made by an older posaudit may lack: each is created on its first write.
LATER_TABLES: Final = INGEST_TABLES + REVIEW_TABLES
# The tables a later store schema version brought: upgrading a store creates them.
UPGRADE_TABLES: Final = tuple(t.name for t in _TABLES if t.added_in > 1)
# The tables every store has, whatever version of posaudit made it.
REQUIRED_TABLES: Final = tuple(
    t.name for t in _TABLES if t.name not in LATER_TABLES and t.added_in == 1
)
# The tables whose first and last event define the data window and the watermark.
WINDOW_TABLES: Final = tuple(t.name for t in _TABLES if t.bounds_window)
# The time column of each event table, in the order of EVENT_TABLES.
EVENT_TIME_COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {t.name: t.time_column for t in _TABLES if t.time_column is not None}
)


def table_facts(name: str) -> TableFacts:
    """The facts of table ``name``; raises KeyError naming it when the store has no such table."""
    try:
        return CATALOGUE[name]
    except KeyError:
        msg = f"the store has no table {name!r}"
        raise KeyError(msg) from None


def key_column(name: str) -> str:
    """The column a row of table ``name`` is known by and ordered by in an export."""
    return table_facts(name).key


def event_time_column(name: str) -> str | None:
    """The time column of table ``name``, or None when its rows are not events in time."""
    return table_facts(name).time_column
