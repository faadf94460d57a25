"""The simulator's operator management: the events, the operators they leave, the privilege
scenarios and look-alikes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.store import Store

PRIVILEGE_ATTACKS = ("privilege_grant_abuse", "reset_then_refund")
PRIVILEGE_CONDITIONS = ("manage_and_refund", "ghost_operator", "common_default_pin")


def _frames(path: Path, *queries: str) -> list[pl.DataFrame]:
    store = Store.open(path, read_only=True)
    try:
        return [store.frame(query) for query in queries]
    finally:
        store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world with the privilege scenarios and look-alikes often enough to see each."""
    folder = tmp_path_factory.mktemp("privileges")
    scenario = folder / "often.toml"
    scenario.write_text(
        "[scenarios.privilege_grant_abuse]\nrate = 5.0\n"
        "[scenarios.reset_then_refund]\nrate = 5.0\n"
        "[scenarios.ghost_operator]\nrate = 0.05\n"
        "[lookalikes]\npromotion = 40.0\nstaff_turnover = 40.0\n"
    )
    path = folder / "w.duckdb"
    simulate(path, load_scenario(scenario, merchants=20, days=12), seed=3)
    return path


def test_every_operator_is_added_once_by_its_administrator_or_the_acquirer(world: Path) -> None:
    events, operators, terminals = _frames(
        world,
        "SELECT * FROM operator_events",
        "SELECT * FROM operators",
        "SELECT * FROM terminals",
    )
    added = events.filter(pl.col("kind") == "added")
    assert sorted(added.get_column("operator_id")) == sorted(operators.get_column("operator_id"))
    assert events.get_column("event_id").is_unique().all()
    admins = operators.filter(pl.col("role") == "admin").select(
        "terminal_id", pl.col("operator_id").alias("admin_id")
    )
    made = added.join(operators.select("operator_id", "terminal_id", "role"), on="operator_id")
    made = made.join(admins, on="terminal_id")
    by_admin = made.filter(pl.col("role") == "clerk")
    assert (by_admin.get_column("actor") == "admin").all()
    assert (by_admin.get_column("actor_operator_id") == by_admin.get_column("admin_id")).all()
    assert (made.filter(pl.col("role") == "admin").get_column("actor") == "acquirer").all()
    assert terminals.height > 0
    # grants and revokes name a permission, additions and deletions none
    named = events.get_column("permission").is_not_null()
    assert (named == events.get_column("kind").is_in(["granted", "revoked"])).all()


def test_the_operators_table_is_the_state_the_events_leave(world: Path) -> None:
    events, operators = _frames(
        world, "SELECT * FROM operator_events ORDER BY ts, event_id", "SELECT * FROM operators"
    )
    events = events.with_columns(pl.col("kind", "permission").cast(pl.String))
    last = (
        events.filter(pl.col("permission").is_in(["refund", "manage"]))
        .group_by("operator_id", "permission")
        .agg((pl.col("kind").last() == "granted").alias("held"))
    )
    state = operators.unpivot(
        index="operator_id", on=["can_refund", "can_manage"], variable_name="permission"
    ).with_columns(pl.col("permission").str.strip_prefix("can_"))
    clerks = operators.filter(pl.col("role") == "clerk").get_column("operator_id")
    compared = last.join(state, on=["operator_id", "permission"]).filter(
        pl.col("operator_id").is_in(clerks.implode())
    )
    assert compared.height > 20
    assert (compared.get_column("held") == compared.get_column("value")).all()
    deleted = events.filter(pl.col("kind") == "deleted").select("operator_id", "ts")
    assert deleted.height > 0
    disabled = deleted.join(operators.select("operator_id", "disabled_at"), on="operator_id")
    assert (disabled.get_column("ts") == disabled.get_column("disabled_at")).all()
    assert operators.filter(pl.col("disabled_at").is_not_null()).height == deleted.height


def test_the_scenarios_and_look_alikes_are_labelled_on_their_operators(world: Path) -> None:
    (labels,) = _frames(world, "SELECT scenario, entity_type, entity_id FROM ground_truth")
    scenarios = set(labels.get_column("scenario"))
    for name in (*PRIVILEGE_ATTACKS, "manage_and_refund", "ghost_operator"):
        assert name in scenarios, name
    assert {"benign:promotion", "benign:staff_turnover"} <= scenarios
    ours = labels.filter(
        pl.col("scenario").is_in([*PRIVILEGE_ATTACKS, *PRIVILEGE_CONDITIONS])
        | pl.col("scenario").str.starts_with("benign:promotion")
    )
    assert (ours.get_column("entity_type") == "operator").all()


def test_ghost_accounts_never_log_in(world: Path) -> None:
    (ghosts,) = _frames(
        world,
        "SELECT g.entity_id, count(l.event_id) AS logins FROM ground_truth g "
        "LEFT JOIN login_events l ON l.operator_id = g.entity_id "
        "WHERE g.scenario = 'ghost_operator' GROUP BY ALL",
    )
    assert ghosts.height > 0
    assert (ghosts.get_column("logins") == 0).all()


def test_without_fraud_only_the_conditions_stay(tmp_path: Path) -> None:
    path = tmp_path / "clean.duckdb"
    simulate(path, load_scenario(None, merchants=20, days=5), seed=3, fraud_on=False)
    (labels,) = _frames(path, "SELECT DISTINCT scenario FROM ground_truth")
    scenarios = set(labels.get_column("scenario"))
    assert not scenarios & set(PRIVILEGE_ATTACKS)
    assert "manage_and_refund" in scenarios


def test_appended_days_continue_the_events_and_update_the_operators(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    scenario = tmp_path / "turnover.toml"
    scenario.write_text(
        "[scenarios.privilege_grant_abuse]\nrate = 20.0\n"
        "[lookalikes]\npromotion = 300.0\nstaff_turnover = 60.0\n"
    )
    simulate(path, load_scenario(scenario, merchants=10, days=4), seed=8)
    (before,) = _frames(path, "SELECT count(*) AS n FROM operator_events")
    simulate(path, load_scenario(scenario, days=4), seed=0, append=True)
    events, operators = _frames(path, "SELECT * FROM operator_events", "SELECT * FROM operators")
    assert events.height > before.item()
    assert events.get_column("event_id").is_unique().all()
    assert operators.get_column("operator_id").is_unique().all()
    # every event names an operator of the table, the added ones of both simulations too
    assert set(events.get_column("operator_id")) <= set(operators.get_column("operator_id"))
    granted = events.filter((pl.col("kind") == "granted") & (pl.col("permission") == "refund"))
    refunders = set(operators.filter("can_refund").get_column("operator_id"))
    revoked_later = set(events.filter(pl.col("kind") == "revoked").get_column("operator_id"))
    assert set(granted.get_column("operator_id")) - revoked_later <= refunders
    # an appended day never grants a right that an earlier day granted and nobody revoked:
    # each change of a right changes it
    changes = (
        events.filter(pl.col("kind").is_in(["granted", "revoked"]))
        .sort("ts", "event_id")
        .with_columns(
            before=pl.col("kind").shift(1).over("operator_id", "permission", order_by="ts")
        )
    )
    assert changes.filter(pl.col("kind") == pl.col("before")).height == 0
