"""PIN findings are states: a night re-decides only the operators whose state changed, and
still equals a full run, the night a PIN passes the 90-day mark included."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pipeline_kit import append_days, comparable, copy, findings, frame, run_here

from posaudit.detect.policy import load_policy
from posaudit.rules import all_rules
from posaudit.run.plan import plan_run
from posaudit.store import Store

PIN_RULES = (
    *("weak_pins", "default_pins", "stale_pins", "shared_pins", "reused_pins"),
    "common_default_pins",
)
# operators given a PIN change 90 days before an hour after the data's end
CROSSING = 3


def _an_hour_after_the_data(path: Path) -> datetime:
    (last,) = frame(
        path,
        "SELECT max(ts) AS ts FROM (SELECT ts FROM transactions UNION ALL "
        "SELECT ts FROM login_events)",
    ).row(0)
    return last + timedelta(hours=1)


@pytest.fixture(scope="module")
def nights(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sample world, where a few operators changed their PIN 90 days before an hour after
    the data's end: audited in full, then a day appended and planned."""
    folder = tmp_path_factory.mktemp("pin-states")
    store = copy(sample_store, folder / "nightly.duckdb")
    changed_at = _an_hour_after_the_data(store) - timedelta(days=90)
    con = duckdb.connect(str(store))
    try:
        # active operators whose latest PIN event is older than the change to give them
        picked = [
            str(r[0])
            for r in con.execute(
                "SELECT p.operator_id FROM pin_events p JOIN operators o USING (operator_id) "
                "WHERE o.disabled_at IS NULL GROUP BY p.operator_id HAVING max(p.ts) < ? "
                "ORDER BY p.operator_id LIMIT ?",
                [changed_at - timedelta(days=1), CROSSING],
            ).fetchall()
        ]
        (next_id,) = con.execute(
            "SELECT max(CAST(substr(event_id, 2) AS BIGINT)) + 1 FROM pin_events"
        ).fetchone()  # type: ignore[misc]
        for i, operator in enumerate(picked):
            digest = hashlib.sha256(f"a strong PIN {operator}".encode()).hexdigest()
            con.execute(
                "INSERT INTO pin_events VALUES (?, ?, ?, 'change', ?, 'self')",
                [f"P{next_id + i}", changed_at, operator, digest],
            )
    finally:
        con.close()
    assert len(picked) == CROSSING
    first = run_here(store)
    append_days(store)
    opened = Store.open(store, read_only=True)
    try:
        plan = plan_run(opened, load_policy(), list(all_rules().values()))
    finally:
        opened.close()
    night = run_here(store)
    once = copy(store, folder / "once.duckdb")
    full = run_here(once, full=True)
    return {
        "store": store,
        "once": once,
        "picked": picked,
        "changed_at": changed_at,
        "plan": plan,
        "runs": (first, night, full),
    }


def _with_events_since(path: Path, since: datetime) -> set[str]:
    rows = frame(
        path,
        f"SELECT operator_id FROM pin_events WHERE ts >= TIMESTAMP '{since}' UNION "
        f"SELECT operator_id FROM operator_events WHERE ts >= TIMESTAMP '{since}'",
    )
    return set(rows.get_column("operator_id").to_list())


def test_a_night_re_decides_only_the_operators_whose_state_changed(
    nights: dict[str, object],
) -> None:
    plan = nights["plan"]
    assert plan.mode == "incremental", plan.reason  # type: ignore[attr-defined]
    scopes = plan.scopes  # type: ignore[attr-defined]
    evented = _with_events_since(nights["store"], plan.changed_from)  # type: ignore[arg-type,attr-defined]
    every = set(frame(nights["store"], "SELECT operator_id FROM operators")["operator_id"])  # type: ignore[arg-type]
    weak = scopes["weak_pins"].entities
    assert weak is not None and weak <= every and len(weak) < len(every)
    # the operators with a PIN or operator event, or added with the day: no others
    added = every - set(
        frame(nights["store"], "SELECT operator_id FROM kept_operators")["operator_id"]  # type: ignore[arg-type]
    )
    assert weak == (evented | added) & every
    # a stale PIN's finding changes the day it passes 90 days: those operators, too
    crossing = set(nights["picked"]) - evented  # type: ignore[arg-type]
    assert crossing, "every picked operator had an event on the new day"
    assert crossing <= scopes["stale_pins"].entities
    assert not crossing & weak
    # shared PINs compare a merchant's operators: their merchants
    assert scopes["shared_pins"].entity_key == "merchant_id"
    for name in PIN_RULES:
        assert name not in plan.rules_over_all_data  # type: ignore[attr-defined]


def test_the_night_a_pin_passes_90_days_its_stale_finding_opens(
    nights: dict[str, object],
) -> None:
    first, night, _ = nights["runs"]  # type: ignore[misc]
    assert night.mode == "incremental", night.reason
    changed_at: datetime = nights["changed_at"]  # type: ignore[assignment]
    stale = findings(nights["store"], "status = 'open' AND rule = 'stale_pins'")  # type: ignore[arg-type]
    for operator in nights["picked"]:  # type: ignore[attr-defined]
        mine = stale.filter(pl.col("entity_id") == operator)
        assert mine.height == 1, operator
        row = mine.row(0, named=True)
        assert row["window_start"] == changed_at + timedelta(days=90)
        assert row["window_end"] is None
        assert row["first_run_id"] == night.run_id != first.run_id
        assert f"90 days old on {row['window_start']:%Y-%m-%d}, still held" in row["summary"]


@pytest.mark.parametrize("rule", PIN_RULES)
def test_the_night_equals_a_full_run(nights: dict[str, object], rule: str) -> None:
    where = f"status = 'open' AND rule = '{rule}'"
    nightly = comparable(findings(nights["store"], where))  # type: ignore[arg-type]
    once = comparable(findings(nights["once"], where))  # type: ignore[arg-type]
    assert nightly.equals(once), rule


def test_open_pin_findings_carried_over_are_not_rewritten(nights: dict[str, object]) -> None:
    """A finding on an operator the night did not re-decide keeps its text and evidence."""
    plan = nights["plan"]
    weak = plan.scopes["weak_pins"].entities  # type: ignore[attr-defined]
    carried = findings(nights["store"], "status = 'open' AND rule = 'weak_pins'").filter(  # type: ignore[arg-type]
        ~pl.col("entity_id").is_in(sorted(weak))
    )
    assert carried.height > 0
    assert carried.get_column("window_end").null_count() > 0
    first, _, _ = nights["runs"]  # type: ignore[misc]
    assert set(carried.get_column("first_run_id")) == {first.run_id}
