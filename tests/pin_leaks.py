"""Plaintext PINs in a store, a folder of outputs or a log: the scan the PIN tests share.

The PINs come from :func:`posaudit.simulate.engine.world_pins`, the simulator's own plaintext
state for the world, never from a list the tests keep. Every column of every table is read
as text: strings, JSON, enums, numbers (a PIN stored as an integer), times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from posaudit.store import Store
from posaudit.store.catalogue import TABLE_NAMES

# Six digits standing alone: not the tail of an id (T000001, X123456), not the fraction of a
# time or a float (12:50:53.123456), not part of a longer number.
SIX_DIGITS = re.compile(r"(?<![0-9A-Za-z.])\d{6}(?![0-9])")
# The common defaults of four and eight digits (0000, 12345678) the same way; four digits
# standing alone are years too ("2026-09-01"), so a date's year is not read as a PIN.
OTHER_LENGTHS = re.compile(r"(?<![0-9A-Za-z.:-])(?:\d{4}(?![0-9:-])|\d{8}(?![0-9]))")
# Columns naming the operator a row is about (findings and labels name it as their entity).
OPERATOR_COLUMNS = ("operator_id", "entity_id")

# Amounts in fen: the schema's money columns, whatever their table (docs/domain.md).
MONEY_SUFFIX = "_fen"
Held = Mapping[str, frozenset[str]]  # operator id -> every PIN it held, six digits


def pins_in_text(text: str, pins: set[str] | frozenset[str]) -> set[str]:
    return (set(SIX_DIGITS.findall(text)) | set(OTHER_LENGTHS.findall(text))) & pins


def _as_text(frame: pl.DataFrame, column: str) -> pl.Series:
    values = frame.get_column(column)
    if isinstance(values.dtype, pl.List | pl.Struct | pl.Array | pl.Object):
        return pl.Series(column, [None if v is None else str(v) for v in values.to_list()])
    return values.cast(pl.String)


# Six digits as a JSON number ("refund_amount_fen": 102849): an amount or a count, unless it
# is the row's own operator's PIN.
JSON_NUMBER = re.compile(r'":\s*(\d{6})(?![0-9.])')
JSON_OPERATOR = re.compile(r'"operator_id":\s*"([^"]+)"')


def _pins_in_cells(
    text: pl.Series, operators: pl.Series | None, held: Held, every: frozenset[str]
) -> set[str]:
    """PINs in text cells: any PIN of the world as text, a JSON number only as its row's own."""
    pairs = pl.DataFrame({"cell": text, "operator": operators if operators is not None else None})
    hits: set[str] = set()
    for cell, operator in pairs.drop_nulls("cell").unique().iter_rows():
        numbers = set(JSON_NUMBER.findall(cell))
        # the row's operator: its own column, else the operator the JSON names
        named = [operator] if operator in held else JSON_OPERATOR.findall(cell)
        own = frozenset().union(*(held.get(o, frozenset()) for o in named))
        hits |= (pins_in_text(cell, every) - numbers) | (numbers & own)
    return hits


def pins_in_frame(frame: pl.DataFrame, held: Held) -> dict[str, set[str]]:
    """Column by column, the PINs ``frame`` holds.

    Text (strings, JSON, enums, times) is searched for any PIN of the world, but for numbers
    inside JSON, which count as numbers. A number is a PIN when it is one of the row's own
    operator's PINs (or any operator's, in a row that
    names none): amounts of six digits are common, and only this tells a coincidence from
    a PIN stored as a number. In a table that names no operator, money columns are amounts
    and are not searched.
    """
    every = frozenset().union(*held.values())
    owner = next((c for c in OPERATOR_COLUMNS if c in frame.columns), None)
    pins_of = pl.DataFrame(
        [(operator, pin) for operator, pins in held.items() for pin in pins],
        schema={"operator": pl.String, "pin": pl.String},
        orient="row",
    )
    found: dict[str, set[str]] = {}
    for column, dtype in frame.schema.items():
        text = _as_text(frame, column)
        if dtype.is_numeric():
            operator = pl.col(owner).cast(pl.String) if owner else pl.lit(None, pl.String)
            cells = frame.select(
                operator.alias("operator"),
                text.str.replace(r"\.0+$", "").alias("value"),
            ).filter(pl.col("value").str.contains(r"^\d{6}$"))
            is_named = pl.col("operator").is_in(list(held)).fill_null(False)
            own = cells.filter(is_named).join(
                pins_of, left_on=["operator", "value"], right_on=["operator", "pin"]
            )
            hits = set(own.get_column("value"))
            # a money column of a table that names no operator (a batch's sums) holds amounts:
            # among thousands of PINs some six-digit amount is one by chance
            if not (owner is None and column.endswith(MONEY_SUFFIX)):
                hits |= set(cells.filter(~is_named).get_column("value")) & every
        else:
            operators = frame.get_column(owner).cast(pl.String) if owner else None
            hits = _pins_in_cells(text, operators, held, every)
        if hits:
            found[column] = hits
    return found


def pins_in_store(path: Path, held: Held) -> dict[str, set[str]]:
    """``table.column`` -> the PINs it holds, over every table of the store."""
    store = Store.open(path, read_only=True)
    try:
        # a store made before the ingest tables has none to scan
        frames = {
            table: store.frame(f"SELECT * FROM {table}")
            for table in TABLE_NAMES
            if store.has_table(table)
        }
    finally:
        store.close()
    return {
        f"{table}.{column}": hits
        for table, frame in frames.items()
        for column, hits in pins_in_frame(frame, held).items()
    }


def pins_in_folder(root: Path, held: Held) -> dict[str, set[str]]:
    """``file`` (or ``file:column`` for Parquet) -> the PINs it holds, over every file below."""
    every = frozenset().union(*held.values())
    found: dict[str, set[str]] = {}
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    assert files, f"no files under {root}"
    for file in files:
        name = str(file.relative_to(root))
        if file.suffix == ".parquet":
            for column, hits in pins_in_frame(pl.read_parquet(file), held).items():
                found[f"{name}:{column}"] = hits
        elif hits := pins_in_text(file.read_bytes().decode("utf-8", errors="replace"), every):
            found[name] = hits
    return found
