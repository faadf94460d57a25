"""Colours and type shared by the notebooks' charts and tables (severities: posaudit.palette)."""

from __future__ import annotations

from typing import Final

FONT: Final = "Noto Sans, DejaVu Sans, Helvetica Neue, Arial, sans-serif"
INK: Final = "#333333"
MUTED: Final = "#8c8c8c"
GRID: Final = "#e6e6e6"
HIGHLIGHT: Final = "#d62728"

FAMILY_COLORS: Final[dict[str, str]] = {
    "logins": "#4c78a8",
    "pins": "#9467bd",
    "refunds": "#f58518",
    "scores": "#54a24b",
}
