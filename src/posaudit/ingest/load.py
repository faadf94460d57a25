"""One ingest: source files read through a mapping, checked, and loaded in one transaction.

Every file is read, converted and checked before anything is written; bad input (a mapping
naming a column a file lacks, a plaintext PIN column, an unreadable file) is refused before
the store is touched. Then, under the store's writer lock, the loaded rows, the quarantined
rows and one ``ingested_files`` row per file are written in one transaction: a failure or a
kill leaves the store as it was.

Every row read ends in exactly one place: loaded, a duplicate of a row the store holds
already (same natural key, the catalogue's key), or quarantine with its reason. Rows in =
loaded + duplicate + quarantined, per file, checked before the transaction begins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import Final

import polars as pl

from posaudit import __version__
from posaudit.ingest.contract import TARGET_TABLES, contract_columns, contract_failures
from posaudit.ingest.convert import converted
from posaudit.ingest.mapping import IngestError, Mapping, TableMapping
from posaudit.ingest.secrets import card_numbers, refuse_plaintext_pins
from posaudit.ingest.sources import BAD_ROW, LINE, SourceFile, describe, read_source, source_files
from posaudit.pins import PinDigester
from posaudit.store import Store
from posaudit.store.catalogue import DIMENSION_TABLES, EVENT_TIME_COLUMNS, key_column

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
_ROW, _FILE, _RAW, _REASON, _DETAIL = "_row", "_file", "_raw", "_reason", "_detail"
_OP_TERMINAL, _OP_NUMBER = "_op_terminal", "_op_number"
_VALUE = "\x00value:"

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
    source: SourceFile
    table: str
    name: str


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
    """Each file the sources name, described and given its table; bad input refused here."""
    planned = []
    for path in source_files(sources):
        planned.append(_Planned(describe(path), target_table(mapping, path), str(path)))
    return planned


def ingest(
    store: Store,
    mapping: Mapping,
    sources: Sequence[str | Path],
    *,
    digester: PinDigester,
    on_event: Events = _ignore,
    planned: list[_Planned] | None = None,
) -> IngestSummary:
    """Ingest the files ``sources`` name into ``store`` (opened for writing) through
    ``mapping``; one transaction. Raises :class:`IngestError` for bad input, before any write.
    ``planned``: the sources as :func:`plan` gave them already (each file hashed once).
    """
    began = time.perf_counter()
    planned = plan(mapping, sources) if planned is None else planned
    on_event("planned", {"files": len(planned)})
    loaded_before = _loaded_fingerprints(store)
    reports: list[FileReport] = []
    frames: dict[str, list[tuple[int, pl.DataFrame]]] = {t: [] for t in TARGET_TABLES}
    seen: dict[str, str] = {}
    raw_rows: dict[int, pl.DataFrame] = {}
    for item in planned:
        source = item.source
        report = FileReport(item.name, source.fingerprint, source.bytes, item.table)
        reports.append(report)
        earlier = loaded_before.get(source.fingerprint) or seen.get(source.fingerprint)
        if earlier is not None:
            report.already_loaded = earlier
            on_event("file", {"file": item.name, "rows": 0, "already_loaded": earlier})
            continue
        seen[source.fingerprint] = "this ingest"
        rules = mapping.tables[item.table]
        frame, raw_rows[len(reports) - 1] = _read_mapped(
            item, rules, mapping, digester, report, index=len(reports) - 1
        )
        frames[item.table].append((len(reports) - 1, frame))
        on_event("file", {"file": item.name, "rows": report.rows_read})

    results: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = {}
    accepted: dict[str, pl.DataFrame] = {}
    created: dict[str, pl.DataFrame] = {}
    for name in TARGET_TABLES:
        if not frames[name]:
            continue
        rows = pl.concat([f for _, f in frames[name]], how="diagonal_relaxed")
        loaded, rest = _checked(store, mapping.tables[name], mapping, rows, accepted, created)
        results[name] = (loaded, rest)
        if name in DIMENSION_TABLES:
            _accept(
                accepted,
                name,
                pl.concat([loaded, rest.filter(pl.col(_REASON).is_null())], how="diagonal_relaxed"),
            )
        on_event("checked", {"table": name, "rows": rows.height})

    for position, report in enumerate(reports):
        if report.already_loaded is not None:
            continue
        loaded, rest = results[report.target_table]
        mine = pl.col(_FILE) == position
        report.rows_loaded = loaded.filter(mine).height
        own = rest.filter(mine)
        report.rows_duplicate = own.filter(pl.col(_REASON).is_null()).height
        quarantined = own.filter(pl.col(_REASON).is_not_null())
        report.rows_quarantined = quarantined.height
        report.reasons = dict(quarantined.group_by(_REASON).len().iter_rows())
        # every row read is in exactly one place: nothing lost, nothing counted twice
        placed = report.rows_loaded + report.rows_duplicate + report.rows_quarantined
        if placed != report.rows_read:
            msg = (
                f"{report.file_name}: {report.rows_read} rows read but {placed} placed "
                f"({report.rows_loaded} loaded, {report.rows_duplicate} duplicate, "
                f"{report.rows_quarantined} quarantined)"
            )
            raise AssertionError(msg)

    fresh = [r for r in reports if r.already_loaded is None]
    summary = IngestSummary(None, mapping.name, reports)
    if fresh:
        summary.ingest_id = _write(store, mapping, fresh, reports, results, created, raw_rows)
        summary.rows_by_table = {t: results[t][0].height for t in results}
        summary.created = {t: rows.height for t, rows in created.items()}
    on_event("written", {"ingest_id": summary.ingest_id})
    summary.seconds = time.perf_counter() - began
    return summary


def _loaded_fingerprints(store: Store) -> dict[str, str]:
    if not store.has_table("ingested_files"):
        return {}
    rows = store.query("SELECT fingerprint, min(ingest_id) FROM ingested_files GROUP BY 1")
    return {str(f): str(i) for f, i in rows}


def _read_mapped(
    item: _Planned,
    table: TableMapping,
    mapping: Mapping,
    digester: PinDigester,
    report: FileReport,
    *,
    index: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A file's rows as contract values with their conversion reasons, and its raw rows
    (``source_line`` and ``_raw``, a struct of the source's cells, card numbers masked)."""
    raw = read_source(item.source, encoding=mapping.encoding, delimiter=mapping.delimiter)
    columns = [c for c in raw.columns if c not in (LINE, BAD_ROW)]
    missing = [c for c in table.source_columns if c not in columns]
    if missing:
        msg = (
            f"{item.name}: no column {missing[0]!r}, which mapping {mapping.name} reads for "
            f"{table.table} (the file has {', '.join(columns[:12])}"
            f"{', ...' if len(columns) > 12 else ''})"
        )
        raise IngestError(msg)
    refuse_plaintext_pins(raw, columns, file=item.name)
    cards = card_numbers(raw, columns, digester)
    report.rows_read = raw.height
    report.cards_in_clear = cards.in_clear
    specs = contract_columns()[table.table]
    values: list[pl.Expr] = []
    converting: list[pl.Expr] = []
    reasons: list[pl.Expr] = []
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
        reasons.append(
            pl.when(reason.is_not_null()).then(
                pl.struct(
                    reason.alias("reason"),
                    pl.format(f"{name} ({source}): '{{}}'", cell).alias("detail"),
                )
            )
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
    bad_row = pl.when(pl.col(BAD_ROW).is_not_null()).then(
        pl.struct(pl.lit("bad_row").alias("reason"), pl.col(BAD_ROW).alias("detail"))
    )
    first = pl.coalesce([bad_row, *reasons]) if reasons else bad_row
    mapped = cards.tokenised.with_columns(converting).select(
        *values,
        *extra,
        pl.col(LINE),
        first.alias("_why"),
        pl.lit(index, pl.Int32).alias(_FILE),
    )
    mapped = mapped.with_columns(
        pl.col("_why").struct.field("reason").alias(_REASON),
        pl.col("_why").struct.field("detail").alias(_DETAIL),
    ).drop("_why")
    # the raw rows, card numbers masked, kept to quote the quarantined ones when written
    return mapped, cards.masked.select(LINE, pl.struct(columns).alias(_RAW))


def _known(
    store: Store, dimension: str, accepted: MappingType[str, pl.DataFrame], columns: list[str]
) -> pl.DataFrame:
    """Rows of a dimension, ``columns`` only: the store's and those this ingest accepted."""
    stored = store.read(dimension, columns=columns).with_columns(pl.col(columns).cast(pl.String))
    mine = accepted.get(dimension)
    if mine is None or mine.height == 0:
        return stored.unique()
    return pl.concat([stored, mine.select(pl.col(columns).cast(pl.String))]).unique()


def _accept(into: dict[str, pl.DataFrame], dimension: str, rows: pl.DataFrame) -> None:
    before = into.get(dimension)
    into[dimension] = rows if before is None else pl.concat([before, rows], how="diagonal_relaxed")


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


def _missing_rows(
    store: Store,
    dimension: str,
    table: str,
    rows: pl.DataFrame,
    accepted: MappingType[str, pl.DataFrame],
) -> pl.DataFrame | None:
    """The terminals or operators that valid rows of ``table`` name and nobody holds, made
    from those rows (their merchant, their earliest time); None when the rows cannot say."""
    specs = contract_columns()[dimension]
    key = key_column(dimension)
    time_column = EVENT_TIME_COLUMNS.get(table) or ("created_at" if table == "operators" else None)
    needed = {key, "merchant_id"} | ({"terminal_id"} if dimension == "operators" else set())
    if time_column is None or not needed <= set(rows.columns):
        return None
    known = _known(store, dimension, accepted, [key])[key]
    merchants = _known(store, "merchants", accepted, ["merchant_id"])["merchant_id"]
    candidates = rows.filter(
        pl.col(_REASON).is_null()
        & pl.col(key).is_not_null()
        & ~pl.col(key).is_in(known.implode())
        & pl.col("merchant_id").is_in(merchants.implode())
    )
    if dimension == "operators":
        terminals = _known(store, "terminals", accepted, ["terminal_id"])["terminal_id"]
        candidates = candidates.filter(pl.col("terminal_id").is_in(terminals.implode()))
    if candidates.height == 0:
        return None
    first_seen = "installed_at" if dimension == "terminals" else "created_at"
    by = [key, "merchant_id", *(["terminal_id"] if dimension == "operators" else [])]
    made = candidates.group_by(by).agg(pl.col(time_column).min().alias(first_seen))
    made = made.unique(key, keep="first")
    fixed = _MADE_TERMINAL if dimension == "terminals" else _MADE_OPERATOR
    return (
        made.with_columns(pl.lit(v).alias(c) for c, v in fixed.items())
        .with_columns(
            pl.lit(None, specs[c].dtype).alias(c)
            for c in specs
            if c not in made.columns and c not in fixed
        )
        .select(list(specs))
    )


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


def _checked(
    store: Store,
    table: TableMapping,
    mapping: Mapping,
    rows: pl.DataFrame,
    accepted: dict[str, pl.DataFrame],
    created: dict[str, pl.DataFrame],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows to load, and the rest (duplicates of stored rows with no reason, the
    quarantined with theirs). Dimension rows made for ``create_missing`` are added to
    ``created`` and ``accepted``."""
    name = table.table
    specs = contract_columns()[name]
    rows = rows.with_row_index(_ROW).with_columns(pl.col(_ROW).cast(pl.Int64))
    for column, rule in table.columns.items():
        if rule.kind == "operator_of":
            known = _known(
                store, "operators", accepted, ["terminal_id", "operator_no", "operator_id"]
            )
            rows = rows.join(
                known.rename(
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
            known = _known(store, looked, accepted, [dim_key, value]).unique(dim_key, keep="first")
            rows = rows.join(
                known.rename({dim_key: key, value: column})
                if value != dim_key
                else known.rename({dim_key: key}).with_columns(pl.col(key).alias(column)),
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
    pending = rows.filter(pl.col(_REASON).is_null())
    failures = contract_failures(name, pending.select(*specs, _ROW))
    rows = rows.join(
        failures.rename({"reason": "_c_reason", "detail": "_c_detail"}), on=_ROW, how="left"
    )
    rows = rows.with_columns(
        pl.coalesce(_REASON, "_c_reason").alias(_REASON),
        pl.coalesce(_DETAIL, "_c_detail").alias(_DETAIL),
    ).drop("_c_reason", "_c_detail")
    # terminals first: an operator is made only on a terminal that exists
    for dimension in sorted(table.create_missing, key=("terminals", "operators").index):
        made = _missing_rows(store, dimension, name, rows, accepted)
        if made is not None and made.height:
            _accept(accepted, dimension, made)
            _accept(created, dimension, made)
    # references: each row's merchant, terminal and operator exist (stored or loaded now)
    for column, dimension in REFERENCES.items():
        if column not in specs or key_column(name) == column:
            continue
        key = key_column(dimension)
        known_keys = _known(store, dimension, accepted, [key])[key]
        rows = _flag(
            rows,
            pl.col(column).is_not_null() & ~pl.col(column).is_in(known_keys.implode()),
            UNKNOWN_REASON[dimension],
            pl.format(f"{column}: '{{}}' is in no {dimension} row", pl.col(column)),
        )
    key = key_column(name)
    # the same key twice in this ingest's files: the first is kept, the others quarantined
    # (rows in the order read: files as given, lines in each; rows with a reason don't count)
    clean = pl.col(_REASON).is_null()
    later = clean & (pl.int_range(pl.len()).over(pl.when(clean).then(pl.col(key))) > 0)
    rows = rows.sort(_ROW)
    rows = _flag(
        rows,
        later,
        "duplicate_in_file",
        pl.format(f"{key} '{{}}' came before in this ingest", pl.col(key)),
    )
    stored_keys = store.read(name, columns=[key])[key].cast(pl.String)
    in_store = pl.col(key).is_in(stored_keys.implode())
    loading = rows.filter(pl.col(_REASON).is_null() & ~in_store)
    rest = rows.filter(pl.col(_REASON).is_not_null() | in_store)
    return loading, rest


def _quoted(quarantined: pl.DataFrame, raw_rows: MappingType[int, pl.DataFrame]) -> pl.DataFrame:
    """The raw row of each quarantined row as JSON (card numbers masked), by file and line."""
    quotes = []
    for (position,), own in quarantined.partition_by(_FILE, as_dict=True).items():
        rows = raw_rows[int(position)].join(own.select(LINE), on=LINE, how="semi")  # type: ignore[call-overload]
        quotes.append(
            rows.select(
                pl.lit(position, pl.Int32).alias(_FILE), LINE, pl.col(_RAW).struct.json_encode()
            )
        )
    return pl.concat(quotes)


def _next_ingest_id(store: Store) -> str:
    count = store.query("SELECT count(DISTINCT ingest_id) FROM ingested_files")[0][0]
    return f"ingest-{int(count) + 1:05d}"  # type: ignore[call-overload]


def _write(
    store: Store,
    mapping: Mapping,
    fresh: Iterable[FileReport],
    reports: list[FileReport],
    results: MappingType[str, tuple[pl.DataFrame, pl.DataFrame]],
    created: MappingType[str, pl.DataFrame],
    raw_rows: MappingType[int, pl.DataFrame],
) -> str:
    now = datetime.now().replace(microsecond=0)
    with store.transaction():
        store.ensure_ingest_tables()
        ingest_id = _next_ingest_id(store)
        for dimension, made in created.items():
            store.append(dimension, made.select(list(contract_columns()[dimension])))
        for table, (loaded, rest) in results.items():
            columns = list(contract_columns()[table])
            if loaded.height:
                store.append(table, loaded.select(columns))
            quarantined = rest.filter(pl.col(_REASON).is_not_null())
            if quarantined.height:
                files = pl.DataFrame(
                    {
                        _FILE: list(range(len(reports))),
                        "fingerprint": [r.fingerprint for r in reports],
                        "file_name": [r.file_name for r in reports],
                    },
                    schema={_FILE: pl.Int32, "fingerprint": pl.String, "file_name": pl.String},
                )
                quoted = _quoted(quarantined, raw_rows)
                store.append(
                    "quarantine",
                    quarantined.drop(_RAW, strict=False)
                    .join(quoted, on=[_FILE, LINE], how="left")
                    .join(files, on=_FILE, how="left")
                    .select(
                        pl.lit(ingest_id).alias("ingest_id"),
                        "fingerprint",
                        "file_name",
                        pl.col(LINE).alias("source_line"),
                        pl.lit(table).alias("target_table"),
                        pl.col(_REASON).alias("reason"),
                        pl.col(_DETAIL).fill_null("").alias("detail"),
                        pl.col(_RAW).alias("raw_row"),
                    ),
                )
        files_rows = pl.DataFrame(
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
        store.append("ingested_files", files_rows)
    return ingest_id


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

    The sources and the mapping are checked before the store is opened, so bad input never
    waits on nor takes the lock.
    """
    planned = plan(mapping, sources)
    path = Path(path)
    if not path.exists():
        # a new store is built beside its path and renamed into place when whole
        with Store.staged(path, append=False, purpose="ingest") as new:
            new.initialise(pin_key_fingerprint=digester.fingerprint, code_version=__version__)
            return ingest(
                new, mapping, sources, digester=digester, on_event=on_event, planned=planned
            )
    store = Store.open(path, purpose="ingest")
    try:
        store.check_pin_key(digester.fingerprint)
        return ingest(
            store, mapping, sources, digester=digester, on_event=on_event, planned=planned
        )
    finally:
        store.close()
