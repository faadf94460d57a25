"""Colours that mean the same wherever a finding is shown: in the notebooks and the reports.

A module of its own below both, so that neither the notebooks nor the reports import the other
to agree on what a severity looks like.
"""

from __future__ import annotations

from typing import Final

# One warm hue darkening as severity rises, so the order reads in grey print and without
# colour vision. On white, critical (11:1) and high (4.9:1) stand out and carry white text;
# medium, low and info are light fills (1.6-2.5:1) that carry dark text (6.4:1 and more) and
# sit beside a legend or a label, never alone.
SEVERITY_COLORS: Final[dict[str, str]] = {
    "info": "#b8bec6",
    "low": "#f6c87a",
    "medium": "#f08a4b",
    "high": "#d1382d",
    "critical": "#7a0c1e",
}
