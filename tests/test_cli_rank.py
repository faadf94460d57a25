"""`posaudit rank` and the ranking section of `posaudit evaluate`, as a user meets them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from posaudit.store import Store

SCORES = {"unsupervised_all_days", "unsupervised", "supervised"}
METRICS = {"precision_at_100", "precision_at_1pct", "average_precision", "entity_days", "attacks"}


@pytest.fixture
def audited(audited_sample: Path) -> Path:
    """The sample world, audited once for the session (the rank and evaluate commands only
    read it)."""
    return audited_sample


def posaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


def one_error_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posaudit: error: "), done.stderr
    for needle in needles:
        assert needle in lines[0]
    assert not done.stdout


def test_rank_lists_the_latest_days_budget_with_scores_and_reasons(audited: Path) -> None:
    done = posaudit("rank", "--db", str(audited), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert set(record) == {"day", "entity", "entities", "budget", "top"}
    assert record["entity"] == "operator"
    assert record["budget"] == max(1, -(-record["entities"] // 100))
    assert len(record["top"]) == record["budget"]
    first = record["top"][0]
    assert set(first) == {"rank", "operator_id", "merchant_id", "score", "top_features"}
    assert first["rank"] == 1


def test_rank_a_chosen_day_of_merchants_as_a_table(audited: Path) -> None:
    store = Store.open(audited, read_only=True)
    try:
        # a whole day inside the data (its last day may be a few events past midnight)
        (day,) = store.query("SELECT CAST(min(ts) AS DATE) + 3 FROM transactions")[0]
    finally:
        store.close()
    listed = {"day": str(day)}
    done = posaudit(
        "rank", "--db", str(audited), "--day", listed["day"], "--entity", "merchant", "--top", "3"
    )
    assert done.returncode == 0, done.stderr
    assert f"{listed['day']}: merchant-days ranked" in done.stdout
    as_json = posaudit(
        "rank",
        "--db",
        str(audited),
        "--day",
        listed["day"],
        "--entity",
        "merchant",
        "--top",
        "3",
        "--json",
    )
    top = json.loads(as_json.stdout)["top"]
    assert [row["rank"] for row in top] == [1, 2, 3]
    assert [row["score"] for row in top] == sorted((row["score"] for row in top), reverse=True)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--day", "2026-02-30"), ("--day", "2026-02-30")),
        (("--day", "1999-01-01"), ("no operator activity on 1999-01-01", "the data runs from")),
        (("--entity", "card"), ("--entity", "card")),
        (("--top", "0"), ("--top", "0")),
    ],
)
def test_rank_refuses_bad_input_in_one_line(
    audited: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    one_error_line(posaudit("rank", "--db", str(audited), *args), *needles)


def test_rank_refuses_a_missing_store(tmp_path: Path) -> None:
    done = posaudit("rank", "--db", str(tmp_path / "none.duckdb"))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_evaluate_json_carries_the_ranking(audited: Path) -> None:
    done = posaudit("evaluate", "--db", str(audited), "--json")
    assert done.returncode == 0, done.stderr
    ranking = json.loads(done.stdout)["ranking"]
    assert {"budget_share", "top_k", "train_days", "test_days", "scores", "recall"} <= set(ranking)
    assert ranking["budget_share"] == 0.01 and ranking["top_k"] == 100
    assert max(ranking["train_days"]) < min(ranking["test_days"])
    for kind in ("operator", "merchant"):
        assert set(ranking["scores"][kind]) == SCORES
        for score in SCORES:
            assert set(ranking["scores"][kind][score]) == METRICS, (kind, score)
    scenarios = {row["scenario"] for row in ranking["recall"]}
    assert "refund_burst" in scenarios
    for row in ranking["recall"]:
        assert {"rules", "unsupervised", "union", "supervised_test"} <= set(row)
        assert row["union"] >= max(row["rules"], row["unsupervised"])


def test_evaluate_table_shows_the_ranking(audited: Path) -> None:
    done = posaudit("evaluate", "--db", str(audited))
    assert done.returncode == 0, done.stderr
    assert "daily ranking" in done.stdout
    assert "recall per scenario within the top 1 % of each day" in done.stdout
