"""posaudit: fraud and audit analytics for POS terminals and their operators."""

from __future__ import annotations

__version__ = "0.1.0"
