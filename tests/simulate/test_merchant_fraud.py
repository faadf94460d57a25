"""The merchant typologies in the simulator: what they plan, what they leave alone, and how
far an evading merchant goes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import scenario_from_text
from posaudit.store import Store

POSAUDIT = [sys.executable, "-m", "posaudit"]
MINE = ("cash_out_sales", "category_misuse", "dormant_surge", "invented_amounts")
# rates high enough that a 40-merchant world of 48 days holds each typology several times
RATES = {
    "cash_out_sales": 150.0,
    "category_misuse": 150.0,
    "dormant_surge": 80.0,
    "invented_amounts": 100.0,
}
LOOKALIKES = "[lookalikes]\nbulk_buyer = 100.0\nmixed_store = 150.0\nreopening = 60.0\n"


def _busy(evasion: float = 0.0) -> str:
    """Rates high enough that a 40-merchant world of 48 days holds each typology several
    times, at ``evasion``."""
    return LOOKALIKES + "".join(
        f"[scenarios.{name}]\nrate = {rate}\nevasion = {evasion}\n" for name, rate in RATES.items()
    )


MERCHANTS, DAYS, SEED = 40, 48, 3


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=900)


def _world(path: Path, evasion: float = 0.0) -> Path:
    simulate(path, scenario_from_text(_busy(evasion), merchants=MERCHANTS, days=DAYS), seed=SEED)
    return path


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _world(tmp_path_factory.mktemp("merchants") / "busy.duckdb")


def _frames(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    store = Store.open(path, read_only=True)
    try:
        return store.frame("SELECT * FROM transactions"), store.frame("SELECT * FROM ground_truth")
    finally:
        store.close()


def test_a_dormant_terminal_records_nothing_while_silent(busy: Path) -> None:
    txns, truth = _frames(busy)
    dormant = truth.filter(pl.col("scenario").is_in(["dormant_surge", "benign:reopening"]))
    assert dormant.height >= 2
    for terminal, back in dormant.select("entity_id", "start_ts").iter_rows():
        days = (
            txns.filter(pl.col("terminal_id") == terminal)
            .select(pl.col("ts").dt.date().unique().sort())
            .to_series()
        )
        before = days.filter(days < back.date())
        assert before.len() > 0
        assert (back.date() - before.max()).days > 30, terminal  # type: ignore[operator]


def test_cash_out_sales_are_after_hours_just_under_round_by_a_few_cards(busy: Path) -> None:
    txns, truth = _frames(busy)
    episodes = truth.filter(pl.col("scenario") == "cash_out_sales")
    assert episodes.height >= 2
    for merchant, start, end in episodes.select("entity_id", "start_ts", "end_ts").iter_rows():
        sales = txns.filter(
            (pl.col("merchant_id") == merchant)
            & pl.col("ts").is_between(start, end)
            & (pl.col("ts").dt.hour() < 6)
            & (pl.col("channel") == "credit_card")
            & (pl.col("amount_fen") >= 190_000)  # the smallest: 2,000 CNY less 1.5 %
        )
        assert sales.height >= 5
        under = 100_000 - sales.get_column("amount_fen") % 100_000
        assert (under * 50 <= sales.get_column("amount_fen")).all()
        assert 2 <= sales.get_column("card_token").n_unique() <= 4


def test_invented_amounts_are_whole_yuan_just_under_round_sums(busy: Path) -> None:
    txns, truth = _frames(busy)
    inventors = truth.filter(pl.col("scenario") == "invented_amounts").get_column("entity_id")
    assert inventors.len() >= 2
    sales = txns.filter((pl.col("kind") == "sale") & (pl.col("status") == "approved"))
    yuan = pl.col("amount_fen") // 100
    rounds = [20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000]
    under = (pl.col("amount_fen") % 100 == 0) & pl.any_horizontal(
        [(yuan < r) & (yuan >= r * 0.94) for r in rounds]
    )
    share = (
        sales.with_columns(pl.col("merchant_id").is_in(inventors.to_list()).alias("inventor"))
        .group_by("merchant_id", "inventor")
        .agg(under.mean().alias("under"))
    )
    honest = share.filter(~pl.col("inventor"))["under"]
    # a fifth to a third of an inventor's sales sit there, against a few in a hundred elsewhere
    assert share.filter(pl.col("inventor"))["under"].min() > 0.15
    assert honest.quantile(0.95) < 0.08


def test_the_audit_finds_the_merchants_inventing_amounts(busy: Path, tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    db.write_bytes(busy.read_bytes())
    assert _cli("run", "--db", str(db)).returncode == 0
    evaluated = _cli("evaluate", "--db", str(db), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    record = json.loads(evaluated.stdout)
    recall = {row["scenario"]: row for row in record["recall"]}["invented_amounts"]
    precision = {row["rule"]: row for row in record["precision"]}["invented_amounts"]
    assert recall["incidents"] >= 2 and recall["recall_own"] >= 0.75, recall
    assert precision["precision"] >= 0.75, precision


def test_a_bulk_buyer_rings_each_item_minutes_apart(busy: Path) -> None:
    # one sale an item, as a clerk rings them up: never two records of one tap seconds apart,
    # which is what a duplicated record looks like
    txns, truth = _frames(busy)
    visits = truth.filter(pl.col("scenario") == "benign:bulk_buyer")
    assert visits.height >= 2
    for merchant, start, end in visits.select("entity_id", "start_ts", "end_ts").iter_rows():
        sales = (
            txns.filter(
                (pl.col("merchant_id") == merchant)
                & pl.col("ts").is_between(start, end)
                & (pl.col("channel") == "credit_card")
            )
            .filter(pl.len().over("card_token") >= 3)
            .sort("ts")
        )
        assert sales.height >= 3
        gaps = sales.get_column("ts").diff().drop_nulls().dt.total_seconds()
        assert gaps.min() >= 120, merchant


def test_no_fraud_plans_no_typology_but_keeps_the_look_alikes(tmp_path: Path) -> None:
    store_path = tmp_path / "no-fraud.duckdb"
    made = _cli(
        "simulate", "--db", str(store_path), "--merchants", str(MERCHANTS), "--days", str(DAYS),
        "--seed", str(SEED), "--no-fraud",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    _, truth = _frames(store_path)
    scenarios = set(truth.get_column("scenario"))
    assert not scenarios & set(MINE)
    assert "benign:reopening" in scenarios or "benign:mixed_store" in scenarios


def test_the_typologies_leave_the_other_merchants_sales_as_they_were(
    busy: Path, tmp_path: Path
) -> None:
    off = "".join(f"[scenarios.{name}]\nenabled = false\n" for name in MINE) + (
        "[lookalikes]\nbulk_buyer = 0.0\nmixed_store = 0.0\nreopening = 0.0\n"
    )
    plain = tmp_path / "plain.duckdb"
    simulate(plain, scenario_from_text(off, merchants=MERCHANTS, days=DAYS), seed=SEED)
    with_them, truth = _frames(busy)
    without, _ = _frames(plain)
    touched = truth.filter(
        pl.col("scenario")
        .str.replace("benign:", "")
        .is_in([*MINE, "bulk_buyer", "mixed_store", "reopening"])
    )
    terminals = set(touched.filter(pl.col("entity_type") == "terminal").get_column("entity_id"))
    merchants = set(touched.filter(pl.col("entity_type") == "merchant").get_column("entity_id"))
    keep = ~pl.col("merchant_id").is_in(list(merchants)) & ~pl.col("terminal_id").is_in(
        list(terminals)
    )
    natural = pl.col("kind") == "sale"
    columns = ["ts", "terminal_id", "amount_fen", "channel", "card_token"]
    first = with_them.filter(keep & natural).select(columns).sort(columns)
    second = without.filter(keep & natural).select(columns).sort(columns)
    # the other merchants' own sales are the same draws; attacks of other scenarios may differ
    # where they chose a terminal a typology silenced
    assert first.join(second, on=columns, how="anti").height <= 0.01 * first.height
    assert first.height > 10_000


def test_at_evasion_one_the_typologies_escape_their_rules(tmp_path: Path) -> None:
    db = _world(tmp_path / "evading.duckdb", evasion=1.0)
    assert _cli("run", "--db", str(db)).returncode == 0
    evaluated = _cli("evaluate", "--db", str(db), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    recall = {row["scenario"]: row for row in json.loads(evaluated.stdout)["recall"]}
    # category_misuse sells just under the line in expectation, but its measured shift wanders
    # (a category of one or two peers, categories close to each other): about a third is still
    # found at evasion 1 (docs/detection.md, "Merchant typologies: measured")
    ceiling = {"category_misuse": 0.34}
    for scenario in MINE:
        assert recall[scenario]["incidents"] > 0, scenario
        assert recall[scenario]["recall_own"] <= ceiling.get(scenario, 0.2), recall[scenario]
