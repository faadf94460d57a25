"""Text from the data, made safe for whoever reads it: a spreadsheet, a PDF, a web page.

Names of merchants and operators, card tokens and summaries come from the terminals' and the
merchants' own records, so they can hold what a reader's software acts on:

- a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
  a spreadsheet opening a CSV file (CSV injection): :func:`csv_safe` prefixes it with an
  apostrophe, as OWASP's guidance on CSV injection advises, so it shows as text;
- control characters (NUL, ESC, the C1 range) pass into HTML and CSV and confuse terminals and
  parsers: :func:`readable` drops them, and turns line breaks and tabs into spaces;
- bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) reorder the
  rest of a line: a name ending in U+202E prints a date after it backwards. :func:`readable`
  drops them; the HTML report also isolates each value (``<bdi>``), so right-to-left text
  stays inside its own cell.

Long unbroken words are the stylesheet's to break (``overflow-wrap: anywhere``).
"""

from __future__ import annotations

import re
from typing import Final

import polars as pl

# C0 and C1 controls and DEL, but not tab, line feed and carriage return (made spaces instead)
CONTROL_CHARACTERS: Final = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
BIDI_CONTROLS: Final = "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]"
LINE_BREAKS: Final = r"[\t\n\r\u2028\u2029]"
# Letters written right to left (Hebrew, Arabic, Syriac, Thaana, N'Ko and their presentation
# forms): a value holding one is isolated, so it cannot reorder the text around it.
RIGHT_TO_LEFT: Final = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
FIRST_STRONG_ISOLATE: Final = "\u2068"
POP_DIRECTIONAL_ISOLATE: Final = "\u2069"
# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
FORMULA_START: Final = r"^[=+\-@\t\r]"


_CONTROL: Final = re.compile(CONTROL_CHARACTERS)
_BIDI: Final = re.compile(BIDI_CONTROLS)
_BREAKS: Final = re.compile(LINE_BREAKS)


def readable(value: str) -> str:
    """``value`` without control or bidirectional characters, line breaks as spaces.

    The same as :func:`readable_text` on one value, with Python's own regular expressions: a
    page calls it for every value it shows, and a Series a value costs a report of 50,000
    findings minutes.

    >>> readable("Shop\\u202e 21:06 \\x1b[31mred\\x00")
    'Shop 21:06 [31mred'
    >>> readable("two\\nlines")
    'two lines'
    """
    return _BREAKS.sub(" ", _BIDI.sub("", _CONTROL.sub("", value)))


def shown(value: str) -> str:
    """:func:`readable`, and isolated (U+2068 ... U+2069) when it holds right-to-left text: how
    a value from the data is shown in a sentence, a page or a PDF.

    >>> shown("Café 12") == "Café 12"
    True
    >>> shown("\u05d7\u05e0\u05d5\u05ea 12") == "\u2068\u05d7\u05e0\u05d5\u05ea 12\u2069"
    True
    """
    text = readable(value)
    if RIGHT_TO_LEFT.search(text):
        return f"{FIRST_STRONG_ISOLATE}{text}{POP_DIRECTIONAL_ISOLATE}"
    return text


def readable_text(values: pl.Series) -> pl.Series:
    """:func:`readable` of every value of a string Series."""
    return (
        values.str.replace_all(CONTROL_CHARACTERS, "")
        .str.replace_all(BIDI_CONTROLS, "")
        .str.replace_all(LINE_BREAKS, " ")
    )


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell readable and none a spreadsheet formula.

    >>> names = ['=HYPERLINK("http://x","y")', "-5", "Ann\\x1b"]
    >>> safe = csv_safe(pl.DataFrame({"name": names, "n": [-5, 1, 2]}))
    >>> print(*safe.get_column("name"), safe.get_column("n").to_list(), sep="|")
    '=HYPERLINK("http://x","y")|'-5|Ann|[-5, 1, 2]
    """
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(_csv_cell(name) for name in text)


def _csv_cell(name: str) -> pl.Expr:
    cell = pl.col(name).map_batches(readable_text, return_dtype=pl.String)
    return pl.when(cell.str.contains(FORMULA_START)).then("'" + cell).otherwise(cell).alias(name)
