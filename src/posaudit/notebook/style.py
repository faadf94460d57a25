"""Colours and type shared by the notebooks' charts and tables, so a severity reads the same."""

from __future__ import annotations

from typing import Final

FONT: Final = "Noto Sans, DejaVu Sans, Helvetica Neue, Arial, sans-serif"
INK: Final = "#333333"
MUTED: Final = "#8c8c8c"
GRID: Final = "#e6e6e6"
HIGHLIGHT: Final = "#d62728"

SEVERITY_COLORS: Final[dict[str, str]] = {
    "info": "#a0a7b4",
    "low": "#6baed6",
    "medium": "#f2b134",
    "high": "#e8601c",
    "critical": "#a50f15",
}

FAMILY_COLORS: Final[dict[str, str]] = {
    "logins": "#4c78a8",
    "pins": "#9467bd",
    "refunds": "#f58518",
    "scores": "#54a24b",
}
