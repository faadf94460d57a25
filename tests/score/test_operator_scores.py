"""Tests of the operator-day features and anomaly scores on small literal worlds."""

from __future__ import annotations

import doctest
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.registry import RULES
from posaudit.score import operators
from posaudit.score.operators import (
    CONTEXT_DAYS,
    FEATURES,
    MODEL_FEATURES,
    activity_inputs,
    operator_day_features,
    operator_day_scores,
)
from tests.sentences import assert_summaries_read_back


def operator_anomaly_scores(*tables: pl.LazyFrame, **thresholds: Any) -> pl.LazyFrame:
    """The rule over the store tables of a world (its shared frames computed from them)."""
    return operators.operator_anomaly_scores(*activity_inputs(*tables), **thresholds)


DAY0 = date(2026, 3, 2)
CLERK = "T000001-03"
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
}
LOGIN_SCHEMA: dict[str, Any] = {
    "event_id": pl.String,
    "ts": pl.Datetime("us"),
    "terminal_id": pl.String,
    "operator_id": pl.String,
    "outcome": pl.String,
}
LOCKOUT_SCHEMA: dict[str, Any] = {
    "lockout_id": pl.String,
    "terminal_id": pl.String,
    "operator_id": pl.String,
    "locked_at": pl.Datetime("us"),
}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time on the ``day``-th day of the literal world."""
    return datetime.combine(DAY0 + timedelta(days=day), time(hour, minute))


# --- a literal world ----------------------------------------------------------------------


@dataclass
class World:
    """Rows of a small world; ``frames()`` turns them into the rule's input LazyFrames."""

    transactions: list[dict[str, Any]] = field(default_factory=list)
    logins: list[dict[str, Any]] = field(default_factory=list)
    lockouts: list[dict[str, Any]] = field(default_factory=list)
    operators: list[dict[str, Any]] = field(default_factory=list)
    merchants: list[dict[str, Any]] = field(default_factory=list)

    def operator(self, operator_id: str, merchant_id: str = "M000001") -> None:
        terminal_id, operator_no = operator_id.split("-")
        self.operators.append(
            {
                "operator_id": operator_id,
                "terminal_id": terminal_id,
                "merchant_id": merchant_id,
                "operator_no": operator_no,
            }
        )

    def merchant(self, merchant_id: str = "M000001", category: str = "cafe") -> None:
        self.merchants.append(
            {
                "merchant_id": merchant_id,
                "category": category,
                "opens_at": time(8),
                "closes_at": time(22),
            }
        )

    def txn(self, txn_id: str, ts: datetime, operator_id: str = CLERK, **kw: Any) -> None:
        terminal_id = operator_id.split("-")[0]
        merchant_id = next(
            o["merchant_id"] for o in self.operators if o["operator_id"] == operator_id
        )
        row = {
            "txn_id": txn_id,
            "ts": ts,
            "terminal_id": terminal_id,
            "merchant_id": merchant_id,
            "operator_id": operator_id,
            "kind": "sale",
            "amount_fen": 5_000,
            "card_token": f"CARD-{txn_id}",
            "original_txn_id": None,
            "status": "approved",
        }
        row.update(kw)
        self.transactions.append(row)

    def refund(self, txn_id: str, ts: datetime, sale_id: str, **kw: Any) -> None:
        sale = next(t for t in self.transactions if t["txn_id"] == sale_id)
        kw = {"amount_fen": sale["amount_fen"], "card_token": sale["card_token"]} | kw
        self.txn(txn_id, ts, kind="refund", original_txn_id=sale_id, **kw)

    def login(
        self,
        ts: datetime,
        operator_id: str = CLERK,
        outcome: str = "success",
        terminal_id: str | None = None,
    ) -> None:
        terminal = terminal_id or operator_id.split("-")[0]
        self.logins.append(
            {
                "event_id": f"L{len(self.logins)}",
                "ts": ts,
                "terminal_id": terminal,
                "operator_id": operator_id,
                "outcome": outcome,
            }
        )

    def lockout(self, ts: datetime, operator_id: str = CLERK) -> None:
        self.lockouts.append(
            {
                "lockout_id": f"K{len(self.lockouts)}",
                "terminal_id": operator_id.split("-")[0],
                "operator_id": operator_id,
                "locked_at": ts,
            }
        )

    def frames(self) -> list[pl.LazyFrame]:
        return [
            pl.LazyFrame(self.transactions, schema=TXN_SCHEMA),
            pl.LazyFrame(self.logins, schema=LOGIN_SCHEMA),
            pl.LazyFrame(self.lockouts, schema=LOCKOUT_SCHEMA),
            pl.LazyFrame(self.operators, schema={c: pl.String for c in self.operators[0]}),
            pl.LazyFrame(
                self.merchants,
                schema={
                    "merchant_id": pl.String,
                    "category": pl.String,
                    "opens_at": pl.Time,
                    "closes_at": pl.Time,
                },
            ),
        ]


def one_clerk_world() -> World:
    world = World()
    world.merchant()
    world.operator(CLERK)
    return world


def features_of(world: World) -> pl.DataFrame:
    return operator_day_features(*world.frames()).collect()


def row(frame: pl.DataFrame, day: int, operator_id: str = CLERK) -> dict[str, Any]:
    rows = frame.filter(
        (pl.col("operator_id") == operator_id) & (pl.col("day") == DAY0 + timedelta(days=day))
    )
    assert rows.height == 1
    return rows.row(0, named=True)


def busy_world(seed: int = 1, *, operators_per_merchant: int = 20, days: int = 21) -> World:
    """Two merchants, forty clerks, three weeks: 840 ordinary operator-days, 280 a week,
    enough for a week's top one per cent to mean something.

    Every clerk logs in, sells 15-25 times to new cards and now and then refunds one of the
    day's sales in full; a few typos.
    """
    rng = random.Random(seed)
    world = World()
    for m in (1, 2):
        world.merchant(f"M00000{m}")
        for k in range(operators_per_merchant):
            world.operator(f"T00000{m}-{k + 1:02d}", f"M00000{m}")
    for op in [o["operator_id"] for o in world.operators]:
        for day in range(days):
            if rng.random() < 0.05:
                world.login(at(day, 8, 50), op, "wrong_pin")
            world.login(at(day, 9), op)
            for i in range(rng.randint(15, 25)):
                world.txn(
                    f"{op}-{day}-{i}", at(day, 10, i), op, amount_fen=rng.randint(1_000, 9_000)
                )
            if rng.random() < 0.3:
                world.refund(f"R{op}-{day}", at(day, 16), f"{op}-{day}-0", operator_id=op)
    return world


def with_loud_outlier(world: World, operator_id: str = "T000001-03", day: int = 15) -> World:
    """One operator-day with ten refunds, a dozen wrong PINs and two lockouts."""
    for i in range(10):
        world.refund(f"X{i}", at(day, 17, i), f"{operator_id}-{day}-{i}", operator_id=operator_id)
    for i in range(12):
        world.login(at(day, 12, i), operator_id, "wrong_pin")
    world.lockout(at(day, 12, 5), operator_id)
    world.lockout(at(day, 12, 11), operator_id)
    return world


def with_friendly_refunds(world: World, operator_id: str = "T000002-04") -> World:
    """Every third day a friend buys and the operator refunds it in full the next day."""
    for n, day in enumerate(range(1, 19, 3)):
        card = f"FRIEND-{n % 2}"
        world.txn(f"F{n}", at(day, 11), operator_id, card_token=card, amount_fen=4_800)
        world.refund(f"FR{n}", at(day + 1, 15), f"F{n}", operator_id=operator_id)
    return world


# --- features -----------------------------------------------------------------------------


def test_day_features_count_what_the_operator_did() -> None:
    world = one_clerk_world()
    world.login(at(0, 7, 29), outcome="wrong_pin")
    world.login(at(0, 7, 30))  # before opening: off hours
    world.login(at(0, 12), terminal_id="T000002")  # roaming to another terminal
    world.txn("S1", at(0, 10), amount_fen=5_000, card_token="A")
    world.txn("S2", at(0, 11), amount_fen=3_000, card_token="B")
    world.txn("S3", at(0, 23), amount_fen=2_000, card_token="C")  # after closing: off hours
    world.txn("V1", at(0, 11, 5), kind="void", amount_fen=3_000, original_txn_id="S2")
    world.txn("D1", at(0, 12), status="declined", amount_fen=9_999)
    world.refund("R1", at(1, 10), "S1")  # full, 24 h after the sale
    world.refund("R2", at(1, 12), "S3", amount_fen=500)  # partial, 13 h after
    world.refund("RF", at(1, 13), "S2", status="failed")  # failed refunds do not count
    world.lockout(at(1, 9))
    world.txn("S4", at(8, 9), amount_fen=2_000, card_token="A")
    world.refund("R3", at(8, 15), "S4")  # card A again, 7 days after R1

    f = features_of(world)
    assert f.height == 3
    first = row(f, 0)
    assert first["sale_count"] == 3
    assert first["sale_amount_fen"] == 10_000
    assert first["void_count"] == 1
    assert first["refund_count"] == 0
    assert first["refund_rate"] == 0.0
    assert first["login_count"] == 2
    assert first["wrong_pin_count"] == 1
    assert first["terminal_count"] == 2
    assert first["terminal_id"] == "T000001"
    # 5 transactions and 2 successful logins; S3 at 23:00 and the 07:30 login are off hours
    assert first["off_hours_share"] == pytest.approx(2 / 7)

    second = row(f, 1)
    assert second["refund_count"] == 2
    assert second["refund_amount_fen"] == 5_500
    assert second["refund_card_count"] == 2
    assert second["full_refund_share"] == 0.5
    assert second["refund_lag_hours_mean"] == pytest.approx((24 + 13) / 2)
    assert second["refund_rate"] is None  # no sales that day
    assert second["lockout_count"] == 1
    assert second["repeat_card_refund_count"] == 0
    assert second["repeat_refund_card_count_28d"] == 0

    third = row(f, 8)
    assert third["refund_rate"] == 1.0
    assert third["repeat_card_refund_count"] == 1
    assert third["repeat_refund_card_count_28d"] == 1
    assert third["refunds_to_repeat_cards_28d"] == 2
    assert third["repeat_card_refund_share_28d"] == pytest.approx(2 / 3)
    assert third["refund_count_28d"] == 3
    assert third["sale_count_28d"] == 4
    assert third["refund_rate_28d"] == pytest.approx(3 / 4)
    assert sorted(third["repeat_card_refund_txn_ids"]) == ["R1", "R3"]
    assert third["refund_txn_ids"] == ["R3"]


def test_medians_compare_like_days_and_fall_back_to_the_category() -> None:
    world = one_clerk_world()
    world.txn("S1", at(0, 10))
    world.login(at(1, 9))  # a day without sales is not a selling day to compare with
    for i in range(3):
        world.txn(f"S2-{i}", at(2, 10, i))
    f = features_of(world)
    # 2 selling days, fewer than MIN_PEER_DAYS: the merchant has no median of its own
    assert f.get_column("sale_count_merchant_median").is_null().all()
    assert row(f, 2)["sale_count_category_median"] == 2.0
    assert row(f, 2)["sale_count_vs_median"] == 1.5
    assert row(f, 1)["sale_count_vs_median"] == 0.0


def test_merchant_median_once_it_has_enough_comparable_days() -> None:
    world = busy_world(operators_per_merchant=1, days=6)
    f = features_of(world)
    m1 = f.filter(pl.col("merchant_id") == "M000001")
    assert m1.get_column("sale_count_merchant_median").n_unique() == 1
    assert m1.item(0, "sale_count_merchant_median") == m1.get_column("sale_count").median()


def test_refunds_to_one_card_within_a_day_are_not_repeats() -> None:
    world = one_clerk_world()
    for i in range(3):
        world.txn(f"S{i}", at(0, 10, i), card_token="X")
        world.refund(f"R{i}", at(0, 15, i), f"S{i}")
    third = row(features_of(world), 0)
    assert third["refund_count"] == 3
    assert third["repeat_card_refund_count"] == 0
    assert third["refunds_to_repeat_cards_28d"] == 0


@settings(max_examples=40, deadline=None)
@given(gap=st.integers(0, 40), later=st.integers(0, 30))
def test_a_card_repeats_while_both_refund_days_are_in_the_28_day_window(
    gap: int, later: int
) -> None:
    world = one_clerk_world()
    world.txn("S1", at(0, 9), card_token="X")
    world.refund("R1", at(0, 10), "S1")
    world.txn("S2", at(gap, 9, 30), card_token="X")
    world.refund("R2", at(gap, 11), "S2")
    world.login(at(gap + later, 9))  # a later day the operator works
    f = features_of(world)
    repeats = 1 <= gap < CONTEXT_DAYS
    assert row(f, gap)["repeat_card_refund_count"] == (1 if repeats else 0)
    assert row(f, gap)["repeat_refund_card_count_28d"] == (1 if repeats else 0)
    # the context of day D spans days D - 27 .. D; the first refund was on day 0
    in_window = repeats and gap + later < CONTEXT_DAYS
    assert row(f, gap + later)["repeat_refund_card_count_28d"] == (1 if in_window else 0)
    assert row(f, gap + later)["refunds_to_repeat_cards_28d"] == (2 if in_window else 0)


def test_features_hold_no_pin_column() -> None:
    columns = operator_day_features(*one_clerk_world().frames()).collect_schema().names()
    assert not any("digest" in c or c == "pin" for c in columns)
    assert set(FEATURES) <= set(columns)
    assert "pin_events" not in RULES["operator_anomaly_scores"].inputs
    assert "weak_pin_digests" not in RULES["operator_anomaly_scores"].inputs


# --- scores -------------------------------------------------------------------------------


def test_same_seed_same_scores_other_seed_other_scores() -> None:
    frames = with_friendly_refunds(busy_world()).frames()
    first = operator_day_scores(*frames, seed=7).collect()
    again = operator_day_scores(*frames, seed=7).collect()
    other = operator_day_scores(*frames, seed=8).collect()
    key = ["operator_id", "day"]
    assert first.sort(key).equals(again.sort(key))
    scores = first.sort(key).get_column("anomaly_score")
    assert not scores.equals(other.sort(key).get_column("anomaly_score"))


def test_a_loud_outlier_day_ranks_first() -> None:
    scores = operator_day_scores(*with_loud_outlier(busy_world()).frames()).collect()
    assert scores.height == 840
    top = scores.sort("anomaly_score", descending=True).row(0, named=True)
    assert (top["operator_id"], top["day"]) == ("T000001-03", DAY0 + timedelta(days=15))
    # above every other operator-day of its week
    week = scores.filter(pl.col("model_week") == top["model_week"]).height
    assert top["anomaly_percentile"] == (week - 1) / week
    assert top["anomaly_score"] > 0.6
    assert {"refund_count", "wrong_pin_count", "lockout_count"} & {
        top["standout_feature_1"],
        top["standout_feature_2"],
        top["standout_feature_3"],
    }


def test_friendly_refunds_rank_above_every_ordinary_day() -> None:
    scores = operator_day_scores(*with_friendly_refunds(busy_world()).frames()).collect()
    repeat_days = scores.filter(pl.col("repeat_card_refund_count") > 0)
    assert repeat_days.height >= 3
    assert set(repeat_days.get_column("operator_id")) == {"T000002-04"}
    ordinary = scores.filter(pl.col("operator_id") != "T000002-04")
    # each week's days are scored by that week's model: compare within the week
    for (week,), days in repeat_days.group_by("model_week"):
        others = ordinary.filter(pl.col("model_week") == week)
        assert days.get_column("anomaly_score").min() > others["anomaly_score"].max()


def test_identical_days_leave_nobody_at_the_top() -> None:
    world = World()
    world.merchant()
    for k in range(6):
        world.operator(f"T000001-{k + 1:02d}")
        for day in range(10):
            world.login(at(day, 9), f"T000001-{k + 1:02d}")
    frames = world.frames()
    scores = operator_day_scores(*frames).collect()
    assert scores.get_column("anomaly_percentile").max() == 0.0
    assert operator_anomaly_scores(*frames).collect().height == 0


# --- the rule -----------------------------------------------------------------------------


def test_rule_reports_the_outlier_day_as_a_finding() -> None:
    findings = operator_anomaly_scores(
        *with_loud_outlier(busy_world()).frames(), top_fraction=0.01
    ).collect()
    assert findings.schema == FINDINGS_SCHEMA
    assert findings.height >= 1
    assert findings.height <= 9  # one per cent of each week's 280 operator-days
    top = findings.sort("score", descending=True).row(0, named=True)
    assert top["entity_type"] == "operator" and top["entity_id"] == "T000001-03"
    assert top["merchant_id"] == "M000001"
    assert top["rule"] == "operator_anomaly_scores" and top["family"] == "scores"
    assert top["window_start"] == at(15, 0)
    assert top["window_end"] == at(15, 0) + timedelta(days=1, microseconds=-1)
    assert top["severity"] in {"low", "medium"}
    assert 0.99 <= top["score"] <= 1.0
    evidence = json.loads(top["evidence"])
    assert evidence["refund_count"] == 10 and evidence["lockout_count"] == 2
    assert evidence["top_fraction"] == 0.01 and evidence["seed"] == 0
    assert len(evidence["refund_txn_ids"]) == 10


def test_a_day_in_the_top_says_something_or_is_no_finding() -> None:
    """A quota is always filled: in a world without abuse the top 3 % of each week holds
    ordinary days. Only those the forest isolates very fast stay, as low leads."""
    frames = busy_world().frames()
    scores = operator_day_scores(*frames).collect()
    in_top = scores.filter((pl.col("anomaly_percentile") >= 0.97) & (pl.col("anomaly_score") > 0.5))
    assert in_top.get_column("repeat_card_refund_count").max() == 0
    ordinary = in_top.filter(pl.col("anomaly_score") <= 0.7)
    isolated = in_top.filter(pl.col("anomaly_score") > 0.7)
    assert ordinary.height > 0 and isolated.height > 0
    findings = operator_anomaly_scores(*frames, top_fraction=0.03).collect()
    found = set(findings.select("entity_id", pl.col("window_start").dt.date()).iter_rows())
    assert found == set(isolated.select("operator_id", "day").iter_rows())
    assert set(findings.get_column("severity")) == {"low"}


def test_a_loud_day_without_repeat_cards_is_a_low_lead() -> None:
    """Ten refunds, a dozen wrong PINs and two lockouts in a day: the forest isolates it at
    once, but those are the refund and login rules' subjects; here it is a lead."""
    findings = operator_anomaly_scores(
        *with_loud_outlier(busy_world()).frames(), top_fraction=0.01
    ).collect()
    loud = findings.filter(
        (pl.col("entity_id") == "T000001-03") & (pl.col("window_start") == at(15, 0))
    )
    assert loud.height == 1
    assert json.loads(loud.item(0, "evidence"))["anomaly_score"] > 0.85
    assert set(findings.get_column("severity")) == {"low"}


def test_repeat_card_refunds_are_medium_once_they_form_a_pattern() -> None:
    """One card refunded on two days is an honest regular as often as not: low; from the
    third refund to repeat cards in 28 days the day is medium."""
    frames = with_friendly_refunds(busy_world()).frames()
    findings = operator_anomaly_scores(*frames, top_fraction=0.01).collect()
    friendly = findings.filter(pl.col("entity_id") == "T000002-04").sort("window_start")
    severities = {
        row["window_start"].date(): (
            row["severity"],
            json.loads(row["evidence"])["refunds_to_repeat_cards_28d"],
        )
        for row in friendly.iter_rows(named=True)
    }
    assert severities[at(8, 0).date()] == ("low", 2)  # the first repeat
    assert severities[at(11, 0).date()] == ("medium", 4)
    assert all(s == "medium" for s, n in severities.values() if n >= 3)
    others = findings.filter(pl.col("entity_id") != "T000002-04")
    assert set(others.get_column("severity")) <= {"low"}
    strict = operator_anomaly_scores(*frames, top_fraction=0.01, medium_repeat_refunds=2)
    assert strict.filter(pl.col("window_start") == at(8, 0)).collect().item(0, "severity") == (
        "medium"
    )


def test_summary_names_operator_terminal_day_features_and_ratios() -> None:
    findings = operator_anomaly_scores(
        *with_loud_outlier(busy_world()).frames(), top_fraction=0.01
    ).collect()
    summary = findings.sort("score", descending=True).item(0, "summary")
    assert summary.startswith("operator 03 at terminal T000001 on 2026-03-17: ")
    assert re.search(r"\b\d+(\.\d)?x the (merchant|category) median\b", summary), summary
    assert re.search(r"refunds|wrong PINs|lockouts", summary), summary
    assert_summaries_read_back(findings)


def test_friendly_summary_says_how_many_refunds_went_to_repeat_cards() -> None:
    findings = operator_anomaly_scores(
        *with_friendly_refunds(busy_world()).frames(), top_fraction=0.008
    ).collect()  # the top two of each week's 280 operator-days
    # the first week holds no repeat card yet (each friend's card is refunded once in it)
    findings = findings.filter(pl.col("window_start") >= at(7, 0))
    assert findings.height >= 1
    assert set(findings.get_column("entity_id")) == {"T000002-04"}
    summaries = findings.get_column("summary").to_list()
    assert any(re.search(r"\d+ refunds to 2 repeat cards in 28 days", s) for s in summaries)
    assert all(s.startswith("operator 04 at terminal T000002 on 2026-03-") for s in summaries)
    assert_summaries_read_back(findings)


def test_min_anomaly_score_keeps_ordinary_worlds_quiet() -> None:
    frames = with_loud_outlier(busy_world()).frames()
    assert operator_anomaly_scores(*frames, min_anomaly_score=0.99).collect().height == 0


def test_finding_ids_name_the_rule_operator_and_day_whatever_the_row_order() -> None:
    """An id is the SHA-256 of rule, entity and window start (documented in
    posaudit.detect.findings): stable across processes, library versions and input order."""
    frames = with_friendly_refunds(with_loud_outlier(busy_world())).frames()
    found = operator_anomaly_scores(*frames, top_fraction=0.05).collect()
    assert found.height > 0
    for finding in found.iter_rows(named=True):
        key = "|".join(
            (
                "operator_anomaly_scores",
                "operator",
                finding["entity_id"],
                f"{finding['window_start']:%Y-%m-%dT%H:%M:%S.%f}",
            )
        )
        assert finding["finding_id"] == hashlib.sha256(key.encode()).hexdigest()[:20], key
    shuffled = [
        frame.collect().sample(fraction=1.0, shuffle=True, seed=3).lazy() for frame in frames
    ]
    again = operator_anomaly_scores(*shuffled, top_fraction=0.05).collect()
    assert again.sort("finding_id").equals(found.sort("finding_id"))


def test_empty_world_gives_empty_findings() -> None:
    world = one_clerk_world()
    findings = operator_anomaly_scores(*world.frames()).collect()
    assert findings.height == 0
    assert findings.schema == FINDINGS_SCHEMA


def test_categoricals_from_the_store_work_like_strings() -> None:
    world = with_loud_outlier(busy_world())
    txns, logins, *rest = world.frames()
    as_store = [
        txns.with_columns(
            pl.col("kind").cast(pl.Enum(["sale", "void", "refund", "transfer"])),
            pl.col("status").cast(pl.Enum(["approved", "declined", "failed"])),
        ),
        logins.with_columns(
            pl.col("outcome").cast(
                pl.Enum(["success", "wrong_pin", "unknown_operator", "locked", "network_error"])
            )
        ),
        *rest,
    ]
    plain = operator_day_scores(*world.frames()).collect().sort("operator_id", "day")
    enums = operator_day_scores(*as_store).collect().sort("operator_id", "day")
    assert plain.get_column("anomaly_score").equals(enums.get_column("anomaly_score"))


def test_building_the_rule_collects_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = with_loud_outlier(busy_world()).frames()

    def refuse(*_: Any, **__: Any) -> None:
        msg = "collected while building the plan"
        raise AssertionError(msg)

    monkeypatch.setattr(pl.LazyFrame, "collect", refuse)
    plan = operator_anomaly_scores(*frames)
    assert isinstance(plan, pl.LazyFrame)
    monkeypatch.undo()
    assert plan.collect().height >= 1


def test_registered_with_its_inputs_and_scenario() -> None:
    registered = RULES["operator_anomaly_scores"]
    assert registered.family == "scores" and registered.entity_type == "operator"
    assert registered.inputs == (
        "operator_terminal_days",
        "login_events",
        "lockouts",
        "operators",
        "merchants",
        "approved_refunds",
    )
    assert registered.lookback == timedelta(days=CONTEXT_DAYS)
    assert registered.scenarios == ("friendly_refunds",)
    assert registered.parameters["seed"] == 0
    assert set(MODEL_FEATURES) <= set(FEATURES)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(operators, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_fit_sample_is_the_same_whole_or_in_parts() -> None:
    from datetime import date

    from posaudit.score.operators import fit_sample, sample_key

    days = pl.date_range(date(2026, 1, 1), date(2026, 3, 31), eager=True)
    frame = (
        pl.DataFrame({"operator_id": [f"T{t:06d}-{o:02d}" for t in range(40) for o in range(5)]})
        .join(pl.DataFrame({"day": days}), how="cross")
        .with_columns(pl.col("operator_id").str.slice(0, 7).alias("merchant_id"))
    )
    whole = fit_sample(frame, total=frame.height, fit_rows=2_000)
    parts = pl.concat(
        fit_sample(part, total=frame.height, fit_rows=2_000)
        for part in frame.partition_by("merchant_id")
    )
    assert 1_500 < whole.height < 2_500
    assert whole.sort("operator_id", "day").equals(parts.sort("operator_id", "day"))
    # a fixed key: the same operator and day give the same number in any frame
    keys = frame.head(50).select(sample_key()).to_series()
    assert keys.equals(frame.head(50).reverse().select(sample_key()).to_series().reverse())
    assert fit_sample(frame, total=frame.height, fit_rows=frame.height).height == frame.height
