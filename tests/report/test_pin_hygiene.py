"""The report's PIN hygiene figures over open PIN findings, and over a run's findings written
before findings could be open."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl

from posaudit.report.data import pin_hygiene

DATA_TO = datetime(2026, 9, 30, 23, 59, 59)


def _finding(rule: str, operator: str, evidence: dict[str, object]) -> dict[str, object]:
    return {
        "family": "pins",
        "rule": rule,
        "entity_id": operator,
        "merchant_id": "M1",
        "merchant_name": "Shop",
        "terminal_id": "T1",
        "operator_role": "clerk",
        "evidence": json.dumps({"still_held": True, **evidence}),
    }


def _hygiene(*rows: dict[str, object]) -> object:
    return pin_hygiene(pl.DataFrame(list(rows)), operators_in_scope=10, data_to=DATA_TO)


def test_shared_groups_and_ages_of_open_findings() -> None:
    share = {"set_at": "2026-06-01T09:00:00", "shared_from": "2026-06-02T09:00:00"}
    hygiene = _hygiene(
        _finding("shared_pins", "A", {**share, "other_operator_ids": ["B"], "still_shared": True}),
        _finding("shared_pins", "B", {**share, "other_operator_ids": ["A"], "still_shared": True}),
        # C shared with D once; D changed its PIN: no longer shared
        _finding("shared_pins", "C", {**share, "other_operator_ids": ["D"], "still_shared": False}),
        _finding("default_pins", "E", {"set_at": "2026-07-02T10:00:00"}),
    )
    assert hygiene.shared_groups == 1 and hygiene.shared_operators == 2  # type: ignore[attr-defined]
    # an open default PIN is aged to the end of the data: 2 July to 30 September
    assert hygiene.default_pins.get_column("held_days").to_list() == [90]  # type: ignore[attr-defined]


def test_a_run_from_before_open_findings_still_shows_its_shared_groups() -> None:
    """Its findings ended on the data's last day and had no still_shared."""
    end = {"shared_until": "2026-09-30T23:59:59", "held_until": "2026-09-30T23:59:59"}
    hygiene = _hygiene(
        _finding("shared_pins", "A", {**end, "other_operator_ids": ["B"]}),
        _finding("shared_pins", "B", {**end, "other_operator_ids": ["A"]}),
    )
    assert hygiene.shared_groups == 1 and hygiene.shared_operators == 2  # type: ignore[attr-defined]
