"""Stratification and ageing, each figure checked against the same count made plainly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from posaudit.classics import ageing as ag
from posaudit.classics import strata as st
from posaudit.store import Store


def sales(path: Path, kind: str = "sale") -> pl.Series:
    store = Store.open(path, read_only=True)
    try:
        return store.frame(
            f"SELECT amount_fen FROM transactions WHERE kind = '{kind}' AND status = 'approved'"
        )["amount_fen"]
    finally:
        store.close()


def test_strata_count_every_amount_once_between_their_bounds(sample_store: Path) -> None:
    amounts = sales(sample_store)
    store = Store.open(sample_store, read_only=True)
    try:
        found = st.strata(store, "sale", (1_000, 10_000, 100_000))
        default = st.strata(store, "sale")
    finally:
        store.close()
    table = found.table
    assert table["count"].to_list() == [
        int((amounts < 1_000).sum()),
        int(((amounts >= 1_000) & (amounts < 10_000)).sum()),
        int(((amounts >= 10_000) & (amounts < 100_000)).sum()),
        int((amounts >= 100_000).sum()),
    ]
    assert table["amount_fen"].sum() == amounts.sum()
    assert table["count_share"].sum() == pytest.approx(1.0)
    assert table["amount_share"].sum() == pytest.approx(1.0)
    top = amounts.filter(amounts >= 100_000)
    assert table.row(3, named=True)["max_fen"] == top.max()
    assert table.row(3, named=True)["mean_fen"] == pytest.approx(top.mean())
    # the default bounds are amounts of the data at its quantiles
    assert default.from_quantiles and len(default.bounds_fen) == len(st.QUANTILES)
    assert set(default.bounds_fen) <= set(amounts.to_list())
    median = default.table.row(0, named=True)["count_share"]
    assert 0.45 <= median <= 0.5


def test_a_stratum_without_amounts_is_listed_empty(sample_store: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        found = st.strata(store, "sale", (10**12,))
    finally:
        store.close()
    empty = found.table.row(1, named=True)
    assert empty["count"] == 0 and empty["mean_fen"] is None and empty["max_fen"] is None


def test_refund_ages_are_days_after_their_sale(sample_store: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        found = ag.ageing(store).refunds
        pairs = store.frame(
            "SELECT r.amount_fen, DATE_DIFF('day', CAST(s.ts AS DATE), CAST(r.ts AS DATE)) AS d "
            "FROM transactions r LEFT JOIN transactions s "
            "ON s.txn_id = r.original_txn_id AND s.kind = 'sale' "
            "WHERE r.kind = 'refund' AND r.status = 'approved'"
        )
    finally:
        store.close()
    by_band = dict(zip(found["band"], found["refunds"], strict=True))
    days = pairs["d"]
    assert by_band["same day"] == int((days == 0).sum())
    assert by_band["8-15 days"] == int(((days >= 8) & (days <= 15)).sum())
    assert by_band[ag.NO_SALE] == days.null_count()
    assert found["refunds"].sum() == pairs.height
    assert found["amount_fen"].sum() == pairs["amount_fen"].sum()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


def test_findings_age_by_days_of_data_and_count_the_decided(tmp_path: Path) -> None:
    """A store audited after 8 days and again after 10 more: what the first run raised and is
    still open has been open 10 days of data; a decided one is counted as decided."""
    path = tmp_path / "w.duckdb"
    for args in (
        ("simulate", "--merchants", "8", "--days", "8", "--seed", "3"),
        ("run",),
        ("simulate", "--days", "10", "--append"),
        ("run",),
    ):
        made = cli(*args, "--db", str(path))
        assert made.returncode == 0, made.stderr
    store = Store.open(path, read_only=True)
    try:
        first = store.frame(
            "SELECT finding_id FROM findings WHERE status = 'open' AND first_run_id = "
            "(SELECT MIN(run_id) FROM pipeline_runs)"
        )["finding_id"]
        later = store.frame(
            "SELECT COUNT(*) AS n FROM findings WHERE status = 'open' AND first_run_id <> "
            "(SELECT MIN(run_id) FROM pipeline_runs)"
        )["n"][0]
    finally:
        store.close()
    assert first.len() > 0
    decided = cli("review", "decide", first[0], "--decision", "confirmed_fraud", "--db", str(path))
    assert decided.returncode == 0, decided.stderr
    made = cli("analyze", "ageing", "--db", str(path), "--json")
    assert made.returncode == 0, made.stderr
    findings = pl.DataFrame(json.loads(made.stdout)["findings"])
    by_band = findings.group_by("band").agg(pl.col("findings", "decided").sum())
    totals = {b: (n, d) for b, n, d in by_band.iter_rows()}
    assert totals["8-30 days"] == (first.len(), 1)
    assert totals["0-7 days"] == (later, 0)


def test_the_commands_print_and_refuse_bad_input(sample_store: Path, tmp_path: Path) -> None:
    shown = cli("analyze", "strata", "--db", str(sample_store), "--bounds", "10,100,1000")
    assert shown.returncode == 0, shown.stderr
    assert "Approved sale amounts by stratum (bounds: given)" in shown.stdout
    record = json.loads(cli("analyze", "strata", "--db", str(sample_store), "--json").stdout)
    assert record["from_quantiles"] and len(record["strata"]) == len(st.QUANTILES) + 1
    aged = cli("analyze", "ageing", "--db", str(sample_store))
    assert aged.returncode == 0, aged.stderr
    assert "Approved refunds by days after their sale" in aged.stdout
    for args, words in (
        (("strata", "--bounds", "100,50"), "--bounds must rise"),
        (("strata", "--bounds", "ten"), "--bounds must be amounts in CNY"),
        (("strata", "--bounds", "0.001"), "--bounds must be positive amounts to the fen"),
        (("strata", "--kind", "deposit"), "--kind must be one of"),
    ):
        made = cli("analyze", *args, "--db", str(sample_store))
        assert made.returncode == 2, made.stderr
        assert made.stderr.count("\n") == 1 and words in made.stderr, made.stderr
    missing = cli("analyze", "ageing", "--db", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr


def test_a_store_without_reviews_ages_its_findings_all_undecided(
    audited_sample: Path, tmp_path: Path
) -> None:
    import shutil

    path = tmp_path / "no-reviews.duckdb"
    shutil.copy(audited_sample, path)
    store = Store.open(path)
    try:
        reviewed = ag.ageing(store).findings
        for table in ("finding_reviews",):
            store.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        assert not store.has_table("finding_reviews")
        plain = ag.ageing(store).findings
    finally:
        store.close()
    assert plain["findings"].to_list() == reviewed["findings"].to_list()
    assert plain["findings"].sum() > 0 and plain["decided"].sum() == 0
