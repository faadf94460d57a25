"""How the notebooks look: colours, type, the chart theme and the timeline's lanes, shared by
their charts and tables (a severity's colour is in posaudit.palette, shared with the reports).

Nothing here imports the rest of the notebook package, so every part of it can import this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

FONT: Final = "Noto Sans, DejaVu Sans, Helvetica Neue, Arial, sans-serif"
INK: Final = "#333333"
MUTED: Final = "#8c8c8c"
GRID: Final = "#e6e6e6"
HIGHLIGHT: Final = "#d62728"
THEME: Final = "posaudit"
WIDTH: Final = 560
# Event lanes of a finding's timeline, top to bottom (the lane names posaudit.notebook.drilldown
# gives its events).
LANES: Final = ("logins", "lockouts", "PIN events", "sales", "refunds", "voids", "transfers")

FAMILY_COLORS: Final[dict[str, str]] = {
    "logins": "#4c78a8",
    "pins": "#9467bd",
    "privileges": "#b279a2",
    "refunds": "#f58518",
    "sales": "#e45756",
    "ledger": "#72b7b2",
    "merchants": "#9d755d",
    "scores": "#54a24b",
}


def theme() -> dict[str, Any]:
    """The posaudit chart theme: quiet grids, left-aligned titles, one font everywhere."""
    axis = {
        "labelFont": FONT,
        "titleFont": FONT,
        "labelFontSize": 11,
        "titleFontSize": 11.5,
        "titleFontWeight": "normal",
        "labelColor": INK,
        "titleColor": INK,
        "gridColor": GRID,
        "domainColor": "#aaaaaa",
        "tickColor": "#aaaaaa",
    }
    return {
        "config": {
            "font": FONT,
            "background": "white",
            "padding": 8,
            "view": {"stroke": None, "continuousWidth": WIDTH, "continuousHeight": 240},
            "axis": axis,
            "legend": {
                "labelFont": FONT,
                "titleFont": FONT,
                "labelFontSize": 11,
                "titleFontSize": 11.5,
                "titleFontWeight": "normal",
                "labelColor": INK,
                "titleColor": INK,
            },
            "title": {
                "font": FONT,
                "fontSize": 14.5,
                "fontWeight": 600,
                "anchor": "start",
                "color": INK,
                "offset": 8,
                "subtitleFont": FONT,
                "subtitleFontSize": 11.5,
                "subtitleColor": "#555555",
                "subtitlePadding": 4,
            },
            "header": {
                "labelFont": FONT,
                "titleFont": FONT,
                "labelFontSize": 11.5,
                "labelColor": INK,
            },
            "text": {"font": FONT, "fontSize": 11, "color": INK},
            "bar": {"color": "#4c78a8"},
            "concat": {"spacing": 18},
        }
    }


def enable_theme() -> None:
    """Make :func:`theme` the theme of every chart in this kernel."""
    import altair as alt  # only a kernel that draws charts pays for Altair

    alt.theme.register(THEME, enable=True)(cast("Callable[[], alt.theme.ThemeConfig]", theme))
