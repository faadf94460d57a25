"""The daily ranking's features on a small literal world, and its unsupervised score."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import polars as pl
import pytest

from posaudit.score.ranking import (
    RANKING_FEATURES,
    SCORED_OPERATOR_FEATURES,
    daily_anomaly_scores,
    merchant_day_features,
    operator_day_ranking_features,
)

DAY1, DAY2 = date(2026, 3, 2), date(2026, 3, 3)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute))


def world() -> dict[str, pl.LazyFrame]:
    """Merchant M1 with terminals T1 and T2. Operator T1-01 sells on day 1; on day 2 it
    refunds once at 09:00, then has two wrong PINs and a lockout (10:00-10:02) that an
    administrator lifts at 10:20, then refunds at 10:30 (to a card that never paid there) and
    11:00 (to the card that paid), and sells once on T2. Operator T1-02 is locked out on
    day 2 and waits for the timeout before its refund; T1-03 only sells."""
    sales = [
        ("s1", at(DAY1, 9), "T1", "T1-01", "c1"),
        ("s2", at(DAY1, 10), "T1", "T1-01", "c2"),
        ("s3", at(DAY1, 11), "T1", "T1-01", "c3"),
        ("s4", at(DAY1, 12), "T1", "T1-02", "c4"),
        ("s5", at(DAY2, 12), "T2", "T1-01", "c5"),
        ("s6", at(DAY2, 9), "T1", "T1-03", "c6"),
        ("s7", at(DAY1, 9), "T1", "T1-03", "c7"),
    ]
    refunds = [
        ("r0", at(DAY2, 9), "T1", "T1-01", "c2", "s2"),
        ("r1", at(DAY2, 10, 30), "T1", "T1-01", "stranger", "s1"),
        ("r2", at(DAY2, 11), "T1", "T1-01", "c1", "s1"),
        ("r3", at(DAY2, 15), "T1", "T1-02", "c4", "s4"),
    ]
    transactions = pl.LazyFrame(
        {
            "txn_id": [s[0] for s in sales] + [r[0] for r in refunds],
            "ts": [s[1] for s in sales] + [r[1] for r in refunds],
            "terminal_id": [s[2] for s in sales] + [r[2] for r in refunds],
            "merchant_id": "M1",
            "operator_id": [s[3] for s in sales] + [r[3] for r in refunds],
            "kind": ["sale"] * len(sales) + ["refund"] * len(refunds),
            "amount_fen": 1_000,
            "card_token": [s[4] for s in sales] + [r[4] for r in refunds],
            "original_txn_id": [None] * len(sales) + [r[5] for r in refunds],
            "status": "approved",
        }
    )
    logins = pl.LazyFrame(
        {
            "ts": [at(DAY2, 10), at(DAY2, 10, 1), at(DAY2, 10, 25), at(DAY2, 14), at(DAY2, 8)],
            "terminal_id": ["T1", "T1", "T1", "T1", "T2"],
            "operator_no": ["01", "01", "01", "02", "77"],
            "operator_id": ["T1-01", "T1-01", "T1-01", "T1-02", None],
            "outcome": ["wrong_pin", "wrong_pin", "success", "wrong_pin", "unknown_operator"],
        }
    )
    lockouts = pl.LazyFrame(
        {
            "lockout_id": ["L1", "L2"],
            "terminal_id": "T1",
            "operator_id": ["T1-01", "T1-02"],
            "locked_at": [at(DAY2, 10, 2), at(DAY2, 14, 1)],
            "unlocked_at": [at(DAY2, 10, 20), at(DAY2, 14, 31)],
            "unlock_method": ["admin", "timeout"],
        }
    )
    pin_events = pl.LazyFrame(
        schema={
            "event_id": pl.String,
            "ts": pl.Datetime("us"),
            "operator_id": pl.String,
            "kind": pl.String,
        }
    )
    operators = pl.LazyFrame(
        {
            "operator_id": ["T1-01", "T1-02", "T1-03"],
            "terminal_id": "T1",
            "merchant_id": "M1",
            "operator_no": ["01", "02", "03"],
        }
    )
    merchants = pl.LazyFrame(
        {"merchant_id": ["M1"], "category": "cafe", "opens_at": [time(8)], "closes_at": [time(22)]}
    )
    terminals = pl.LazyFrame({"terminal_id": ["T1", "T2"], "merchant_id": "M1"})
    return {
        "transactions": transactions,
        "login_events": logins,
        "lockouts": lockouts,
        "pin_events": pin_events,
        "operators": operators,
        "merchants": merchants,
        "terminals": terminals,
    }


def operator_days() -> pl.DataFrame:
    w = world()
    return operator_day_ranking_features(
        w["transactions"],
        w["login_events"],
        w["lockouts"],
        w["pin_events"],
        w["operators"],
        w["merchants"],
    ).collect()


def row(frame: pl.DataFrame, operator: str, day: date) -> dict[str, object]:
    return frame.filter((pl.col("operator_id") == operator) & (pl.col("day") == day)).row(
        0, named=True
    )


def test_a_lockout_then_a_reset_then_refunds_is_counted() -> None:
    day2 = row(operator_days(), "T1-01", DAY2)
    # r0 at 09:00 came before the trouble; r1 and r2 came after the wrong PINs and the reset
    assert day2["refunds_after_wrong_pin"] == 2
    assert day2["lockout_reset_refund_count"] == 2


def test_a_lock_lifted_by_the_clock_is_no_reset() -> None:
    day2 = row(operator_days(), "T1-02", DAY2)
    assert day2["refunds_after_wrong_pin"] == 1
    assert day2["lockout_reset_refund_count"] == 0


def test_refund_peaks_strangers_and_foreign_terminals() -> None:
    day2 = row(operator_days(), "T1-01", DAY2)
    assert day2["stranger_card_refunds"] == 1  # r1's card never paid at M1
    assert (day2["refunds_1h_peak"], day2["refunds_3h_peak"]) == (2, 3)
    assert day2["foreign_terminal_events"] == 1  # s5 on T2
    assert day2["terminals_per_hour_peak"] == 1
    quiet = row(operator_days(), "T1-03", DAY2)
    assert quiet["refunds_after_wrong_pin"] == 0 and quiet["stranger_card_refunds"] == 0


def test_every_ranking_feature_is_set_on_every_operator_day() -> None:
    frame = operator_days()
    assert frame.height == 6  # the three operators act on both days
    assert frame.select(pl.col(RANKING_FEATURES).null_count()).sum_horizontal().item() == 0


def test_merchant_days_sum_their_operator_days_and_count_unknown_numbers() -> None:
    w = world()
    merchants = merchant_day_features(
        operator_days().lazy(), w["login_events"], w["terminals"]
    ).collect()
    day2 = merchants.filter(pl.col("day") == DAY2).row(0, named=True)
    assert day2["refund_count"] == 4
    assert day2["refunds_after_wrong_pin"] == 3
    assert day2["unknown_operator_logins"] == 1
    assert day2["failed_operator_numbers"] == 3  # 01, 02 and 77 failed that day
    assert day2["operator_count"] == 3


def test_the_takeover_operator_day_ranks_first_with_its_reasons() -> None:
    ranked = daily_anomaly_scores(
        operator_days().lazy().filter(pl.col("day") == DAY2), features=SCORED_OPERATOR_FEATURES
    ).collect()
    first = ranked.row(0, named=True)
    assert (first["operator_id"], first["rank"]) == ("T1-01", 1)
    assert first["top_feature_1"] is not None
    assert ranked.get_column("rank").to_list() == [1, 2, 3]


def test_a_terminal_new_to_an_operator_with_a_history_is_counted() -> None:
    w = world()
    # T1-03 sold on T1 on each of the ten days before day 2, then on day 2 also on T2
    history = [DAY2 - timedelta(days=d) for d in range(1, 11)]
    extra = pl.LazyFrame(
        {
            "txn_id": [f"h{i}" for i in range(len(history))] + ["n1", "n2"],
            "ts": [at(d, 16) for d in history] + [at(DAY2, 16), at(DAY2, 17)],
            "terminal_id": ["T1"] * len(history) + ["T2", "T2"],
            "merchant_id": "M1",
            "operator_id": "T1-03",
            "kind": "sale",
            "amount_fen": 1_000,
            "card_token": "c9",
            "original_txn_id": None,
            "status": "approved",
        }
    )
    transactions = pl.concat([w["transactions"], extra], how="diagonal_relaxed")
    days = operator_day_ranking_features(
        transactions,
        w["login_events"],
        w["lockouts"],
        w["pin_events"],
        w["operators"],
        w["merchants"],
    ).collect()
    assert row(days, "T1-03", DAY2)["new_terminal_events"] == 2
    assert row(days, "T1-03", DAY1)["new_terminal_events"] == 0
    # T1-01 worked T2 for the first time too, but with one earlier day it has no history
    assert row(days, "T1-01", DAY2)["new_terminal_events"] == 0


def test_refunds_that_are_not_customer_returns_are_counted() -> None:
    w = world()
    # T1-03 refunds its own sale of the same morning: no customer return (that is of a sale
    # made on an earlier day), the day's own takings going back out
    same_day = pl.LazyFrame(
        {
            "txn_id": ["r4"],
            "ts": [at(DAY2, 9, 30)],
            "terminal_id": "T1",
            "merchant_id": "M1",
            "operator_id": "T1-03",
            "kind": "refund",
            "amount_fen": 1_000,
            "card_token": "c6",
            "original_txn_id": "s6",
            "status": "approved",
        }
    )
    frame = operator_day_ranking_features(
        pl.concat([w["transactions"], same_day]),
        w["login_events"],
        w["lockouts"],
        w["pin_events"],
        w["operators"],
        w["merchants"],
    ).collect()
    assert row(frame, "T1-03", DAY2)["non_return_refund_count"] == 1
    # r1 went to a card that never paid; r0 and r2 returned earlier sales to their cards
    assert row(frame, "T1-01", DAY2)["non_return_refund_count"] == 1
    assert row(frame, "T1-02", DAY2)["non_return_refund_count"] == 0  # r3, a return
    assert "non_return_refund_count" in SCORED_OPERATOR_FEATURES


@pytest.mark.parametrize(("account", "strangers"), [("P1", 0), ("P9", 1), (None, 1)])
def test_a_new_card_of_an_account_that_paid_is_no_stranger(
    account: str | None, strangers: int
) -> None:
    # r1's card never paid at M1; with the account reference of c1 (which paid), it is c1's
    # reissued card
    w = world()
    accounts = {"c1": "P1", "stranger": account}
    transactions = w["transactions"].with_columns(
        pl.col("card_token").replace_strict(accounts, default=None).alias("account_ref")
    )
    days = operator_day_ranking_features(
        transactions,
        w["login_events"],
        w["lockouts"],
        w["pin_events"],
        w["operators"],
        w["merchants"],
    ).collect()
    assert row(days, "T1-01", DAY2)["stranger_card_refunds"] == strangers
