"""A store written in the layout a mapping describes: ``posaudit export --layout lakala-tms``.

The export is driven by the built-in mapping itself: each column rule of the mapping is
inverted (a copied column is written as it is, a value map word for word, fen as yuan, a
timestamp as its date and time columns, an operator as its terminal and number, booleans as
the words of a list or of a yes/no column), so what the export writes is what the mapping
reads back, and the two cannot disagree. Constants and look-ups are not written: the mapping
supplies them itself.

How the rules are inverted:

- a value map and a boolean map: the first word given for a value is the one written (a map
  may list synonyms for reading);
- ``yuan``: ``-1,234.56``, thousands separated, always two decimals, computed from the
  integer fen (never through a float);
- a timestamp, date or time: its ``format`` (strftime); ``%.f`` writes the fraction of a
  second only when there is one;
- ``operator_of``: the operator's own terminal and number, from the store's operators; where
  the row names no operator (a login with an unknown number) other rules fill those columns;
- ``contains`` + ``separator``: the words of the true flags, joined in the mapping's order;
- several rules writing one source column (a terminal that is both the row's and its
  operator's) must agree on every row, or the export stops: the layout could not carry the
  difference.

The first file pattern of a table names its export file; a ``*`` in it stands for the month
(``YYYYMM``) of the rows' event time, one file per month (in a dimension's pattern, nothing).
Files are CSV in the mapping's encoding, comma-delimited unless the mapping says otherwise,
quoted where needed, CRLF line ends; free text goes through
:func:`posaudit.untrusted.csv_safe`.

Beside the columns the mapping reads, a layout may carry columns for the analyst that the
mapping ignores: the lakala-tms transaction detail shows the masked card number (卡号), see
:func:`masked_card_numbers`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any, Final

import polars as pl
import polars.selectors as cs

from posaudit.ingest.mapping import (
    ColumnRule,
    IngestError,
    Mapping,
    TableMapping,
    builtin_mappings,
    load_mapping,
)
from posaudit.store import Store
from posaudit.store.catalogue import EVENT_TIME_COLUMNS, key_column
from posaudit.untrusted import csv_safe

# Channels paid by card: the only rows whose masked card number a portal shows.
CARD_CHANNELS: Final = ("debit_card", "credit_card")
# Issuer identification numbers in UnionPay's 62 range, by card type: debit (Agricultural
# Bank 622848, China Construction Bank 621700, ICBC 622202) and numbers of the 625 credit range.
DEBIT_BINS: Final = ("622848", "621700", "622202")
CREDIT_BINS: Final = ("625802", "625906", "625965")
MASK: Final = "******"
# Rows of an event table read and written at a time (whole days): memory stays flat whatever
# the store's size.
CHUNK_ROWS: Final = 250_000


class LayoutError(IngestError):
    """A store the layout cannot carry, or a layout that does not exist: one line (exit 2)."""


def layout_names() -> tuple[str, ...]:
    """The built-in mappings a store can be exported in."""
    return builtin_mappings()


def load_layout(name: str) -> Mapping:
    """The built-in mapping ``name``, checked; LayoutError naming the choices if unknown."""
    if name not in layout_names():
        msg = f"unknown layout {name!r}: choose from {', '.join(layout_names())}"
        raise LayoutError(msg)
    return load_mapping(name)


# -- masked card numbers ----------------------------------------------------------------------
def masked_card_number(token: str, channel: str) -> str:
    """The masked card number (first 6, ``******``, last 4) an export shows for a card token.

    The simulated store keeps card tokens only, so the number is derived from the token: a
    SHA-256 of it picks the issuer number among the channel's (debit or credit) and the last
    four digits. The same token on the same card type always shows the same number; no full
    card number exists anywhere to be masked.

    >>> masked_card_number("C10136236", "debit_card")
    '622848******8486'
    >>> masked_card_number("C10136236", "credit_card")
    '625802******8486'
    """
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    bins = DEBIT_BINS if channel == "debit_card" else CREDIT_BINS
    issuer = bins[int.from_bytes(digest[:8], "big") % len(bins)]
    last_four = int.from_bytes(digest[8:16], "big") % 10_000  # the same whatever the card type
    return f"{issuer}{MASK}{last_four:04d}"


def masked_card_numbers(transactions: pl.DataFrame) -> pl.Series:
    """卡号 of each transaction: masked for card channels with a token, else empty."""
    cards = transactions.select(
        pl.col("card_token").cast(pl.String), pl.col("channel").cast(pl.String)
    )
    is_card = pl.col("channel").is_in(CARD_CHANNELS) & pl.col("card_token").is_not_null()
    pairs = cards.filter(is_card).unique()
    numbers = pairs.with_columns(
        pl.Series(
            "number",
            [masked_card_number(t, c) for t, c in pairs.iter_rows()],
            dtype=pl.String,
        )
    )
    joined = cards.join(numbers, on=["card_token", "channel"], how="left", maintain_order="left")
    return joined.get_column("number").alias("卡号")


# Columns a layout shows that its mapping does not read: (name, after which column, values).
EXTRA_COLUMNS: Final[
    MappingType[str, MappingType[str, tuple[tuple[str, str, Callable[..., pl.Series]], ...]]]
] = {
    "lakala-tms": {"transactions": (("卡号", "手续费(元)", masked_card_numbers),)},
}


# -- inverting the rules ----------------------------------------------------------------------
def yuan(fen: pl.Expr) -> pl.Expr:
    """Integer fen as yuan text with thousands separators and two decimals, exactly.

    >>> pl.select(yuan(pl.lit(-123456789))).item()
    '-1,234,567.89'
    """
    whole = (fen.abs() // 100).cast(pl.String)
    grouped = (
        whole.str.reverse().str.replace_all(r"(\d{3})", "${1},").str.strip_suffix(",").str.reverse()
    )
    cents = (fen.abs() % 100).cast(pl.String).str.zfill(2)
    sign = pl.when(fen < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.when(fen.is_not_null()).then(pl.concat_str([sign, grouped, pl.lit("."), cents]))


def _inverse(words: MappingType[str, Any]) -> dict[Any, str]:
    """Value -> the first word the map gives for it."""
    inverse: dict[Any, str] = {}
    for word, value in words.items():
        inverse.setdefault(value, word)
    return inverse


@dataclass
class _Written:
    """The source columns of one table being built, in file order; each written once, or
    again only with the same values."""

    frame: pl.DataFrame
    table: str
    key: str
    columns: dict[str, pl.Series]
    text: set[str]  # copied text, made csv-safe

    def put(self, name: str, values: pl.Series) -> None:
        values = values.cast(pl.String).alias(name)
        if name not in self.columns:
            self.columns[name] = values
            return
        held = self.columns[name]
        differ = held.is_not_null() & values.is_not_null() & (held != values)
        if differ.any():
            row = self.frame.get_column(self.key).filter(differ)[0]
            msg = (
                f"the layout cannot carry {self.table} row {row}: two of its values go to the "
                f"column {name} and differ ({held.filter(differ)[0]!r}, "
                f"{values.filter(differ)[0]!r})"
            )
            raise LayoutError(msg)
        self.columns[name] = held.fill_null(values)


def _timestamps(values: pl.Series, layout: Mapping) -> pl.Series:
    if layout.timezone == layout.store_timezone or values.dtype != pl.Datetime("us"):
        return values
    zoned = values.dt.replace_time_zone(layout.store_timezone, ambiguous="earliest")
    return zoned.dt.convert_time_zone(layout.timezone).dt.replace_time_zone(None)


def _source_table(
    frame: pl.DataFrame, table: TableMapping, layout: Mapping, operators: pl.DataFrame
) -> pl.DataFrame:
    """``frame`` (rows of the store's ``table``) as the source columns the mapping reads."""
    frame = frame.with_columns((cs.categorical() | cs.enum()).cast(pl.String))
    out = _Written(frame, table.table, key_column(table.table), {}, set())
    lists: dict[str, list[tuple[str, str]]] = {}  # source column -> (flag column, word)
    separators: dict[str, str] = {}
    for contract, rule in table.columns.items():
        where = f"{layout.source}: tables.{table.table}.columns.{contract}"
        if rule.kind == "value":
            found = frame.get_column(contract).drop_nulls().unique().to_list()
            if any(str(value) != str(rule.value) for value in found):
                msg = f"the layout cannot carry {table.table}.{contract}: {where} is a constant"
                raise LayoutError(msg)
        elif rule.kind == "lookup":
            continue  # the mapping finds the value through the key column, written on its own
        elif rule.kind == "operator_of":
            assert rule.terminal is not None and rule.operator_no is not None
            own = frame.select(contract).join(
                operators,
                left_on=contract,
                right_on="operator_id",
                how="left",
                maintain_order="left",
            )
            out.put(rule.terminal, own.get_column("terminal_id"))
            out.put(rule.operator_no, own.get_column("operator_no"))
        elif rule.kind == "date_time":
            assert rule.date is not None and rule.time is not None
            stamps = _timestamps(frame.get_column(contract), layout)
            out.put(rule.date, stamps.dt.strftime(rule.date_format or "%Y-%m-%d"))
            out.put(rule.time, stamps.dt.strftime(rule.time_format or "%H:%M:%S"))
        elif rule.contains is not None:
            assert rule.column is not None and rule.separator is not None
            if rule.column not in lists:
                out.put(rule.column, pl.Series([None] * frame.height, dtype=pl.String))
            lists.setdefault(rule.column, []).append((contract, rule.contains))
            separators[rule.column] = rule.separator
        else:
            assert rule.column is not None
            out.put(rule.column, _column(frame, contract, rule, layout, where))
            converted = (rule.yuan, rule.integer, rule.values, rule.boolean, rule.format)
            if not any(converted):
                out.text.add(rule.column)
    for source, flags in lists.items():
        words = frame.select(
            pl.concat_list([pl.when(pl.col(flag)).then(pl.lit(word)) for flag, word in flags])
            .list.drop_nulls()
            .list.join(separators[source])
        ).to_series()
        out.put(source, words)
    extras = EXTRA_COLUMNS.get(layout.name, {}).get(table.table, ())
    names = list(out.columns)
    for name, after, values in extras:
        out.put(name, values(frame))
        names.insert(names.index(after) + 1 if after in names else len(names), name)
    written = pl.DataFrame([out.columns[name] for name in names])
    safe = csv_safe(written.select(sorted(out.text)))
    return written.with_columns(safe.get_columns())


def _column(
    frame: pl.DataFrame, contract: str, rule: ColumnRule, layout: Mapping, where: str
) -> pl.Series:
    values = frame.get_column(contract)
    if rule.values is not None:
        inverse = _inverse(rule.values)
        missing = sorted(set(values.drop_nulls().unique().to_list()) - set(inverse))
        if missing:
            msg = f"the store's {contract} holds {missing[0]!r}, for which {where} has no word"
            raise LayoutError(msg)
        return values.replace_strict(inverse, default=None, return_dtype=pl.String)
    if rule.boolean is not None:
        inverse = _inverse(rule.boolean)
        return values.replace_strict(inverse, default=None, return_dtype=pl.String)
    if rule.yuan:
        return frame.select(yuan(pl.col(contract))).to_series()
    if rule.format is not None:
        return _timestamps(values, layout).dt.strftime(rule.format)
    return values.cast(pl.String)


# -- writing files ----------------------------------------------------------------------------
def export_file_name(table: TableMapping) -> str:
    """The name of the table's export file: ``*`` is the month (YYYYMM) of an event table's
    rows, and matches nothing in a dimension's."""
    name = table.files[0]
    if any(mark in name for mark in "?[]") or name.count("*") > 1 or "/" in name:
        msg = f"table {table.table}: cannot name an export file after the pattern {name!r}"
        raise LayoutError(msg)
    if table.table not in EVENT_TIME_COLUMNS:
        return name.replace("*", "")  # rows without a time: one file, the pattern's plainest
    return name


class _CsvFiles:
    """The files of one export folder, opened on first write, each with its header."""

    def __init__(self, folder: Path, layout: Mapping):
        self.folder = folder
        self.layout = layout
        self.handles: dict[str, IO[bytes]] = {}

    def write(self, name: str, rows: pl.DataFrame) -> None:
        handle = self.handles.get(name)
        buffer = io.BytesIO()
        rows.write_csv(
            buffer,
            include_header=handle is None,
            separator=self.layout.delimiter or ",",
            line_terminator="\r\n",
            quote_style="necessary",
            null_value="",
        )
        if handle is None:
            handle = self.handles[name] = (self.folder / name).open("wb")
        handle.write(buffer.getvalue().decode("utf-8").encode(self.layout.encoding))

    def close(self) -> list[str]:
        for handle in self.handles.values():
            handle.close()
        return sorted(self.handles)


def _chunks(store: Store, table: str) -> Iterator[pl.DataFrame]:
    """The table's rows in time order, whole days of events up to about CHUNK_ROWS at a time
    (dimensions at once)."""
    key = key_column(table)
    time_column = EVENT_TIME_COLUMNS.get(table)
    if time_column is None:
        yield store.read(table).sort(key)
        return
    days = store.query(
        f"SELECT CAST({time_column} AS DATE) AS day, count(*) FROM {table} "
        "GROUP BY day ORDER BY day"
    )
    spans: list[tuple[date, date]] = []
    rows = 0
    for day, count in days:
        assert isinstance(day, date) and isinstance(count, int)
        if spans and rows + count <= CHUNK_ROWS:
            spans[-1] = (spans[-1][0], day)
            rows += count
        else:
            spans.append((day, day))
            rows = count
    for first, last in spans:
        until = last + timedelta(days=1)
        where = f"{time_column} >= DATE '{first}' AND {time_column} < DATE '{until}'"
        yield store.read(table, where=where).sort(time_column, key)


def _none(store: Store, table: TableMapping) -> pl.DataFrame:
    return store.read(table.table, where="false")


def write_layout(store: Store, folder: Path, layout: Mapping) -> list[str]:
    """Write every table the layout names into ``folder`` (which exists); returns the files."""
    operators = store.read("operators", columns=["operator_id", "terminal_id", "operator_no"])
    written = _CsvFiles(folder, layout)
    try:
        for table in layout.tables.values():
            name = export_file_name(table)
            if "*" not in name:  # one file, its header even when the table is empty
                written.write(name, _source_table(_none(store, table), table, layout, operators))
            for rows in _chunks(store, table.table):
                source = _source_table(rows, table, layout, operators)
                if "*" not in name:
                    written.write(name, source)
                    continue
                stamps = rows.get_column(EVENT_TIME_COLUMNS[table.table])
                months = _timestamps(stamps, layout).dt.strftime("%Y%m")
                for month in months.unique(maintain_order=True).to_list():
                    written.write(name.replace("*", month), source.filter(months == month))
    finally:
        names = written.close()
    return names
