"""Source strings to contract values: Polars expressions, one per mapped column.

Each rule gives the converted value and, beside it, the reason a non-empty cell did not
convert (null when it did): a value that does not convert is null plus a reason for that row,
never an error for the file. Money in yuan is read as digits and becomes fen by integer
arithmetic only: a float cannot hold 0.1 yuan, and a sum of floats drifts.

Example
-------
>>> import polars as pl
>>> pl.DataFrame({"a": ["1,234.56", "-5", "1,2.3"]}).select(yuan_to_fen(pl.col("a")))["a"].to_list()
[123456, -500, None]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import polars as pl

from posaudit.ingest.contract import ContractColumn
from posaudit.ingest.mapping import ColumnRule, Mapping

# Decimal yuan: an optional sign, digits grouped by commas in threes (or not grouped at all),
# at most two decimals. "1,2.3" and "12.345" do not match.
YUAN_PATTERN: Final = r"^([+-]?)((?:[0-9]{1,3}(?:,[0-9]{3})+)|[0-9]+)(?:\.([0-9]{1,2}))?$"
# ISO 8601 as exports write it: a space or a T, seconds with or without a fraction.
ISO_TIMESTAMPS: Final = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
)
# ISO 8601 with the offset written in the value: +08:00, +0800 or Z.
ISO_OFFSET_TIMESTAMPS: Final = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
ISO_TIMES: Final = ("%H:%M:%S%.f", "%H:%M:%S", "%H:%M")
# strftime directives of an offset: a format holding one gives the zone in each value
_OFFSETS: Final = ("%z", "%:z", "%::z", "%#z")
TRUE_WORDS: Final = ("true", "t", "1", "yes", "y")
FALSE_WORDS: Final = ("false", "f", "0", "no", "n")


@dataclass(frozen=True)
class Converted:
    """A contract column's value and the reason its cell did not convert (null if it did).

    ``reason_of`` gives the reason from the value computed once already (a column holding
    it), so that a frame need not convert every cell twice.
    """

    value: pl.Expr
    reason_of: Callable[[pl.Expr], pl.Expr]

    @property
    def reason(self) -> pl.Expr:
        return self.reason_of(self.value)


def yuan_to_fen(amount: pl.Expr) -> pl.Expr:
    """Decimal yuan strings as integer fen, exactly; null where the text is not an amount.

    The digits before and after the point are joined as text and read as one integer, so
    no value ever passes through a float; one past the range of a 64-bit integer is null.
    """
    # the pattern only says whether the text is an amount: capturing its groups by regex
    # costs ten times as much as cutting a text already known to match
    matches = amount.str.contains(YUAN_PATTERN)
    parts = amount.str.strip_chars_start("+-").str.split_exact(".", 1).struct
    whole = parts.field("field_0").str.replace_all(",", "", literal=True)
    cents = parts.field("field_1").fill_null("").str.pad_end(2, "0")
    fen = pl.concat_str(whole, cents).cast(pl.Int64, strict=False)
    signed = pl.when(amount.str.starts_with("-")).then(-fen).otherwise(fen)
    return pl.when(matches).then(signed).name.keep()


def _timestamp(text: pl.Expr, formats: tuple[str, ...]) -> pl.Expr:
    return pl.coalesce(
        text.str.strptime(pl.Datetime("us"), f, strict=False, exact=True) for f in formats
    )


def _time(text: pl.Expr, formats: tuple[str, ...]) -> pl.Expr:
    return pl.coalesce(text.str.strptime(pl.Time, f, strict=False) for f in formats)


def _in_store_zone(stamp: pl.Expr, mapping: Mapping) -> pl.Expr:
    """A source's local time as the store's local time (merchant-local by default)."""
    if mapping.timezone == mapping.store_timezone:
        return stamp
    return (
        stamp.dt.replace_time_zone(mapping.timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone(mapping.store_timezone)
        .dt.replace_time_zone(None)
    )


def _with_offset(text: pl.Expr, formats: tuple[str, ...], mapping: Mapping) -> pl.Expr:
    """Times that carry their own offset, as the store's local time; ``timezone`` is not
    needed for them."""
    aware = pl.coalesce(
        text.str.strptime(pl.Datetime("us", "UTC"), f, strict=False, exact=True) for f in formats
    )
    return aware.dt.convert_time_zone(mapping.store_timezone).dt.replace_time_zone(None)


def _constant(value: object, spec: ContractColumn) -> pl.Expr:
    if spec.type == "timestamp":
        return _timestamp(pl.lit(value, pl.String), ISO_TIMESTAMPS)
    if spec.type == "time":
        return _time(pl.lit(value, pl.String), ISO_TIMES)
    return pl.lit(value, spec.dtype)


def _failure(code: str) -> pl.Expr:
    return pl.lit(code, pl.String)


def converted(rule: ColumnRule, spec: ContractColumn, mapping: Mapping) -> Converted:
    """The expression of a ``column``, ``date_time`` or ``value`` rule over the source frame
    (source columns as strings, surrounding spaces removed unless the rule says not to)."""
    if rule.kind == "value":
        return Converted(_constant(rule.value, spec), lambda _: pl.lit(None, pl.String))
    if rule.kind == "date_time":
        date, time = _cell(rule.date, rule), _cell(rule.time, rule)  # type: ignore[arg-type]
        joined = pl.concat_str(date, pl.lit("\x1f"), time)
        fmt = f"{rule.date_format}\x1f{rule.time_format}"
        value = _in_store_zone(joined.str.strptime(pl.Datetime("us"), fmt, strict=False), mapping)
        empty = (date == "") & (time == "")
        value = pl.when(empty).then(None).otherwise(value)
        return Converted(
            value, lambda v: pl.when(v.is_null() & ~empty).then(_failure("bad_timestamp"))
        )
    assert rule.column is not None  # the other kinds are resolved against dimensions
    cell = _cell(rule.column, rule)
    empty = cell == ""
    if rule.values is not None:
        table = dict(rule.values)
        value = cell.replace_strict(table, default=None, return_dtype=pl.String)
        reason = "unknown_value"
        if not rule.empty_is_null:
            # without empty_is_null an empty cell is a word like any other: mapped or unknown;
            # a default fills only empty cells, so the value it gives is never a failure
            value = _with_default(value, empty, rule, spec)
            kept = ~(empty & _has_default(rule))
            return Converted(value, lambda v: pl.when(v.is_null() & kept).then(_failure(reason)))
    elif rule.boolean is not None:
        value = cell.replace_strict(dict(rule.boolean), default=None, return_dtype=pl.Boolean)
        reason = "unknown_value"
    elif rule.contains is not None:
        words = cell.str.split(rule.separator).list.eval(pl.element().str.strip_chars())  # type: ignore[arg-type]
        value = words.list.contains(rule.contains)
        reason = "unknown_value"
    elif spec.type == "integer" and rule.yuan:
        value, reason = yuan_to_fen(cell), "bad_amount"
    elif spec.type == "integer":
        value = cell.str.replace(r"^\+", "").cast(pl.Int64, strict=False)
        reason = "bad_amount" if spec.name.endswith("_fen") else "bad_number"
    elif spec.type == "timestamp" and rule.format and any(z in rule.format for z in _OFFSETS):
        value, reason = _with_offset(cell, (rule.format,), mapping), "bad_timestamp"
    elif spec.type == "timestamp" and rule.format:
        value = _in_store_zone(_timestamp(cell, (rule.format,)), mapping)
        reason = "bad_timestamp"
    elif spec.type == "timestamp":
        # ISO 8601: a value without an offset is in the mapping's zone, one with it in its own
        local = _in_store_zone(_timestamp(cell, ISO_TIMESTAMPS), mapping)
        value = pl.coalesce(local, _with_offset(cell, ISO_OFFSET_TIMESTAMPS, mapping))
        reason = "bad_timestamp"
    elif spec.type == "time":
        value, reason = _time(cell, (rule.format,) if rule.format else ISO_TIMES), "bad_timestamp"
    elif spec.type == "boolean":
        lowered = cell.str.to_lowercase()
        value = (
            pl.when(lowered.is_in(TRUE_WORDS))
            .then(pl.lit(True))
            .when(lowered.is_in(FALSE_WORDS))
            .then(pl.lit(False))
        )
        reason = "unknown_value"
    else:
        # strings and enums pass as they are: the contract checks an enum's value
        value, reason = cell, ""
    value = pl.when(empty).then(None).otherwise(value)
    value = _with_default(value, empty, rule, spec)
    # a default fills only empty cells, which never fail: the value with it tells the same
    code = reason or "bad_row"
    if not reason:
        return Converted(value, lambda _: pl.when(pl.lit(False)).then(_failure(code)))
    return Converted(value, lambda v: pl.when(v.is_null() & ~empty).then(_failure(code)))


def _has_default(rule: ColumnRule) -> bool:
    return rule.default is not None


def _with_default(
    value: pl.Expr, empty: pl.Expr, rule: ColumnRule, spec: ContractColumn
) -> pl.Expr:
    if rule.default is None:
        return value
    return pl.when(empty).then(_constant(rule.default, spec)).otherwise(value)


def _cell(column: str, rule: ColumnRule) -> pl.Expr:
    """A source cell as text: missing is empty, and spaces around are removed unless kept."""
    cell = pl.col(column).fill_null("")
    return cell.str.strip_chars() if rule.strip else cell
