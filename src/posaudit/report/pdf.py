"""The PDF: the report page through WeasyPrint (A4, page numbers and contents from the CSS).

Kept apart from the builder, with nothing heavier than WeasyPrint to import, so the builder
can lay the PDF out in a child process while it writes the other formats.
"""

from __future__ import annotations

from pathlib import Path


def write_pdf(html: str, path: Path) -> None:
    """Lay out ``html`` (the report page, print variant) and write it to ``path`` as PDF."""
    from weasyprint import HTML

    HTML(string=html, base_url=None).write_pdf(path)
