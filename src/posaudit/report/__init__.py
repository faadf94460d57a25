"""Audit reports of a run: HTML, PDF, Excel, CSV and Parquet, in English or Chinese.

``build_report(db, out_dir, run_id=..., formats=..., lang=..., mask_operators=...)`` reads a
run's findings from the store and writes the report; charts live in :mod:`.charts`, words in
:mod:`.translations`, operator pseudonyms in :mod:`.pseudonyms`, the counts the report shows
in :mod:`.data`, and the PDF step in :mod:`.pdf`. Nothing here detects: it presents what
``posaudit run`` found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from posaudit.report.builder import (
        FORMATS,
        PDF_APPENDIX_LIMIT,
        Format,
        ReportResult,
        build_report,
        parse_formats,
    )
    from posaudit.report.data import ReportError

__all__ = [
    "FORMATS",
    "PDF_APPENDIX_LIMIT",
    "Format",
    "ReportError",
    "ReportResult",
    "build_report",
    "parse_formats",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: the PDF child process imports this package and needs none of it.
    if name == "ReportError":
        from posaudit.report import data

        return data.ReportError
    if name in __all__:
        from posaudit.report import builder

        return getattr(builder, name)
    msg = f"module 'posaudit.report' has no attribute {name!r}"
    raise AttributeError(msg)
