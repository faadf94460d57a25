"""Tables as an analyst reads them: a title, readable values, the first rows and how many more.

Polars' own notebook display shows dtypes and quotes every string; :class:`Table` shows money
in CNY (columns ending ``_fen``), shares as percentages, times to the minute, lists joined,
and severities as coloured badges. It holds a frame the package computed and formats only:
nothing is decided here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import polars as pl

from posaudit.notebook.style import FONT
from posaudit.palette import SEVERITY_COLORS

# Column name endings that hold shares (0..1) and read as percentages.
_SHARE_SUFFIXES: Final = ("_rate", "_share", "rate", "share", "_percentile")
_MONEY_SUFFIX: Final = "_fen"
_NOWRAP_CHARS: Final = 32
# Columns whose values are severities, shown as coloured badges.
SEVERITY_COLUMNS: Final = frozenset({"severity", "worst"})


def _label(column: str) -> str:
    if column.endswith(_MONEY_SUFFIX):
        column = column.removesuffix(_MONEY_SUFFIX) + " (CNY)"
    return column.replace("_", " ")


def format_value(column: str, value: Any) -> str:
    """How one cell reads.

    Examples
    --------
    >>> format_value("amount_fen", 123456), format_value("refund_rate", 0.0312)
    ('1,234.56', '3.1 %')
    >>> at = datetime(2026, 9, 1, 8, 5, 9)
    >>> format_value("window_start", at), format_value("ts", at)
    ('2026-09-01 08:05', '2026-09-01 08:05:09')
    >>> format_value("ids", ["a", "b"])
    'a, b'
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        # an event's own time to the second; other times (windows, runs) to the minute
        return value.strftime("%Y-%m-%d %H:%M:%S" if column == "ts" else "%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, list | tuple):
        return ", ".join(format_value("", v) for v in value)
    if isinstance(value, int):
        if column.endswith(_MONEY_SUFFIX):
            return f"{value / 100:,.2f}"
        return f"{value:,}"
    if isinstance(value, float):
        if column.endswith(_SHARE_SUFFIXES):
            return f"{value * 100:.1f} %"
        if column.endswith(_MONEY_SUFFIX):
            return f"{value / 100:,.2f}"
        if column.endswith("_cny"):
            return f"{value:,.2f}"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _cell(column: str, value: Any) -> str:
    text = html.escape(format_value(column, value))
    if column in SEVERITY_COLUMNS and value in SEVERITY_COLORS:
        color = SEVERITY_COLORS[value]
        ink = "#ffffff" if value in ("high", "critical") else "#222222"
        return (
            f'<td style="text-align:left"><span style="background:{color};color:{ink};'
            f'border-radius:3px;padding:1px 6px">{text}</span></td>'
        )
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    align = "right" if numeric else "left"
    # short values (ids, times, amounts) stay on one line; sentences wrap
    wrap = "normal" if len(text) > _NOWRAP_CHARS else "nowrap"
    return f'<td style="text-align:{align};white-space:{wrap}">{text}</td>'


@dataclass(frozen=True)
class Table:
    """A titled table of a frame's first ``max_rows`` rows, for a notebook's display.

    ``empty`` is the sentence shown instead when the frame has no rows (a table of trace-number
    gaps with none says so rather than showing nothing).
    """

    frame: pl.DataFrame
    title: str
    max_rows: int = 15
    empty: str = "Nothing to show."
    columns: tuple[str, ...] = field(default=())

    @property
    def shown(self) -> pl.DataFrame:
        frame = self.frame.select(self.columns) if self.columns else self.frame
        return frame.head(self.max_rows)

    def _repr_html_(self) -> str:
        shown = self.shown
        title = html.escape(self.title)
        style = f"font-family:{FONT};font-size:12.5px;border-collapse:collapse;margin:4px 0 12px 0"
        head = (
            f'<caption style="caption-side:top;text-align:left;font-weight:600;font-size:13.5px;'
            f'padding:2px 0 6px 0">{title}</caption>'
        )
        if self.frame.height == 0:
            return (
                f'<div class="posaudit-table" data-title="{title}" data-rows="0" '
                f'style="font-family:{FONT}">'
                f'<div style="font-weight:600;font-size:13.5px">{title}</div>'
                '<div style="color:#555;padding:4px 0 12px '
                f'0">{html.escape(self.empty)}</div></div>'
            )
        header = "".join(
            '<th style="text-align:left;border-bottom:1px solid '
            f'#999">{html.escape(_label(c))}</th>'
            for c in shown.columns
        )
        body = "".join(
            "<tr>" + "".join(_cell(c, row[c]) for c in shown.columns) + "</tr>"
            for row in shown.iter_rows(named=True)
        )
        more = self.frame.height - shown.height
        note = (
            f'<div style="color:#666;font-size:12px">{self.frame.height:,} rows, the first '
            f"{shown.height} shown</div>"
            if more > 0
            else ""
        )
        return (
            f'<div class="posaudit-table" data-title="{title}" data-rows="{self.frame.height}">'
            "<table "
            f'style="{style}">{head}<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'
            f"{note}</div>"
        )

    def __repr__(self) -> str:
        if self.frame.height == 0:
            return f"{self.title}\n{self.empty}"
        return f"{self.title}\n{self.shown}"
