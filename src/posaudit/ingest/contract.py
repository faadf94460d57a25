"""The data contract of each table ingest fills: types, enums, required columns and ranges.

The columns, their types, which may be null and the values of each ENUM are read from the
store's ``schema.sql``, the one definition of the store, so the contract cannot drift from
the tables it fills. The ranges are the contract's own: what a terminal or a payment
network can produce, beyond which a value is a damaged export rather than an event.
A dataframely schema per table checks a frame of converted values; each failing row gets the
reason code of the first rule it breaks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Final, Literal

import dataframely as dy
import polars as pl

from posaudit.store.catalogue import DIMENSION_TABLES, EVENT_TABLES

# What ingest fills: who is in the world and what happens; never labels, findings or runs.
TARGET_TABLES: Final = (*DIMENSION_TABLES, *EVENT_TABLES)

ColumnType = Literal["string", "integer", "timestamp", "time", "boolean", "enum"]

# Reason codes, as the quarantine table and the summary name them.
REASONS: Final = (
    "bad_row",
    "bad_timestamp",
    "bad_amount",
    "bad_number",
    "bad_digest",
    "unknown_value",
    "missing_value",
    "out_of_range",
    "unknown_merchant",
    "unknown_terminal",
    "unknown_operator",
    "duplicate_in_file",
)
Reason = str

# Ranges of the contract (inclusive). trace and batch numbers are the 6-digit counters of
# ISO 8583 fields 11 and the settlement batch; an amount is never negative (a refund or void
# says its direction by its kind), while a fee may be (a void returns the fee); a discount
# rate is basis points of 0.01 % (10000 would be a 100 % fee); a lockout threshold below 1
# would lock before any attempt.
_RANGES: Final[Mapping[tuple[str, str], tuple[int | None, int | None]]] = MappingProxyType(
    {
        ("merchants", "discount_rate_bp"): (0, 10_000),
        ("terminals", "lockout_threshold"): (1, 100),
        ("terminals", "lockout_minutes"): (0, 7 * 24 * 60),
        ("transactions", "amount_fen"): (0, None),
        ("transactions", "trace_no"): (0, 999_999),
        ("transactions", "batch_no"): (0, 999_999),
        ("batch_totals", "batch_no"): (0, 999_999),
        ("batch_totals", "txn_count"): (0, None),
        ("batch_totals", "first_trace"): (0, 999_999),
        ("batch_totals", "last_trace"): (0, 999_999),
        ("batch_totals", "sale_amount_fen"): (0, None),
        ("batch_totals", "void_amount_fen"): (0, None),
        ("batch_totals", "refund_amount_fen"): (0, None),
    }
)
# A PIN digest is a hex HMAC-SHA256: 64 lowercase hex digits, never anything a PIN could be.
DIGEST_PATTERN: Final = r"^[0-9a-f]{64}$"


@dataclass(frozen=True)
class ContractColumn:
    """One column of a target table as the contract sees it."""

    name: str
    type: ColumnType
    nullable: bool
    sql_type: str
    enum: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None

    @property
    def dtype(self) -> pl.DataType:
        """The Polars type a converted value has."""
        return {
            "string": pl.String(),
            "integer": pl.Int64(),
            "timestamp": pl.Datetime("us"),
            "time": pl.Time(),
            "boolean": pl.Boolean(),
            "enum": pl.String(),
        }[self.type]


def _schema_text() -> str:
    return files("posaudit.store").joinpath("schema.sql").read_text(encoding="utf-8")


_ENUM: Final = re.compile(r"CREATE TYPE (\w+) AS ENUM \(([^)]*)\)", re.S)
_TABLE: Final = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\);", re.S)
_COLUMN: Final = re.compile(r"^\s*(\w+) (\w+)(.*?),?\s*(?:--.*)?$")
_SQL_TYPES: Final[Mapping[str, ColumnType]] = MappingProxyType(
    {
        "VARCHAR": "string",
        "INTEGER": "integer",
        "BIGINT": "integer",
        "TIMESTAMP": "timestamp",
        "TIME": "time",
        "BOOLEAN": "boolean",
    }
)


@cache
def contract_columns() -> Mapping[str, Mapping[str, ContractColumn]]:
    """Each target table's columns, in the store's order, as the contract sees them."""
    enums = {
        name: tuple(re.findall(r"'([^']*)'", values))
        for name, values in _ENUM.findall(_schema_text())
    }
    tables: dict[str, Mapping[str, ContractColumn]] = {}
    for table, body in _TABLE.findall(_schema_text()):
        if table not in TARGET_TABLES:
            continue
        columns = {}
        for line in body.splitlines():
            found = _COLUMN.match(line)
            if found is None:
                continue
            name, sql_type, rest = found.groups()
            nullable = "NOT NULL" not in rest and "PRIMARY KEY" not in rest
            low, high = _RANGES.get((table, name), (None, None))
            kind: ColumnType = "enum" if sql_type in enums else _SQL_TYPES[sql_type]
            columns[name] = ContractColumn(
                name,
                kind,
                nullable,
                sql_type,
                enum=enums.get(sql_type, ()),
                low=low,
                high=high,
            )
        tables[table] = MappingProxyType(columns)
    return MappingProxyType({t: tables[t] for t in TARGET_TABLES})


def _column(spec: ContractColumn) -> dy.Column:
    if spec.type == "enum":
        return dy.Enum(list(spec.enum), nullable=spec.nullable)
    if spec.type == "integer":
        return dy.Int64(nullable=spec.nullable, min=spec.low, max=spec.high)
    if spec.type == "timestamp":
        return dy.Datetime(nullable=spec.nullable, time_unit="us")
    if spec.type == "time":
        return dy.Time(nullable=spec.nullable)
    if spec.type == "boolean":
        return dy.Bool(nullable=spec.nullable)
    if spec.name == "pin_digest":
        return dy.String(nullable=spec.nullable, regex=DIGEST_PATTERN)
    return dy.String(nullable=spec.nullable)


@cache
def table_schema(table: str) -> type[dy.Schema]:
    """The dataframely schema of a target table's converted rows."""
    columns = {name: _column(spec) for name, spec in contract_columns()[table].items()}
    # the row's index rides along, so a failing row can be told apart from its twin
    columns["row_index"] = dy.Int64(nullable=False, alias="_row")
    return type(f"{table.title().replace('_', '')}Contract", (dy.Schema,), columns)


def _reason_of(rule: str, spec: ContractColumn) -> Reason:
    """The reason code of a dataframely rule ``column|rule`` that a row broke."""
    if rule == "nullability":
        return "missing_value"
    if rule in ("min", "max"):
        return "out_of_range"
    if rule == "regex":
        return "bad_digest"
    if spec.type == "enum":
        return "unknown_value"
    return "bad_number"


def contract_failures(table: str, rows: pl.DataFrame) -> pl.DataFrame:
    """Each row of ``rows`` (converted values plus a ``_row`` index) that breaks the contract
    of ``table``: ``_row``, ``reason`` and ``detail`` (the column and the rule, in words).

    Rows with another reason already are not passed here: a row gets one reason, its first.
    """
    specs = contract_columns()[table]
    schema = table_schema(table)
    _valid, failure = schema.filter(rows.select(*specs, "_row"), cast=True)
    details = failure.details()
    if details.height == 0:
        return pl.DataFrame(schema={"_row": pl.Int64, "reason": pl.String, "detail": pl.String})
    rules = [c for c in details.columns if "|" in c and not c.startswith("_row|")]
    # a value of the wrong type (outside an enum) is the cause of the nulls it leaves behind
    rules.sort(key=lambda rule: not rule.endswith("|dtype"))
    parts = []
    for rule in rules:
        column, check = rule.split("|", 1)
        spec = specs[column]
        words = _failure_words(check, spec)
        value = pl.col(column).cast(pl.String).fill_null("")
        parts.append(
            pl.when(pl.col(rule) == "invalid").then(
                pl.struct(
                    reason=pl.lit(_reason_of(check, spec)),
                    detail=pl.format(f"{column}: {words}", value),
                )
            )
        )
    first = pl.coalesce(parts) if parts else pl.lit(None)
    return (
        details.select(pl.col("_row").cast(pl.Int64), first.alias("_failure"))
        .drop_nulls("_failure")
        .unnest("_failure")
    )


def _failure_words(check: str, spec: ContractColumn) -> str:
    if check == "nullability":
        return "required, empty{}"  # the value is the empty string
    if check == "min":
        return f"{{}} is below {spec.low}"
    if check == "max":
        return f"{{}} is above {spec.high}"
    if check == "regex":
        return "{} is not a hex SHA-256 digest"
    if spec.type == "enum":
        return "{} is not one of " + ", ".join(spec.enum)
    return "{} is not a valid " + spec.type
