"""Benford's law tests: the statistics as Nigrini defines them, checked against an independent
implementation (benford_py) on the same amounts, and the command that prints them."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest

from posaudit.classics import benford as bf

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import benford as benford_py


def ledger(amounts: np.ndarray, entities: np.ndarray | None = None) -> pl.DataFrame:
    n = amounts.size
    ids = entities if entities is not None else np.full(n, "M1")
    return pl.DataFrame(
        {
            "amount_fen": amounts.astype(np.int64),
            "kind": np.full(n, "sale"),
            "status": np.full(n, "approved"),
            "merchant_id": ids,
            "terminal_id": ids,
            "operator_id": ids,
        }
    )


def store_counts(frame: pl.DataFrame, test: bf.Test, by: bf.Entity | None = None) -> pl.DataFrame:
    connection = duckdb.connect()
    connection.register("transactions", frame.to_arrow())
    return connection.sql(bf.counts_sql(test, by)).pl()


def ours(amounts: np.ndarray, test: bf.Test) -> bf.Result:
    counts = store_counts(ledger(amounts), test)
    return bf.result(test, dict(zip(counts["digit"].to_list(), counts["n"].to_list(), strict=True)))


def theirs(amounts: np.ndarray) -> dict[str, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = benford_py.Benford(
            pd.Series(amounts.astype(np.int64)), decimals=0, sec_order=True, verbose=False
        )
    return {
        "first_digit": b.F1D,
        "first_two": b.F2D,
        "last_two": b.L2D,
        "second_order": b.F2D_sec,
    }


def lognormal(seed: int, n: int = 20_000, sigma: float = 2.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(8.0, sigma, n)).astype(np.int64) + 1


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("test", ["first_digit", "first_two", "second_order"])
def test_the_figures_agree_with_benford_py(seed: int, test: bf.Test) -> None:
    amounts = lognormal(seed)
    mine = ours(amounts, test)
    their_test = theirs(amounts)[test]
    other = their_test.sort_index()
    assert other.index.to_list() == mine.table["digit"].to_list()
    assert mine.n == int(other.Counts.sum())
    assert mine.table["count"].to_list() == other.Counts.astype(int).to_list()
    np.testing.assert_allclose(mine.table["found"].to_numpy(), other.Found, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.table["expected"].to_numpy(), other.Expected, atol=1e-12)
    assert abs(mine.mad - their_test.MAD) < 1e-12
    expected_counts = mine.n * other.Expected.to_numpy()
    chi = float(((other.Counts.to_numpy() - expected_counts) ** 2 / expected_counts).sum())
    assert abs(mine.chi_square - chi) < 1e-9 * max(chi, 1.0)
    # Z: benford_py always takes the continuity correction off; Nigrini only where it is
    # smaller than the difference. Where it is, the two agree.
    corrected = (1 / (2 * mine.n)) < other.AbsDif.to_numpy()
    assert corrected.sum() >= len(corrected) // 2
    np.testing.assert_allclose(
        mine.table["z"].to_numpy()[corrected], other.Z_score.to_numpy()[corrected], atol=1e-9
    )
    sigma = np.sqrt(other.Expected * (1 - other.Expected) / mine.n).to_numpy()
    np.testing.assert_allclose(
        mine.table["z"].to_numpy()[~corrected],
        (other.AbsDif.to_numpy() / sigma)[~corrected],
        atol=1e-9,
    )


def test_the_last_two_digits_agree_with_benford_py_but_expect_a_hundredth_each() -> None:
    """benford_py expects 1/99 of each of the 100 endings (its proportions add to 1.0101);
    uniform endings are 1/100 each, as here. The counts and proportions agree."""
    amounts = lognormal(4)
    mine = ours(amounts, "last_two")
    other = theirs(amounts)["last_two"].sort_index()
    assert mine.table["count"].to_list() == other.Counts.astype(int).to_list()
    np.testing.assert_allclose(mine.table["found"].to_numpy(), other.Found, atol=1e-12)
    assert mine.table["expected"].sum() == pytest.approx(1.0)
    found = mine.table["found"].to_numpy()
    assert mine.mad == pytest.approx(np.abs(found - 0.01).mean(), abs=1e-15)


def test_the_bands_are_nigrinis() -> None:
    assert bf.band("first_digit", 0.006) == "close conformity"
    assert bf.band("first_digit", 0.0061) == "acceptable conformity"
    assert bf.band("first_digit", 0.015) == "marginally acceptable conformity"
    assert bf.band("first_digit", 0.0151) == "nonconformity"
    assert bf.band("first_two", 0.0012) == "close conformity"
    assert bf.band("first_two", 0.0018) == "acceptable conformity"
    assert bf.band("first_two", 0.0022) == "marginally acceptable conformity"
    assert bf.band("first_two", 0.0023) == "nonconformity"
    assert bf.band("last_two", 0.5) is None


def test_amounts_over_many_orders_of_magnitude_conform() -> None:
    wide = ours(lognormal(5, n=200_000, sigma=3.0), "first_two")
    assert wide.band == "close conformity"
    assert wide.spikes().height == 0 or wide.spikes()["z"].max() < 4


def test_invented_amounts_below_round_thresholds_fail_the_first_two_test() -> None:
    """Amounts typed by hand, just under round sums (4,900-4,999 and 9,900-9,999 CNY), among
    honest ones: the first-two test says nonconformity and shows 49 and 99 as its spikes."""
    rng = np.random.default_rng(6)
    honest = lognormal(6, n=5_000, sigma=2.5)
    invented = np.concatenate(
        [rng.integers(490_000, 500_000, 300), rng.integers(990_000, 1_000_000, 300)]
    )
    found = ours(np.concatenate([honest, invented]), "first_two")
    assert found.band == "nonconformity"
    assert set(found.spikes(2)["digit"].to_list()) == {49, 99}


def test_each_entity_with_enough_amounts_is_tested_the_least_conforming_first() -> None:
    rng = np.random.default_rng(7)
    honest = lognormal(7, n=3_000) + 100  # every one has two digits or more
    invented = rng.integers(490_000, 500_000, 3_000)
    few = lognormal(8, n=150) + 100
    frame = ledger(
        np.concatenate([honest, invented, few]),
        np.array(["M1"] * 3_000 + ["M2"] * 3_000 + ["M3"] * 150),
    )
    counts = store_counts(frame, "first_two", "merchant")
    sizes = counts.group_by("entity").agg(pl.col("n").sum()).sort("entity")
    assert sizes.rows() == [("M1", 3_000), ("M2", 3_000), ("M3", 150)]
    results = bf.results_of(counts, "first_two", by="merchant", min_rows=1_000)
    assert [r.entity for r in results] == ["M2", "M1"]
    assert results[0].band == "nonconformity"
    assert results[0].spikes(1)["digit"].to_list() == [49]


def test_no_amounts_is_an_error_not_a_zero_division() -> None:
    with pytest.raises(ValueError, match="no amounts"):
        bf.result("first_digit", {})


# --- the command ---------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


def test_the_command_prints_every_test_on_the_sample_world(sample_store: Path) -> None:
    made = cli("analyze", "benford", "--db", str(sample_store), "--json")
    assert made.returncode == 0, made.stderr
    record = json.loads(made.stdout)
    assert set(record["tests"]) == set(bf.TESTS)
    first = record["tests"]["first_digit"]["results"][0]
    assert first["entity"] is None and first["n"] > 10_000
    assert first["band"] in bf.BAND_NAMES
    shown = cli("analyze", "benford", "--db", str(sample_store), "--test", "first_two")
    assert shown.returncode == 0, shown.stderr
    assert "Benford, first two: the store" in shown.stdout
    by = cli(
        "analyze",
        "benford",
        "--db",
        str(sample_store),
        "--by",
        "terminal",
        "--min-rows",
        "500",
        "--test",
        "first_digit",
        "--json",
    )
    assert by.returncode == 0, by.stderr
    tested = json.loads(by.stdout)["tests"]["first_digit"]
    assert tested["entities_tested"] >= 1
    assert all(r["n"] >= 500 for r in tested["results"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--test", "third_digit"), "--test must be one of"),
        (("--by", "card"), "--by must be one of"),
        (("--by", "merchant", "--min-rows", "10"), "--min-rows must be at least 100"),
        (("--top", "0"), "--top must be at least 1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    sample_store: Path, args: tuple[str, ...], words: str
) -> None:
    made = cli("analyze", "benford", "--db", str(sample_store), *args)
    assert made.returncode == 2
    assert made.stderr.count("\n") == 1 and words in made.stderr, made.stderr


def test_a_missing_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    made = cli("analyze", "benford", "--db", str(tmp_path / "none.duckdb"))
    assert made.returncode == 2
    assert made.stderr.count("\n") == 1 and "none.duckdb" in made.stderr, made.stderr
