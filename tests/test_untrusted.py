"""Text from the data reaches a reader harmless: no formula, no control, no reordering."""

from __future__ import annotations

import csv
import io

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from posaudit.untrusted import FORMULA_START, csv_safe, readable

HOSTILE = [
    '=HYPERLINK("http://x","y")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "Shop\u202e 60:12 50-90-6202",
    "NUL\x00 and ESC\x1b[2J",
]


def test_hostile_names_reach_a_spreadsheet_as_text() -> None:
    frame = pl.DataFrame({"merchant_name": HOSTILE, "amount_fen": list(range(len(HOSTILE)))})
    text = csv_safe(frame).write_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        cell = row["merchant_name"]
        assert cell.startswith("'") or cell[:1] not in "=+-@\t\r", cell
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cell), cell
        assert "\u202e" not in cell
    assert [row["amount_fen"] for row in rows] == [str(n) for n in range(len(HOSTILE))]
    assert rows[6]["merchant_name"] == "Shop 60:12 50-90-6202"


@given(st.text())
def test_readable_text_has_no_control_or_bidi_character(value: str) -> None:
    shown = readable(value)
    assert not any(
        ord(c) < 32
        or 0x7F <= ord(c) <= 0x9F
        or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
        for c in shown
    )


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_no_csv_cell_starts_a_formula(values: list[str]) -> None:
    safe = csv_safe(pl.DataFrame({"v": values}))
    assert not safe.get_column("v").str.contains(FORMULA_START).any()


@given(st.text())
def test_one_value_reads_as_the_same_value_in_a_column(value: str) -> None:
    from posaudit.untrusted import readable_text

    assert readable(value) == readable_text(pl.Series([value])).item()
