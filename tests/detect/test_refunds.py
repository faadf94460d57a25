"""Tests of the refunds rule family on small literal frames."""

from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from posaudit.detect import refunds
from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.registry import RULES
from tests.sentences import assert_summaries_read_back

T0 = datetime(2026, 3, 4, 10, 0)
MERCHANT = "M000001"
TERMINAL = "T000001"
CLERK = "T000001-03"  # may refund
NO_REFUND_CLERK = "T000001-04"
ADMIN = "T000001-00"

TXN_SCHEMA: dict[str, Any] = {
    "txn_id": pl.String,
    "ts": pl.Datetime("us"),
    "terminal_id": pl.String,
    "merchant_id": pl.String,
    "operator_id": pl.String,
    "kind": pl.String,
    "channel": pl.String,
    "amount_fen": pl.Int64,
    "card_token": pl.String,
    "account_ref": pl.String,
    "original_txn_id": pl.String,
    "status": pl.String,
}
KINDS = pl.Enum(["sale", "void", "refund", "transfer"])
STATUSES = pl.Enum(["approved", "declined", "failed"])
OUTCOMES = pl.Enum(["success", "wrong_pin", "unknown_operator", "locked", "network_error"])
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


# --- literal-frame builders ---------------------------------------------------------------


def sale(txn_id: str, ts: datetime, amount_fen: int = 50_000, **kw: Any) -> dict[str, Any]:
    return txn(txn_id, ts, kind="sale", amount_fen=amount_fen, **kw)


def refund(
    txn_id: str,
    ts: datetime,
    amount_fen: int = 10_000,
    original_txn_id: str | None = "S1",
    **kw: Any,
) -> dict[str, Any]:
    return txn(
        txn_id, ts, kind="refund", amount_fen=amount_fen, original_txn_id=original_txn_id, **kw
    )


def txn(txn_id: str, ts: datetime, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "txn_id": txn_id,
        "ts": ts,
        "terminal_id": TERMINAL,
        "merchant_id": MERCHANT,
        "operator_id": CLERK,
        "kind": "sale",
        "channel": "credit_card",
        "amount_fen": 10_000,
        "card_token": "CARD-A",
        "account_ref": None,
        "original_txn_id": None,
        "status": "approved",
    }
    row.update(kw)
    return row


def transactions(*rows: dict[str, Any], enum: bool = False) -> pl.LazyFrame:
    frame = pl.LazyFrame(list(rows), schema=TXN_SCHEMA)
    if enum:  # as the store delivers them
        frame = frame.with_columns(pl.col("kind").cast(KINDS), pl.col("status").cast(STATUSES))
    return frame


def operators() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "operator_id": [ADMIN, CLERK, NO_REFUND_CLERK],
            "terminal_id": [TERMINAL] * 3,
            "merchant_id": [MERCHANT] * 3,
            "operator_no": ["00", "03", "04"],
            "role": ["admin", "clerk", "clerk"],
            "can_refund": [True, True, False],
            "disabled_at": pl.Series([None, None, None], dtype=pl.Datetime("us")),
        }
    )


def merchants(opens: time = time(8, 0), closes: time = time(22, 0), *, is_24h: bool = False):
    return pl.LazyFrame(
        {"merchant_id": [MERCHANT], "opens_at": [opens], "closes_at": [closes], "is_24h": [is_24h]}
    )


def login_events(*rows: tuple[datetime, str], operator_id: str = CLERK) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "event_id": [f"L{i}" for i in range(len(rows))],
            "ts": [ts for ts, _ in rows],
            "terminal_id": [TERMINAL] * len(rows),
            "operator_no": ["03"] * len(rows),
            "operator_id": [operator_id] * len(rows),
            "outcome": [outcome for _, outcome in rows],
        },
        schema_overrides={"ts": pl.Datetime("us"), "operator_id": pl.String, "outcome": pl.String},
    )


def lockouts(*rows: tuple[datetime, datetime | None, str | None]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "lockout_id": [f"K{i}" for i in range(len(rows))],
            "terminal_id": [TERMINAL] * len(rows),
            "operator_id": [CLERK] * len(rows),
            "locked_at": [r[0] for r in rows],
            "unlocked_at": [r[1] for r in rows],
            "unlock_method": [r[2] for r in rows],
        },
        schema={
            "lockout_id": pl.String,
            "terminal_id": pl.String,
            "operator_id": pl.String,
            "locked_at": pl.Datetime("us"),
            "unlocked_at": pl.Datetime("us"),
            "unlock_method": pl.String,
        },
    )


# Each rule's severity (docs/detection.md#severity): a refund that breaks a control or a
# pattern of cash-out is reviewed (medium); money leaving after a suspicious login is critical.
SEVERITY_OF: dict[str, str] = {
    "refunds_without_sale": "medium",
    "refunds_over_sale": "medium",
    "refunds_to_other_card": "medium",
    "refunds_without_permission": "medium",
    "late_refunds": "medium",
    "off_hours_refunds": "medium",
    "refund_bursts": "medium",
    "round_amount_refunds": "medium",
    "refunds_after_suspicious_login": "critical",
}


def check(found: pl.LazyFrame) -> pl.DataFrame:
    """Collect a rule's output and check what every finding must satisfy."""
    frame = found.collect()
    assert frame.schema == FINDINGS_SCHEMA
    for row in frame.iter_rows(named=True):
        assert row["finding_id"] and row["entity_id"] and row["merchant_id"] == MERCHANT
        assert row["window_start"] <= row["window_end"]
        assert row["severity"] == SEVERITY_OF[row["rule"]], (row["rule"], row["severity"])
        assert 0.0 <= row["score"] <= 1.0
        evidence = json.loads(row["evidence"])
        # PINs are secrets: no PIN or digest field, no digest-shaped value, ever
        assert not any("pin" in key or "digest" in key for key in evidence), evidence
        for text in (row["summary"], row["evidence"]):
            assert not HEX_DIGEST.search(text), text
            assert "pin_digest" not in text
    assert_summaries_read_back(frame)
    return frame


# --- registry -----------------------------------------------------------------------------

RULE_NAMES = (
    "refunds_without_sale",
    "refunds_over_sale",
    "refunds_to_other_card",
    "refunds_without_permission",
    "late_refunds",
    "off_hours_refunds",
    "refund_bursts",
    "round_amount_refunds",
    "refunds_after_suspicious_login",
)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_is_registered_with_table_inputs_and_typed_thresholds(name: str) -> None:
    registered = RULES[name]
    assert registered.family == "refunds"
    assert registered.function is getattr(refunds, name)
    assert set(registered.inputs) <= {
        "approved_refunds",
        "operator_events",
        "operators",
        "merchants",
        "login_events",
        "lockouts",
    }
    assert registered.scenarios
    assert all(isinstance(v, int | float | bool | str) for v in registered.parameters.values())
    assert registered.description


@pytest.mark.parametrize("name", RULE_NAMES)
def test_empty_tables_give_empty_findings_of_the_schema(name: str) -> None:
    tables = {
        "transactions": transactions(),
        "operators": operators(),
        "merchants": merchants(),
        "login_events": login_events(),
        "lockouts": lockouts(),
        "operator_events": operator_events(),
    }
    frame = RULES[name](tables).collect()
    assert frame.schema == FINDINGS_SCHEMA
    assert frame.height == 0


# --- refunds_without_sale -----------------------------------------------------------------


@pytest.mark.parametrize("enum", [False, True])
def test_refunds_without_sale_fires_on_missing_and_unknown_originals(enum: bool) -> None:
    data = transactions(
        sale("S1", T0),
        refund("R1", T0 + timedelta(hours=2), original_txn_id="S1"),
        refund("R2", T0 + timedelta(hours=3), original_txn_id=None),
        refund("R3", T0 + timedelta(hours=4), original_txn_id="S404"),
        enum=enum,
    )
    found = check(refunds.refunds_without_sale(refunds.approved_refunds(data), operators()))
    assert sorted(found["entity_id"]) == ["R2", "R3"]
    assert set(found["severity"]) == {"medium"}
    assert set(found["entity_type"]) == {"transaction"}
    by_id = {r["entity_id"]: r for r in found.iter_rows(named=True)}
    assert "names no original sale" in by_id["R2"]["summary"]
    assert "S404" in by_id["R3"]["summary"]
    assert "by operator 03" in by_id["R3"]["summary"]
    assert "100.00 CNY" in by_id["R3"]["summary"]
    assert by_id["R3"]["window_start"] == T0 + timedelta(hours=4)


def test_refunds_without_sale_treats_declined_foreign_and_later_sales_as_none() -> None:
    data = transactions(
        sale("S1", T0, status="declined"),
        sale("S2", T0, merchant_id="M000999"),
        sale("S3", T0 + timedelta(days=1)),
        refund("R1", T0 + timedelta(hours=1), original_txn_id="S1"),
        refund("R2", T0 + timedelta(hours=1), original_txn_id="S2"),
        refund("R3", T0 + timedelta(hours=1), original_txn_id="S3"),
    )
    found = check(refunds.refunds_without_sale(refunds.approved_refunds(data), operators()))
    assert sorted(found["entity_id"]) == ["R1", "R2", "R3"]


def test_refunds_without_sale_ignores_failed_refunds_and_refunds_of_real_sales() -> None:
    data = transactions(
        sale("S1", T0),
        refund("R1", T0 + timedelta(hours=2), original_txn_id="S1"),
        refund("R2", T0 + timedelta(hours=2), original_txn_id=None, status="failed"),
        txn("V1", T0 + timedelta(minutes=5), kind="void", original_txn_id=None),
    )
    assert (
        check(refunds.refunds_without_sale(refunds.approved_refunds(data), operators())).height == 0
    )


# --- refunds_over_sale --------------------------------------------------------------------


def test_refunds_over_sale_fires_on_the_refund_that_crosses_the_sale() -> None:
    data = transactions(
        sale("S1", T0, amount_fen=10_000),
        refund("R1", T0 + timedelta(hours=1), amount_fen=6_000),
        refund("R2", T0 + timedelta(hours=2), amount_fen=4_000),
        refund("R3", T0 + timedelta(hours=3), amount_fen=8_000),
        refund("R4", T0 + timedelta(hours=4), amount_fen=1_000, status="failed"),
        refund("R5", T0 + timedelta(hours=5), amount_fen=2_000),
    )
    found = check(refunds.refunds_over_sale(refunds.approved_refunds(data), operators()))
    assert found["entity_id"].to_list() == ["R3"]
    row = found.row(0, named=True)
    assert "180.00 CNY, 1.8x the 100.00 CNY" in row["summary"]
    evidence = json.loads(row["evidence"])
    assert evidence["excess_fen"] == 8_000
    assert (evidence["refunds_of_sale"], evidence["sale_refunded_total_fen"]) == (4, 20_000)


def test_refunds_over_sale_fires_on_a_single_refund_above_the_sale() -> None:
    data = transactions(sale("S1", T0, amount_fen=10_000), refund("R1", T0, amount_fen=25_000))
    found = check(refunds.refunds_over_sale(refunds.approved_refunds(data), operators()))
    assert found["entity_id"].to_list() == ["R1"]
    assert found["score"][0] == pytest.approx(1.0)


def test_refunds_over_sale_orders_by_time_not_by_row_order() -> None:
    data = transactions(
        refund("R2", T0 + timedelta(hours=2), amount_fen=7_000),
        sale("S1", T0, amount_fen=10_000),
        refund("R1", T0 + timedelta(hours=1), amount_fen=7_000),
    )
    found = check(refunds.refunds_over_sale(refunds.approved_refunds(data), operators()))
    assert found["entity_id"].to_list() == ["R2"]


def test_refunds_over_sale_respects_tolerance() -> None:
    data = transactions(sale("S1", T0, amount_fen=10_000), refund("R1", T0, amount_fen=10_050))
    assert check(refunds.refunds_over_sale(refunds.approved_refunds(data), operators())).height == 1
    assert (
        check(
            refunds.refunds_over_sale(refunds.approved_refunds(data), operators(), tolerance_fen=50)
        ).height
        == 0
    )


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=5),
    tolerance_fen=st.integers(min_value=0, max_value=500),
    extra=st.sampled_from([0, 1]),
)
def test_refunds_over_sale_fires_exactly_one_fen_past_the_sale(
    parts: list[int], tolerance_fen: int, extra: int
) -> None:
    sale_fen = sum(parts) - tolerance_fen - extra
    assume(sale_fen > 0)
    rows = [sale("S1", T0, amount_fen=sale_fen)]
    rows += [
        refund(f"R{i}", T0 + timedelta(minutes=10 * (i + 1)), amount_fen=p)
        for i, p in enumerate(parts)
    ]
    found = check(
        refunds.refunds_over_sale(
            refunds.approved_refunds(transactions(*rows)), operators(), tolerance_fen=tolerance_fen
        )
    )
    # refunds in total exactly equal to sale + tolerance never fire; one fen more fires the last
    assert found["entity_id"].to_list() == ([f"R{len(parts) - 1}"] if extra else [])


# --- refunds_to_other_card ----------------------------------------------------------------


def test_refunds_to_other_card_fires_on_another_or_missing_card() -> None:
    data = transactions(
        sale("S1", T0, card_token="CARD-A"),
        refund("R1", T0 + timedelta(hours=1), card_token="CARD-A"),
        refund("R2", T0 + timedelta(hours=1), card_token="CARD-B"),
        refund("R3", T0 + timedelta(hours=1), card_token=None),
        refund("R4", T0 + timedelta(hours=1), card_token="CARD-C", status="failed"),
        refund("R5", T0 + timedelta(hours=1), card_token="CARD-D", original_txn_id=None),
    )
    found = check(refunds.refunds_to_other_card(refunds.approved_refunds(data), operators()))
    assert sorted(found["entity_id"]) == ["R2", "R3"]
    row = found.filter(pl.col("entity_id") == "R2").row(0, named=True)
    assert "another card than the one that paid sale S1" in row["summary"]
    assert json.loads(row["evidence"])["sale_card_token"] == "CARD-A"


def test_refunds_to_other_card_is_silent_when_both_tokens_are_missing() -> None:
    data = transactions(
        sale("S1", T0, card_token=None, channel="wechat_qr"),
        refund("R1", T0 + timedelta(hours=1), card_token=None, channel="wechat_qr"),
    )
    assert (
        check(refunds.refunds_to_other_card(refunds.approved_refunds(data), operators())).height
        == 0
    )


def test_refunds_to_other_card_leaves_a_new_card_of_the_paying_account_alone() -> None:
    # the customer's card was reissued: a new token, the same account reference
    data = transactions(
        sale("S1", T0, card_token="CARD-A", account_ref="PAR-1"),
        refund("R1", T0 + timedelta(days=3), card_token="CARD-B", account_ref="PAR-1"),
        refund("R2", T0 + timedelta(days=3), card_token="CARD-C", account_ref="PAR-2"),
        refund("R3", T0 + timedelta(days=3), card_token="CARD-D", account_ref=None),
        sale("S2", T0, card_token="CARD-E", account_ref=None),
        refund(
            "R4",
            T0 + timedelta(days=3),
            card_token="CARD-F",
            account_ref="PAR-1",
            original_txn_id="S2",
        ),
    )
    found = check(refunds.refunds_to_other_card(refunds.approved_refunds(data), operators()))
    # another account, or no reference on either side to tell: the finding as before
    assert sorted(found["entity_id"]) == ["R2", "R3", "R4"]
    evidence = json.loads(found.filter(pl.col("entity_id") == "R2").row(0, named=True)["evidence"])
    assert (evidence["refund_card_token"], evidence["sale_card_token"]) == ("CARD-C", "CARD-A")


def test_refunds_to_other_card_reads_a_frame_without_account_references() -> None:
    data = transactions(
        sale("S1", T0, card_token="CARD-A"),
        refund("R1", T0 + timedelta(hours=1), card_token="CARD-B"),
    ).drop("account_ref")
    found = check(refunds.refunds_to_other_card(refunds.approved_refunds(data), operators()))
    assert found["entity_id"].to_list() == ["R1"]


# --- refunds_without_permission -----------------------------------------------------------


@pytest.mark.parametrize("enum", [False, True])
def test_refunds_without_permission_fires_on_operators_without_the_right(enum: bool) -> None:
    data = transactions(
        sale("S1", T0),
        refund("R1", T0 + timedelta(hours=1), operator_id=CLERK),
        refund("R2", T0 + timedelta(hours=1), operator_id=NO_REFUND_CLERK),
        refund("R3", T0 + timedelta(hours=1), operator_id="T000001-77"),
        refund("R4", T0 + timedelta(hours=1), operator_id=NO_REFUND_CLERK, status="failed"),
        sale("S2", T0, operator_id=NO_REFUND_CLERK),
        enum=enum,
    )
    found = check(
        refunds.refunds_without_permission(
            refunds.approved_refunds(data), operators(), operator_events()
        )
    )
    assert sorted(found["entity_id"]) == ["R2", "R3"]
    by_id = {r["entity_id"]: r for r in found.iter_rows(named=True)}
    assert "by operator 04 although the operator has no refund permission" in by_id["R2"]["summary"]
    assert json.loads(by_id["R3"]["evidence"])["reason"] == "unknown_operator"


def test_refunds_without_permission_fires_after_the_operator_was_disabled() -> None:
    ops = operators().with_columns(
        pl.when(pl.col("operator_id") == CLERK)
        .then(pl.lit(T0))
        .otherwise(pl.col("disabled_at"))
        .alias("disabled_at")
    )
    data = transactions(
        refund("R1", T0 - timedelta(hours=1)),
        refund("R2", T0 + timedelta(hours=1)),
    )
    found = check(
        refunds.refunds_without_permission(refunds.approved_refunds(data), ops, operator_events())
    )
    assert found["entity_id"].to_list() == ["R2"]
    assert "disabled" in found["summary"][0]


def operator_events(*rows: tuple[datetime, str, str, str]) -> pl.LazyFrame:
    """Changes of rights: (ts, operator_id, kind, permission)."""
    return pl.LazyFrame(
        [{"ts": ts, "operator_id": op, "kind": kind, "permission": p} for ts, op, kind, p in rows],
        schema={
            "ts": pl.Datetime("us"),
            "operator_id": pl.String,
            "kind": pl.String,
            "permission": pl.String,
        },
    )


def test_refunds_without_permission_reads_the_right_held_at_the_time() -> None:
    """The operators table holds today's rights: a refund before a grant was made without the
    right, one before a revoke with it; a refund after the last change goes by the table."""
    data = transactions(
        refund("R1", T0 - timedelta(hours=2), operator_id=CLERK),
        refund("R2", T0 + timedelta(hours=2), operator_id=CLERK),
        refund("R3", T0 - timedelta(hours=2), operator_id=NO_REFUND_CLERK),
        refund("R4", T0 + timedelta(hours=2), operator_id=NO_REFUND_CLERK),
        refund("R5", T0 + timedelta(days=3), operator_id=CLERK),
    )
    events = operator_events(
        (T0, CLERK, "granted", "refund"),
        (T0 + timedelta(days=1), CLERK, "granted", "sale"),  # another right: no matter
        (T0, NO_REFUND_CLERK, "revoked", "refund"),
    )
    found = check(
        refunds.refunds_without_permission(refunds.approved_refunds(data), operators(), events)
    )
    assert sorted(found["entity_id"]) == ["R1", "R4"]
    evidence = {r["entity_id"]: json.loads(r["evidence"]) for r in found.iter_rows(named=True)}
    # the last change of the right before the refund: none before R1 (later data cannot change
    # it), the revoke before R4
    assert evidence["R1"]["right_set_at"] is None
    assert evidence["R4"]["right_set_at"] == T0.strftime("%Y-%m-%dT%H:%M:%S")
    assert evidence["R1"]["can_refund"] is False


# --- late_refunds -------------------------------------------------------------------------


def test_late_refunds_fires_past_the_window_only() -> None:
    data = transactions(
        sale("S1", T0),
        sale("S2", T0),
        refund("R1", T0 + timedelta(days=14), original_txn_id="S1"),
        refund("R2", T0 + timedelta(days=20), original_txn_id="S2"),
        refund("R3", T0 + timedelta(days=30), original_txn_id="S2", status="failed"),
    )
    found = check(refunds.late_refunds(refunds.approved_refunds(data), operators()))
    assert found["entity_id"].to_list() == ["R2"]
    assert set(found["severity"]) == {"medium"}
    assert "came 20.0 days after sale S2" in found["summary"][0]
    assert (
        check(
            refunds.late_refunds(refunds.approved_refunds(data), operators(), refund_window_days=21)
        ).height
        == 0
    )


@settings(max_examples=40, deadline=None)
@given(
    window_days=st.integers(min_value=1, max_value=60),
    offset_seconds=st.integers(min_value=-3_600, max_value=3_600),
)
def test_late_refunds_boundary_is_the_window_itself(window_days: int, offset_seconds: int) -> None:
    lag = timedelta(days=window_days, seconds=offset_seconds)
    data = transactions(sale("S1", T0), refund("R1", T0 + lag))
    found = check(
        refunds.late_refunds(
            refunds.approved_refunds(data), operators(), refund_window_days=window_days
        )
    )
    assert found.height == (1 if offset_seconds > 0 else 0)


# --- off_hours_refunds --------------------------------------------------------------------


def test_off_hours_refunds_fires_on_a_night_of_refunds_past_closing() -> None:
    night = datetime(2026, 3, 4, 23, 10)
    data = transactions(
        sale("S1", T0),
        refund("R1", night),
        refund("R2", night + timedelta(minutes=50)),  # 00:00, next calendar day
        refund("R3", night + timedelta(minutes=95)),
        refund("R4", T0 + timedelta(hours=2)),  # in hours
    )
    found = check(
        refunds.off_hours_refunds(refunds.approved_refunds(data), operators(), merchants())
    )
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["entity_type"] == "operator" and row["entity_id"] == CLERK
    assert (row["window_start"], row["window_end"]) == (night, night + timedelta(minutes=95))
    assert "operator 03 at terminal T000001 made 3 refunds" in row["summary"]
    assert "(open 08:00-22:00)" in row["summary"]
    assert json.loads(row["evidence"])["refund_txn_ids"] == ["R1", "R2", "R3"]


def test_off_hours_refunds_skips_24h_merchants_single_refunds_and_grace() -> None:
    night = datetime(2026, 3, 4, 23, 10)
    data = transactions(refund("R1", night), refund("R2", night + timedelta(minutes=20)))
    assert (
        check(
            refunds.off_hours_refunds(
                refunds.approved_refunds(data), operators(), merchants(is_24h=True)
            )
        ).height
        == 0
    )
    lone = transactions(refund("R1", night), refund("R2", night + timedelta(hours=5)))
    assert (
        check(
            refunds.off_hours_refunds(refunds.approved_refunds(lone), operators(), merchants())
        ).height
        == 0
    )
    early = transactions(
        refund("R1", datetime(2026, 3, 4, 7, 35)), refund("R2", datetime(2026, 3, 4, 7, 45))
    )
    assert (
        check(
            refunds.off_hours_refunds(refunds.approved_refunds(early), operators(), merchants())
        ).height
        == 0
    )
    assert (
        check(
            refunds.off_hours_refunds(
                refunds.approved_refunds(early), operators(), merchants(), grace_minutes=10
            )
        ).height
        == 1
    )


def test_off_hours_refunds_reads_hours_across_midnight() -> None:
    bar = merchants(opens=time(18, 0), closes=time(2, 0))
    inside = transactions(
        refund("R1", datetime(2026, 3, 4, 23, 30)), refund("R2", datetime(2026, 3, 5, 1, 0))
    )
    assert (
        check(refunds.off_hours_refunds(refunds.approved_refunds(inside), operators(), bar)).height
        == 0
    )
    outside = transactions(
        refund("R1", datetime(2026, 3, 5, 4, 0)), refund("R2", datetime(2026, 3, 5, 4, 30))
    )
    assert (
        check(refunds.off_hours_refunds(refunds.approved_refunds(outside), operators(), bar)).height
        == 1
    )


@settings(max_examples=40, deadline=None)
@given(
    grace_minutes=st.integers(min_value=0, max_value=120),
    offset_seconds=st.integers(min_value=-120, max_value=120),
    after_close=st.booleans(),
)
def test_off_hours_refunds_grace_boundary(
    grace_minutes: int, offset_seconds: int, after_close: bool
) -> None:
    distance = timedelta(minutes=grace_minutes, seconds=offset_seconds)
    assume(distance >= timedelta(0))
    first = (
        datetime(2026, 3, 4, 22, 0) + distance
        if after_close
        else datetime(2026, 3, 5, 8, 0) - distance
    )
    far = datetime(2026, 3, 5, 3, 0)  # deep in the night: always outside
    data = transactions(refund("R1", first), refund("R2", far))
    found = check(
        refunds.off_hours_refunds(
            refunds.approved_refunds(data),
            operators(),
            merchants(),
            grace_minutes=grace_minutes,
            cluster_gap_minutes=600,
        )
    )
    assert found.height == (1 if offset_seconds > 0 else 0)


# --- refund_bursts ------------------------------------------------------------------------


def burst(
    n: int, start: datetime, gap: timedelta, operator_id: str = CLERK
) -> list[dict[str, Any]]:
    return [
        refund(f"B{operator_id[-2:]}{i:03d}", start + i * gap, operator_id=operator_id)
        for i in range(n)
    ]


def test_refund_bursts_fires_on_many_refunds_in_an_hour() -> None:
    data = transactions(sale("S1", T0), *burst(10, T0, timedelta(minutes=3)))
    found = check(refunds.refund_bursts(refunds.approved_refunds(data), operators()))
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["entity_id"] == CLERK and row["severity"] == "medium"
    assert (row["window_start"], row["window_end"]) == (T0, T0 + timedelta(minutes=27))
    assert "made 10 refunds totalling 1000.00 CNY in 27 minutes" in row["summary"]


def test_refund_bursts_ignores_spread_refunds_and_splits_operators() -> None:
    spread = transactions(*burst(12, T0, timedelta(minutes=9)))  # 8 span 63 minutes
    assert check(refunds.refund_bursts(refunds.approved_refunds(spread), operators())).height == 0
    two = transactions(
        *burst(5, T0, timedelta(minutes=2), CLERK), *burst(5, T0, timedelta(minutes=2), ADMIN)
    )
    assert check(refunds.refund_bursts(refunds.approved_refunds(two), operators())).height == 0


def test_refund_bursts_merges_overlapping_and_separates_distant_bursts() -> None:
    data = transactions(
        *burst(12, T0, timedelta(minutes=5)),
        *[refund(f"L{i}", T0 + timedelta(hours=5) + i * timedelta(minutes=2)) for i in range(8)],
    )
    found = check(refunds.refund_bursts(refunds.approved_refunds(data), operators())).sort(
        "window_start"
    )
    assert found.height == 2
    assert json.loads(found["evidence"][0])["refunds"] == 12
    assert json.loads(found["evidence"][1])["refunds"] == 8


def _oracle_dense(minutes: list[int], k: int, window: int) -> set[int]:
    """Brute force: indexes of the events lying in some window of k events spanning <= window."""
    order = sorted(range(len(minutes)), key=lambda i: (minutes[i], i))
    kept: set[int] = set()
    for j in range(k - 1, len(order)):
        span = order[j - k + 1 : j + 1]
        if minutes[span[-1]] - minutes[span[0]] <= window:
            kept.update(span)
    return kept


@settings(max_examples=60, deadline=None)
@given(
    minutes=st.lists(st.integers(min_value=0, max_value=300), min_size=0, max_size=25, unique=True),
    k=st.integers(min_value=2, max_value=6),
    window=st.integers(min_value=5, max_value=60),
)
def test_refund_bursts_match_a_brute_force_oracle(minutes: list[int], k: int, window: int) -> None:
    rows = [refund(f"R{i:03d}", T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
    found = check(
        refunds.refund_bursts(
            refunds.approved_refunds(transactions(*rows)),
            operators(),
            min_refunds=k,
            window_minutes=window,
        )
    )
    evidence = [json.loads(e) for e in found["evidence"]]
    expected = {f"R{i:03d}" for i in _oracle_dense(minutes, k, window)}
    assert sum(e["refunds"] for e in evidence) == len(expected)
    assert all(e["refunds"] >= k for e in evidence)
    for e in evidence:  # ids are listed up to the evidence cap, earliest first
        assert len(e["refund_txn_ids"]) == min(e["refunds"], refunds.MAX_EVIDENCE_IDS)
        assert set(e["refund_txn_ids"]) <= expected
    if all(e["refunds"] <= refunds.MAX_EVIDENCE_IDS for e in evidence):
        assert {i for e in evidence for i in e["refund_txn_ids"]} == expected


@settings(max_examples=30, deadline=None)
@given(k=st.integers(min_value=2, max_value=12), window=st.integers(min_value=10, max_value=90))
def test_refund_bursts_threshold_is_inclusive(k: int, window: int) -> None:
    # k refunds whose first and last are exactly `window` minutes apart fire; k - 1 do not
    span_us = window * 60_000_000
    times = [T0 + timedelta(microseconds=span_us * i // (k - 1)) for i in range(k)]
    rows = [refund(f"R{i:03d}", ts) for i, ts in enumerate(times)]
    at = transactions(*rows)
    below = transactions(*rows[:-1])
    assert (
        check(
            refunds.refund_bursts(
                refunds.approved_refunds(at), operators(), min_refunds=k, window_minutes=window
            )
        ).height
        == 1
    )
    assert (
        check(
            refunds.refund_bursts(
                refunds.approved_refunds(below), operators(), min_refunds=k, window_minutes=window
            )
        ).height
        == 0
    )


def returns(n: int, sale_day: datetime, *, start: datetime = T0, **kw: Any) -> list[dict[str, Any]]:
    """``n`` sales made at ``sale_day`` (each its own card), refunded in full to their cards
    within the hour from ``start``; ``kw`` changes the refunds."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rows.append(sale(f"S{i}", sale_day + timedelta(minutes=7 * i), card_token=f"CARD-{i}"))
        refunded = {"amount_fen": 50_000, "card_token": f"CARD-{i}"} | kw
        rows.append(
            refund(f"R{i}", start + timedelta(minutes=5 * i), original_txn_id=f"S{i}", **refunded)
        )
    return rows


def test_refund_bursts_leaves_a_wave_of_customer_returns_alone() -> None:
    # month's end: 10 customers bring back what they bought last week, to their own cards
    wave = transactions(*returns(10, T0 - timedelta(days=6)))
    assert check(refunds.refund_bursts(refunds.approved_refunds(wave), operators())).height == 0
    # the same refunds of this morning's takings, the customers just gone: a burst
    today = transactions(*returns(10, T0 - timedelta(hours=2)))
    assert check(refunds.refund_bursts(refunds.approved_refunds(today), operators())).height == 1
    # a customer whose card was reissued brings goods back to the new card: a return still
    reissued = [
        row
        | {"account_ref": f"PAR-{row['txn_id'][1:]}"}
        | ({"card_token": f"NEW-{row['txn_id'][1:]}"} if row["kind"] == "refund" else {})
        for row in returns(10, T0 - timedelta(days=6))
    ]
    found = refunds.refund_bursts(refunds.approved_refunds(transactions(*reissued)), operators())
    assert check(found).height == 0
    # last week's sales refunded to other cards, or for more than they took, are no returns
    for changed in ({"card_token": "CARD-X"}, {"amount_fen": 60_000}):
        odd = transactions(*returns(10, T0 - timedelta(days=6), **changed))
        found = refunds.refund_bursts(refunds.approved_refunds(odd), operators())
        assert check(found).height == 1, changed


# --- round_amount_refunds -----------------------------------------------------------------


def cash_out(n: int, *, amount_fen: int = 30_000, sale_fen: int = 213_457) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rows.append(sale(f"S{i}", T0 - timedelta(days=2), amount_fen=sale_fen))
        rows.append(
            refund(
                f"R{i}",
                T0 + timedelta(minutes=40 * i),
                amount_fen=amount_fen,
                original_txn_id=f"S{i}",
            )
        )
    return rows


def test_round_amount_refunds_fires_on_partial_round_refunds() -> None:
    found = check(
        refunds.round_amount_refunds(
            refunds.approved_refunds(transactions(*cash_out(4))), operators()
        )
    )
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["entity_id"] == CLERK
    assert (row["window_start"], row["window_end"]) == (T0, T0 + timedelta(minutes=120))
    assert "made 4 partial refunds in round amounts totalling 1200.00 CNY" in row["summary"]


def test_round_amount_refunds_excludes_full_deposits_small_and_unround_amounts() -> None:
    full = transactions(*cash_out(4, amount_fen=80_000, sale_fen=80_000))
    assert (
        check(refunds.round_amount_refunds(refunds.approved_refunds(full), operators())).height == 0
    )
    small = transactions(*cash_out(4, amount_fen=10_000))
    assert (
        check(refunds.round_amount_refunds(refunds.approved_refunds(small), operators())).height
        == 0
    )
    unround = transactions(*cash_out(4, amount_fen=30_050))
    assert (
        check(refunds.round_amount_refunds(refunds.approved_refunds(unround), operators())).height
        == 0
    )
    spread = transactions(
        *[
            r | {"ts": T0 + timedelta(hours=13 * i)} if r["kind"] == "refund" else r
            for i, r in enumerate(cash_out(3))
        ]
    )
    assert (
        check(refunds.round_amount_refunds(refunds.approved_refunds(spread), operators())).height
        == 0
    )


def test_round_amount_refunds_leaves_hotel_deposits_returned_less_a_charge_alone() -> None:
    # 1,000 CNY deposits returned at check-out less a 200 CNY charge: round because the
    # deposit was
    deposits = transactions(*cash_out(4, amount_fen=80_000, sale_fen=100_000))
    found = refunds.round_amount_refunds(refunds.approved_refunds(deposits), operators())
    assert check(found).height == 0
    # the same round sums booked against purchases of uneven amounts: cash-out
    purchases = transactions(*cash_out(4, amount_fen=80_000, sale_fen=100_050))
    found = refunds.round_amount_refunds(refunds.approved_refunds(purchases), operators())
    assert check(found).height == 1


def test_round_amount_refunds_counts_refunds_without_sale() -> None:
    rows = [
        refund(f"R{i}", T0 + timedelta(minutes=20 * i), amount_fen=50_000, original_txn_id=None)
        for i in range(3)
    ]
    assert (
        check(
            refunds.round_amount_refunds(refunds.approved_refunds(transactions(*rows)), operators())
        ).height
        == 1
    )


@settings(max_examples=30, deadline=None)
@given(
    min_refunds=st.integers(min_value=1, max_value=6),
    units=st.integers(min_value=2, max_value=20),
    at_threshold=st.booleans(),
)
def test_round_amount_refunds_threshold(min_refunds: int, units: int, at_threshold: bool) -> None:
    n = min_refunds if at_threshold else min_refunds - 1
    data = transactions(*cash_out(n, amount_fen=units * 10_000, sale_fen=units * 10_000 + 1))
    found = check(
        refunds.round_amount_refunds(
            refunds.approved_refunds(data), operators(), min_refunds=min_refunds
        )
    )
    assert found.height == (1 if at_threshold else 0)


# --- refunds_after_suspicious_login -------------------------------------------------------


def takeover_refunds(
    start: datetime, n: int, *, card: str = "CARD-X", account: str | None = None
) -> list[dict[str, Any]]:
    """``n`` refunds after ``start`` of sales the day before, to ``card`` ("same": the paying
    card; "new": a new card of the paying account) of account ``account`` ("same": the
    paying card's; the sales' cards have accounts PAR-i only when ``account`` is given)."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        paying = f"PAR-{i}" if account is not None else None
        rows.append(
            sale(f"S{i}", start - timedelta(days=1), card_token=f"CARD-{i}", account_ref=paying)
        )
        rows.append(
            refund(
                f"R{i}",
                start + timedelta(minutes=5 + 8 * i),
                amount_fen=40_000,
                original_txn_id=f"S{i}",
                card_token={"same": f"CARD-{i}", "new": f"NEW-{i}"}.get(card, card),
                account_ref=paying if account == "same" else account,
            )
        )
    return rows


def guessing(
    start: datetime, n: int, gap: timedelta = timedelta(seconds=15)
) -> list[tuple[datetime, str]]:
    return [(start + i * gap, "wrong_pin") for i in range(n)]


def test_refunds_after_lockout_and_unlock_fire_critical() -> None:
    first = datetime(2026, 3, 4, 14, 0)
    locked = first + timedelta(seconds=60)
    unlocked = locked + timedelta(minutes=30)
    login = unlocked + timedelta(minutes=2)
    events = login_events(
        *guessing(first, 5), (locked + timedelta(seconds=20), "locked"), (login, "success")
    )
    found = check(
        refunds.refunds_after_suspicious_login(
            refunds.approved_refunds(transactions(*takeover_refunds(login, 4))),
            events,
            lockouts((locked, unlocked, "service_desk")),
            operators(),
        )
    )
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["severity"] == "critical" and row["entity_id"] == CLERK
    assert row["window_start"] == first
    assert row["window_end"] == login + timedelta(minutes=5 + 8 * 3)
    assert "lifted by service_desk" in row["summary"]
    assert "made 4 refunds totalling 1600.00 CNY" in row["summary"]
    assert "4 of them to cards that did not pay" in row["summary"]
    evidence = json.loads(row["evidence"])
    assert evidence["failures"] == 6 and evidence["lockout_id"] == "K0"


def test_refunds_after_many_failures_without_lockout_fire() -> None:
    first = datetime(2026, 3, 4, 14, 0)
    login = first + timedelta(minutes=3)
    events = login_events(*guessing(first, 8), (login, "success")).with_columns(
        pl.col("outcome").cast(OUTCOMES)
    )
    found = check(
        refunds.refunds_after_suspicious_login(
            refunds.approved_refunds(transactions(*takeover_refunds(login, 3), enum=True)),
            events,
            lockouts(),
            operators(),
        )
    )
    assert found.height == 1
    assert "after 8 failed attempts" in found["summary"][0]


def test_forgetful_operator_refunding_to_the_paying_card_is_not_a_takeover() -> None:
    first = datetime(2026, 3, 4, 14, 0)
    locked = first + timedelta(seconds=60)
    login = locked + timedelta(minutes=10)
    events = login_events(*guessing(first, 5), (login, "success"))
    found = check(
        refunds.refunds_after_suspicious_login(
            refunds.approved_refunds(transactions(*takeover_refunds(login, 3, card="same"))),
            events,
            lockouts((locked, locked + timedelta(minutes=8), "admin")),
            operators(),
        )
    )
    assert found.height == 0


@pytest.mark.parametrize(
    ("card", "account", "takeover"),
    [
        ("new", "same", False),  # reissued cards of the paying accounts: the customers' own
        ("new", "PAR-X", True),  # the attacker's card, of another account
        ("new", None, True),  # no reference on the refunds: the data cannot tell
        ("same", "same", False),
    ],
)
def test_refunds_after_suspicious_login_count_new_cards_of_the_paying_account_as_theirs(
    card: str, account: str | None, takeover: bool
) -> None:
    first = datetime(2026, 3, 4, 14, 0)
    locked = first + timedelta(seconds=60)
    login = locked + timedelta(minutes=10)
    events = login_events(*guessing(first, 5), (login, "success"))
    rows = takeover_refunds(login, 3, card=card, account=account or "")
    if account is None:
        rows = [row | {"account_ref": None} if row["kind"] == "refund" else row for row in rows]
    found = check(
        refunds.refunds_after_suspicious_login(
            refunds.approved_refunds(transactions(*rows)),
            events,
            lockouts((locked, locked + timedelta(minutes=8), "admin")),
            operators(),
        )
    )
    assert found.height == int(takeover)


def test_refunds_to_other_cards_after_a_plain_login_are_not_a_takeover() -> None:
    login = datetime(2026, 3, 4, 14, 0)
    events = login_events(*guessing(login - timedelta(minutes=2), 2), (login, "success"))
    found = refunds.refunds_after_suspicious_login(
        refunds.approved_refunds(transactions(*takeover_refunds(login, 4))),
        events,
        lockouts(),
        operators(),
    )
    assert check(found).height == 0


def test_one_refund_after_a_lockout_is_not_enough() -> None:
    first = datetime(2026, 3, 4, 14, 0)
    locked = first + timedelta(seconds=60)
    login = locked + timedelta(minutes=31)
    events = login_events(*guessing(first, 5), (login, "success"))
    found = refunds.refunds_after_suspicious_login(
        refunds.approved_refunds(transactions(*takeover_refunds(login, 1))),
        events,
        lockouts((locked, locked + timedelta(minutes=30), "timeout")),
        operators(),
    )
    assert check(found).height == 0


def test_refunds_long_after_the_suspicious_login_do_not_count() -> None:
    first = datetime(2026, 3, 4, 14, 0)
    login = first + timedelta(minutes=3)
    events = login_events(*guessing(first, 8), (login, "success"))
    late = transactions(*takeover_refunds(login + timedelta(hours=2), 4))
    found = refunds.refunds_after_suspicious_login(
        refunds.approved_refunds(late), events, lockouts(), operators()
    )
    assert check(found).height == 0


def test_old_lockout_does_not_make_a_login_suspicious() -> None:
    locked = datetime(2026, 3, 4, 9, 0)
    login = datetime(2026, 3, 4, 14, 0)
    events = login_events((login, "success"))
    found = refunds.refunds_after_suspicious_login(
        refunds.approved_refunds(transactions(*takeover_refunds(login, 4))),
        events,
        lockouts((locked, locked + timedelta(minutes=30), "timeout")),
        operators(),
    )
    assert check(found).height == 0


@settings(max_examples=30, deadline=None)
@given(
    min_failures=st.integers(min_value=1, max_value=10),
    at_threshold=st.booleans(),
    gap_seconds=st.integers(min_value=4, max_value=300),
)
def test_refunds_after_suspicious_login_failure_threshold(
    min_failures: int, at_threshold: bool, gap_seconds: int
) -> None:
    n = min_failures if at_threshold else min_failures - 1
    first = datetime(2026, 3, 4, 14, 0)
    login = first + n * timedelta(seconds=gap_seconds) + timedelta(seconds=10)
    events = login_events(*guessing(first, n, timedelta(seconds=gap_seconds)), (login, "success"))
    found = check(
        refunds.refunds_after_suspicious_login(
            refunds.approved_refunds(transactions(*takeover_refunds(login, 3))),
            events,
            lockouts(),
            operators(),
            min_failures=min_failures,
        )
    )
    assert found.height == (1 if at_threshold else 0)
    if at_threshold:
        assert found["window_start"][0] == first
        assert json.loads(found["evidence"][0])["failures"] == n
