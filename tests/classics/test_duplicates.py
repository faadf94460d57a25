"""The duplicates test: each sale against the card's previous sale at the merchant."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from posaudit.classics import duplicates as dup
from posaudit.store import Store

T0 = datetime(2026, 3, 4, 10, 0)


def sale(txn_id: str, minutes: float, **kw: Any) -> dict[str, Any]:
    row = {
        "txn_id": txn_id,
        "ts": T0 + timedelta(minutes=minutes),
        "terminal_id": "T1",
        "merchant_id": "M1",
        "operator_id": "O1",
        "card_token": "C1",
        "amount_fen": 5_000,
        "kind": "sale",
        "status": "approved",
        "trace_no": 1,
    }
    row.update(kw)
    return row


def pairs(*rows: dict[str, Any], window: int = 10, tolerance: int = 100) -> pl.DataFrame:
    connection = duckdb.connect()
    connection.register("transactions", pl.DataFrame(list(rows)).to_arrow())
    return connection.sql(dup.pairs_sql(window, tolerance)).pl().sort("ts")


def test_each_kind_of_pair() -> None:
    found = pairs(
        sale("A1", 0),
        sale("A2", 1),  # the same sale again at the till: exact
        sale("B1", 30, card_token="C2"),
        sale("B2", 32, card_token="C2", terminal_id="T2"),  # the next till: other_terminal
        sale("C1", 60, card_token="C3"),
        sale("C2", 61, card_token="C3", amount_fen=5_050),  # a slip of 0.50 CNY: near_amount
        sale("D1", 90, card_token="C4"),
        sale("D2", 91, card_token="C4", amount_fen=5_200),  # 2 CNY apart: another purchase
        sale("E1", 120, card_token="C5"),
        sale("E2", 135, card_token="C5"),  # a quarter of an hour later: outside the window
        sale("F1", 150, card_token="C6"),
        sale("F2", 151, card_token="C6", merchant_id="M2"),  # another merchant's till
        sale("G1", 180, card_token="C7"),
        sale("G2", 181, card_token="C7", status="declined"),  # not a sale that took money
        sale("H1", 200, card_token=None),
        sale("H2", 201, card_token=None),  # no card: nothing to pair
    )
    assert found.select("txn_id", "previous_txn_id", "kind").rows() == [
        ("A2", "A1", "exact"),
        ("B2", "B1", "other_terminal"),
        ("C2", "C1", "near_amount"),
    ]
    assert found["gap_seconds"].to_list() == [60.0, 120.0, 60.0]


def test_a_sale_is_set_against_the_cards_previous_sale_only() -> None:
    found = pairs(sale("A1", 0), sale("A2", 1), sale("A3", 2))
    assert found.select("txn_id", "previous_txn_id").rows() == [("A2", "A1"), ("A3", "A2")]


def test_two_records_of_one_instant_are_ordered_by_their_trace_numbers() -> None:
    """A copy written in the same microsecond as its original, with a later trace number, is
    the duplicate, whatever its id."""
    found = pairs(sale("X9", 0, trace_no=7), sale("X10", 0, trace_no=8))
    assert found.select("txn_id", "previous_txn_id").rows() == [("X10", "X9")]


def test_the_window_and_the_tolerance_are_the_callers() -> None:
    rows = (sale("A1", 0), sale("A2", 15, amount_fen=5_150))
    assert pairs(*rows).is_empty()
    assert pairs(*rows, window=20, tolerance=200)["kind"].to_list() == ["near_amount"]


def test_every_labelled_duplicate_of_the_sample_world_is_an_exact_pair(sample_store: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        found = dup.duplicates(store)
        labelled = store.frame(
            "SELECT entity_id FROM ground_truth WHERE scenario = 'duplicate_transactions'"
        )
    finally:
        store.close()
    exact = found.pairs.filter(pl.col("kind") == "exact")
    assert labelled.height > 0
    assert set(labelled["entity_id"]) <= set(exact["txn_id"])
    totals = found.totals()
    assert totals["kind"].to_list() == list(dup.KINDS)
    assert (
        totals.filter(pl.col("kind") == "exact")["amount_fen"].item() == exact["amount_fen"].sum()
    )
    per_merchant = found.by("merchant")
    assert per_merchant["pairs"].sum() == found.pairs.height
    assert per_merchant["amount_fen"].sum() == found.pairs["amount_fen"].sum()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


def test_the_command_lists_pairs_and_entities(sample_store: Path) -> None:
    made = cli("analyze", "duplicates", "--db", str(sample_store), "--json", "--top", "3")
    assert made.returncode == 0, made.stderr
    record = json.loads(made.stdout)
    assert [t["kind"] for t in record["totals"]] == list(dup.KINDS)
    assert 0 < len(record["listed"]) <= 3
    amounts = [p["amount_fen"] for p in record["listed"]]
    assert amounts == sorted(amounts, reverse=True)
    by = cli("analyze", "duplicates", "--db", str(sample_store), "--by", "terminal")
    assert by.returncode == 0, by.stderr
    assert "the terminals with the most duplicated money" in by.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--window-minutes", "0"), "--window-minutes must be at least 1"),
        (("--tolerance-fen", "-1"), "--tolerance-fen must be 0 or more"),
        (("--by", "card"), "--by must be one of"),
        (("--top", "0"), "--top must be at least 1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    sample_store: Path, args: tuple[str, ...], words: str
) -> None:
    made = cli("analyze", "duplicates", "--db", str(sample_store), *args)
    assert made.returncode == 2
    assert made.stderr.count("\n") == 1 and words in made.stderr, made.stderr
