"""Decisions in bulk: the rows of an analyst's spreadsheet, each checked on its own.

A file of decisions has the columns ``finding_id`` and ``decision``, and may have ``note``,
``status`` (``closed`` when absent or empty) and ``assignee``; other columns are ignored, so a
file written by ``posaudit review export --current`` reads back. An empty cell of an optional
column is no value. Each row is checked with the checks of a single decision
(:mod:`posaudit.review.values`); a bad row is refused with its line and the reason, and does not
stop the good rows. Whether the finding exists is checked when the rows are recorded
(:func:`posaudit.review.record.decide_many`), under the store's writer lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from posaudit.review.values import (
    Decision,
    ReviewError,
    ReviewStatus,
    checked_decision,
    checked_name,
    checked_note,
    checked_status,
)

REQUIRED_COLUMNS: Final = ("finding_id", "decision")
OPTIONAL_COLUMNS: Final = ("note", "status", "assignee")
# The column of the file's line numbers in the frame read from it (posaudit.ingest's name).
LINE_COLUMN: Final = "source_line"
# The column saying why a line did not split into the header's fields (null when it did).
BAD_ROW_COLUMN: Final = "bad_row"


@dataclass(frozen=True)
class DecisionRow:
    """One decision to record, checked: ``line`` is where the analyst finds it in the file."""

    line: int
    finding_id: str
    decision: Decision
    status: ReviewStatus = "closed"
    note: str | None = None
    assignee: str | None = None


@dataclass(frozen=True)
class RefusedRow:
    """A row not recorded, and why."""

    line: int
    reason: str

    def text(self) -> str:
        """The line the import prints for it: ``line 7: unknown decision 'fraud': ...``."""
        return f"line {self.line}: {self.reason}"


def missing_columns(columns: list[str]) -> list[str]:
    """The required columns a file's header lacks, in the order they are required."""
    return [name for name in REQUIRED_COLUMNS if name not in columns]


def _given(value: object) -> str | None:
    """A cell's text, None when the cell is empty."""
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def checked_row(line: int, cells: dict[str, object]) -> DecisionRow:
    """A row of the file as a decision to record, or ReviewError saying why it is refused."""
    finding_id = _given(cells.get("finding_id"))
    if finding_id is None:
        msg = "no finding_id"
        raise ReviewError(msg)
    decision = _given(cells.get("decision"))
    if decision is None:
        msg = "no decision"
        raise ReviewError(msg)
    status = _given(cells.get("status"))
    assignee = _given(cells.get("assignee"))
    return DecisionRow(
        line=line,
        finding_id=finding_id.strip(),
        decision=checked_decision(decision.strip()),
        status=checked_status(status.strip()) if status is not None else "closed",
        note=checked_note(_given(cells.get("note"))),
        assignee=checked_name(assignee, what="the assignee") if assignee is not None else None,
    )


def decision_rows(rows: pl.DataFrame) -> tuple[list[DecisionRow], list[RefusedRow]]:
    """The rows of a file of decisions, checked one by one, in the file's order.

    ``rows`` holds the file's columns as text, its line numbers (``source_line``) and, when a
    line did not split into the header's fields, why (``bad_row``).

    >>> rows = pl.DataFrame(
    ...     {
    ...         "finding_id": ["f1", "f2", "f3"],
    ...         "decision": ["false_positive", "fraud", "confirmed_fraud"],
    ...         "note": ["", "x", "seen on CCTV"],
    ...         "source_line": [2, 3, 4],
    ...     }
    ... )
    >>> good, bad = decision_rows(rows)
    >>> [(r.line, r.finding_id, r.status, r.note) for r in good]
    [(2, 'f1', 'closed', None), (4, 'f3', 'closed', 'seen on CCTV')]
    >>> bad[0].text().split(": a decision")[0]
    "line 3: unknown decision 'fraud'"
    """
    good: list[DecisionRow] = []
    bad: list[RefusedRow] = []
    wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in rows.columns]
    problems = (
        rows.get_column(BAD_ROW_COLUMN)
        if BAD_ROW_COLUMN in rows.columns
        else pl.Series([None] * rows.height, dtype=pl.String)
    )
    # a few thousand rows at most, each checked by the single decision's checks in Python
    for cells, problem in zip(
        rows.select(*wanted, LINE_COLUMN).iter_rows(named=True), problems, strict=True
    ):
        line = int(cells.pop(LINE_COLUMN))
        if problem is not None:
            bad.append(RefusedRow(line, problem))
            continue
        try:
            good.append(checked_row(line, cells))
        except ReviewError as exc:
            bad.append(RefusedRow(line, str(exc)))
    return good, bad
