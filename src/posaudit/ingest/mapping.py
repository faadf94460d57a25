"""Mapping files: which source columns feed which contract columns, and how they convert.

A mapping is a TOML file (docs/ingest.md is its reference) or the name of a built-in one,
shipped in ``posaudit/ingest/mappings/<name>.toml``. :func:`load_mapping` reads and checks
it whole before any source is read: an unknown key, a rule that mixes two kinds, a table or
contract column the store does not have, a required contract column left out, each is one
:class:`IngestError` naming the mapping file and the key.

Example
-------
>>> mapping = load_mapping("contract")
>>> mapping.tables["transactions"].columns["amount_fen"].column
'amount_fen'
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from posaudit.config import ConfigError, parse_toml, read_text_file
from posaudit.ingest.contract import TARGET_TABLES, ContractColumn, contract_columns

RuleKind = Literal["column", "date_time", "lookup", "operator_of", "value"]
Encoding = Literal["utf-8", "gb18030", "gbk"]

ENCODINGS: Final = ("utf-8", "gb18030", "gbk")
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
# Dimensions an event may create when it names one the store lacks (create_missing).
CREATABLE: Final = ("terminals", "operators")
# Tables a lookup can read a value from: the dimensions, keyed by their catalogue key.
LOOKUP_TABLES: Final = ("merchants", "terminals", "operators")

_MAPPING_KEYS: Final = frozenset(
    {"name", "description", "encoding", "delimiter", "timezone", "store_timezone"}
)
_TABLE_KEYS: Final = frozenset({"files", "create_missing", "columns"})
_COLUMN_OPTIONS: Final = frozenset(
    {
        "format",
        "yuan",
        "integer",
        "values",
        "contains",
        "separator",
        "boolean",
        "empty_is_null",
        "default",
        "strip",
        "optional",
    }
)
_KIND_KEYS: Final[MappingType[RuleKind, frozenset[str]]] = MappingProxyType(
    {
        "column": frozenset({"column"}) | _COLUMN_OPTIONS,
        "date_time": frozenset(
            {"date", "time", "date_format", "time_format", "empty_is_null", "strip"}
        ),
        "lookup": frozenset({"lookup", "key", "value"}),
        "operator_of": frozenset({"operator_of"}),
        "value": frozenset({"value"}),
    }
)


class IngestError(ConfigError):
    """Input ingest cannot use: a mapping, a source file or a value in it. The message is one
    line for the user, naming the file and the key, column or line (exit code 2)."""


@dataclass(frozen=True)
class ColumnRule:
    """How one contract column is made from a source row.

    ``kind`` says which of the rules it is: ``column`` (a source column, converted by the
    options), ``date_time`` (a timestamp from a date column and a time column), ``lookup``
    (a value of a dimension row reached through another contract column), ``operator_of``
    (an operator id from a terminal and an operator number) or ``value`` (a constant).
    """

    kind: RuleKind
    column: str | None = None
    format: str | None = None
    yuan: bool = False
    integer: bool = False
    values: MappingType[str, str] | None = None
    contains: str | None = None
    separator: str | None = None
    boolean: MappingType[str, bool] | None = None
    empty_is_null: bool = False
    default: Any = None
    strip: bool = True
    optional: bool = False  # a file without the source column: the contract column is null
    date: str | None = None
    time: str | None = None
    date_format: str | None = None
    time_format: str | None = None
    lookup: str | None = None
    key: str | None = None
    value: Any = None
    terminal: str | None = None
    operator_no: str | None = None

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The source columns the rule reads."""
        names = (self.column, self.date, self.time, self.terminal, self.operator_no)
        return tuple(n for n in names if n is not None)


@dataclass(frozen=True)
class TableMapping:
    """How one target table is filled: the source files that feed it and its column rules."""

    table: str
    files: tuple[str, ...]
    columns: MappingType[str, ColumnRule]
    create_missing: tuple[str, ...] = ()

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Every source column the table's rules read, each once, in rule order."""
        seen: dict[str, None] = {}
        for rule in self.columns.values():
            seen.update(dict.fromkeys(rule.source_columns))
        return tuple(seen)

    @property
    def optional_columns(self) -> frozenset[str]:
        """The source columns a file may lack (their contract columns are then null)."""
        return frozenset(r.column for r in self.columns.values() if r.optional and r.column)


@dataclass(frozen=True)
class Mapping:
    """A whole mapping: its settings and the tables it fills (in the contract's order)."""

    name: str
    source: str
    tables: MappingType[str, TableMapping]
    description: str = ""
    encoding: Encoding = "utf-8"
    delimiter: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    store_timezone: str = DEFAULT_TIMEZONE
    builtin: bool = field(default=False, compare=False)


def builtin_mappings() -> tuple[str, ...]:
    """The names of the mappings shipped with posaudit."""
    folder = files("posaudit.ingest").joinpath("mappings")
    return tuple(
        sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def load_mapping(spec: str | Path) -> Mapping:
    """The mapping named ``spec`` (a built-in name) or in the TOML file at ``spec``, checked.

    A name with no ``/`` and no ``.toml`` is a built-in mapping; anything else is a path.
    """
    text_spec = str(spec)
    is_path = isinstance(spec, Path) or "/" in text_spec or text_spec.endswith(".toml")
    if not is_path:
        if text_spec not in builtin_mappings():
            known = ", ".join(builtin_mappings())
            msg = f"no built-in mapping {text_spec!r} (built in: {known}); or give a TOML file"
            raise IngestError(msg)
        resource = files("posaudit.ingest").joinpath("mappings", f"{text_spec}.toml")
        text = resource.read_text(encoding="utf-8")
        source = f"built-in mapping {text_spec}"
        return parse_mapping(parse_toml(text, source=source, error=IngestError), source=source)
    path = Path(spec)
    text = read_text_file(path, what="mapping", error=IngestError)
    data = parse_toml(text, source=f"mapping {path}", error=IngestError)
    return parse_mapping(data, source=f"mapping {path}")


def _unknown(keys: object, allowed: frozenset[str], *, source: str, where: str) -> None:
    extra = sorted(set(keys) - allowed)  # type: ignore[call-overload]
    if extra:
        msg = f"{source}: unknown key '{where}{extra[0]}'"
        raise IngestError(msg)


def _typed(value: object, kind: type | tuple[type, ...], *, source: str, key: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        wanted = {"str": "a string", "bool": "true or false", "dict": "a table"}.get(names, names)
        msg = f"{source}: '{key}' must be {wanted}, not {value!r}"
        raise IngestError(msg)
    return value


def parse_mapping(data: MappingType[str, Any], *, source: str) -> Mapping:
    """A :class:`Mapping` from parsed TOML; :class:`IngestError` naming ``source`` and the key
    for any mistake."""
    _unknown(data, frozenset({"mapping", "tables"}), source=source, where="")
    head = _typed(data.get("mapping", {}), dict, source=source, key="mapping")
    _unknown(head, _MAPPING_KEYS, source=source, where="mapping.")
    if "name" not in head:
        msg = f"{source}: 'mapping.name' is required"
        raise IngestError(msg)
    name = _typed(head["name"], str, source=source, key="mapping.name")
    encoding = _typed(head.get("encoding", "utf-8"), str, source=source, key="mapping.encoding")
    if encoding.lower() not in ENCODINGS:
        msg = (
            f"{source}: 'mapping.encoding' must be one of {', '.join(ENCODINGS)}, not {encoding!r}"
        )
        raise IngestError(msg)
    delimiter = head.get("delimiter")
    if delimiter is not None:
        _typed(delimiter, str, source=source, key="mapping.delimiter")
        if len(delimiter) != 1 or delimiter in '"\r\n':
            msg = f"{source}: 'mapping.delimiter' must be one character, not {delimiter!r}"
            raise IngestError(msg)
    zones = {}
    for key in ("timezone", "store_timezone"):
        zone = _typed(head.get(key, DEFAULT_TIMEZONE), str, source=source, key=f"mapping.{key}")
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            msg = f"{source}: 'mapping.{key}' is {zone!r}, not a time zone (e.g. Asia/Shanghai)"
            raise IngestError(msg) from None
        zones[key] = zone
    tables = _typed(data.get("tables", {}), dict, source=source, key="tables")
    if not tables:
        msg = f"{source}: no [tables.<table>] section: a mapping fills at least one table"
        raise IngestError(msg)
    unknown = sorted(set(tables) - set(TARGET_TABLES))
    if unknown:
        msg = (
            f"{source}: unknown key 'tables.{unknown[0]}': ingest fills {', '.join(TARGET_TABLES)}"
        )
        raise IngestError(msg)
    parsed = {
        table: _table(table, tables[table], source=source)
        for table in TARGET_TABLES
        if table in tables
    }
    return Mapping(
        name=name,
        source=source,
        tables=MappingProxyType(parsed),
        description=_typed(
            head.get("description", ""), str, source=source, key="mapping.description"
        ),
        encoding=encoding.lower(),  # type: ignore[arg-type]
        delimiter=delimiter,
        timezone=zones["timezone"],
        store_timezone=zones["store_timezone"],
        builtin=source.startswith("built-in"),
    )


def _table(table: str, data: object, *, source: str) -> TableMapping:
    where = f"tables.{table}"
    body = _typed(data, dict, source=source, key=where)
    _unknown(body, _TABLE_KEYS, source=source, where=f"{where}.")
    globs = body.get("files")
    if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
        msg = (
            f"{source}: '{where}.files' must be a list of file-name globs, e.g. [\"{table}*.csv\"]"
        )
        raise IngestError(msg)
    create = body.get("create_missing", [])
    if not isinstance(create, list) or any(c not in CREATABLE for c in create):
        msg = f"{source}: '{where}.create_missing' must list some of {', '.join(CREATABLE)}"
        raise IngestError(msg)
    columns = _typed(body.get("columns", {}), dict, source=source, key=f"{where}.columns")
    contract = contract_columns()[table]
    unknown = sorted(set(columns) - set(contract))
    if unknown:
        msg = (
            f"{source}: unknown key '{where}.columns.{unknown[0]}': {table} has the columns "
            f"{', '.join(contract)}"
        )
        raise IngestError(msg)
    missing = [c for c, spec in contract.items() if not spec.nullable and c not in columns]
    if missing:
        msg = f"{source}: '{where}.columns' must give the required column {missing[0]!r}"
        raise IngestError(msg)
    rules = {
        name: _rule(columns[name], contract[name], table=table, source=source)
        for name in contract
        if name in columns
    }
    return TableMapping(table, tuple(globs), MappingProxyType(rules), tuple(create))


def _rule(data: object, spec: ContractColumn, *, table: str, source: str) -> ColumnRule:
    where = f"tables.{table}.columns.{spec.name}"
    if isinstance(data, str):
        data = {"column": data}
    body = _typed(data, dict, source=source, key=where)
    kinds = [
        kind
        for kind, marker in (
            ("column", "column"),
            ("date_time", "date"),
            ("lookup", "lookup"),
            ("operator_of", "operator_of"),
            ("value", "value"),
        )
        # in a lookup, `value` names the dimension's column, not a constant
        if marker in body and not (marker == "value" and "lookup" in body)
    ]
    if "time" in body and "date" not in body:
        msg = f"{source}: '{where}' gives 'time' without 'date': a timestamp from two columns"
        raise IngestError(msg)
    if len(kinds) != 1:
        msg = (
            f"{source}: '{where}' must have exactly one of column, date + time, lookup, "
            f"operator_of, value (has {', '.join(kinds) or 'none'})"
        )
        raise IngestError(msg)
    kind: RuleKind = kinds[0]  # type: ignore[assignment]
    _unknown(body, _KIND_KEYS[kind], source=source, where=f"{where}.")
    if kind == "column":
        return _column_rule(body, spec, where=where, source=source)
    if kind == "date_time":
        if spec.type != "timestamp":
            msg = f"{source}: '{where}': date + time makes a timestamp, {spec.name} is {spec.type}"
            raise IngestError(msg)
        if "time" not in body:
            msg = f"{source}: '{where}' gives 'date' without 'time'"
            raise IngestError(msg)
        strings = {
            k: _typed(body[k], str, source=source, key=f"{where}.{k}")
            for k in ("date", "time", "date_format", "time_format")
            if k in body
        }
        return ColumnRule(
            "date_time",
            date=strings["date"],
            time=strings["time"],
            date_format=strings.get("date_format", "%Y-%m-%d"),
            time_format=strings.get("time_format", "%H:%M:%S"),
            empty_is_null=_flag(body, "empty_is_null", where=where, source=source),
            strip=_flag(body, "strip", where=where, source=source, default=True),
        )
    if kind == "lookup":
        return _lookup_rule(body, spec, table=table, where=where, source=source)
    if kind == "operator_of":
        if spec.name != "operator_id":
            msg = f"{source}: '{where}': operator_of gives an operator_id, not {spec.name}"
            raise IngestError(msg)
        inner = _typed(body["operator_of"], dict, source=source, key=f"{where}.operator_of")
        _unknown(
            inner,
            frozenset({"terminal", "operator_no"}),
            source=source,
            where=f"{where}.operator_of.",
        )
        for k in ("terminal", "operator_no"):
            if k not in inner:
                msg = f"{source}: '{where}.operator_of' must give '{k}' (a source column)"
                raise IngestError(msg)
            _typed(inner[k], str, source=source, key=f"{where}.operator_of.{k}")
        return ColumnRule(
            "operator_of", terminal=inner["terminal"], operator_no=inner["operator_no"]
        )
    return ColumnRule("value", value=_constant(body["value"], spec, where=where, source=source))


def _flag(
    body: MappingType[str, Any], key: str, *, where: str, source: str, default: bool = False
) -> bool:
    return bool(_typed(body.get(key, default), bool, source=source, key=f"{where}.{key}"))


def _constant(value: object, spec: ContractColumn, *, where: str, source: str) -> object:
    """A constant of the mapping (``value`` or ``default``), checked against the column."""
    allowed: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "enum": str,
        "integer": int,
        "boolean": bool,
        "timestamp": str,
        "time": str,
    }
    _typed(value, allowed[spec.type], source=source, key=where)
    if spec.type == "enum" and value not in spec.enum:
        msg = f"{source}: '{where}' is {value!r}, not one of {', '.join(spec.enum)}"
        raise IngestError(msg)
    return value


def _column_rule(
    body: MappingType[str, Any], spec: ContractColumn, *, where: str, source: str
) -> ColumnRule:
    column = _typed(body["column"], str, source=source, key=f"{where}.column")
    options: dict[str, Any] = {}
    for key in ("yuan", "integer", "empty_is_null"):
        options[key] = _flag(body, key, where=where, source=source)
    options["strip"] = _flag(body, "strip", where=where, source=source, default=True)
    options["optional"] = _flag(body, "optional", where=where, source=source)
    if options["optional"] and not spec.nullable:
        msg = f"{source}: '{where}.optional': {spec.name} is required, a file must give it"
        raise IngestError(msg)
    if options["yuan"] and (spec.type != "integer" or not spec.name.endswith("_fen")):
        msg = f"{source}: '{where}.yuan': yuan converts to fen, and {spec.name} is not in fen"
        raise IngestError(msg)
    if options["integer"] and spec.type != "integer":
        msg = f"{source}: '{where}.integer': {spec.name} is {spec.type}, not an integer"
        raise IngestError(msg)
    if "format" in body:
        if spec.type not in ("timestamp", "time"):
            msg = f"{source}: '{where}.format' is for times; {spec.name} is {spec.type}"
            raise IngestError(msg)
        options["format"] = _typed(body["format"], str, source=source, key=f"{where}.format")
    if "values" in body:
        values = _typed(body["values"], dict, source=source, key=f"{where}.values")
        for raw, target in values.items():
            _constant(target, spec, where=f"{where}.values.{raw}", source=source)
        options["values"] = MappingProxyType(dict(values))
    if "contains" in body or "separator" in body:
        if spec.type != "boolean":
            msg = f"{source}: '{where}.contains' makes a boolean; {spec.name} is {spec.type}"
            raise IngestError(msg)
        for key in ("contains", "separator"):
            if key not in body:
                msg = (
                    f"{source}: '{where}' gives contains and separator together; '{key}' is missing"
                )
                raise IngestError(msg)
            options[key] = _typed(body[key], str, source=source, key=f"{where}.{key}")
        if not options["separator"]:
            msg = f"{source}: '{where}.separator' must not be empty"
            raise IngestError(msg)
    if "boolean" in body:
        if spec.type != "boolean":
            msg = (
                f"{source}: '{where}.boolean' maps words to true/false; {spec.name} is {spec.type}"
            )
            raise IngestError(msg)
        words = _typed(body["boolean"], dict, source=source, key=f"{where}.boolean")
        for word, truth in words.items():
            _typed(truth, bool, source=source, key=f"{where}.boolean.{word}")
        options["boolean"] = MappingProxyType(dict(words))
    chosen = [k for k in ("yuan", "integer") if options[k]]
    chosen += [k for k in ("values", "contains", "boolean", "format") if k in options]
    if len(chosen) > 1:
        msg = f"{source}: '{where}' has both {chosen[0]} and {chosen[1]}: one conversion per column"
        raise IngestError(msg)
    if "default" in body:
        options["default"] = _constant(
            body["default"], spec, where=f"{where}.default", source=source
        )
    return ColumnRule("column", column=column, **options)


def _lookup_rule(
    body: MappingType[str, Any], spec: ContractColumn, *, table: str, where: str, source: str
) -> ColumnRule:
    for k in ("key", "value"):
        if k not in body:
            msg = f"{source}: '{where}' is a lookup and must give '{k}'"
            raise IngestError(msg)
    looked = _typed(body["lookup"], str, source=source, key=f"{where}.lookup")
    if looked not in LOOKUP_TABLES:
        msg = (
            f"{source}: '{where}.lookup' must be one of {', '.join(LOOKUP_TABLES)}, not {looked!r}"
        )
        raise IngestError(msg)
    key = _typed(body["key"], str, source=source, key=f"{where}.key")
    value = _typed(body["value"], str, source=source, key=f"{where}.value")
    own = contract_columns()[table]
    if key not in own or key == spec.name:
        msg = f"{source}: '{where}.key' must name another column of {table}, not {key!r}"
        raise IngestError(msg)
    if value not in contract_columns()[looked]:
        msg = f"{source}: '{where}.value': {looked} has no column {value!r}"
        raise IngestError(msg)
    return ColumnRule("lookup", lookup=looked, key=key, value=value)
