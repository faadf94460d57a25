"""Tests of the sales-pattern rule family on small literal frames."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl
import pytest

from posaudit.detect import sales
from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.registry import DERIVED_TABLES, RULES
from posaudit.detect.sale_queries import card_repeats, declines_and_voids
from tests.sentences import assert_summaries_read_back

T0 = datetime(2026, 3, 4, 10, 0)
MERCHANT = "M000001"
TERMINAL = "T000001"
CLERK = "T000001-03"
OTHER_CLERK = "T000001-04"

TXN_SCHEMA: dict[str, Any] = {
    "txn_id": pl.String,
    "ts": pl.Datetime("us"),
    "terminal_id": pl.String,
    "merchant_id": pl.String,
    "operator_id": pl.String,
    "kind": pl.String,
    "amount_fen": pl.Int64,
    "card_token": pl.String,
    "original_txn_id": pl.String,
    "status": pl.String,
    "failure_reason": pl.String,
    "trace_no": pl.Int64,
}
RULE_NAMES = ("split_sales", "card_testing", "void_abuse")
# Each rule's severity (docs/detection.md#severity): patterns to review, none pages.
SEVERITY_OF: dict[str, str] = dict.fromkeys(RULE_NAMES, "medium")


def txn(txn_id: str, ts: datetime, **kw: Any) -> dict[str, Any]:
    row = {
        "txn_id": txn_id,
        "ts": ts,
        "terminal_id": TERMINAL,
        "merchant_id": MERCHANT,
        "operator_id": CLERK,
        "kind": "sale",
        "amount_fen": 5_000,
        "card_token": "C1",
        "original_txn_id": None,
        "status": "approved",
        "failure_reason": None,
        "trace_no": None,
    }
    row.update(kw)
    return row


def transactions(*rows: dict[str, Any]) -> pl.LazyFrame:
    return pl.LazyFrame(list(rows), schema=TXN_SCHEMA)


def operators() -> pl.LazyFrame:
    return pl.LazyFrame(
        {"operator_id": [CLERK, OTHER_CLERK], "operator_no": ["03", "04"]},
        schema={"operator_id": pl.String, "operator_no": pl.String},
    )


def check(found: pl.LazyFrame) -> pl.DataFrame:
    """Collect a rule's output and check what every finding must satisfy."""
    frame = found.collect()
    assert frame.schema == FINDINGS_SCHEMA
    for row in frame.iter_rows(named=True):
        assert row["finding_id"] and row["entity_id"] and row["merchant_id"] == MERCHANT
        assert row["window_start"] <= row["window_end"]
        assert row["severity"] == SEVERITY_OF[row["rule"]]
        assert 0.0 <= row["score"] <= 1.0
        json.loads(row["evidence"])
    assert_summaries_read_back(frame)
    return frame


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_is_registered_in_the_sales_family(name: str) -> None:
    registered = RULES[name]
    assert registered.family == "sales"
    assert registered.function is getattr(sales, name)
    assert registered.partition_key in ("terminal_id", "merchant_id")
    assert all(isinstance(v, int | float) for v in registered.parameters.values())


# --- split_sales ------------------------------------------------------------------------------


def _split(data: pl.LazyFrame, **kw: Any) -> pl.DataFrame:
    return check(sales.split_sales(card_repeats(data), **kw))


def test_split_sales_finds_one_card_swiped_three_times_in_minutes() -> None:
    data = transactions(
        txn("S1", minutes(0), amount_fen=98_000),
        txn("S2", minutes(1.5), amount_fen=97_000),
        txn("S3", minutes(3), amount_fen=99_000),
        txn("X1", minutes(2), card_token="C2"),  # another customer in between
    )
    found = _split(data)
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["entity_type"] == "terminal" and row["entity_id"] == TERMINAL
    evidence = json.loads(row["evidence"])
    assert evidence["sale_txn_ids"] == ["S1", "S2", "S3"]
    assert evidence["amount_fen"] == 294_000 and evidence["largest_fen"] == 99_000
    assert row["window_start"] == minutes(0) and row["window_end"] == minutes(3)


def test_split_sales_leaves_a_customer_who_comes_back_alone() -> None:
    # the second purchase look-alike: the same card again 10-40 minutes later
    back = transactions(txn("S1", minutes(0)), txn("S2", minutes(15)), txn("S3", minutes(45)))
    assert _split(back).height == 0
    # two swipes are a customer paying twice, not yet a split
    assert _split(transactions(txn("S1", minutes(0)), txn("S2", minutes(1)))).height == 0


def test_split_sales_keeps_terminals_cards_and_statuses_apart() -> None:
    other_terminal = transactions(
        txn("S1", minutes(0)), txn("S2", minutes(1), terminal_id="T000002"), txn("S3", minutes(2))
    )
    assert _split(other_terminal).height == 0
    declined = transactions(
        txn("S1", minutes(0)),
        txn("S2", minutes(1), status="declined", failure_reason="insufficient_funds"),
        txn("S3", minutes(2)),
    )
    assert _split(declined).height == 0


def test_split_sales_gap_threshold_is_inclusive() -> None:
    at_gap = transactions(txn("S1", minutes(0)), txn("S2", minutes(5)), txn("S3", minutes(10)))
    assert _split(at_gap).height == 1
    past = transactions(txn("S1", minutes(0)), txn("S2", minutes(5)), txn("S3", minutes(10.1)))
    assert _split(past).height == 0
    assert _split(past, max_gap_minutes=6).height == 1


# --- card_testing -----------------------------------------------------------------------------


def _takings(average_fen: int, count: int = 100) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "terminal_id": [TERMINAL],
            "day": [T0.date()],
            "hour": [T0.hour + 6],
            "sale_count": [count],
            "sale_amount_fen": [average_fen * count],
        },
        schema={
            "terminal_id": pl.String,
            "day": pl.Date,
            "hour": pl.Int64,
            "sale_count": pl.Int64,
            "sale_amount_fen": pl.Int64,
        },
    )


def _tests(count: int, *, amount_fen: int = 150, cards: int | None = None, gap: float = 0.5):
    return [
        txn(
            f"D{i}",
            minutes(i * gap),
            amount_fen=amount_fen,
            card_token=f"C{i % (cards or count)}",
            status="declined",
            failure_reason="card_expired",
        )
        for i in range(count)
    ]


def _days(*days: tuple[date, int, int]) -> pl.LazyFrame:
    """The terminal's days (``merchant_terminal_days``): (day, sale count, sale amount)."""
    return pl.LazyFrame(
        [(TERMINAL, day, count, amount) for day, count, amount in days],
        schema={
            "terminal_id": pl.String,
            "day": pl.Date,
            "sale_count": pl.Int64,
            "sale_amount_fen": pl.Int64,
        },
        orient="row",
    )


def _testing(rows: list[dict[str, Any]], average_fen: int = 8_000, **kw: Any) -> pl.DataFrame:
    data = transactions(*rows)
    return check(sales.card_testing(declines_and_voids(data), _takings(average_fen), _days(), **kw))


def _testing_at(data: pl.LazyFrame, days: pl.LazyFrame | None = None) -> pl.DataFrame:
    """card_testing over ``data``'s own declines and takings, and the days before."""
    takings = sales.declining_terminal_days(data)
    return check(
        sales.card_testing(declines_and_voids(data), takings, _days() if days is None else days)
    )


def test_card_testing_finds_a_burst_of_tiny_declines_from_many_cards() -> None:
    rows = [*_tests(12), txn("A1", minutes(2), amount_fen=120, card_token="C99")]
    found = _testing(rows)
    assert found.height == 1
    evidence = json.loads(found.row(0, named=True)["evidence"])
    assert evidence["declines"] == 12 and evidence["cards"] == 12
    assert evidence["median_amount_fen"] == 150 and evidence["average_sale_fen"] == 8_000
    assert evidence["decline_reasons"] == ["card_expired"]


def test_card_testing_leaves_an_issuer_outage_alone() -> None:
    # customers' ordinary purchases declined by an unreachable issuer: normal amounts
    outage = _tests(12, amount_fen=6_000)
    assert _testing(outage).height == 0
    # the same burst on a terminal that takes tiny sums is no test either way: the share counts
    assert _testing(_tests(12), average_fen=400).height == 0


def test_card_testing_leaves_customers_who_pay_again_alone() -> None:
    # an outage at a shop of large purchases: small against the average, but each customer
    # pays again on the same card minutes later
    declined = _tests(12, amount_fen=1_500)
    paid = [
        txn(
            f"P{i}",
            row["ts"] + timedelta(minutes=3),
            amount_fen=1_500,
            card_token=row["card_token"],
        )
        for i, row in enumerate(declined)
    ]
    assert _testing(declined + paid, average_fen=50_000).height == 0
    assert _testing(declined + paid[:6], average_fen=50_000).height == 1
    late = [{**row, "ts": row["ts"] + timedelta(minutes=31)} for row in paid]
    assert _testing(declined + late, average_fen=50_000).height == 1


def test_card_testing_needs_many_cards_and_a_dense_burst() -> None:
    assert _testing(_tests(7)).height == 0
    assert _testing(_tests(8)).height == 1
    assert _testing(_tests(12, cards=3)).height == 0  # the same few cards retried
    assert _testing(_tests(12, gap=11)).height == 0  # spread over hours


def test_card_testing_compares_with_the_terminals_own_takings_of_the_day() -> None:
    sales_of_the_day = [txn(f"A{i}", minutes(60 + i), amount_fen=8_000) for i in range(20)]
    data = transactions(*_tests(10), *sales_of_the_day)
    takings = sales.declining_terminal_days(data)
    assert takings.collect().get_column("sale_amount_fen").sum() == 20 * 8_000 + 0
    assert _testing_at(data).height == 1
    dear = transactions(*_tests(10, amount_fen=3_000), *sales_of_the_day)
    assert _testing_at(dear).height == 0


def test_card_testing_leaves_out_the_testers_own_approved_sales() -> None:
    """A quiet terminal: the tester's working cards, approved at tiny sums in the burst's
    hour, are all its sales that day; the week before is what the burst is set against."""
    approved_tests = [
        txn(f"W{i}", minutes(i + 0.25), amount_fen=120, card_token=f"W{i}") for i in range(6)
    ]
    data = transactions(*_tests(10, amount_fen=1_000), *approved_tests)
    week = _days(*((T0.date() - timedelta(days=d), 2, 12_000) for d in range(1, 8)))
    found = _testing_at(data, week)
    assert found.height == 1
    assert json.loads(found.row(0, named=True)["evidence"])["average_sale_fen"] == 6_000
    # a terminal that usually takes tiny sums: the same burst is no test
    small = _days(*((T0.date() - timedelta(days=d), 2, 1_600) for d in range(1, 8)))
    assert _testing_at(data, small).height == 0
    # a day more than a week before the burst's day is not the terminal's usual sale
    old = _days((T0.date() - timedelta(days=8), 2, 1_600))
    found = _testing_at(data, old)
    assert found.height == 1
    assert json.loads(found.row(0, named=True)["evidence"])["average_sale_fen"] is None
    # the day's other hours count with the week
    later = [txn(f"A{i}", minutes(300 + i), amount_fen=2_000) for i in range(2)]
    both = transactions(*_tests(10, amount_fen=1_000), *approved_tests, *later)
    week = _days((T0.date() - timedelta(days=1), 2, 20_000))
    evidence = json.loads(_testing_at(both, week).row(0, named=True)["evidence"])
    assert evidence["average_sale_fen"] == (20_000 + 4_000) // 4


def test_card_testing_counts_a_terminal_without_takings_at_any_amount() -> None:
    data = transactions(*_tests(10))
    empty = _takings(1).filter(pl.lit(False))
    assert check(sales.card_testing(declines_and_voids(data), empty, _days())).height == 1


# --- void_abuse -------------------------------------------------------------------------------


def _voided(
    sale_at: float, void_at: float, n: int, *, operator: str = CLERK, card: str = "V"
) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        sale_id, void_id = f"{operator}-S{sale_at}-{i}", f"{operator}-V{void_at}-{i}"
        rows.append(
            txn(sale_id, minutes(sale_at + i), operator_id=operator, card_token=f"{card}{i}")
        )
        rows.append(
            txn(
                void_id,
                minutes(void_at + i),
                kind="void",
                operator_id=operator,
                card_token=f"{card}{i}",
                original_txn_id=sale_id,
            )
        )
    return rows


def _voids(rows: list[dict[str, Any]], **kw: Any) -> pl.DataFrame:
    data = transactions(*rows)
    return check(sales.void_abuse(declines_and_voids(data), operators(), **kw))


def test_void_abuse_finds_sales_voided_hours_later() -> None:
    found = _voids(_voided(0, 480, 3))
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["entity_type"] == "operator" and row["entity_id"] == CLERK
    evidence = json.loads(row["evidence"])
    assert evidence["voids"] == 3 and evidence["shortest_delay_minutes"] == 480
    assert "operator 03" in row["summary"]


def test_void_abuse_leaves_prompt_voids_and_a_single_late_one_alone() -> None:
    assert _voids(_voided(0, 5, 4)).height == 0  # corrected while the customer waited
    assert _voids(_voided(0, 480, 1)).height == 0


def test_void_abuse_leaves_closing_corrections_alone() -> None:
    rows = _voided(0, 480, 3)
    # each voided sale rung up again on the same card a minute later
    rows += [txn(f"R{i}", minutes(481 + i), card_token=f"V{i}") for i in range(3)]
    assert _voids(rows).height == 0
    assert _voids(rows, correction_minutes=0).height == 1


def test_void_abuse_needs_more_than_the_merchants_other_operators() -> None:
    rows = _voided(0, 480, 3) + _voided(10, 490, 3, operator=OTHER_CLERK, card="W")
    assert _voids(rows).height == 0
    rows = _voided(0, 480, 3) + _voided(10, 490, 2, operator=OTHER_CLERK, card="W")
    found = _voids(rows)
    assert found.get_column("entity_id").to_list() == [CLERK]
    assert json.loads(found.row(0, named=True)["evidence"])["peer_late_voids"] == 2


# --- the queries: DuckDB and Polars agree -----------------------------------------------------


@pytest.mark.parametrize("name", ["card_repeats", "declines_and_voids", "declining_terminal_days"])
def test_each_query_gives_the_same_rows_in_the_store_and_in_polars(name: str) -> None:
    rows = [
        *_tests(9),
        *_voided(0, 480, 2),
        txn("S1", minutes(0), card_token="K"),
        txn("S2", minutes(2), card_token="K"),
        txn("S3", minutes(200), card_token="K"),
        txn("R1", minutes(481), card_token="V0"),
    ]
    frame = transactions(*rows).collect()
    table = DERIVED_TABLES[name]
    key = "txn_id" if "txn_id" in table(frame.lazy()).collect_schema() else "terminal_id"
    in_polars = table(frame.lazy()).collect()
    in_polars = in_polars.sort(key, *(c for c in in_polars.columns if c != key))
    connection = duckdb.connect()
    connection.register("transactions", frame.to_arrow())
    in_store = connection.sql(table.sql).pl().sort(key, *(c for c in in_polars.columns if c != key))
    assert in_polars.height > 0
    assert in_store.select(in_polars.columns).equals(in_polars, null_equal=True)


def test_the_window_of_a_finding_is_its_first_and_last_event() -> None:
    found = _split(
        transactions(txn("S1", minutes(0)), txn("S2", minutes(1)), txn("S3", minutes(2)))
    )
    assert found.get_column("window_start").dt.date().to_list() == [date(2026, 3, 4)]


def test_split_sales_wants_pieces_alike_in_size() -> None:
    # different goods bought one after the other on one card: 1,990, 7,990 and 4,990 CNY
    basket = transactions(
        txn("S1", minutes(0), amount_fen=199_000),
        txn("S2", minutes(2), amount_fen=799_000),
        txn("S3", minutes(4), amount_fen=499_000),
    )
    assert _split(basket).height == 0
    assert _split(basket, min_piece_percent=20).height == 1
    # one purchase cut under a 5,000 CNY limit: the smallest piece half the largest counts
    cut = transactions(
        txn("S1", minutes(0), amount_fen=499_000),
        txn("S2", minutes(2), amount_fen=400_000),
        txn("S3", minutes(4), amount_fen=249_500),
    )
    found = _split(cut)
    assert found.height == 1
    assert json.loads(found.row(0, named=True)["evidence"])["smallest_fen"] == 249_500
    assert _split(cut, min_piece_percent=51).height == 0
