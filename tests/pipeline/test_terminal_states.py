"""A terminal's lockout finding is a state kept by wrong PINs: a night re-decides only the
terminals named by a wrong PIN or a lockout in its window, those whose finding reaches it and
those added, reads the whole history of those terminals alone, and equals a full run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pipeline_kit import append_days, comparable, copy, findings, frame, run_here

from posaudit.detect.policy import load_policy
from posaudit.rules import all_rules
from posaudit.run.plan import RuleScope, plan_run
from posaudit.run.read import TableReader, read_inputs
from posaudit.store import Store

RULE = "lockout_not_enforced"


def _wrong_pins(
    con: duckdb.DuckDBPyConnection, terminal: str, at: datetime, count: int = 8
) -> None:
    """``count`` wrong PINs a minute apart on ``terminal`` by one of its merchant's operators,
    with no lockout (eight: more in a row than the policy's six allow)."""
    (operator, number) = con.execute(
        "SELECT o.operator_id, o.operator_no FROM operators o JOIN terminals t "
        "USING (merchant_id) WHERE t.terminal_id = ? ORDER BY o.operator_id LIMIT 1",
        [terminal],
    ).fetchone()  # type: ignore[misc]
    (next_id,) = con.execute(
        "SELECT max(CAST(substr(event_id, 2) AS BIGINT)) + 1 FROM login_events"
    ).fetchone()  # type: ignore[misc]
    for i in range(count):
        con.execute(
            "INSERT INTO login_events VALUES (?, ?, ?, ?, ?, 'wrong_pin')",
            [f"L{next_id + i}", at + timedelta(minutes=i), terminal, number, operator],
        )


@pytest.fixture(scope="module")
def nights(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sample world audited in full, a day appended with a run of wrong PINs on a terminal
    the first run found for an earlier run, and another on a terminal it did not find; then
    planned, run as a night, and run in full over the same data."""
    folder = tmp_path_factory.mktemp("terminal-states")
    store = copy(sample_store, folder / "nightly.duckdb")
    con = duckdb.connect(str(store))
    try:
        # an earlier run on a terminal, and a terminal with a strict setting and no run
        (found_at,) = con.execute(
            "SELECT terminal_id FROM terminals WHERE lockout_threshold <= 6 "
            "AND lockout_minutes >= 30 ORDER BY terminal_id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        (first_day,) = con.execute("SELECT min(ts) FROM login_events").fetchone()  # type: ignore[misc]
        _wrong_pins(con, found_at, first_day + timedelta(days=2, hours=3))
    finally:
        con.close()
    first = run_here(store)
    before = findings(store, f"status = 'open' AND rule = '{RULE}'")
    append_days(store)
    con = duckdb.connect(str(store))
    try:
        (last,) = con.execute("SELECT max(ts) FROM login_events").fetchone()  # type: ignore[misc]
        (fresh,) = con.execute(
            "SELECT terminal_id FROM terminals WHERE lockout_threshold <= 6 "
            "AND lockout_minutes >= 30 AND terminal_id NOT IN "
            f"(SELECT entity_id FROM findings WHERE rule = '{RULE}') "
            "ORDER BY terminal_id DESC LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        (typed,) = con.execute(
            "SELECT terminal_id FROM terminals WHERE terminal_id NOT IN "
            f"(SELECT entity_id FROM findings WHERE rule = '{RULE}') AND terminal_id NOT IN "
            "(SELECT terminal_id FROM login_events WHERE outcome = 'wrong_pin' AND ts >= ?) "
            "AND terminal_id <> ? ORDER BY terminal_id LIMIT 1",
            [last - timedelta(days=14), fresh],
        ).fetchone()  # type: ignore[misc]
        _wrong_pins(con, found_at, last - timedelta(hours=2))
        _wrong_pins(con, fresh, last - timedelta(hours=1))
        # a few mistyped PINs make no run: the terminal is not re-decided
        _wrong_pins(con, typed, last - timedelta(hours=3), count=3)
    finally:
        con.close()
    opened = Store.open(store, read_only=True)
    try:
        plan = plan_run(opened, load_policy(), list(all_rules().values()))
    finally:
        opened.close()
    night = run_here(store)
    once = copy(store, folder / "once.duckdb")
    run_here(once, full=True)
    return {
        "store": store,
        "once": once,
        "plan": plan,
        "found_at": found_at,
        "fresh": fresh,
        "typed": typed,
        "before": before,
        "runs": (first, night),
    }


def test_a_night_re_decides_only_the_terminals_a_wrong_pin_names(
    nights: dict[str, object],
) -> None:
    plan = nights["plan"]
    assert plan.mode == "incremental", plan.reason  # type: ignore[attr-defined]
    scope = plan.scopes[RULE]  # type: ignore[attr-defined]
    assert scope.entity_key == "terminal_id"
    every = set(frame(nights["store"], "SELECT terminal_id FROM terminals")["terminal_id"])  # type: ignore[arg-type]
    assert {nights["found_at"], nights["fresh"]} <= scope.entities < every
    assert nights["typed"] not in scope.entities
    # each finding the previous run made ran to the data's end or held a run: re-decided
    assert set(nights["before"]["entity_id"]) <= scope.entities  # type: ignore[index]
    assert RULE not in plan.rules_over_all_data  # type: ignore[attr-defined]


def test_the_night_counts_a_terminal_s_runs_over_its_whole_history(
    nights: dict[str, object],
) -> None:
    _, night = nights["runs"]  # type: ignore[misc]
    assert night.mode == "incremental", night.reason
    mine = findings(nights["store"], f"status = 'open' AND rule = '{RULE}'")  # type: ignore[arg-type]
    old = mine.filter(pl.col("entity_id") == nights["found_at"])
    assert old.height == 1
    evidence = json.loads(old.item(0, "evidence"))
    # the earlier run, read from before the night's window, and the new one
    assert evidence["runs_without_lockout"] == 2
    plan = nights["plan"]
    assert old.item(0, "window_start") < plan.changed_from - timedelta(days=7)  # type: ignore[attr-defined]
    assert mine.filter(pl.col("entity_id") == nights["fresh"]).height == 1


@pytest.mark.parametrize("rule", [RULE, "never_logged_in"])
def test_the_night_equals_a_full_run(nights: dict[str, object], rule: str) -> None:
    where = f"status = 'open' AND rule = '{rule}'"
    nightly = comparable(findings(nights["store"], where))  # type: ignore[arg-type]
    once = comparable(findings(nights["once"], where))  # type: ignore[arg-type]
    assert nightly.height > 0 or rule == "never_logged_in"
    assert nightly.equals(once), rule


def test_an_account_never_used_reads_only_the_last_two_months_of_logins(
    nights: dict[str, object],
) -> None:
    plan = nights["plan"]
    scope = plan.scopes["never_logged_in"]  # type: ignore[attr-defined]
    assert scope.recheck_from is None  # every finding re-decided: each runs to the data's end
    assert scope.since("login_events") == plan.data_to - timedelta(days=60)  # type: ignore[attr-defined]


def test_the_reader_reads_the_history_of_the_entities_alone(sample_store: Path) -> None:
    """A rule on states gets every row of its entities; a rule reading from a time on gets
    every row from then on and none before."""
    rules = all_rules()
    store = Store.open(sample_store, read_only=True)
    try:
        (start, end) = store.query("SELECT min(ts), max(ts) FROM login_events")[0]
        since = start + (end - start) / 2  # type: ignore[operator]
        terminals = frozenset(
            str(t) for (t,) in store.query("SELECT terminal_id FROM terminals LIMIT 2")
        )
        scopes = {
            RULE: RuleScope(RULE, None, None, entities=terminals, entity_key="terminal_id"),
            "never_logged_in": RuleScope("never_logged_in", since, since),
        }
        reader = TableReader(store)
        tables = read_inputs(reader, [rules[RULE], rules["never_logged_in"]], scopes)
        whole = store.frame("SELECT event_id, ts, terminal_id FROM login_events")
    finally:
        store.close()
    states = tables[RULE]["login_events"].collect()
    recent = tables["never_logged_in"]["login_events"].collect()
    theirs = whole.filter(pl.col("terminal_id").is_in(sorted(terminals)))
    assert set(states.filter(pl.col("terminal_id").is_in(sorted(terminals)))["event_id"]) == set(
        theirs["event_id"]
    )
    assert set(recent["event_id"]) == set(whole.filter(pl.col("ts") >= since)["event_id"])
    # before the window, nothing but the entities' rows was read
    early = states.filter(pl.col("ts") < since)
    assert early.height > 0 and set(early["terminal_id"]) <= terminals
    assert reader.rows_read < whole.height + theirs.height
