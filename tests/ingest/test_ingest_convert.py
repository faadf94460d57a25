"""Conversion of source strings: amounts exactly, times in their formats and zones, value maps,
lists in a cell, booleans, empty cells, defaults and constants; each failure with its reason."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import polars as pl
import pytest

from posaudit.ingest.contract import contract_columns
from posaudit.ingest.convert import converted, yuan_to_fen
from posaudit.ingest.mapping import parse_mapping


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1,234.56", 123456),
        ("12.3", 1230),
        ("-5", -500),
        ("+7.05", 705),
        ("0.01", 1),
        ("1234567.8", 123456780),
        ("12,345,678.90", 1234567890),
        ("92233720368547758.07", 9223372036854775807),  # the largest fen a BIGINT holds
        ("92233720368547758.08", None),  # one past it
        ("99999999999999999999999", None),
        ("1,2.3", None),
        ("12.345", None),
        ("1,23", None),
        ("12,3456", None),
        ("1.", None),
        (".5", None),
        ("1e3", None),
        ("¥12", None),
        ("", None),
    ],
)
def test_yuan_become_fen_exactly_or_null(text: str, fen: int | None) -> None:
    got = pl.DataFrame({"a": [text]}).select(yuan_to_fen(pl.col("a")))["a"][0]
    assert got == fen


def convert(
    table: str, column: str, rule: Any, cells: dict[str, list[str]], **head: Any
) -> pl.DataFrame:
    """One rule of a one-table mapping applied to literal cells: ``value`` and ``reason``."""
    mapping = parse_mapping(
        {
            "mapping": {"name": "t", **head},
            "tables": {
                table: {
                    "files": ["x.csv"],
                    "columns": {
                        c: "x" for c, s in contract_columns()[table].items() if not s.nullable
                    }
                    | {column: rule},
                }
            },
        },
        source="mapping t.toml",
    )
    spec = contract_columns()[table][column]
    result = converted(mapping.tables[table].columns[column], spec, mapping)
    # the cells ride along, as the source's columns do, so a constant spans every row
    frame = pl.DataFrame(cells)
    return frame.select(pl.all(), result.value.alias("value"), result.reason.alias("reason"))


def test_a_timestamp_from_a_date_column_and_a_time_column() -> None:
    rule = {"date": "d", "date_format": "%Y%m%d", "time": "t", "time_format": "%H%M%S"}
    got = convert(
        "transactions",
        "ts",
        rule,
        {"d": ["20240301", "20240230", ""], "t": ["081500", "081500", ""]},
    )
    assert got["value"].to_list() == [datetime(2024, 3, 1, 8, 15), None, None]
    assert got["reason"].to_list() == [None, "bad_timestamp", None]


def test_a_timestamp_in_its_format_and_moved_to_the_stores_zone() -> None:
    rule = {"column": "c", "format": "%d/%m/%Y %H:%M"}
    cells = {"c": ["01/03/2024 00:30", "2024-03-01 00:30"]}
    got = convert("transactions", "ts", rule, cells, timezone="UTC")
    # midnight in London is eight in the morning in Shanghai, where the store keeps its times
    assert got["value"].to_list() == [datetime(2024, 3, 1, 8, 30), None]
    assert got["reason"].to_list() == [None, "bad_timestamp"]


def test_iso_timestamps_and_times_by_default() -> None:
    cells = {"c": ["2024-03-01 08:15:00", "2024-03-01T08:15:00.250000", "yesterday"]}
    got = convert("transactions", "ts", "c", cells)
    assert got["value"].to_list() == [
        datetime(2024, 3, 1, 8, 15),
        datetime(2024, 3, 1, 8, 15, 0, 250000),
        None,
    ]
    got = convert("merchants", "opens_at", "c", {"c": ["08:00:00", "8 am"]})
    assert got["value"].to_list() == [time(8), None]
    assert got["reason"].to_list() == [None, "bad_timestamp"]


def test_an_offset_in_the_value_gives_its_own_zone() -> None:
    cells = {
        "c": [
            "2024-03-01T08:15:00+08:00",
            "2024-03-01 00:15:00.5Z",
            "2024-02-29T19:15:00-0500",
            "2024-03-01 08:15:00",  # no offset: the mapping's zone
            "2024-03-01T08:15:00+25:00",
        ]
    }
    # the source's zone is London, the store's Shanghai: the offsets win where they are given
    got = convert("transactions", "ts", "c", cells, timezone="Europe/London")
    assert got["value"].to_list() == [
        datetime(2024, 3, 1, 8, 15),
        datetime(2024, 3, 1, 8, 15, 0, 500000),
        datetime(2024, 3, 1, 8, 15),
        datetime(2024, 3, 1, 16, 15),
        None,
    ]
    assert got["reason"].to_list() == [None, None, None, None, "bad_timestamp"]
    rule = {"column": "c", "format": "%d/%m/%Y %H:%M %z"}
    got = convert("transactions", "ts", rule, {"c": ["01/03/2024 01:15 +0100", "01/03/2024"]})
    assert got["value"].to_list() == [datetime(2024, 3, 1, 8, 15), None]


def test_a_value_map_and_a_word_it_lacks() -> None:
    rule = {"column": "c", "values": {"消费": "sale", "退货": "refund"}}
    got = convert("transactions", "kind", rule, {"c": ["消费", " 退货 ", "冲正", ""]})
    assert got["value"].to_list() == ["sale", "refund", None, None]
    assert got["reason"].to_list() == [None, None, "unknown_value", "unknown_value"]


def test_empty_is_null_lets_an_empty_cell_through_a_value_map() -> None:
    rule = {"column": "c", "values": {"余额不足": "insufficient_funds"}, "empty_is_null": True}
    got = convert("transactions", "failure_reason", rule, {"c": ["余额不足", "", "卡过期"]})
    assert got["value"].to_list() == ["insufficient_funds", None, None]
    assert got["reason"].to_list() == [None, None, "unknown_value"]


def test_a_default_fills_an_empty_cell() -> None:
    rule = {"column": "c", "values": {"消费": "sale"}, "default": "sale"}
    got = convert("transactions", "kind", rule, {"c": ["", "消费", "x"]})
    assert got["value"].to_list() == ["sale", "sale", None]
    assert got["reason"].to_list() == [None, None, "unknown_value"]
    got = convert("transactions", "batch_no", {"column": "c", "default": 7}, {"c": ["", "3"]})
    assert got["value"].to_list() == [7, 3]


def test_a_list_in_one_cell_and_words_for_true_and_false() -> None:
    rule = {"column": "c", "contains": "退货", "separator": "|"}
    got = convert("operators", "can_refund", rule, {"c": ["查询|退货", "查询| 消费", "退货款"]})
    assert got["value"].to_list() == [True, False, False]
    rule = {"column": "c", "boolean": {"是": True, "否": False}}
    got = convert("merchants", "is_24h", rule, {"c": ["是", "否", "也许"]})
    assert got["value"].to_list() == [True, False, None]
    assert got["reason"].to_list() == [None, None, "unknown_value"]
    got = convert("merchants", "is_24h", "c", {"c": ["true", "FALSE", "1", "maybe"]})
    assert got["value"].to_list() == [True, False, True, None]


def test_integers_amounts_and_constants() -> None:
    got = convert("transactions", "trace_no", "c", {"c": ["12", "+3", "1.5", ""]})
    assert got["value"].to_list() == [12, 3, None, None]
    assert got["reason"].to_list() == [None, None, "bad_number", None]
    got = convert("transactions", "amount_fen", {"column": "c", "yuan": True}, {"c": ["1,2.3"]})
    assert got["reason"].to_list() == ["bad_amount"]
    got = convert("transactions", "channel", {"value": "account"}, {"c": ["a", "b"]})
    assert got["value"].to_list() == ["account", "account"]


def test_spaces_are_kept_when_the_rule_says_so() -> None:
    got = convert("operators", "operator_no", {"column": "c", "strip": False}, {"c": [" 01"]})
    assert got["value"].to_list() == [" 01"]
    assert convert("operators", "operator_no", "c", {"c": [" 01 "]})["value"].to_list() == ["01"]
