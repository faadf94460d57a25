"""Innocent look-alikes: off by default, each kind labelled benign:<kind> when on."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from posaudit.config import ConfigError
from posaudit.simulate.engine import continued_scenario, simulate
from posaudit.simulate.merchant_fraud import MERCHANT_LOOKALIKES
from posaudit.simulate.scenario import LOOKALIKE_KINDS, load_scenario, scenario_from_text
from posaudit.store import Store
from posaudit.store.catalogue import WORLD_TABLES, key_column
from tests.simulate.hints import assert_no_hint

POSAUDIT = [sys.executable, "-m", "posaudit"]
# every kind often enough to appear in 30 merchants over 8 days around a month's end
DENSE = "[lookalikes]\nenabled = true\n" + "".join(f"{kind} = 150.0\n" for kind in LOOKALIKE_KINDS)
MERCHANTS, DAYS, START, SEED = 30, 8, "2026-09-26", 4  # seed 4: 3 hotels
# what each kind is labelled on, where not the operator
ENTITY_OF = {
    "replaced_card": "transaction",
    # fees and completeness
    "retry_after_decline": "transaction",
    "trace_wrap": "terminal",
    "terminal_reinit": "terminal",
    "debit_cap_purchases": "merchant",
}
# the daily kinds of lookalikes.py; the merchant typologies' own (planned once per world, on
# merchants and terminals) are tested in test_merchant_fraud.py
DAILY_KINDS = tuple(kind for kind in LOOKALIKE_KINDS if kind not in MERCHANT_LOOKALIKES)


def _tables(path: Path) -> dict[str, pl.DataFrame]:
    store = Store.open(path, read_only=True)
    try:
        return {t: store.frame(f"SELECT * FROM {t} ORDER BY {key_column(t)}") for t in WORLD_TABLES}
    finally:
        store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    path = tmp_path_factory.mktemp("lookalikes") / "w.duckdb"
    scenario = scenario_from_text(DENSE, merchants=MERCHANTS, days=DAYS, start=START)
    simulate(path, scenario, seed=SEED)
    return _tables(path)


def _incidents(world: dict[str, pl.DataFrame], kind: str) -> pl.DataFrame:
    found = world["ground_truth"].filter(pl.col("scenario") == f"benign:{kind}")
    assert found.height > 0, kind
    return found


def _in(frame: pl.DataFrame, column: str, incident: dict, ts: str = "ts") -> pl.DataFrame:
    return frame.filter(
        (pl.col(column) == incident["entity_id"])
        & pl.col(ts).is_between(incident["start_ts"], incident["end_ts"])
    )


# the kinds not labelled on an operator, and what they are labelled on
ON_ENTITY = {
    "replaced_card": "transaction",
    "second_purchase": "terminal",
    "issuer_outage": "terminal",
}


def test_every_kind_appears_and_is_labelled(world: dict[str, pl.DataFrame]) -> None:
    for kind in DAILY_KINDS:
        incidents = _incidents(world, kind)
        expected = ENTITY_OF.get(kind, ON_ENTITY.get(kind, "operator"))
        assert set(incidents.get_column("entity_type").to_list()) == {expected}, kind


def test_the_sales_lookalikes_show_what_they_resemble(world: dict[str, pl.DataFrame]) -> None:
    txns = world["transactions"]
    sales = txns.filter(pl.col("kind") == "sale")
    for incident in _incidents(world, "second_purchase").iter_rows(named=True):
        mine = _in(sales, "terminal_id", incident)
        again = mine.group_by("card_token").len().filter(pl.col("len") >= 2)
        assert again.height >= 1, incident
    for incident in _incidents(world, "issuer_outage").iter_rows(named=True):
        mine = _in(sales, "terminal_id", incident)
        declined = mine.filter(pl.col("failure_reason") == "issuer_unavailable")
        assert declined.height >= 8, incident
        paid = mine.filter(pl.col("status") == "approved").get_column("card_token")
        assert declined.get_column("card_token").is_in(paid.implode()).all(), incident
    voids = txns.filter(pl.col("kind") == "void")
    for incident in _incidents(world, "closing_corrections").iter_rows(named=True):
        mine = _in(voids, "operator_id", incident)
        assert mine.height >= 2, incident
        again = _in(sales, "operator_id", incident).get_column("card_token")
        assert mine.get_column("card_token").is_in(again.implode()).all(), incident


def test_each_kind_shows_what_it_resembles(world: dict[str, pl.DataFrame]) -> None:
    txns, logins = world["transactions"], world["login_events"]
    refunds = txns.filter(pl.col("kind") == "refund")
    for kind in ("return_wave", "closing_refunds", "seasonal_peak"):
        for incident in _incidents(world, kind).iter_rows(named=True):
            assert _in(refunds, "operator_id", incident).height >= 3, (kind, incident)
    # the refund goes to another card than the sale's
    sales = txns.select(
        pl.col("txn_id").alias("original_txn_id"), pl.col("card_token").alias("paid")
    )
    for incident in _incidents(world, "replaced_card").iter_rows(named=True):
        refund = refunds.filter(pl.col("txn_id") == incident["entity_id"]).join(
            sales, on="original_txn_id"
        )
        assert refund.height == 1
        assert refund.item(0, "card_token") != refund.item(0, "paid")
        # ... of the same account: the new card keeps the account reference
        paid_from = txns.filter(pl.col("txn_id") == refund.item(0, "original_txn_id"))
        assert refund.item(0, "account_ref") == paid_from.item(0, "account_ref") is not None
    for incident in _incidents(world, "hotel_deposits").iter_rows(named=True):
        mine = _in(refunds, "operator_id", incident)  # natural refunds may fall in between
        assert mine.filter(pl.col("amount_fen") % 10_000 == 0).height >= 3
    for incident in _incidents(world, "shift_cover").iter_rows(named=True):
        mine = _in(logins.filter(pl.col("outcome") == "success"), "operator_id", incident)
        assert mine.get_column("terminal_id").n_unique() == 2
    for incident in _incidents(world, "forgetful_operator").iter_rows(named=True):
        mine = _in(logins, "operator_id", incident)
        assert mine.filter(pl.col("outcome") == "wrong_pin").height >= 3
        assert mine.get_column("outcome").to_list()[-1] == "success"
    for incident in _incidents(world, "new_clerk").iter_rows(named=True):
        failed = _in(logins.filter(pl.col("outcome") == "wrong_pin"), "operator_id", incident)
        assert failed.height > 0


def test_a_return_wave_brings_back_goods_bought_on_earlier_days(
    world: dict[str, pl.DataFrame],
) -> None:
    txns = world["transactions"]
    sales = txns.select(pl.col("txn_id").alias("original_txn_id"), pl.col("ts").alias("sold"))
    refunds = txns.filter(pl.col("kind") == "refund").join(sales, on="original_txn_id")
    for incident in _incidents(world, "return_wave").iter_rows(named=True):
        wave = _in(refunds, "operator_id", incident)
        # natural refunds of the clerk may fall inside the wave; most of it is the wave's own
        earlier = wave.filter(pl.col("sold").dt.date() < pl.col("ts").dt.date())
        assert earlier.height >= 3, incident
        assert earlier.height >= 0.8 * wave.height, incident


def test_a_new_clerk_is_clumsy_on_the_till_it_works_that_day(
    world: dict[str, pl.DataFrame],
) -> None:
    # one clerk at one till at a time: its sales never alternate between two tills (but while
    # it covers two tills, or its login is shared, which this dense world also makes)
    sales = world["transactions"].filter(pl.col("kind") == "sale")
    two_tills = world["ground_truth"].filter(
        pl.col("scenario").is_in(["benign:shift_cover", "credential_sharing"])
    )
    for incident in _incidents(world, "new_clerk").iter_rows(named=True):
        mine = _in(sales, "operator_id", incident).sort("ts")
        for other in two_tills.filter(pl.col("entity_id") == incident["entity_id"]).iter_rows(
            named=True
        ):
            day = pl.col("ts").dt.date()
            mine = mine.filter(~day.is_between(other["start_ts"].date(), other["end_ts"].date()))
        switched = mine.filter(
            (pl.col("terminal_id") != pl.col("terminal_id").shift())
            & (pl.col("ts") - pl.col("ts").shift() < timedelta(minutes=30))
        )
        assert switched.height == 0, incident


def test_no_observable_table_hints_at_a_lookalike(world: dict[str, pl.DataFrame]) -> None:
    hints = ("benign", "lookalike", "look-alike", *LOOKALIKE_KINDS)
    assert_no_hint(world, hints)
    # every card transaction carries its account reference, whatever made it; nothing else does
    txns = world["transactions"]
    is_card = pl.col("channel").cast(pl.String).is_in(["debit_card", "credit_card"])
    assert txns.filter(is_card & pl.col("account_ref").is_null()).height == 0
    assert txns.filter(~is_card & pl.col("account_ref").is_not_null()).height == 0
    # and one account reference is a 64-digit token like any other, never the card's number
    tokens = txns.get_column("account_ref").drop_nulls()
    assert tokens.str.contains(r"^[0-9a-f]{64}$").all()
    assert tokens.is_in(txns.get_column("card_token").str.slice(1)).sum() == 0


def test_off_is_the_world_without_them(tmp_path: Path) -> None:
    default, forced = tmp_path / "default.duckdb", tmp_path / "forced.duckdb"
    plain = load_scenario(None, merchants=12, days=6, start=START, lookalikes=False)
    simulate(default, plain, seed=5)
    off = scenario_from_text(DENSE, merchants=12, days=6, start=START, lookalikes=False)
    simulate(forced, off, seed=5)
    first, second = _tables(default), _tables(forced)
    for table in WORLD_TABLES:
        assert first[table].equals(second[table]), table


def test_on_adds_to_the_days_and_keeps_the_world(tmp_path: Path) -> None:
    plain, on = tmp_path / "plain.duckdb", tmp_path / "on.duckdb"
    off = load_scenario(None, merchants=12, days=6, start=START, lookalikes=False)
    simulate(plain, off, seed=5)
    simulate(on, load_scenario(None, merchants=12, days=6, start=START), seed=5)  # on by default
    first, second = _tables(plain), _tables(on)
    for table in ("merchants", "terminals", "operators", "pin_events"):
        assert first[table].equals(second[table]), table
    attacks = pl.col("scenario").str.starts_with("benign:").not_()
    assert first["ground_truth"].filter(attacks).height == (
        second["ground_truth"].filter(attacks).height
    )
    kept = continued_scenario(on, 1)  # --append continues with them on
    assert kept.lookalike_rate("return_wave") > 0


def test_they_are_on_by_default() -> None:
    scenario = load_scenario(None)
    assert scenario.settings["lookalikes"]["enabled"] is True
    assert all(scenario.lookalike_rate(kind) > 0 for kind in LOOKALIKE_KINDS)
    off = load_scenario(None, lookalikes=False)
    assert {off.lookalike_rate(kind) for kind in LOOKALIKE_KINDS} == {0.0}
    in_file = scenario_from_text("[lookalikes]\nenabled = false\n")
    assert {in_file.lookalike_rate(kind) for kind in LOOKALIKE_KINDS} == {0.0}


def test_every_kind_appears_with_the_default_settings(tmp_path: Path) -> None:
    # the default rates, no scenario file: 60 merchants over a month (with hotels, and a
    # month's end for the return waves) hold every kind (measured on seed 1)
    path = tmp_path / "default.duckdb"
    simulate(path, load_scenario(None, merchants=60, days=30), seed=1)
    world = _tables(path)
    for kind in DAILY_KINDS:
        incidents = _incidents(world, kind)
        expected = ENTITY_OF.get(kind, ON_ENTITY.get(kind, "operator"))
        assert set(incidents.get_column("entity_type").to_list()) == {expected}, kind
    assert_no_hint(world, ("benign", "lookalike", "look-alike", *LOOKALIKE_KINDS))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[lookalikes]\nreturn_wave = -1.0\n", "'lookalikes.return_wave' must not be negative"),
        ("[lookalikes]\nreturn_wave = nan\n", "'lookalikes.return_wave' must be a finite"),
        ('[lookalikes]\nreturn_wave = "many"\n', "'lookalikes.return_wave' must be float"),
        ('[lookalikes]\nenabled = "yes"\n', "'lookalikes.enabled' must be bool"),
        ("[lookalikes]\nenabled = 1\n", "'lookalikes.enabled' must be bool"),
        ("[lookalikes]\nbirthday_party = 1.0\n", "unknown key 'lookalikes.birthday_party'"),
        ("lookalikes = true\n", "'lookalikes' must be a table"),
    ],
)
def test_a_bad_lookalikes_table_is_refused(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as raised:
        scenario_from_text(text)
    assert needle in str(raised.value)
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(text)
    result = subprocess.run(
        [*POSAUDIT, "simulate", "--db", str(tmp_path / "w.duckdb"), "--scenario", str(scenario),
         "--merchants", "2", "--days", "1", "--lookalikes"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenario.toml"]


def test_the_cli_simulates_them_unless_told_not_to(tmp_path: Path) -> None:
    counts = {}
    for name, flags in (("default", []), ("off", ["--no-lookalikes"])):
        db = tmp_path / f"{name}.duckdb"
        result = subprocess.run(
            [*POSAUDIT, "simulate", "--db", str(db), "--merchants", "30", "--days", "4",
             "--start", "2026-09-27", "--seed", "4", *flags],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        truth = _tables(db)["ground_truth"]
        counts[name] = truth.filter(pl.col("scenario").str.starts_with("benign:")).height
    assert counts["default"] > 0
    assert counts["off"] == 0
