"""Tests of the fees and completeness rules on small literal frames."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posaudit.detect import fees, ledger
from posaudit.detect.findings import FINDINGS_SCHEMA, fen_to_yuan
from posaudit.detect.registry import DERIVED_TABLES, RULES
from tests.sentences import assert_summaries_read_back

T0 = datetime(2026, 3, 4, 10, 0)
MERCHANT = "M000001"
TERMINAL = "T000001"
SEVERITY_OF: dict[str, str] = dict.fromkeys(ledger.RULE_NAMES, "medium")
TXN_SCHEMA: dict[str, Any] = {
    "txn_id": pl.String,
    "ts": pl.Datetime("us"),
    "terminal_id": pl.String,
    "merchant_id": pl.String,
    "operator_id": pl.String,
    "kind": pl.String,
    "channel": pl.String,
    "amount_fen": pl.Int64,
    "fee_fen": pl.Int64,
    "card_token": pl.String,
    "trace_no": pl.Int32,
    "batch_no": pl.Int32,
    "status": pl.String,
}
MERCHANT_SCHEMA: dict[str, Any] = {
    "merchant_id": pl.String,
    "fee_class": pl.String,
    "discount_rate_bp": pl.Int32,
}


def txn(
    txn_id: str,
    ts: datetime,
    *,
    amount_fen: int = 10_000,
    fee_fen: int | None = None,
    channel: str = "credit_card",
    kind: str = "sale",
    status: str = "approved",
    card: str = "C1",
    trace_no: int = 1,
    batch_no: int = 7,
    terminal_id: str = TERMINAL,
) -> dict[str, Any]:
    if fee_fen is None:  # the fee table's, for a standard merchant
        fee_fen = _standard_fee(amount_fen, channel) if status == "approved" else 0
        fee_fen = -fee_fen if kind == "void" else fee_fen if kind in ("sale", "void") else 0
    return {
        "txn_id": txn_id,
        "ts": ts,
        "terminal_id": terminal_id,
        "merchant_id": MERCHANT,
        "operator_id": f"{terminal_id}-01",
        "kind": kind,
        "channel": channel,
        "amount_fen": amount_fen,
        "fee_fen": fee_fen,
        "card_token": card,
        "trace_no": trace_no,
        "batch_no": batch_no,
        "status": status,
    }


def _standard_fee(amount_fen: int, channel: str) -> int:
    return int(
        fees.fee_of(
            np.array([amount_fen]),
            np.array([fees.CHANNEL_RATE_BP[channel]]),
            capped=np.array([channel == "debit_card"]),
        )[0]
    )


def tables(rows: list[dict[str, Any]], fee_class: str = "standard", rate_bp: int | None = None):
    return {
        "transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA),
        "merchants": pl.LazyFrame(
            [{"merchant_id": MERCHANT, "fee_class": fee_class, "discount_rate_bp": rate_bp}],
            schema=MERCHANT_SCHEMA,
        ),
    }


def check(found: pl.LazyFrame) -> pl.DataFrame:
    """Collect a rule's output and check what every finding must satisfy."""
    frame = found.collect()
    assert frame.schema == FINDINGS_SCHEMA
    for row in frame.iter_rows(named=True):
        assert row["family"] == "ledger"
        assert row["severity"] == SEVERITY_OF[row["rule"]]
        assert row["merchant_id"] == MERCHANT
        assert row["window_start"] <= row["window_end"]
        assert 0.0 <= row["score"] <= 1.0
    assert_summaries_read_back(frame)
    return frame


def evidence(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [json.loads(e) for e in frame.get_column("evidence")]


@pytest.mark.parametrize("name", ledger.RULE_NAMES)
def test_rule_is_registered_in_the_ledger_family(name: str) -> None:
    assert RULES[name].family == "ledger"
    assert RULES[name].function is getattr(ledger, name)


# --- fee_mismatches -----------------------------------------------------------------------


def test_fees_by_the_table_are_no_finding() -> None:
    rows = [
        txn("X1", T0, amount_fen=12_345, channel="credit_card"),
        txn("X2", T0 + timedelta(minutes=1), amount_fen=999_999, channel="debit_card"),
        txn("X3", T0 + timedelta(minutes=2), amount_fen=101, channel="alipay_qr"),
        txn("X4", T0 + timedelta(minutes=3), amount_fen=12_345, kind="void"),
        txn("X5", T0 + timedelta(minutes=4), amount_fen=5_000, kind="refund"),
        txn("X6", T0 + timedelta(minutes=5), amount_fen=5_000, status="declined"),
    ]
    assert check(RULES["fee_mismatches"](tables(rows))).is_empty()


def test_a_charity_charged_is_found_with_what_it_paid() -> None:
    rows = [txn("X1", T0, amount_fen=100_000), txn("X2", T0 + timedelta(hours=1))]
    found = check(RULES["fee_mismatches"](tables(rows, fee_class="charity")))
    assert found.height == 1
    (ev,) = evidence(found)
    assert ev["fee_kind"] == "charity_charged"
    assert ev["charged_fen"] == 600 + 60 and ev["expected_fen"] == 0
    assert ev["difference_fen"] == -660
    assert found.get_column("entity_type").to_list() == ["merchant"]


def test_the_debit_cap_on_a_credit_card_is_found() -> None:
    rows = [txn("X1", T0, amount_fen=1_000_000, fee_fen=fees.DEBIT_CAP_FEN)]
    (ev,) = evidence(check(RULES["fee_mismatches"](tables(rows))))
    assert ev["fee_kind"] == "cap_on_credit"
    assert ev["difference_fen"] == 6_000 - 2_000


def test_the_discount_rate_on_a_standard_merchant_is_found() -> None:
    rows = [txn("X1", T0, amount_fen=50_000, channel="credit_card", fee_fen=215)]  # 0.43 %
    (ev,) = evidence(check(RULES["fee_mismatches"](tables(rows))))
    assert ev["fee_kind"] == "discount_rate_on_standard"
    assert ev["difference_fen"] == 300 - 215


def test_a_discount_merchant_is_charged_its_own_rate() -> None:
    ok = txn("X1", T0, amount_fen=50_000, fee_fen=225)  # 0.45 % of 500 CNY
    assert check(RULES["fee_mismatches"](tables([ok], "discount", 45))).is_empty()
    wrong = txn("X1", T0, amount_fen=50_000)  # billed the channel's 0.60 %
    (ev,) = evidence(check(RULES["fee_mismatches"](tables([wrong], "discount", 45))))
    assert ev["difference_fen"] == 225 - 300 and ev["fee_kind"] == "other"


def test_one_finding_a_merchant_day() -> None:
    rows = [
        txn(f"X{i}", T0 + timedelta(hours=i * 7), amount_fen=100_000, fee_fen=0)
        for i in range(4)  # 10:00, 17:00 on day 1; 00:00, 07:00 on day 2
    ]
    found = check(RULES["fee_mismatches"](tables(rows)))
    assert sorted(e["records"] for e in evidence(found)) == [2, 2]
    assert found.get_column("finding_id").n_unique() == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 5_000_000),
            st.sampled_from(sorted(fees.CHANNEL_RATE_BP)),
            st.sampled_from(["standard", "discount", "charity"]),
            st.integers(*fees.DISCOUNT_RATE_BP),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_the_store_and_polars_recompute_the_simulators_fees_exactly(cases: list) -> None:
    """Half-up rounding and the cap, in integers: DuckDB, Polars and numpy agree to the fen."""
    amount = np.array([c[0] for c in cases], dtype=np.int64)
    channel = np.array([c[1] for c in cases])
    fee_class = np.array([c[2] for c in cases])
    bp = np.where(
        fee_class == "charity",
        0,
        np.where(
            fee_class == "discount",
            [c[3] for c in cases],
            [fees.CHANNEL_RATE_BP[c] for c in channel],
        ),
    )
    charged = fees.fee_of(amount, bp, capped=channel == "debit_card")
    merchants = pl.DataFrame(
        {
            "merchant_id": [f"M{i}" for i in range(len(cases))],
            "fee_class": fee_class,
            "discount_rate_bp": pl.Series([c[3] for c in cases], dtype=pl.Int32),
        }
    )
    transactions = pl.DataFrame(
        [
            txn(f"X{i}", T0, amount_fen=int(a), channel=str(c), fee_fen=int(f))
            | {"merchant_id": f"M{i}"}
            for i, (a, c, f) in enumerate(zip(amount, channel, charged, strict=True))
        ],
        schema=TXN_SCHEMA,
    )
    sql = DERIVED_TABLES["fee_differences"].sql
    assert sql is not None
    in_polars = ledger.fee_differences(transactions.lazy(), merchants.lazy()).collect()
    in_duckdb = _connection(transactions, merchants).sql(sql).pl()
    assert in_polars.is_empty() and in_duckdb.is_empty()
    # one fen more on every record: every one differs, by one fen, in both engines
    off = transactions.with_columns(pl.col("fee_fen") + 1)
    assert ledger.fee_differences(off.lazy(), merchants.lazy()).collect().height == len(cases)
    assert _connection(off, merchants).sql(sql).pl().height == len(cases)


def _connection(transactions: pl.DataFrame, merchants: pl.DataFrame) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.register("transactions", transactions.to_arrow())
    connection.register("merchants", merchants.to_arrow())
    return connection


# --- duplicate_transactions ---------------------------------------------------------------


def test_a_sale_recorded_twice_within_seconds_is_found() -> None:
    rows = [
        txn("X1", T0, trace_no=1),
        txn("X2", T0 + timedelta(seconds=12), trace_no=2),
    ]
    found = check(
        RULES["duplicate_transactions"]({"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA)})
    )
    assert found.get_column("entity_id").to_list() == ["X2"]
    (ev,) = evidence(found)
    assert ev["duplicate_of_txn_id"] == "X1" and ev["gap_seconds"] == 12


def test_a_replay_with_the_sales_own_time_is_found() -> None:
    rows = [txn("X1", T0, trace_no=1), txn("X2", T0, trace_no=2)]
    found = check(
        RULES["duplicate_transactions"]({"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA)})
    )
    assert found.get_column("entity_id").to_list() == ["X2"]


@pytest.mark.parametrize(
    "rows",
    [
        # a retry after a decline: the first try was declined
        [txn("X1", T0, status="declined"), txn("X2", T0 + timedelta(seconds=40), trace_no=2)],
        # the customer buys the same again minutes later
        [txn("X1", T0), txn("X2", T0 + timedelta(minutes=5), trace_no=2)],
        # another card, or another amount
        [txn("X1", T0), txn("X2", T0 + timedelta(seconds=5), card="C2", trace_no=2)],
        [txn("X1", T0), txn("X2", T0 + timedelta(seconds=5), amount_fen=9_999, trace_no=2)],
        # another terminal
        [txn("X1", T0), txn("X2", T0 + timedelta(seconds=5), terminal_id="T000002")],
    ],
)
def test_repeats_that_are_no_double_are_left_alone(rows: list[dict[str, Any]]) -> None:
    data = {"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA)}
    assert check(RULES["duplicate_transactions"](data)).is_empty()


def test_the_policy_window_bounds_the_gap() -> None:
    rows = [txn("X1", T0), txn("X2", T0 + timedelta(seconds=45), trace_no=2)]
    data = {"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA)}
    assert check(RULES["duplicate_transactions"](data)).height == 1
    assert check(RULES["duplicate_transactions"](data, max_gap_seconds=30)).is_empty()


# --- trace_gaps -----------------------------------------------------------------------------


def batch(traces: list[int], batch_no: int = 7, start: datetime = T0) -> list[dict[str, Any]]:
    return [
        txn(f"X{batch_no}-{i}", start + timedelta(minutes=i), trace_no=t, batch_no=batch_no)
        for i, t in enumerate(traces)
    ]


def test_missing_trace_numbers_inside_a_batch_are_found() -> None:
    rows = batch([101, 102, 105, 106, 108])
    found = check(RULES["trace_gaps"]({"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA)}))
    assert found.height == 1
    (ev,) = evidence(found)
    assert ev["missing_traces"] == 3 and ev["records"] == 5
    assert (ev["lowest_trace_no"], ev["highest_trace_no"]) == (101, 108)
    assert found.get_column("entity_id").to_list() == [TERMINAL]


@pytest.mark.parametrize(
    "rows",
    [
        batch([999_998, 999_999, 1, 2]),  # the counter wraps inside the batch
        batch([999_999, 1]),
        batch([500, 501]) + batch([1, 2], batch_no=8, start=T0 + timedelta(days=1)),  # re-init
        batch([10, 11]) + batch([40, 41], batch_no=8, start=T0 + timedelta(days=1)),
        batch([5_000, 5_001, 1, 2]),  # set back inside a batch: a reset, not a deletion
    ],
)
def test_counters_that_wrap_or_start_again_are_no_gap(rows: list[dict[str, Any]]) -> None:
    assert check(
        RULES["trace_gaps"]({"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA)})
    ).is_empty()


# --- batch_total_mismatches ---------------------------------------------------------------


def totals(**counted: int) -> pl.LazyFrame:
    row = {
        "batch_id": f"{TERMINAL}:7",
        "terminal_id": TERMINAL,
        "merchant_id": MERCHANT,
        "batch_no": 7,
        "settled_at": T0 + timedelta(hours=12),
        "txn_count": 3,
        "first_trace": 1,
        "last_trace": 3,
        "sale_amount_fen": 30_000,
        "void_amount_fen": 0,
        "refund_amount_fen": 0,
        "fee_fen": 180,
    } | counted
    return pl.LazyFrame([row])


def test_a_batch_that_adds_up_is_no_finding() -> None:
    rows = batch([1, 2, 3])
    data = {"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA), "batch_totals": totals()}
    assert check(RULES["batch_total_mismatches"](data)).is_empty()


def test_a_batch_missing_its_last_record_is_found_up_to_its_settlement() -> None:
    rows = batch([1, 2])
    data = {"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA), "batch_totals": totals()}
    found = check(RULES["batch_total_mismatches"](data))
    (ev,) = evidence(found)
    assert ev["counted_records"] == 3 and ev["recorded_records"] == 2
    assert ev["missing_sale_amount_fen"] == 10_000 and ev["missing_fee_fen"] == 60
    assert found.get_column("window_end").to_list() == [T0 + timedelta(hours=12)]


def test_money_below_zero_reads_as_yuan_with_a_minus() -> None:
    """A charity's difference is negative: -660 fen is -6.60 CNY (floor division gave -7.40)."""
    shown = pl.select(fen_to_yuan(pl.Series([-660, -5, 0, 523]))).to_series().to_list()
    assert shown == ["-6.60 CNY", "-0.05 CNY", "0.00 CNY", "5.23 CNY"]


def test_a_gap_across_the_wrap_is_found() -> None:
    rows = batch([999_997, 999_998, 2, 3])  # 999,999 and 1 missing
    found = check(RULES["trace_gaps"]({"transactions": pl.LazyFrame(rows, schema=TXN_SCHEMA)}))
    assert [e["missing_traces"] for e in evidence(found)] == [2]
