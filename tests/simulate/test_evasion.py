"""Evasion levels: 0 is the default world unchanged, 1 stays under the default policy."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from posaudit.config import ConfigError
from posaudit.detect.policy import load_policy
from posaudit.evaluate import recall_by_scenario
from posaudit.simulate.engine import continued_scenario, simulate
from posaudit.simulate.scenario import (
    ATTACK_SCENARIOS,
    load_scenario,
    scenario_from_text,
)
from posaudit.store import Store
from posaudit.store.catalogue import WORLD_TABLES, key_column
from tests.simulate.hints import assert_no_hint

POSAUDIT = [sys.executable, "-m", "posaudit"]
# the scenarios that can stay under their rule, and the rule each one targets
EVADING = {
    "pin_brute_force": "pin_brute_force",
    "operator_enumeration": "operator_enumeration",
    "credential_sharing": "credential_sharing",
    "takeover_refund": "refunds_after_suspicious_login",
    "off_hours_refunds": "off_hours_refunds",
    "refund_burst": "refund_bursts",
    "round_amount_refunds": "round_amount_refunds",
    # privilege audit
    "privilege_grant_abuse": "permission_granted_then_used",
    "reset_then_refund": "refunds_after_admin_reset",
    # sales patterns
    "split_sales": "split_sales",
    "card_testing": "card_testing",
    "void_abuse": "void_abuse",
}
# 30 merchants, 10 days: every evading scenario has incidents (measured)
MERCHANTS, DAYS, SEED = 30, 10, 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=600)


def _tables(path: Path) -> dict[str, pl.DataFrame]:
    store = Store.open(path, read_only=True)
    try:
        return {t: store.frame(f"SELECT * FROM {t} ORDER BY {key_column(t)}") for t in WORLD_TABLES}
    finally:
        store.close()


def _all_at(level: float) -> str:
    return "".join(f"[scenarios.{name}]\nevasion = {level}\n" for name in ATTACK_SCENARIOS)


@pytest.fixture(scope="module")
def evading(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    path = tmp_path_factory.mktemp("evasion") / "evading.duckdb"
    scenario = scenario_from_text(_all_at(1.0), merchants=MERCHANTS, days=DAYS)
    simulate(path, scenario, seed=SEED)
    return _tables(path)


# The default world of MERCHANTS, DAYS and SEED as it was before evasion levels existed (and
# before innocent look-alikes were on by default): sha256 of each table's CSV, ordered by its
# key. Evasion 0 with look-alikes off (--no-lookalikes) must not change a byte, nor take an
# extra random draw. A deliberate change to the simulator updates these.
DEFAULT_WORLD: dict[str, str] = {
    "merchants": "0ee8e20870775929",
    "terminals": "83c4f7c7a55b94c2",
    # the privilege audit's operator management, on by default: 9ee2d735a80478e3 before
    "operators": "3958997f0242bc6e",
    "pin_events": "bc19792c953f3c17",  # 1a4ae5eb52ce2e6c before the privilege audit
    "login_events": "9554483ac747b793",  # 190af74fc4c1553a before the privilege audit
    "lockouts": "cb085f0c7d873908",
    # e888e26769261076 before the account references, 490abac3b58fa21b before the fees and
    # completeness, the privilege audit, the sales patterns and the merchant typologies
    "transactions": "8089cf74c3b9d518",
    "ground_truth": "368acd303f61d1ff",  # 11e7dd04868d3f5f before the same
    "batch_totals": "57bb7c39e4df2ba9",
    "operator_events": "2d3e4133e8aeb970",
}


def test_the_default_world_is_what_it_was(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    plain = load_scenario(None, merchants=MERCHANTS, days=DAYS, lookalikes=False)
    simulate(path, plain, seed=SEED)
    digests = {
        table: hashlib.sha256(frame.write_csv().encode()).hexdigest()[:16]
        for table, frame in _tables(path).items()
    }
    assert digests == DEFAULT_WORLD


def test_evasion_zero_is_the_default_world(tmp_path: Path) -> None:
    default, explicit = tmp_path / "default.duckdb", tmp_path / "zero.duckdb"
    simulate(default, load_scenario(None, merchants=12, days=6), seed=5)
    simulate(explicit, scenario_from_text(_all_at(0.0), merchants=12, days=6), seed=5)
    first, second = _tables(default), _tables(explicit)
    for table in WORLD_TABLES:
        assert first[table].equals(second[table]), table


def test_evasion_one_changes_the_attacks_only(tmp_path: Path) -> None:
    plain, evading = tmp_path / "plain.duckdb", tmp_path / "evading.duckdb"
    simulate(plain, load_scenario(None, merchants=12, days=6), seed=5)
    simulate(evading, load_scenario(None, merchants=12, days=6, evasion=1.0), seed=5)
    first, second = _tables(plain), _tables(evading)
    for table in ("merchants", "terminals", "operators", "pin_events"):
        assert first[table].equals(second[table]), table
    assert not first["login_events"].equals(second["login_events"])


def _limit(rule: str, parameter: str) -> int:
    return int(load_policy().parameters(rule)[parameter])


def _incidents(tables: dict[str, pl.DataFrame], scenario: str) -> pl.DataFrame:
    found = tables["ground_truth"].filter(pl.col("scenario") == scenario)
    assert found.height > 0, scenario
    return found


def _in(frame: pl.DataFrame, column: str, incident: dict, ts: str = "ts") -> pl.DataFrame:
    return frame.filter(
        (pl.col(column) == incident["entity_id"])
        & pl.col(ts).is_between(incident["start_ts"], incident["end_ts"])
    )


def test_brute_force_at_evasion_one_stays_under_the_policy(evading: dict) -> None:
    limit = _limit("pin_brute_force", "min_failures")
    failures = evading["login_events"].filter(pl.col("outcome").is_in(["wrong_pin", "locked"]))
    for incident in _incidents(evading, "pin_brute_force").iter_rows(named=True):
        assert 0 < _in(failures, "operator_id", incident).height < limit, incident


def test_enumeration_at_evasion_one_stays_under_the_policy(evading: dict) -> None:
    limit = _limit("operator_enumeration", "min_operator_numbers")
    failed = evading["login_events"].filter(pl.col("outcome") != "success")
    for incident in _incidents(evading, "operator_enumeration").iter_rows(named=True):
        tried = _in(failed, "terminal_id", incident).get_column("operator_no").n_unique()
        assert 0 < tried < limit, incident


def test_takeover_at_evasion_one_stays_under_the_policy(evading: dict) -> None:
    limit = _limit("refunds_after_suspicious_login", "min_failures")
    failures = evading["login_events"].filter(pl.col("outcome").is_in(["wrong_pin", "locked"]))
    for incident in _incidents(evading, "takeover_refund").iter_rows(named=True):
        assert 0 < _in(failures, "operator_id", incident).height < limit, incident
        assert _in(evading["lockouts"], "operator_id", incident, "locked_at").height == 0


def _refunds(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return tables["transactions"].filter(pl.col("kind") == "refund")


def test_refunds_to_other_cards_go_to_other_accounts(evading: dict) -> None:
    # the attacker's card is of another account than the card that paid, whatever the level
    transactions = evading["transactions"]
    sales = transactions.select(
        pl.col("txn_id").alias("original_txn_id"), pl.col("account_ref").alias("paid_from")
    )
    incidents = _incidents(evading, "refund_other_card").get_column("entity_id")
    refunds = (
        _refunds(evading)
        .filter(pl.col("txn_id").is_in(incidents))
        .join(sales, on="original_txn_id")
    )
    cards = refunds.filter(pl.col("paid_from").is_not_null())
    assert cards.height > 0
    assert cards.filter(pl.col("account_ref").is_null()).height == 0
    assert cards.filter(pl.col("account_ref") == pl.col("paid_from")).height == 0


def test_refund_bursts_at_evasion_one_stay_under_the_policy(evading: dict) -> None:
    limit = _limit("refund_bursts", "min_refunds")
    window = timedelta(minutes=_limit("refund_bursts", "window_minutes"))
    refunds = _refunds(evading)
    for incident in _incidents(evading, "refund_burst").iter_rows(named=True):
        mine = refunds.filter(pl.col("operator_id") == incident["entity_id"])
        times = _in(mine, "operator_id", incident).get_column("ts").to_list()
        assert times, incident
        # every refund of the operator (its natural ones too) in any window of the policy's
        densest = max(mine.filter(pl.col("ts").is_between(t, t + window)).height for t in times)
        assert densest < limit, incident


def test_round_refunds_at_evasion_one_stay_under_the_policy(evading: dict) -> None:
    limit = _limit("round_amount_refunds", "min_refunds")
    unit = _limit("round_amount_refunds", "round_unit_fen")
    floor = _limit("round_amount_refunds", "min_amount_fen")
    round_refunds = _refunds(evading).filter(
        (pl.col("amount_fen") % unit == 0) & (pl.col("amount_fen") >= floor)
    )
    for incident in _incidents(evading, "round_amount_refunds").iter_rows(named=True):
        assert 0 < _in(round_refunds, "operator_id", incident).height < limit, incident


def test_off_hours_refunds_at_evasion_one_stay_under_the_policy(evading: dict) -> None:
    limit = _limit("off_hours_refunds", "min_refunds")
    for incident in _incidents(evading, "off_hours_refunds").iter_rows(named=True):
        assert 0 < _in(_refunds(evading), "operator_id", incident).height < limit, incident


def test_split_sales_at_evasion_one_leave_the_till_between_swipes(evading: dict) -> None:
    gap = timedelta(minutes=_limit("split_sales", "max_gap_minutes"))
    sales = evading["transactions"].filter(
        (pl.col("kind") == "sale") & (pl.col("status") == "approved")
    )
    for incident in _incidents(evading, "split_sales").iter_rows(named=True):
        mine = _in(sales, "terminal_id", incident)
        card = mine.group_by("card_token").len().sort("len").get_column("card_token")[-1]
        times = mine.filter(pl.col("card_token") == card).get_column("ts").sort()
        assert times.len() >= 3, incident
        assert (times.diff().drop_nulls() > gap).all(), incident


def test_card_testing_at_evasion_one_stays_under_the_policy(evading: dict) -> None:
    limit = _limit("card_testing", "min_declines")
    declined = evading["transactions"].filter(pl.col("status") == "declined")
    for incident in _incidents(evading, "card_testing").iter_rows(named=True):
        assert 0 < _in(declined, "terminal_id", incident).height < limit, incident


def test_void_abuse_at_evasion_one_stays_under_the_policy(evading: dict) -> None:
    limit = _limit("void_abuse", "min_late_voids")
    voids = evading["transactions"].filter(pl.col("kind") == "void")
    for incident in _incidents(evading, "void_abuse").iter_rows(named=True):
        assert 0 < _in(voids, "operator_id", incident).height < limit, incident


def test_no_observable_table_hints_at_a_label_or_an_evasion(evading: dict) -> None:
    hints = ("evasion", "scenario", "label", "incident", *ATTACK_SCENARIOS)
    assert_no_hint(evading, hints)


def test_the_flag_overrides_the_file_and_the_store_keeps_it(tmp_path: Path) -> None:
    text = "[scenarios.refund_burst]\nevasion = 1.0\n"
    assert scenario_from_text(text).evasion("refund_burst") == 1.0
    assert scenario_from_text(text).evasion("pin_brute_force") == 0.0
    flagged = scenario_from_text(text, evasion=0.25)
    assert {flagged.evasion(name) for name in ATTACK_SCENARIOS} == {0.25}
    path = tmp_path / "w.duckdb"
    simulate(path, load_scenario(None, merchants=3, days=1, evasion=0.5), seed=1)
    kept = continued_scenario(path, 1)
    assert {kept.evasion(name) for name in ATTACK_SCENARIOS} == {0.5}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[scenarios.refund_burst]\nevasion = 1.5\n", "'scenarios.refund_burst.evasion'"),
        ("[scenarios.refund_burst]\nevasion = -0.1\n", "'scenarios.refund_burst.evasion'"),
        ('[scenarios.refund_burst]\nevasion = "high"\n', "must be float"),
        ("[scenarios.refund_burst]\nevasion = nan\n", "finite"),
        ("[scenarios.weak_pin]\nevasion = 0.5\n", "unknown key 'scenarios.weak_pin.evasion'"),
    ],
)
def test_a_bad_evasion_in_a_scenario_file_is_refused(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as raised:
        scenario_from_text(text)
    assert needle in str(raised.value)


@pytest.mark.parametrize("value", ["-0.1", "1.5", "high", "nan", "inf", ""])
def test_simulate_refuses_a_bad_evasion(tmp_path: Path, value: str) -> None:
    db = tmp_path / "w.duckdb"
    result = _cli(
        "simulate", "--db", str(db), "--merchants", "2", "--days", "1", "--evasion", value
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("posaudit: error: --evasion must be a number between 0 and 1")
    assert list(tmp_path.iterdir()) == []


def test_at_evasion_one_the_evading_scenarios_escape_their_own_rules(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    made = _cli(
        "simulate", "--db", str(db), "--merchants", str(MERCHANTS), "--days", str(DAYS),
        "--seed", str(SEED), "--evasion", "1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert _cli("run", "--db", str(db)).returncode == 0
    evaluated = _cli("evaluate", "--db", str(db), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    recall = {row["scenario"]: row for row in json.loads(evaluated.stdout)["recall"]}
    for scenario in set(EVADING) - {"credential_sharing"}:
        assert recall[scenario]["incidents"] > 0, scenario
        assert recall[scenario]["recall_own"] == 0.0, recall[scenario]
    # credential_sharing stays under the terminals' switching its policy counts (a sharer whose
    # owner never pauses long enough cannot avoid switching, docs); the till, where the sharer
    # takes turns with the till's own clerk, still shows it (docs/detection.md)
    assert recall["credential_sharing"]["incidents"] > 0
    store = Store.open(db, read_only=True)
    try:
        truth = store.scan("ground_truth").filter(pl.col("scenario") == "credential_sharing")
        sharing = store.scan("findings").filter(pl.col("rule") == "credential_sharing")
        seen_on = pl.col("evidence").str.json_path_match("$.seen_on")
        switching = recall_by_scenario(sharing.filter(seen_on == "terminals"), truth).collect()
    finally:
        store.close()
    assert switching.item(0, "recall") <= 0.2, switching
    for scenario in ("refund_other_card", "refund_without_sale", "refund_over_sale"):
        assert recall[scenario]["recall_own"] == 1.0, recall[scenario]
