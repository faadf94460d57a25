"""The merchant typologies on literal frames: each rule's hit, its look-alike, its guard."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.score import merchants as m
from posaudit.score.merchants import (
    HOUR_BINS,
    cash_out_sales,
    category_misuse,
    dormant_surge,
    invented_amounts,
    merchant_digit_days,
    merchant_terminal_days,
)

START = date(2026, 3, 2)


def _merchants(rows: list[tuple[str, str, str]]) -> pl.LazyFrame:
    return pl.LazyFrame(rows, schema=["merchant_id", "category", "fee_class"], orient="row")


def _day(terminal: str, merchant: str, day: int, **values: float) -> dict[str, object]:
    row: dict[str, object] = {
        "terminal_id": terminal,
        "merchant_id": merchant,
        "day": START + timedelta(days=day),
        "sale_count": 0,
        "sale_amount_fen": 0,
        "log_amount_sum": 0,
        "credit_count": 0,
        "debit_count": 0,
        "round_count": 0,
        **{f"h{b}": 0 for b in range(HOUR_BINS)},
        "return_count": 0,
        "cash_count": 0,
        "cash_amount_fen": 0,
        **{f"cash_h{b}": 0 for b in range(HOUR_BINS)},
    }
    row.update(values)
    return row


def _frame(rows: list[dict[str, object]]) -> pl.LazyFrame:
    return pl.LazyFrame(rows)


# -- cash-out ---------------------------------------------------------------------------------


def _shop_days(merchant: str, days: int = 5) -> list[dict[str, object]]:
    """A shop selling 100 a day, all between 09:00 and 21:00."""
    return [
        _day(f"T{merchant}", merchant, d, sale_count=100, h3=25, h4=25, h5=25, h6=25)
        for d in range(days)
    ]


def test_cash_out_sales_finds_repeat_card_sales_in_the_categorys_quiet_hours() -> None:
    rows = _shop_days("A") + _shop_days("B")
    rows[2] = {**rows[2], "cash_count": 4, "cash_amount_fen": 3_960_000, "cash_h0": 4}
    found = cash_out_sales(
        _frame(rows), _merchants([("A", "apparel", "standard"), ("B", "apparel", "standard")])
    ).collect()
    assert found.schema == FINDINGS_SCHEMA
    assert found.get_column("entity_id").to_list() == ["A"]
    assert found.get_column("entity_type").to_list() == ["merchant"]
    assert found.get_column("window_start").to_list() == [datetime(2026, 3, 4)]
    assert "4 credit sales just under round sums totalling 39600.00 CNY" in found.item(0, "summary")


def test_cash_out_sales_leaves_a_bulk_buyer_in_busy_hours_alone() -> None:
    rows = _shop_days("A") + _shop_days("B")
    # the same sales, but at 15:00, when the category sells a quarter of its day
    rows[2] = {**rows[2], "cash_count": 4, "cash_amount_fen": 3_960_000, "cash_h5": 4}
    found = cash_out_sales(
        _frame(rows), _merchants([("A", "apparel", "standard"), ("B", "apparel", "standard")])
    ).collect()
    assert found.is_empty()


def test_cash_out_sales_needs_min_sales_in_a_day_and_a_peer() -> None:
    rows = _shop_days("A") + _shop_days("B")
    rows[2] = {**rows[2], "cash_count": 2, "cash_amount_fen": 1_980_000, "cash_h0": 2}
    both = _merchants([("A", "apparel", "standard"), ("B", "apparel", "standard")])
    assert cash_out_sales(_frame(rows), both).collect().is_empty()
    assert cash_out_sales(_frame(rows), both, min_sales=2).collect().height == 1
    alone = _merchants([("A", "apparel", "standard"), ("B", "cafe", "standard")])
    assert cash_out_sales(_frame(rows), alone, min_sales=2).collect().is_empty()


def test_cash_out_sales_merges_close_days_into_one_episode() -> None:
    rows = _shop_days("A", 10) + _shop_days("B", 10)
    for d in (1, 3, 9):
        rows[d] = {**rows[d], "cash_count": 3, "cash_amount_fen": 2_970_000, "cash_h1": 3}
    found = cash_out_sales(
        _frame(rows),
        _merchants([("A", "apparel", "standard"), ("B", "apparel", "standard")]),
        merge_days=3,
    ).collect()
    assert found.get_column("window_start").sort().to_list() == [
        datetime(2026, 3, 3),
        datetime(2026, 3, 11),
    ]


# -- category misuse --------------------------------------------------------------------------


def _profile(
    merchant: str, *, amount_fen: float, credit: float, hours: dict[int, float]
) -> dict[str, object]:
    count = 1000
    bins = {f"h{b}": round(count * share) for b, share in hours.items()}
    return _day(
        f"T{merchant}",
        merchant,
        0,
        sale_count=count,
        sale_amount_fen=round(count * amount_fen),
        log_amount_sum=round(count * float(pl.Series([amount_fen]).log().item()) * 1_000_000),
        credit_count=round(count * credit),
        **bins,
    )


DAY_SHOP: dict[int, float] = {3: 0.3, 4: 0.4, 5: 0.3}
NIGHT_BAR: dict[int, float] = {6: 0.3, 7: 0.7}


def _market(misuser_share: float) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Four supermarkets (one of them discount-class) and three bars; the discount one sells
    ``misuser_share`` of the way like a bar."""
    rows, kinds = [], []
    for i, jitter in enumerate((0.97, 1.0, 1.03)):
        rows.append(
            _profile(f"S{i}", amount_fen=8_000 * jitter, credit=0.15 * jitter, hours=DAY_SHOP)
        )
        kinds.append((f"S{i}", "supermarket", "standard"))
        rows.append(
            _profile(f"B{i}", amount_fen=30_000 * jitter, credit=0.5 * jitter, hours=NIGHT_BAR)
        )
        kinds.append((f"B{i}", "restaurant", "standard"))
    share = misuser_share
    mixed = {b: (1 - share) * DAY_SHOP.get(b, 0) + share * NIGHT_BAR.get(b, 0) for b in range(8)}
    amount = 8_000 ** (1 - share) * 30_000**share
    rows.append(_profile("X", amount_fen=amount, credit=0.15 + share * 0.35, hours=mixed))
    kinds.append(("X", "supermarket", "discount"))
    return _frame(rows), _merchants(kinds)


def test_category_misuse_finds_a_discount_merchant_selling_like_another_trade() -> None:
    days, kinds = _market(0.9)
    found = category_misuse(days, kinds).collect()
    assert found.schema == FINDINGS_SCHEMA
    assert found.get_column("entity_id").to_list() == ["X"]
    assert "sells like a restaurant" in found.item(0, "summary")


def test_category_misuse_leaves_a_mixed_store_with_a_food_counter_alone() -> None:
    days, kinds = _market(0.25)
    assert category_misuse(days, kinds).collect().is_empty()


def test_category_misuse_judges_discount_and_charity_classes_only() -> None:
    days, kinds = _market(0.9)
    standard = kinds.with_columns(pl.lit("standard").alias("fee_class"))
    assert category_misuse(days, standard).collect().is_empty()


def test_category_misuse_needs_peers() -> None:
    days, kinds = _market(0.9)
    assert category_misuse(days, kinds, min_peers=4).collect().is_empty()


# -- dormant surge ----------------------------------------------------------------------------


def _terminal_days(terminal: str, merchant: str, counts: dict[int, int]) -> list[dict[str, object]]:
    return [
        _day(terminal, merchant, d, sale_count=n, sale_amount_fen=n * 5_000)
        for d, n in counts.items()
    ]


def _fleet(after: int) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Four cafes selling 50-80 a day for 50 days; the first silent on days 5 to 39 (35 days)."""
    rows = []
    for i, level in enumerate((50, 60, 70, 80)):
        rows += _terminal_days(f"T{i}", f"M{i}", {d: level for d in range(50) if i or d < 5})
    rows += _terminal_days("T0", "M0", {d: after for d in range(40, 50)})
    kinds = _merchants([(f"M{i}", "cafe", "standard") for i in range(4)])
    return _frame(rows), kinds


def test_dormant_surge_finds_a_terminal_back_at_the_top_of_its_category() -> None:
    days, kinds = _fleet(after=400)
    found = dormant_surge(days, kinds).collect()
    assert found.schema == FINDINGS_SCHEMA
    assert found.get_column("entity_id").to_list() == ["T0"]
    assert found.get_column("entity_type").to_list() == ["terminal"]
    assert found.get_column("window_start").to_list() == [datetime(2026, 4, 11)]
    assert "was silent 35 days" in found.item(0, "summary")


def test_dormant_surge_leaves_a_reopening_at_its_usual_trade_alone() -> None:
    days, kinds = _fleet(after=55)
    assert dormant_surge(days, kinds).collect().is_empty()


def test_dormant_surge_needs_a_month_of_silence_and_peers() -> None:
    days, kinds = _fleet(after=400)
    assert dormant_surge(days, kinds, min_silent_days=36).collect().is_empty()
    assert dormant_surge(days, kinds, min_peers=4).collect().is_empty()


# -- the query --------------------------------------------------------------------------------


def _sale(
    ts: datetime, amount: int, card: str, *, kind: str = "sale", channel: str = "credit_card"
) -> dict[str, object]:
    return {
        "txn_id": f"X{ts:%d%H%M%S}{amount}",
        "ts": ts,
        "terminal_id": "T1",
        "merchant_id": "M1",
        "operator_id": "O1",
        "kind": kind,
        "channel": channel,
        "amount_fen": amount,
        "card_token": card,
        "status": "approved",
    }


def test_merchant_terminal_days_counts_repeat_card_near_round_credit_sales_never_returned() -> None:
    night = datetime(2026, 3, 2, 2, 0)
    rows = [
        _sale(night, 998_000, "C1"),  # 9,980 CNY: 20 under 10,000
        _sale(night + timedelta(minutes=5), 495_000, "C1"),  # 4,950: 50 under 5,000
        _sale(night + timedelta(minutes=9), 298_000, "C2"),  # C2 once only
        _sale(night + timedelta(minutes=12), 990_000, "C3"),
        _sale(night + timedelta(minutes=14), 990_000, "C3"),  # C3 is refunded later
        _sale(night + timedelta(hours=30), 990_000, "C3", kind="refund"),
        _sale(night + timedelta(minutes=20), 150_000, "C4"),  # 1,500: far from round
        _sale(night + timedelta(minutes=21), 150_000, "C4"),
        _sale(night + timedelta(hours=12), 2_000, "C5", channel="alipay_qr"),
    ]
    days = merchant_terminal_days(pl.LazyFrame(rows)).collect().sort("day")
    first = days.row(0, named=True)
    assert first["sale_count"] == 8
    assert first["credit_count"] == 7
    assert first["cash_count"] == 2
    assert first["cash_amount_fen"] == 998_000 + 495_000
    assert first["cash_h0"] == 2
    assert first["h0"] == 7 and first["h4"] == 1
    assert days.row(1, named=True)["return_count"] == 1


def test_every_merchant_rule_is_medium_but_the_benford_lead() -> None:
    assert set(m.SEVERITY_OF) == set(m.RULE_NAMES) == set(m.SENTENCES)
    assert {r: s for r, s in m.SEVERITY_OF.items() if s != "medium"} == {"invented_amounts": "low"}


# -- invented amounts -------------------------------------------------------------------------


def _digit_profile(extra: dict[int, float] | None = None) -> np.ndarray:
    """A trade's first-two digit shares: Benford's, with round prices (10, 20, 50) sold often,
    plus ``extra`` shares on some pairs."""
    digits = np.arange(10, 100)
    share = np.log10(1 + 1 / digits)
    for d in (10, 20, 50):
        share[d - 10] += 0.03
    for d, more in (extra or {}).items():
        share[d - 10] += more
    return share / share.sum()


def _digit_days(merchant: str, amounts: int, profile: np.ndarray, seed: int) -> list[dict]:
    counts = np.random.default_rng(seed).multinomial(amounts, profile)
    return [
        {
            "merchant_id": merchant,
            "day": START + timedelta(days=d % 7),
            "digit": 10 + i,
            "n": int(c),
        }
        for i, c in enumerate(counts)
        if c
        for d in range(1)
    ]


def _digit_market(*others: tuple[str, int, np.ndarray]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    rows: list[dict] = []
    shops = [(f"M{i}", 3_000, _digit_profile()) for i in range(5)] + list(others)
    for seed, (merchant, amounts, profile) in enumerate(shops):
        rows += _digit_days(merchant, amounts, profile, seed)
    days = pl.LazyFrame(
        rows, schema={"merchant_id": pl.String, "day": pl.Date, "digit": pl.Int32, "n": pl.Int64}
    )
    merchants = _merchants([(shop, "apparel", "standard") for shop, _, _ in shops])
    return days, merchants


def test_invented_amounts_finds_sales_gathered_just_under_round_sums() -> None:
    typed = _digit_profile({47: 0.04, 48: 0.05, 49: 0.06, 95: 0.03, 98: 0.04, 99: 0.05})
    found = invented_amounts(*_digit_market(("MX", 2_000, typed))).collect()
    assert found["entity_id"].to_list() == ["MX"]
    row = found.row(0, named=True)
    assert row["severity"] == "low" and row["family"] == "merchants"
    assert found.schema == FINDINGS_SCHEMA
    evidence = json.loads(row["evidence"])
    assert set(evidence["spikes"].split(", ")) <= {"47", "48", "49", "95", "98", "99"}
    assert evidence["under_round_percent"] >= 90 and evidence["mad"] > 0.0022
    assert "49" in row["summary"] and "apparel" in row["summary"]


def test_invented_amounts_leaves_a_merchant_selling_another_trades_round_prices_alone() -> None:
    # as far from its peers, but its excess on round prices, not under them
    other_trade = _digit_profile({30: 0.08, 40: 0.08, 60: 0.05})
    assert invented_amounts(*_digit_market(("MX", 2_000, other_trade))).collect().is_empty()


def test_invented_amounts_leaves_round_prices_its_whole_trade_sells_alone() -> None:
    # every shop of the trade sells at round prices: none conforms to Benford, none stands out
    assert invented_amounts(*_digit_market()).collect().is_empty()


def test_invented_amounts_needs_amounts_and_peers() -> None:
    typed = _digit_profile({48: 0.1, 49: 0.1, 99: 0.1})
    few = invented_amounts(*_digit_market(("MX", 900, typed))).collect()
    assert few.is_empty()
    days, merchants = _digit_market(("MX", 2_000, typed))
    alone = merchants.filter(pl.col("merchant_id").is_in(["M0", "M1", "MX"]))
    assert invented_amounts(days, alone, min_peers=2).collect()["entity_id"].to_list() == ["MX"]
    assert invented_amounts(days, alone, min_peers=3).collect().is_empty()


def test_merchant_digit_days_counts_first_two_digits_of_approved_sales() -> None:
    sales = pl.LazyFrame(
        {
            "merchant_id": ["A", "A", "A", "A", "A"],
            "ts": [datetime(2026, 3, 2, 10)] * 4 + [datetime(2026, 3, 3, 10)],
            "kind": ["sale", "sale", "refund", "sale", "sale"],
            "status": ["approved", "approved", "approved", "declined", "approved"],
            "amount_fen": [4_990, 49_900, 4_990, 4_990, 9],
        }
    )
    days = merchant_digit_days(sales).collect().sort("day", "digit")
    assert days.select("digit", "n").rows() == [(49, 2)]
