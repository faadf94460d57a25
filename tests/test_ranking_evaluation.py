"""The daily ranking's metrics on literal frames, worked by hand, and its time-aware split."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from posaudit.ranking_evaluation import (
    average_precision,
    budget_size,
    caught_incidents,
    daily_rank,
    in_budget,
    precision_at_k_per_day,
    supervised_scores,
    time_split,
)

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)


def ranked_days() -> pl.DataFrame:
    # day 1: five operator-days, attacks ranked 1st and 4th; day 2: three, the attack 2nd
    frame = pl.DataFrame(
        {
            "operator_id": ["a", "b", "c", "d", "e", "a", "b", "c"],
            "day": [D1] * 5 + [D2] * 3,
            "score": [9.0, 7.0, 5.0, 3.0, 1.0, 4.0, 6.0, 2.0],
            "is_attack": [True, False, False, True, False, True, False, False],
        }
    )
    return daily_rank(frame.lazy(), "score", "operator_id").collect()


def test_daily_rank_orders_each_day_by_score_and_counts_its_entities() -> None:
    ranked = ranked_days()
    assert ranked.select("day", "operator_id", "rank", "day_entities").rows() == [
        (D1, "a", 1, 5),
        (D1, "b", 2, 5),
        (D1, "c", 3, 5),
        (D1, "d", 4, 5),
        (D1, "e", 5, 5),
        (D2, "b", 1, 3),
        (D2, "a", 2, 3),
        (D2, "c", 3, 3),
    ]


def test_precision_at_k_per_day_by_hand() -> None:
    ranked = ranked_days()
    # k = 2: day 1's top two hold one attack (a), day 2's one (a, ranked 2nd)
    at_2 = precision_at_k_per_day(ranked.lazy(), k=2).collect()
    assert at_2.rows() == [(D1, 2, 1, 0.5), (D2, 2, 1, 0.5)]
    # k = 4: day 1 reads four (a and d: 2 of 4), day 2 has only three (1 of 3)
    at_4 = precision_at_k_per_day(ranked.lazy(), k=4).collect()
    assert at_4.get_column("precision").to_list() == [0.5, pytest.approx(1 / 3)]
    # 1 % of a day is one entity-day: day 1's first is an attack, day 2's is not
    at_share = precision_at_k_per_day(ranked.lazy(), share=0.01).collect()
    assert at_share.select("k", "hits").rows() == [(1, 1), (1, 0)]


def test_average_precision_by_hand() -> None:
    ranked = ranked_days()
    # pooled scores, highest first: a 9 (attack), b 7, b 6, c 5, a 4 (attack), d 3 (attack)
    # precision at each attack: 1/1, 2/5, 3/6 -> AP = (1 + 0.4 + 0.5) / 3
    ap = average_precision(ranked.get_column("is_attack"), ranked.get_column("score"))
    assert ap == pytest.approx((1 + 0.4 + 0.5) / 3)
    assert average_precision(pl.Series([False, False]), pl.Series([1.0, 2.0])) is None


def test_budget_is_one_per_cent_of_the_day_and_at_least_one() -> None:
    assert [budget_size(n) for n in (0, 1, 99, 100, 101, 250)] == [0, 1, 1, 1, 2, 3]
    within = in_budget(ranked_days())
    assert within.select("day", "operator_id").rows() == [(D1, "a"), (D2, "b")]


def test_budget_recall_counts_an_incident_caught_by_either_kind() -> None:
    operators = in_budget(ranked_days())
    merchants = in_budget(
        daily_rank(
            pl.LazyFrame({"merchant_id": ["M1", "M2"], "day": [D2, D2], "score": [1.0, 5.0]}),
            "score",
            "merchant_id",
        ).collect()
    )
    pairs = {
        "operator": pl.DataFrame(
            {
                "incident_id": ["i1", "i2", "i3"],
                "operator_id": ["a", "d", "a"],
                "day": [D1, D1, D2],
            }
        ),
        "merchant": pl.DataFrame(
            {"incident_id": ["i2", "i3"], "merchant_id": ["M1", "M2"], "day": [D2, D2]}
        ),
    }
    caught = caught_incidents({"operator": operators, "merchant": merchants}, pairs)
    # i1: its operator-day is day 1's first; i2: 4th of day 1, its merchant-day 2nd of day 2;
    # i3: 2nd of day 2 as an operator-day, but its merchant-day is day 2's first
    assert sorted(caught.get_column("incident_id").to_list()) == ["i1", "i3"]


@pytest.mark.parametrize("span", [5, 6, 7, 10, 14, 30, 61])
@pytest.mark.parametrize("gap", [0, 1, 3])
def test_time_split_never_trains_on_a_day_after_a_test_day(span: int, gap: int) -> None:
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(span)]
    try:
        train, test = time_split(days, gap_days=gap)
    except ValueError as error:
        assert "to train on" in str(error)
        return
    assert train and test
    assert max(train) + timedelta(days=gap) < min(test)
    assert set(train) | set(test) <= set(days) and not set(train) & set(test)
    assert max(test) == max(days)


def test_time_split_refuses_too_few_days() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        time_split([date(2026, 3, 1) + timedelta(days=i) for i in range(3)])


def test_supervised_scores_do_not_depend_on_the_test_days_labels() -> None:
    rng = np.random.default_rng(0)
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]
    n = 400
    x = rng.normal(size=n)
    frame = pl.DataFrame(
        {
            "operator_id": [f"o{i % 40}" for i in range(n)],
            "day": [days[i % 10] for i in range(n)],
            "refunds": x,
            "is_attack": x > 1.0,
        }
    )
    train, test = time_split(days)
    scored = supervised_scores(frame, kind="operator", train_days=train, test_days=test)
    flipped = supervised_scores(
        frame.with_columns(
            pl.when(pl.col("day").is_in(test))
            .then(~pl.col("is_attack"))
            .otherwise(pl.col("is_attack"))
            .alias("is_attack")
        ),
        kind="operator",
        train_days=train,
        test_days=test,
    )
    assert scored is not None and flipped is not None
    assert set(scored.get_column("day").to_list()) == set(test)
    assert scored.get_column("supervised_score").to_list() == pytest.approx(
        flipped.get_column("supervised_score").to_list()
    )
    # it learned from the training days: attacks score higher on the test days
    attack = scored.filter("is_attack").get_column("supervised_score").mean()
    other = scored.filter(~pl.col("is_attack")).get_column("supervised_score").mean()
    assert attack > other  # type: ignore[operator]


def test_no_supervised_model_without_an_attack_to_learn_from() -> None:
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]
    frame = pl.DataFrame(
        {"operator_id": "o", "day": days, "refunds": [1.0] * 10, "is_attack": False}
    )
    train, test = time_split(days)
    assert supervised_scores(frame, kind="operator", train_days=train, test_days=test) is None


def findings_frame() -> pl.LazyFrame:
    from datetime import datetime

    return pl.LazyFrame(
        {
            "finding_id": ["f1", "f2", "f3", "f4"],
            "rule": ["refund_bursts", "weak_pins", "refunds_to_other_card", "refund_bursts"],
            "severity": ["high", "high", "critical", "low"],
            "entity_type": ["operator", "operator", "transaction", "operator"],
            "entity_id": ["a", "b", "t1", "c"],
            "window_start": [
                datetime(2026, 3, 2, 10),
                datetime(2025, 12, 1),
                datetime(2026, 3, 3, 9),
                datetime(2026, 3, 2, 10),
            ],
            "window_end": [
                datetime(2026, 3, 2, 11),
                datetime(2026, 3, 3),
                datetime(2026, 3, 3, 9),
                datetime(2026, 3, 2, 11),
            ],
        }
    )


def test_rule_flagged_days_are_event_findings_at_medium_or_above() -> None:
    from datetime import datetime

    from posaudit.ranking_evaluation import rule_flagged_days

    transactions = pl.LazyFrame(
        {"txn_id": ["t1"], "operator_id": ["e"], "ts": [datetime(2026, 3, 3, 9)]}
    )
    operators = pl.LazyFrame({"operator_id": ["a", "b", "c", "e"], "merchant_id": "M1"})
    operator_days, merchant_days = pl.collect_all(
        rule_flagged_days(findings_frame(), transactions, operators)
    )
    # f1 flags a on its day; f2 is a standing condition (months long); f3 flags the refund's
    # operator e; f4 is low
    assert sorted(operator_days.rows()) == [("a", D1), ("e", D2)]
    # merchant-days follow the findings on operators themselves
    assert merchant_days.rows() == [("M1", D1)]


def test_after_rules_puts_flagged_entity_days_last_with_the_same_budget() -> None:
    from posaudit.ranking_evaluation import after_rules

    ranked = ranked_days()
    flagged = pl.DataFrame({"operator_id": ["a"], "day": [D1]})
    residual = after_rules(ranked, flagged, score="score", key="operator_id")
    day1 = residual.filter(pl.col("day") == D1)
    assert day1.get_column("operator_id").to_list() == ["b", "c", "d", "e", "a"]
    assert day1.get_column("day_entities").to_list() == [5] * 5
    assert in_budget(residual).select("operator_id").to_series().to_list() == ["b", "b"]


def test_labels_from_the_analysts_decisions() -> None:
    from posaudit.ranking_evaluation import review_entity_days

    reviews = pl.LazyFrame(
        {
            "review_id": [1, 2, 3],
            "finding_id": ["f1", "f4", "f4"],
            "decision": ["confirmed_fraud", "policy_breach", "false_positive"],
        }
    )
    labels = review_entity_days(findings_frame(), reviews).collect().sort("operator_id")
    # f1 upheld; f4's latest decision dismissed it
    assert labels.rows() == [("a", D1, True), ("c", D1, False)]


def test_a_world_without_attacks_or_days_to_train_on_is_measured_with_a_note() -> None:
    from datetime import datetime

    from posaudit.ranking_evaluation import evaluate_ranking
    from tests.score.test_ranking import world

    tables = world() | {
        "ground_truth": pl.LazyFrame(
            schema={
                "incident_id": pl.String,
                "scenario": pl.String,
                "entity_type": pl.String,
                "entity_id": pl.String,
                "start_ts": pl.Datetime("us"),
                "end_ts": pl.Datetime("us"),
            }
        )
    }
    findings = findings_frame().filter(pl.col("window_start") > datetime(2027, 1, 1))
    result = evaluate_ranking(tables, findings).to_dict()
    assert result["note"] is not None and "to train on" in result["note"]
    assert result["recall"] == [] and result["test_days"] == []
    operators = result["scores"]["operator"]
    assert operators["unsupervised_all_days"]["attacks"] == 0
    assert operators["unsupervised_all_days"]["average_precision"] is None
    assert operators["supervised"] == {}
