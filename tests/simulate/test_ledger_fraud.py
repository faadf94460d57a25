"""Fees and completeness in the simulated world: batch totals, duplicated and deleted records,
misapplied fees, and what the audit makes of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from posaudit.detect.ledger import BATCH_SUMS_SQL, FEE_DIFFERENCES_SQL, traces_spanned
from posaudit.detect.policy import load_policy
from posaudit.detect.sale_queries import CARD_REPEATS_SQL, repeated_sales
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.store import Store

POSAUDIT = [sys.executable, "-m", "posaudit"]
LEDGER_SCENARIOS = ("duplicate_transactions", "deleted_records", "fee_misapplied")
LEDGER_RULES = ("fee_mismatches", "duplicate_transactions", "trace_gaps", "batch_total_mismatches")
# 40 merchants, 10 days, seed 2: every ledger scenario has incidents (measured)
MERCHANTS, DAYS, SEED = 40, 10, 2
EVERY_ROW = {"transactions": None, "merchants": None}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=600)


def _world(path: Path, *options: str) -> dict:
    made = _cli(
        "simulate", "--db", str(path), "--merchants", str(MERCHANTS), "--days", str(DAYS),
        "--seed", str(SEED), *options,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert _cli("run", "--db", str(path)).returncode == 0
    evaluated = _cli("evaluate", "--db", str(path), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    return json.loads(evaluated.stdout)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("ledger") / "clean.duckdb"
    return path, _world(path, "--no-fraud")


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("ledger") / "default.duckdb"
    return path, _world(path)


def _query(path: Path, sql: str) -> pl.DataFrame:
    store = Store.open(path, read_only=True)
    try:
        return store.read_query(sql, over=EVERY_ROW)
    finally:
        store.close()


def test_a_clean_world_recomputes_to_zero_fee_differences(clean: tuple[Path, dict]) -> None:
    path, _ = clean
    assert _query(path, FEE_DIFFERENCES_SQL).is_empty()
    charged = _query(path, "SELECT sum(fee_fen) AS fees, count(*) AS n FROM transactions")
    assert charged.item(0, "n") > 10_000 and charged.item(0, "fees") > 0


def test_a_clean_world_has_whole_batches_and_no_ledger_finding(clean: tuple[Path, dict]) -> None:
    path, evaluated = clean
    sums = _query(path, BATCH_SUMS_SQL)
    spanned = sums.select(traces_spanned(max_trace_no=999_999) - pl.col("record_count"))
    assert (spanned.to_series() == 0).all()  # every batch's trace numbers run without a gap
    store = Store.open(path, read_only=True)
    try:
        totals = store.frame("SELECT * FROM batch_totals")
        findings = store.frame("SELECT rule FROM findings WHERE family = 'ledger'")
    finally:
        store.close()
    assert totals.height == sums.height > 0
    joined = sums.join(totals, on=["terminal_id", "batch_no"], suffix="_counted")
    for column in ("txn_count", "sale_amount_fen", "void_amount_fen", "refund_amount_fen"):
        assert (joined[column] == joined[f"{column}_counted"]).all(), column
    assert (joined["fee_fen"] == joined["fee_fen_counted"]).all()
    assert findings.is_empty()
    assert "ledger" not in evaluated["unmatched_above_low_by_family"]


def test_every_ledger_scenario_is_injected_and_found(default: tuple[Path, dict]) -> None:
    _, evaluated = default
    recall = {row["scenario"]: row for row in evaluated["recall"]}
    for scenario in LEDGER_SCENARIOS:
        assert recall[scenario]["incidents"] > 0, scenario
        assert recall[scenario]["recall"] == 1.0, recall[scenario]
    precision = {row["rule"]: row for row in evaluated["precision"]}
    for rule in LEDGER_RULES:
        assert precision[rule]["findings"] > 0, rule
        assert precision[rule]["precision"] == 1.0, precision[rule]
    lookalikes = evaluated["lookalikes"]
    for kind in ("retry_after_decline", "debit_cap_purchases"):
        assert lookalikes[kind]["incidents"] > 0, kind
    for kind in ("retry_after_decline", "debit_cap_purchases", "trace_wrap", "terminal_reinit"):
        assert not set(lookalikes.get(kind, {}).get("by_rule", {})) & set(LEDGER_RULES), kind


def test_the_batch_totals_count_the_records_before_deletion(default: tuple[Path, dict]) -> None:
    path, _ = default
    store = Store.open(path, read_only=True)
    try:
        deleted = store.frame(
            "SELECT entity_id AS terminal_id FROM ground_truth WHERE scenario = 'deleted_records'"
        )
        short = store.frame(
            "SELECT b.terminal_id FROM batch_totals AS b JOIN (SELECT terminal_id, batch_no, "
            "count(*) FILTER (WHERE status = 'approved') AS n FROM transactions GROUP BY ALL) "
            "AS t USING (terminal_id, batch_no) WHERE b.txn_count > t.n"
        )
    finally:
        store.close()
    assert set(short["terminal_id"]) == set(deleted["terminal_id"])


def test_the_fee_leakage_is_the_sum_of_the_fee_findings(
    default: tuple[Path, dict], tmp_path: Path
) -> None:
    path, _ = default
    store = Store.open(path, read_only=True)
    try:
        difference = store.frame(
            "SELECT sum(CAST(json_extract(evidence, '$.difference_fen') AS BIGINT)) AS fen, "
            "count(*) AS n FROM findings WHERE rule = 'fee_mismatches'"
        )
    finally:
        store.close()
    fen, count = difference.item(0, "fen"), difference.item(0, "n")
    assert count > 0
    yuan = f"{fen / 100:,.2f}"
    for lang, words in (("en", f"Fee leakage: {yuan} CNY net"), ("zh", f"净少收 {yuan} 元")):
        out = tmp_path / lang
        made = _cli(
            "report", "--db", str(path), "--out", str(out), "--format", "html", "--lang", lang
        )
        assert made.returncode == 0, made.stderr
        html = next(out.glob("*.html")).read_text("utf-8")
        assert words in html, lang
        assert f"{count:,}" in html


def test_evading_duplicates_come_just_inside_the_window(tmp_path: Path) -> None:
    """At evasion 1 a copy comes as late as the policy's window allows, and is still found:
    the copy is the same sale on the same card, however late within the window."""
    path = tmp_path / "w.duckdb"
    simulate(path, load_scenario(None, merchants=MERCHANTS, days=4, evasion=1.0), seed=SEED)
    limit = load_policy().parameters("duplicate_transactions")["max_gap_seconds"]
    store = Store.open(path, read_only=True)
    try:
        labelled = store.frame(
            "SELECT entity_id FROM ground_truth WHERE scenario = 'duplicate_transactions'"
        )
    finally:
        store.close()
    repeats = repeated_sales(_query(path, CARD_REPEATS_SQL).lazy()).collect()
    gaps = repeats.filter(pl.col("txn_id").is_in(labelled["entity_id"].implode()))
    assert labelled.height > 0 and gaps.height == labelled.height
    assert gaps["gap_seconds"].max() == limit - 1
