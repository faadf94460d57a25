"""One ingest: source files read through a mapping, checked, and loaded in one transaction.

Each file's header is read before anything is written, so that a file the mapping cannot read
(a missing column, an unreadable header, no table taking it) is refused before the store is
touched. Then, under the store's writer lock and in one transaction, each file is read in
blocks of rows: a block is converted, checked against the contract, the dimensions and the
keys placed before it, its quarantined rows written with their reasons and its good rows
loaded. A failure, a refusal found inside a file (a plaintext PIN column, a byte of another
encoding) or a kill rolls the whole ingest back: the store is as it was. Memory is bounded by
the block, not by the files.

Every row read ends in exactly one place: loaded, a duplicate of a row the store holds
already (same natural key, the catalogue's key), or quarantine with its reason. Rows in =
loaded + duplicate + quarantined, per file, checked before the transaction commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import Final

import polars as pl

from posaudit import __version__
from posaudit.ingest.contract import TARGET_TABLES, contract_columns, contract_failures
from posaudit.ingest.convert import converted
from posaudit.ingest.keys import LATER, STORED, TableKeys
from posaudit.ingest.mapping import IngestError, Mapping, TableMapping
from posaudit.ingest.secrets import account_references, card_numbers, refuse_plaintext_pins
from posaudit.ingest.sources import (
    BAD_ROW,
    LINE,
    SourceRows,
    ahead,
    describe,
    open_source,
    source_files,
)
from posaudit.pins import PinDigester
from posaudit.store import Store
from posaudit.store.catalogue import DIMENSION_TABLES, EVENT_TIME_COLUMNS, key_column
from posaudit.store.db import BackgroundWriter

# A column naming a dimension row, and the dimension it names: an event's reference.
REFERENCES: Final = {
    "merchant_id": "merchants",
    "terminal_id": "terminals",
    "operator_id": "operators",
}
UNKNOWN_REASON: Final = {
    "merchants": "unknown_merchant",
    "terminals": "unknown_terminal",
    "operators": "unknown_operator",
}
# Columns of this module's working frames, beside the contract's own.
_RAW, _REASON, _DETAIL, _FATE = "_raw", "_reason", "_detail", "_fate"
_OP_TERMINAL, _OP_NUMBER = "_op_terminal", "_op_number"
_VALUE = "\x00value:"
# Rows appended to a table at once.
_CHUNK_ROWS: Final = 300_000
# Rows between commits when the ingest builds a new store (see ``ingest``'s ``staged``).
_COMMIT_ROWS: Final = 1_000_000

Events = Callable[[str, MappingType[str, object]], None]


def _ignore(_name: str, _fields: MappingType[str, object]) -> None:
    return None


@dataclass
class FileReport:
    """What one file brought: its rows and where each went."""

    file_name: str
    fingerprint: str
    bytes: int
    target_table: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    cards_in_clear: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # the ingest that loaded these same bytes before; nothing is read from the file again
    already_loaded: str | None = None

    def to_record(self) -> dict[str, object]:
        return {
            "file": self.file_name,
            "fingerprint": self.fingerprint,
            "table": self.target_table,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_duplicate": self.rows_duplicate,
            "rows_quarantined": self.rows_quarantined,
            "quarantined_by_reason": dict(sorted(self.reasons.items())),
            "cards_in_clear": self.cards_in_clear,
            "already_loaded": self.already_loaded,
        }


@dataclass
class IngestSummary:
    """The outcome of one ``posaudit ingest``."""

    ingest_id: str | None
    mapping: str
    files: list[FileReport]
    seconds: float = 0.0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    # dimension rows made from events, as the mapping's create_missing asked
    created: dict[str, int] = field(default_factory=dict)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def to_record(self) -> dict[str, object]:
        return {
            "status": "succeeded",
            "ingest_id": self.ingest_id,
            "mapping": self.mapping,
            "files": len(self.files),
            "files_already_loaded": sum(f.already_loaded is not None for f in self.files),
            "rows_read": sum(f.rows_read for f in self.files),
            "rows_loaded": self.rows_loaded,
            "rows_duplicate": sum(f.rows_duplicate for f in self.files),
            "rows_quarantined": self.rows_quarantined,
            "cards_in_clear": sum(f.cards_in_clear for f in self.files),
            "rows_loaded_by_table": self.rows_by_table,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "per_file": [f.to_record() for f in self.files],
        }


@dataclass
class _Planned:
    """A file of the ingest: its header read, its table known."""

    rows: SourceRows
    table: str
    name: str

    @property
    def fingerprint(self) -> str:
        return self.rows.source.fingerprint


def target_table(mapping: Mapping, path: Path) -> str:
    """The table the mapping's ``files`` globs give a file; :class:`IngestError` when none or
    more than one do."""
    pure = PurePath(path)
    tables = [t.table for t in mapping.tables.values() if any(pure.match(glob) for glob in t.files)]
    if len(tables) != 1:
        # the names each table takes, of this file's kind only: the line stays readable
        wanted = ", ".join(
            glob
            for t in mapping.tables.values()
            for glob in ([g for g in t.files if PurePath(g).suffix == pure.suffix] or t.files)
        )
        if not tables:
            msg = f"{path}: no table of mapping {mapping.name} takes this file ({wanted})"
        else:
            msg = f"{path}: mapping {mapping.name} gives this file to {' and '.join(tables)}"
        raise IngestError(msg)
    return tables[0]


def plan(mapping: Mapping, sources: Sequence[str | Path]) -> list[_Planned]:
    """Each file the sources name, described, given its table and its header read; bad input
    found there (no such file, no table for it, a column the mapping reads and it lacks) is
    refused here, before any store is opened."""
    planned = []
    for path in source_files(sources):
        source = describe(path)
        table = target_table(mapping, path)
        rows = open_source(source, encoding=mapping.encoding, delimiter=mapping.delimiter)
        rules = mapping.tables[table]
        missing = [
            c
            for c in rules.source_columns
            if c not in rows.columns and c not in rules.optional_columns
        ]
        if missing:
            columns = rows.columns
            msg = (
                f"{path}: no column {missing[0]!r}, which mapping {mapping.name} reads for "
                f"{table} (the file has {', '.join(columns[:12])}"
                f"{', ...' if len(columns) > 12 else ''})"
            )
            raise IngestError(msg)
        planned.append(_Planned(rows, table, str(path)))
    return planned


def ingest(
    store: Store,
    mapping: Mapping,
    sources: Sequence[str | Path],
    *,
    digester: PinDigester,
    on_event: Events = _ignore,
    planned: list[_Planned] | None = None,
    staged: bool = False,
) -> IngestSummary:
    """Ingest the files ``sources`` name into ``store`` (opened for writing) through
    ``mapping``; one transaction. Raises :class:`IngestError` for bad input; found inside a
    file, it rolls the transaction back. ``planned``: the sources as :func:`plan` gave them
    already (each file hashed once). ``staged``: the store is a new one being built beside its
    path (:meth:`Store.staged`), which only becomes the store when whole: the ingest then
    commits every million rows or so, so that a large first load holds no transaction of all
    its rows in memory.
    """
    began = time.perf_counter()
    planned = plan(mapping, sources) if planned is None else planned
    on_event("planned", {"files": len(planned)})
    loaded_before = _loaded_fingerprints(store)
    reports: list[FileReport] = []
    work: list[tuple[int, _Planned]] = []
    seen: dict[str, str] = {}
    for position, item in enumerate(planned):
        source = item.rows.source
        report = FileReport(item.name, source.fingerprint, source.bytes, item.table)
        reports.append(report)
        earlier = loaded_before.get(source.fingerprint) or seen.get(source.fingerprint)
        if earlier is not None:
            report.already_loaded = earlier
            on_event("file", {"file": item.name, "rows": 0, "already_loaded": earlier})
            continue
        seen[source.fingerprint] = "this ingest"
        work.append((position, item))
    summary = IngestSummary(None, mapping.name, reports)
    if work:
        _Ingest(store, mapping, digester, reports, on_event, staged=staged).load(work, summary)
    on_event("written", {"ingest_id": summary.ingest_id})
    summary.seconds = time.perf_counter() - began
    return summary


def _loaded_fingerprints(store: Store) -> dict[str, str]:
    if not store.has_table("ingested_files"):
        return {}
    rows = store.query("SELECT fingerprint, min(ingest_id) FROM ingested_files GROUP BY 1")
    return {str(f): str(i) for f, i in rows}


def _next_ingest_id(store: Store) -> str:
    count = store.query("SELECT count(DISTINCT ingest_id) FROM ingested_files")[0][0]
    return f"ingest-{int(count) + 1:05d}"  # type: ignore[call-overload]


class _Known:
    """The dimension rows an ingest's checks see: the store's (this ingest's loads included,
    being in its transaction) and those made from events for ``create_missing``."""

    def __init__(self, store: Store, flush: Callable[[], None]) -> None:
        self.store = store
        self.flush = flush
        self.made: dict[str, pl.DataFrame] = {}
        self._stored: dict[tuple[str, tuple[str, ...]], pl.DataFrame] = {}
        self._rows: dict[tuple[str, tuple[str, ...]], pl.DataFrame] = {}

    def stored(self, dimension: str, columns: Sequence[str]) -> pl.DataFrame:
        """The store's rows of a dimension, ``columns`` only, as strings, each once."""
        wanted = (dimension, tuple(columns))
        if wanted not in self._stored:
            self.flush()
            read = self.store.read(dimension, columns=list(columns))
            self._stored[wanted] = read.with_columns(pl.col(columns).cast(pl.String)).unique()
        return self._stored[wanted]

    def rows(self, dimension: str, columns: Sequence[str]) -> pl.DataFrame:
        """The stored rows and the made ones, ``columns`` only."""
        wanted = (dimension, tuple(columns))
        if wanted not in self._rows:
            stored = self.stored(dimension, columns)
            made = self.made.get(dimension)
            if made is not None:
                mine = made.select(pl.col(list(columns)).cast(pl.String))
                stored = pl.concat([stored, mine]).unique()
            self._rows[wanted] = stored
        return self._rows[wanted]

    def keys(self, dimension: str) -> pl.Series:
        key = key_column(dimension)
        return self.rows(dimension, [key])[key]

    def loaded(self, dimension: str) -> None:
        """The store's rows of ``dimension`` changed: read them again when next asked."""
        for cache in (self._stored, self._rows):
            for wanted in [w for w in cache if w[0] == dimension]:
                del cache[wanted]

    def make(self, dimension: str, rows: pl.DataFrame, first_seen: str) -> None:
        """Add rows made from events; a key made before keeps its earliest row."""
        before = self.made.get(dimension)
        both = rows if before is None else pl.concat([before, rows])
        key = key_column(dimension)
        self.made[dimension] = both.sort(first_seen, key, "merchant_id").unique(
            key, keep="first", maintain_order=True
        )
        for wanted in [w for w in self._rows if w[0] == dimension]:
            del self._rows[wanted]


@dataclass(frozen=True)
class _Converted:
    """A block as conversion leaves it: what needs no store, done on a thread of its own."""

    rows_read: int
    cards_in_clear: int
    # the rows as contract values, with the reason a conversion failed
    mapped: pl.DataFrame
    # the source rows, card numbers masked, to quote the quarantined ones
    masked: pl.DataFrame

    @classmethod
    def of(
        cls,
        block: pl.DataFrame,
        item: _Planned,
        rules: TableMapping,
        mapping: Mapping,
        digester: PinDigester,
    ) -> _Converted:
        columns = item.rows.columns
        refuse_plaintext_pins(block, columns, file=item.name)
        absent = rules.optional_columns - set(block.columns)
        block = block.with_columns(pl.lit(None, pl.String).alias(c) for c in sorted(absent))
        block = account_references(block, _account_ref_columns(rules, block), digester)
        cards = card_numbers(block, columns, digester)
        mapped = _mapped(cards.tokenised, rules, mapping)
        return cls(block.height, cards.in_clear, mapped, cards.masked)


class _Ingest:
    """The writing part of one ingest, inside its transaction."""

    # made when the transaction begins
    writer: BackgroundWriter
    known: _Known

    def __init__(
        self,
        store: Store,
        mapping: Mapping,
        digester: PinDigester,
        reports: list[FileReport],
        on_event: Events,
        *,
        staged: bool,
    ) -> None:
        self.store = store
        self.staged = staged
        self.uncommitted = 0
        # rows of ``table`` waiting to go to the writer
        self.table = ""
        self.pending: list[pl.DataFrame] = []
        self.mapping = mapping
        self.digester = digester
        self.reports = reports
        self.on_event = on_event
        self.ingest_id = ""

    def load(self, work: list[tuple[int, _Planned]], summary: IngestSummary) -> None:
        now = datetime.now().replace(microsecond=0)
        store = self.store
        with store.transaction(), store.background_writer(depth=3) as writer:
            store.ensure_ingest_tables()
            self.ingest_id = summary.ingest_id = _next_ingest_id(store)
            self.writer = writer
            self.known = _Known(store, self._settle_writes)
            for table in TARGET_TABLES:
                mine = [(p, item) for p, item in work if item.table == table]
                if not mine:
                    continue
                self._settle_writes()
                self.table = table
                keys = TableKeys(store, table, flush=self._settle_writes)
                for position, item in mine:
                    report = self.reports[position]
                    rules = self.mapping.tables[table]
                    # each block is read, and then converted, on threads of their own, ahead of
                    # the checks that need the store
                    converted_blocks = ahead(
                        _Converted.of(block, item, rules, self.mapping, self.digester)
                        for block in item.rows.blocks()
                    )
                    for block in converted_blocks:
                        self._block(table, keys, position, item, rules, block)
                        self._commit_now_and_then(block.rows_read)
                        self.on_event("block", {"file": item.name, "rows": report.rows_read})
                    self.on_event("file", {"file": item.name, "rows": report.rows_read})
                self._settle_writes()
                keys.close()
                summary.rows_by_table[table] = sum(self.reports[p].rows_loaded for p, _ in mine)
                if table in DIMENSION_TABLES:
                    self.known.loaded(table)
                self.on_event("checked", {"table": table})
            self._settle_writes()
            for dimension, made in self.known.made.items():
                store.append(dimension, made.select(list(contract_columns()[dimension])))
                summary.created[dimension] = made.height
            fresh = [self.reports[p] for p, _ in work]
            for report in fresh:
                _check_placed(report)
            store.append("ingested_files", _files_rows(self.ingest_id, self.mapping, fresh, now))

    def _load(self, table: str, rows: pl.DataFrame) -> None:
        """Queue rows for ``table``; they go to the writer in chunks of about 300,000
        rows, which DuckDB appends and compresses faster than many small ones."""
        self.pending.append(rows)
        if sum(p.height for p in self.pending) >= _CHUNK_ROWS:
            self._put_pending(table)

    def _put_pending(self, table: str) -> None:
        if self.pending:
            self.writer.put(table, pl.concat(self.pending, rechunk=False))
            self.pending = []

    def _settle_writes(self) -> None:
        """Every row so far in the store, the writer idle: the store may be read (the keys
        placed before a block are confirmed in it) or written on this thread."""
        if self.pending:
            self._put_pending(self.table)
        self.writer.flush()

    def _commit_now_and_then(self, rows: int) -> None:
        """In a store being staged, commit once a million rows or so wait: nobody sees the
        store before it is whole, and a transaction holds its rows in memory."""
        self.uncommitted += rows
        if self.staged and self.uncommitted >= _COMMIT_ROWS:
            self._settle_writes()
            self.store.execute("COMMIT")
            self.store.execute("BEGIN TRANSACTION")
            self.uncommitted = 0

    # -- one block ------------------------------------------------------------------------
    def _block(
        self,
        table: str,
        keys: TableKeys,
        position: int,
        item: _Planned,
        rules: TableMapping,
        block: _Converted,
    ) -> None:
        report = self.reports[position]
        report.rows_read += block.rows_read
        report.cards_in_clear += block.cards_in_clear
        rows = _checked(self.known, rules, block.mapped)
        # the same key twice in this ingest's files: the first is kept, the others quarantined
        # (rows in the order read: files as given, lines in each; rows with a reason don't count)
        key = key_column(table)
        rows = rows.with_columns(keys.fates(rows[key], rows[_REASON].is_null()).alias(_FATE))
        rows = _flag(
            rows,
            pl.col(_FATE) == LATER,
            "duplicate_in_file",
            pl.format(f"{key} '{{}}' came before in this ingest", pl.col(key)),
        )
        failed = rows.filter(pl.col(_REASON).is_not_null())
        if failed.height:
            self._quarantine(table, item, report, failed, block.masked)
        report.rows_duplicate += rows.filter(pl.col(_FATE) == STORED).height
        good = rows.filter(pl.col(_REASON).is_null() & pl.col(_FATE).is_null())
        if good.height:
            self._load(table, good.select(*contract_columns()[table]))
            report.rows_loaded += good.height

    def _quarantine(
        self,
        table: str,
        item: _Planned,
        report: FileReport,
        failed: pl.DataFrame,
        masked: pl.DataFrame,
    ) -> None:
        """Write ``failed`` (rows with ``_reason`` and ``_detail``) to quarantine, each with
        its raw row from ``masked`` (the block, card numbers masked) as JSON."""
        quoted = masked.join(failed.select(LINE), on=LINE, how="semi").select(
            LINE, pl.struct(item.rows.columns).struct.json_encode().alias(_RAW)
        )
        self.writer.put(
            "quarantine",
            failed.join(quoted, on=LINE, how="left").select(
                pl.lit(self.ingest_id).alias("ingest_id"),
                pl.lit(report.fingerprint).alias("fingerprint"),
                pl.lit(report.file_name).alias("file_name"),
                pl.col(LINE).alias("source_line"),
                pl.lit(table).alias("target_table"),
                pl.col(_REASON).alias("reason"),
                pl.col(_DETAIL).fill_null("").alias("detail"),
                pl.col(_RAW).alias("raw_row"),
            ),
        )
        for reason, count in failed.group_by(_REASON).len().iter_rows():
            report.reasons[reason] = report.reasons.get(reason, 0) + count
        report.rows_quarantined += failed.height


def _check_placed(report: FileReport) -> None:
    """Every row read is in exactly one place: nothing lost, nothing counted twice."""
    placed = report.rows_loaded + report.rows_duplicate + report.rows_quarantined
    if placed != report.rows_read:
        msg = (
            f"{report.file_name}: {report.rows_read} rows read but {placed} placed "
            f"({report.rows_loaded} loaded, {report.rows_duplicate} duplicate, "
            f"{report.rows_quarantined} quarantined)"
        )
        raise AssertionError(msg)


def _files_rows(
    ingest_id: str, mapping: Mapping, fresh: Sequence[FileReport], now: datetime
) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "ingest_id": ingest_id,
                "fingerprint": r.fingerprint,
                "file_name": r.file_name,
                "bytes": r.bytes,
                "mapping": mapping.name,
                "target_table": r.target_table,
                "rows_read": r.rows_read,
                "rows_loaded": r.rows_loaded,
                "rows_duplicate": r.rows_duplicate,
                "rows_quarantined": r.rows_quarantined,
                "cards_in_clear": r.cards_in_clear,
                "ingested_at": now,
            }
            for r in fresh
        ]
    )


def _account_ref_columns(table: TableMapping, frame: pl.DataFrame) -> list[str]:
    """The source columns that hold account references (PAR): those the contract's
    ``account_ref`` is copied from."""
    rule = table.columns.get("account_ref")
    if rule is None or rule.kind != "column" or rule.column not in frame.columns:
        return []
    return [rule.column]  # type: ignore[list-item]


def _mapped(frame: pl.DataFrame, table: TableMapping, mapping: Mapping) -> pl.DataFrame:
    """A block's rows (card numbers tokenised) as contract values, with the reason and detail
    of the first column that did not convert (null when all did)."""
    specs = contract_columns()[table.table]
    values: list[pl.Expr] = []
    converting: list[pl.Expr] = []
    codes: list[pl.Expr] = [pl.when(pl.col(BAD_ROW).is_not_null()).then(pl.lit("bad_row"))]
    details: list[pl.Expr] = [pl.when(pl.col(BAD_ROW).is_not_null()).then(pl.col(BAD_ROW))]
    for name, rule in table.columns.items():
        if rule.kind in ("lookup", "operator_of"):
            continue
        result = converted(rule, specs[name], mapping)
        # each value is converted once, into a column of its own that its reason then reads
        # (a source column may have the contract column's name, hence the prefix)
        held = f"{_VALUE}{name}"
        converting.append(result.value.alias(held))
        values.append(pl.col(held).alias(name))
        reason = result.reason_of(pl.col(held))
        source = ", ".join(rule.source_columns) or "value"
        cell = pl.concat_str(
            [pl.col(c).fill_null("") for c in rule.source_columns] or [pl.lit("")], separator=" "
        )
        codes.append(reason)
        details.append(
            pl.when(reason.is_not_null()).then(pl.format(f"{name} ({source}): '{{}}'", cell))
        )
    # a nullable column the mapping leaves out is null in every row
    values += [
        pl.lit(None, spec.dtype).alias(name)
        for name, spec in specs.items()
        if name not in table.columns
    ]
    extra: list[pl.Expr] = []
    for rule in table.columns.values():
        if rule.kind == "operator_of":
            extra += [
                pl.col(rule.terminal).fill_null("").str.strip_chars().alias(_OP_TERMINAL),  # type: ignore[arg-type]
                pl.col(rule.operator_no).fill_null("").str.strip_chars().alias(_OP_NUMBER),  # type: ignore[arg-type]
            ]
    converted_frame = frame.with_columns(converting).with_columns(pl.coalesce(codes).alias(_REASON))
    mapped = converted_frame.select(
        *values,
        *extra,
        pl.col(LINE),
        pl.col(_REASON),
        pl.lit(None, pl.String).alias(_DETAIL),
    )
    failing = converted_frame.filter(pl.col(_REASON).is_not_null())
    if failing.height == 0:
        return mapped
    # the words of a failure are made for the rows that failed only: a clean export has none
    worded = failing.select(LINE, pl.coalesce(details).alias("_worded"))
    return (
        mapped.join(worded, on=LINE, how="left", maintain_order="left")
        .with_columns(pl.col("_worded").alias(_DETAIL))
        .drop("_worded")
    )


# What a dimension row made from events holds where the events say nothing: the words say so
# to the analyst, and no permission is granted that no record shows.
_MADE_TERMINAL: Final = {"model": "unknown", "family": "unknown"}
_MADE_OPERATOR: Final = {
    "operator_no": "",
    "name": "unknown",
    "role": "clerk",
    "can_query": False,
    "can_sale": False,
    "can_refund": False,
    "can_transfer": False,
    "can_manage": False,
}


def _make_missing(known: _Known, dimension: str, table: str, rows: pl.DataFrame) -> None:
    """Make the terminals or operators that valid rows of ``table`` name and the store does
    not hold, from those rows (their merchant, their earliest time); nothing when the rows
    cannot say."""
    specs = contract_columns()[dimension]
    key = key_column(dimension)
    time_column = EVENT_TIME_COLUMNS.get(table) or ("created_at" if table == "operators" else None)
    needed = {key, "merchant_id"} | ({"terminal_id"} if dimension == "operators" else set())
    if time_column is None or not needed <= set(rows.columns):
        return
    # rows naming a key made from an earlier block count too: the earliest time is kept
    stored = known.stored(dimension, [key])[key]
    candidates = rows.filter(
        pl.col(_REASON).is_null()
        & pl.col(key).is_not_null()
        & ~pl.col(key).is_in(stored.implode())
        & pl.col("merchant_id").is_in(known.keys("merchants").implode())
    )
    if dimension == "operators":
        candidates = candidates.filter(
            pl.col("terminal_id").is_in(known.keys("terminals").implode())
        )
    if candidates.height == 0:
        return
    first_seen = "installed_at" if dimension == "terminals" else "created_at"
    by = [key, "merchant_id", *(["terminal_id"] if dimension == "operators" else [])]
    made = candidates.group_by(by).agg(pl.col(time_column).min().alias(first_seen))
    fixed = _MADE_TERMINAL if dimension == "terminals" else _MADE_OPERATOR
    made = (
        made.with_columns(pl.lit(v).alias(c) for c, v in fixed.items())
        .with_columns(
            pl.lit(None, specs[c].dtype).alias(c)
            for c in specs
            if c not in made.columns and c not in fixed
        )
        .select(list(specs))
    )
    known.make(dimension, made, first_seen)


def _flag(rows: pl.DataFrame, failing: pl.Expr, reason: str, detail: pl.Expr) -> pl.DataFrame:
    """Give ``reason`` to the rows without one where ``failing`` holds."""
    hit = pl.col(_REASON).is_null() & failing.fill_null(False)
    # most checks fail no row of a clean export: the detail text is then made for none
    if not rows.select(hit.any()).item():
        return rows
    return rows.with_columns(
        pl.when(hit).then(pl.lit(reason)).otherwise(pl.col(_REASON)).alias(_REASON),
        pl.when(hit).then(detail).otherwise(pl.col(_DETAIL)).alias(_DETAIL),
    )


def _checked(known: _Known, table: TableMapping, rows: pl.DataFrame) -> pl.DataFrame:
    """A block's mapped rows with the reason of each that fails a check: look-ups, the
    contract, references. Dimension rows for ``create_missing`` are made on the way."""
    name = table.table
    specs = contract_columns()[name]
    for column, rule in table.columns.items():
        if rule.kind == "operator_of":
            operators = known.rows("operators", ["terminal_id", "operator_no", "operator_id"])
            rows = rows.join(
                operators.rename(
                    {"terminal_id": _OP_TERMINAL, "operator_no": _OP_NUMBER, "operator_id": column}
                ),
                on=[_OP_TERMINAL, _OP_NUMBER],
                how="left",
                maintain_order="left",
            )
            if not specs[column].nullable:
                rows = _flag(
                    rows,
                    pl.col(column).is_null(),
                    "unknown_operator",
                    pl.format(
                        "operator {} of terminal {}", pl.col(_OP_NUMBER), pl.col(_OP_TERMINAL)
                    ),
                )
        elif rule.kind == "lookup":
            looked, key, value = rule.lookup, rule.key, rule.value
            assert looked is not None and key is not None and value is not None
            dim_key = key_column(looked)
            found = known.rows(looked, [dim_key, value]).unique(dim_key, keep="first")
            rows = rows.join(
                found.rename({dim_key: key, value: column})
                if value != dim_key
                else found.rename({dim_key: key}).with_columns(pl.col(key).alias(column)),
                on=key,
                how="left",
                maintain_order="left",
            )
            if not specs[column].nullable:
                rows = _flag(
                    rows,
                    pl.col(column).is_null() & pl.col(key).is_not_null(),
                    UNKNOWN_REASON[looked],
                    pl.format(f"{column}: no {looked} row with {dim_key} '{{}}'", pl.col(key)),
                )
    # the contract: types, enums, required values, ranges; only for rows without a reason yet
    pending = rows.with_row_index("_row").filter(pl.col(_REASON).is_null())
    failures = contract_failures(name, pending.select(*specs, pl.col("_row").cast(pl.Int64)))
    if failures.height:
        rows = (
            rows.with_row_index("_row")
            .with_columns(pl.col("_row").cast(pl.Int64))
            .join(
                failures.rename({"reason": "_c_reason", "detail": "_c_detail"}),
                on="_row",
                how="left",
                maintain_order="left",
            )
            .with_columns(
                pl.coalesce(_REASON, "_c_reason").alias(_REASON),
                pl.coalesce(_DETAIL, "_c_detail").alias(_DETAIL),
            )
            .drop("_row", "_c_reason", "_c_detail")
        )
    # terminals first: an operator is made only on a terminal that exists
    for dimension in sorted(table.create_missing, key=("terminals", "operators").index):
        _make_missing(known, dimension, name, rows)
    # references: each row's merchant, terminal and operator exist (stored or loaded now)
    for column, dimension in REFERENCES.items():
        if column not in specs or key_column(name) == column:
            continue
        rows = _flag(
            rows,
            pl.col(column).is_not_null() & ~pl.col(column).is_in(known.keys(dimension).implode()),
            UNKNOWN_REASON[dimension],
            pl.format(f"{column}: '{{}}' is in no {dimension} row", pl.col(column)),
        )
    return rows


def ingest_files(
    path: Path,
    mapping: Mapping,
    sources: Sequence[str | Path],
    *,
    digester: PinDigester,
    on_event: Events = _ignore,
) -> IngestSummary:
    """Open the store at ``path`` for writing (its writer lock held throughout: a store locked
    by another writer is :class:`~posaudit.store.StoreLockedError`) and ingest into it.

    The sources and the mapping are checked before the store is opened, so bad input found
    in a file's name or header never waits on nor takes the lock.
    """
    planned = plan(mapping, sources)
    path = Path(path)
    if not path.exists():
        # a new store is built beside its path and renamed into place when whole
        with Store.staged(path, append=False, purpose="ingest") as new:
            new.initialise(pin_key_fingerprint=digester.fingerprint, code_version=__version__)
            return ingest(
                new,
                mapping,
                sources,
                digester=digester,
                on_event=on_event,
                planned=planned,
                staged=True,
            )
    store = Store.open(path, purpose="ingest")
    try:
        store.check_pin_key(digester.fingerprint)
        return ingest(
            store, mapping, sources, digester=digester, on_event=on_event, planned=planned
        )
    finally:
        store.close()
