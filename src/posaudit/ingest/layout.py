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
(``YYYYMM``) of the rows' event time, one file per month. Files are CSV in the mapping's
encoding, comma-delimited unless the mapping says otherwise, quoted where needed, CRLF line
ends; free text goes through :func:`posaudit.untrusted.csv_safe`.

Beside the columns the mapping reads, a layout may carry columns for the analyst that the
mapping ignores: the lakala-tms transaction detail shows the masked card number (卡号), see
:func:`masked_card_numbers`.
"""

from __future__ import annotations

import hashlib
import io
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import IO, Any, Final

import polars as pl
import polars.selectors as cs

from posaudit.config import ConfigError
from posaudit.store import Store
from posaudit.store.catalogue import EVENT_TIME_COLUMNS, key_column
from posaudit.untrusted import csv_safe

# Channels paid by card: the only rows whose masked card number a portal shows.
CARD_CHANNELS: Final = ("debit_card", "credit_card")
# Issuer identification numbers in UnionPay's 62 range, by card type: debit (Agricultural
# Bank 622848, China Construction Bank 621700, ICBC 622202) and credit (625xxx).
DEBIT_BINS: Final = ("622848", "621700", "622202")
CREDIT_BINS: Final = ("625802", "625906", "625965")
MASK: Final = "******"
# Rows of an event table read and written at a time: one day of events keeps memory flat.
CHUNK: Final = timedelta(days=1)


class LayoutError(ConfigError):
    """A layout that cannot be written: one line for the user (exit 2)."""


def layout_names() -> list[str]:
    """The built-in mappings a store can be exported in."""
    folder = files("posaudit.ingest").joinpath("mappings")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


# -- the mapping, as the export reads it ------------------------------------------------------
@dataclass(frozen=True)
class TableLayout:
    """One target table of a mapping: its file patterns and its column rules (as in TOML)."""

    table: str
    files: tuple[str, ...]
    columns: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Layout:
    name: str
    encoding: str
    delimiter: str
    timezone: str
    store_timezone: str
    tables: tuple[TableLayout, ...]


def load_layout(name: str) -> Layout:
    """The built-in mapping ``name`` as a layout; LayoutError naming the choices if unknown."""
    names = layout_names()
    if name not in names:
        msg = f"unknown layout {name!r}: choose from {', '.join(names)}"
        raise LayoutError(msg)
    text = files("posaudit.ingest").joinpath("mappings", f"{name}.toml").read_bytes()
    data = tomllib.loads(text.decode("utf-8"))
    head = data.get("mapping", {})
    tables = tuple(
        TableLayout(
            table=table,
            files=tuple(spec["files"]),
            columns={
                column: {"column": rule} if isinstance(rule, str) else rule
                for column, rule in spec["columns"].items()
            },
        )
        for table, spec in data.get("tables", {}).items()
    )
    return Layout(
        name=head.get("name", name),
        encoding=head.get("encoding", "utf-8"),
        delimiter=head.get("delimiter", ","),
        timezone=head.get("timezone", "Asia/Shanghai"),
        store_timezone=head.get("store_timezone", "Asia/Shanghai"),
        tables=tables,
    )


# -- masked card numbers ----------------------------------------------------------------------
def masked_card_number(token: str, channel: str) -> str:
    """The masked card number (first 6, ``******``, last 4) an export shows for a card token.

    The simulated store keeps card tokens only, so the number is derived from the token: a
    SHA-256 of it picks the issuer number among the channel's (debit or credit) and the last
    four digits. The same token on the same card type always shows the same number; no full
    card number exists anywhere to be masked.

    >>> masked_card_number("C10136236", "debit_card")
    '622848******6745'
    """
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    bins = DEBIT_BINS if channel == "debit_card" else CREDIT_BINS
    number = int.from_bytes(digest[:8], "big")
    return f"{bins[number % len(bins)]}{MASK}{(number // len(bins)) % 10_000:04d}"


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
    Mapping[str, Mapping[str, tuple[tuple[str, str, Callable[..., pl.Series]], ...]]]
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


def _inverse(words: Mapping[str, Any]) -> dict[Any, str]:
    """Value -> the first word the map gives for it."""
    inverse: dict[Any, str] = {}
    for word, value in words.items():
        inverse.setdefault(value, word)
    return inverse


@dataclass
class _Written:
    """The source columns of one table being built: name -> values, and their kinds."""

    frame: pl.DataFrame
    table: str
    key: str
    columns: dict[str, pl.Series]
    text: set[str]  # copied text, made csv-safe

    def put(self, name: str, values: pl.Series, *, text: bool = False) -> None:
        values = values.cast(pl.String).alias(name)
        if text:
            self.text.add(name)
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


def _timestamps(values: pl.Series, layout: Layout) -> pl.Series:
    if layout.timezone == layout.store_timezone or values.dtype != pl.Datetime("us"):
        return values
    zoned = values.dt.replace_time_zone(layout.store_timezone, ambiguous="earliest")
    return zoned.dt.convert_time_zone(layout.timezone).dt.replace_time_zone(None)


def _source_table(
    frame: pl.DataFrame, table: TableLayout, layout: Layout, operators: pl.DataFrame
) -> pl.DataFrame:
    """``frame`` (rows of the store's ``table``) as the source columns the mapping reads."""
    frame = frame.with_columns((cs.categorical() | cs.enum()).cast(pl.String))
    out = _Written(frame, table.table, key_column(table.table), {}, set())
    lists: dict[str, list[tuple[str, str]]] = {}  # source column -> (flag column, word)
    separators: dict[str, str] = {}
    for contract, rule in table.columns.items():
        where = f"{layout.name}: tables.{table.table}.columns.{contract}"
        if "value" in rule:
            found = frame.get_column(contract).drop_nulls().unique().to_list()
            if any(value != rule["value"] for value in found):
                msg = f"the layout cannot carry {table.table}.{contract}: {where} is a constant"
                raise LayoutError(msg)
        elif "lookup" in rule:
            continue  # the mapping finds the value through the key column, written on its own
        elif "operator_of" in rule:
            source = rule["operator_of"]
            own = frame.select(contract).join(
                operators, left_on=contract, right_on="operator_id", how="left"
            )
            out.put(source["terminal"], own.get_column("terminal_id"))
            out.put(source["operator_no"], own.get_column("operator_no"))
        elif "date" in rule:
            stamps = _timestamps(frame.get_column(contract), layout)
            out.put(rule["date"], stamps.dt.strftime(rule["date_format"]))
            out.put(rule["time"], stamps.dt.strftime(rule["time_format"]))
        elif "contains" in rule:
            if rule["column"] not in lists:
                out.put(rule["column"], pl.Series([None] * frame.height, dtype=pl.String))
            lists.setdefault(rule["column"], []).append((contract, rule["contains"]))
            separators[rule["column"]] = rule["separator"]
        else:
            out.put(rule["column"], _column(frame, contract, rule, layout, where))
            if set(rule) <= {"column", "empty_is_null", "strip", "default"}:
                out.text.add(rule["column"])
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
    frame: pl.DataFrame, contract: str, rule: Mapping[str, Any], layout: Layout, where: str
) -> pl.Series:
    values = frame.get_column(contract)
    if "values" in rule:
        inverse = _inverse(rule["values"])
        missing = sorted(set(values.drop_nulls().unique().to_list()) - set(inverse))
        if missing:
            msg = f"the store's {contract} holds {missing[0]!r}, for which {where} has no word"
            raise LayoutError(msg)
        return values.replace_strict(inverse, default=None, return_dtype=pl.String)
    if "boolean" in rule:
        inverse = _inverse(rule["boolean"])
        return values.replace_strict(inverse, default=None, return_dtype=pl.String)
    if rule.get("yuan"):
        return frame.select(yuan(pl.col(contract))).to_series()
    if "format" in rule:
        return _timestamps(values, layout).dt.strftime(rule["format"])
    return values.cast(pl.String)


# -- writing files ----------------------------------------------------------------------------
def export_file_name(table: TableLayout) -> str:
    """The name of the table's export file (``*``: the month, YYYYMM)."""
    name = table.files[0]
    if any(mark in name for mark in "?[]") or name.count("*") > 1 or "/" in name:
        msg = f"table {table.table}: cannot name an export file after the pattern {name!r}"
        raise LayoutError(msg)
    if "*" in name and table.table not in EVENT_TIME_COLUMNS:
        msg = f"table {table.table}: {name!r} splits by month, but its rows have no time"
        raise LayoutError(msg)
    return name


class _CsvFiles:
    """The files of one export folder, opened on first write, each with its header."""

    def __init__(self, folder: Path, layout: Layout):
        self.folder = folder
        self.layout = layout
        self.handles: dict[str, IO[bytes]] = {}

    def write(self, name: str, rows: pl.DataFrame) -> None:
        handle = self.handles.get(name)
        buffer = io.BytesIO()
        rows.write_csv(
            buffer,
            include_header=handle is None,
            separator=self.layout.delimiter,
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
    """The table's rows in time order, a day of events at a time (dimensions at once)."""
    key = key_column(table)
    time_column = EVENT_TIME_COLUMNS.get(table)
    if time_column is None:
        yield store.read(table).sort(key)
        return
    bounds = store.query(f"SELECT min({time_column}), max({time_column}) FROM {table}")[0]
    if bounds[0] is None:
        return
    first, last = bounds
    assert isinstance(first, datetime) and isinstance(last, datetime)
    day = datetime.combine(first.date(), datetime.min.time())
    while day <= last:
        until = day + CHUNK
        where = f"{time_column} >= '{day.isoformat()}' AND {time_column} < '{until.isoformat()}'"
        rows = store.read(table, where=where)
        if rows.height:
            yield rows.sort(time_column, key)
        day = until


def _none(store: Store, table: TableLayout) -> pl.DataFrame:
    return store.read(table.table, where="false")


def write_layout(store: Store, folder: Path, layout: Layout) -> list[str]:
    """Write every table the layout names into ``folder`` (which exists); returns the files."""
    operators = store.read("operators", columns=["operator_id", "terminal_id", "operator_no"])
    written = _CsvFiles(folder, layout)
    try:
        for table in layout.tables:
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
