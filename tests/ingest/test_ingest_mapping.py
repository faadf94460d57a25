"""The mapping language: every rule read as written, every mistake one line naming the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from posaudit.ingest.contract import TARGET_TABLES, contract_columns
from posaudit.ingest.mapping import IngestError, builtin_mappings, load_mapping

# Every rule of the language, on the tables of a terminal-management export.
FULL = """
[mapping]
name = "tms"
description = "a terminal management system's export"
encoding = "gb18030"
delimiter = ";"
timezone = "UTC"
store_timezone = "Asia/Shanghai"

[tables.operators]
files = ["操作员*.csv"]
[tables.operators.columns]
operator_id = "操作员ID"
terminal_id = "终端编号"
merchant_id = { lookup = "terminals", key = "terminal_id", value = "merchant_id" }
operator_no = { column = "操作员号", strip = false }
name = "姓名"
role = { column = "角色", values = { "主管" = "admin", "收银员" = "clerk" } }
can_query = { column = "权限", contains = "查询", separator = "|" }
can_sale = { column = "权限", contains = "消费", separator = "|" }
can_refund = { column = "权限", contains = "退货", separator = "|" }
can_transfer = { column = "权限", contains = "转账", separator = "|" }
can_manage = { column = "管理", boolean = { "是" = true, "否" = false } }
created_at = { column = "创建时间", format = "%Y/%m/%d %H:%M" }
disabled_at = { column = "停用时间", empty_is_null = true }

[tables.transactions]
files = ["交易明细*.csv", "交易明细*.xlsx"]
create_missing = ["terminals"]
[tables.transactions.columns]
txn_id = "流水号"
ts = { date = "日期", date_format = "%Y%m%d", time = "时间", time_format = "%H%M%S" }
terminal_id = "终端编号"
merchant_id = { lookup = "terminals", key = "terminal_id", value = "merchant_id" }
operator_id = { operator_of = { terminal = "终端编号", operator_no = "操作员号" } }
kind = { column = "类型", values = { "消费" = "sale", "退货" = "refund" }, default = "sale" }
channel = { value = "account" }
amount_fen = { column = "金额(元)", yuan = true }
fee_fen = { column = "手续费(分)", integer = true }
trace_no = "凭证号"
batch_no = { value = 1 }
status = { value = "approved" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_built_in_contract_mapping_names_every_column_of_every_table() -> None:
    assert "contract" in builtin_mappings()
    mapping = load_mapping("contract")
    assert tuple(mapping.tables) == TARGET_TABLES
    for table, columns in contract_columns().items():
        rules = mapping.tables[table].columns
        assert {name: rule.column for name, rule in rules.items()} == {c: c for c in columns}
        assert f"{table}/*/*.parquet" in mapping.tables[table].files


def test_every_rule_is_read_as_written(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, FULL))
    assert (mapping.name, mapping.encoding, mapping.delimiter) == ("tms", "gb18030", ";")
    assert (mapping.timezone, mapping.store_timezone) == ("UTC", "Asia/Shanghai")
    ops = mapping.tables["operators"].columns
    assert ops["merchant_id"].kind == "lookup"
    assert (ops["merchant_id"].lookup, ops["merchant_id"].key) == ("terminals", "terminal_id")
    assert ops["operator_no"].strip is False and ops["name"].strip is True
    assert dict(ops["role"].values or {}) == {"主管": "admin", "收银员": "clerk"}
    assert (ops["can_refund"].contains, ops["can_refund"].separator) == ("退货", "|")
    assert dict(ops["can_manage"].boolean or {}) == {"是": True, "否": False}
    assert ops["created_at"].format == "%Y/%m/%d %H:%M"
    assert ops["disabled_at"].empty_is_null
    txns = mapping.tables["transactions"]
    assert txns.files == ("交易明细*.csv", "交易明细*.xlsx")
    assert txns.create_missing == ("terminals",)
    ts = txns.columns["ts"]
    assert (ts.kind, ts.date, ts.time, ts.date_format, ts.time_format) == (
        "date_time",
        "日期",
        "时间",
        "%Y%m%d",
        "%H%M%S",
    )
    op = txns.columns["operator_id"]
    assert (op.kind, op.terminal, op.operator_no) == ("operator_of", "终端编号", "操作员号")
    assert txns.columns["kind"].default == "sale"
    assert (txns.columns["channel"].kind, txns.columns["channel"].value) == ("value", "account")
    assert txns.columns["amount_fen"].yuan and txns.columns["fee_fen"].integer
    assert "card_token" not in txns.columns  # nullable: absent is null
    assert txns.source_columns[:3] == ("流水号", "日期", "时间")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[mapping]", "[mapping]\ncolour = 1"), "unknown key 'mapping.colour'"),
        (('name = "tms"', 'name = "tms"\n[extra]'), "unknown key 'extra'"),
        (("[tables.operators]\n", "[tables.operators]\nsize = 2\n"), "'tables.operators.size'"),
        (('operator_id = "操作员ID"', 'operator_id = "操作员ID"\nshoe = "x"'), "columns.shoe"),
        (('name = "姓名"\n', ""), "must give the required column 'name'"),
        (('trace_no = "凭证号"', 'trace_no = { column = "a", value = 1 }'), "exactly one of"),
        (('status = { value = "approved" }', 'status = { value = "ok" }'), "not one of"),
        (("yuan = true", "yuan = true, integer = true"), "both yuan and integer"),
        (('trace_no = "凭证号"', 'trace_no = { column = "a", yuan = true }'), "not in fen"),
        ((', separator = "|" }\ncan_sale', " }\ncan_sale"), "'separator' is missing"),
        (('encoding = "gb18030"', 'encoding = "latin-1"'), "mapping.encoding"),
        (('delimiter = ";"', 'delimiter = ";;"'), "one character"),
        (('timezone = "UTC"', 'timezone = "Mars/Olympus"'), "not a time zone"),
        (('files = ["操作员*.csv"]', "files = []"), "tables.operators.files"),
        (('lookup = "terminals", key = "terminal_id"', 'lookup = "shops", key = "x"'), "lookup"),
        (("[tables.operators]", "[tables.refunds]\n[tables.operators]"), "'tables.refunds'"),
        (('create_missing = ["terminals"]', 'create_missing = ["merchants"]'), "create_missing"),
        (('time = "时间", ', ""), "gives 'date' without 'time'"),
        (('"%Y/%m/%d %H:%M"', "7"), "'tables.operators.columns.created_at.format'"),
        (('name = "tms"', 'name = "tms'), "is not valid TOML"),
        (('trace_no = "凭证号"', 'trace_no = { column = "凭证号", optional = true }'), "required"),
    ],
)
def test_a_mistake_is_one_line_naming_the_file_and_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in FULL
    path = write(tmp_path, FULL.replace(old, new, 1))
    with pytest.raises(IngestError) as raised:
        load_mapping(path)
    text = str(raised.value)
    assert "\n" not in text and str(path) in text and message in text, text


def test_an_unknown_name_or_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no built-in mapping 'lakala-tmz'"):
        load_mapping("lakala-tmz")
    with pytest.raises(IngestError, match="does not exist"):
        load_mapping(tmp_path / "none.toml")


def test_the_example_mapping_of_the_documentation_loads(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs/ingest.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    mapping = load_mapping(write(tmp_path, example))
    assert mapping.name == "acme-tms"
    rules = mapping.tables["transactions"].columns
    assert rules["ts"].kind == "date_time" and rules["operator_id"].kind == "operator_of"


def test_an_optional_column_may_be_missing_from_a_file(tmp_path: Path) -> None:
    text = FULL.replace(
        'trace_no = "凭证号"',
        'trace_no = "凭证号"\naccount_ref = { column = "PAR", optional = true }',
    )
    rules = load_mapping(write(tmp_path, text)).tables["transactions"]
    assert rules.columns["account_ref"].optional and rules.optional_columns == {"PAR"}
    assert "PAR" in rules.source_columns
