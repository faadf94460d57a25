"""Tests of the weekly models: their plan, their kept form, and scoring with kept models."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest

from posaudit.score.models import ForestArrays, WeekModel
from posaudit.score.operators import (
    FIT_ROWS,
    activity_inputs,
    operator_day_activity,
    week_plan,
    weekly_scores,
)
from tests.score.test_operator_scores import busy_world, with_friendly_refunds, with_loud_outlier

MONDAY = date(2026, 3, 2)
FOREST = {"seed": 0, "n_estimators": 100, "max_samples": 1024, "fit_rows": FIT_ROWS}


def test_kept_forest_scores_to_the_last_bit_as_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    x = np.clip(rng.standard_normal((4_000, 17)), 0, None) * rng.integers(0, 2, (4_000, 17))
    forest = IsolationForest(n_estimators=50, max_samples=512, random_state=1).fit(x)
    new = np.clip(rng.standard_normal((1_500, 17)) * 2, 0, None)
    arrays = ForestArrays.of(forest)
    assert np.array_equal(arrays.scores(new), -forest.score_samples(new))
    assert np.array_equal(arrays.scores(x), -forest.score_samples(x))


def test_a_week_is_scored_by_its_own_model_once_complete_else_by_the_last() -> None:
    days = [MONDAY + timedelta(days=i) for i in range(17)]  # two weeks and three days
    plan = dict(week_plan(days).iter_rows())
    assert plan == {
        MONDAY: MONDAY,
        MONDAY + timedelta(days=7): MONDAY + timedelta(days=7),
        MONDAY + timedelta(days=14): MONDAY + timedelta(days=7),
    }
    # the data's first week, incomplete, has no week before it: scored by itself
    assert dict(week_plan(days[:3]).iter_rows()) == {MONDAY: MONDAY}
    # a week before with too few days of data is no reference
    next_monday = MONDAY + timedelta(days=7)
    stub = [MONDAY + timedelta(days=5), MONDAY + timedelta(days=6), next_monday]
    assert dict(week_plan(stub).iter_rows())[next_monday] == next_monday


def _activity(days: int) -> pl.DataFrame:
    world = with_friendly_refunds(
        with_loud_outlier(busy_world(operators_per_merchant=8, days=days))
    )
    return operator_day_activity(*activity_inputs(*world.frames())).collect()


def test_a_kept_model_round_trips_and_scores_as_when_fitted() -> None:
    activity = _activity(17)
    scored, models = weekly_scores(activity, **FOREST)
    kept = {w: WeekModel.from_bytes(m.to_bytes()) for w, m in models.items()}
    assert all(m is not None and m.fitted is None for m in kept.values())
    again, _ = weekly_scores(activity, models=kept, **FOREST)  # type: ignore[arg-type]
    assert again.equals(scored)


def test_scores_from_a_day_with_kept_models_equal_scores_of_all_days() -> None:
    activity = _activity(17)
    whole, _ = weekly_scores(activity, **FOREST)
    changed = MONDAY + timedelta(days=16)
    _, before = weekly_scores(activity.filter(pl.col("day") < changed), **FOREST)
    kept = {w: m for w, m in before.items() if m.depends_until <= changed}
    part, _ = weekly_scores(activity, models=kept, score_from=changed, **FOREST)
    assert part.height > 0
    assert part.equals(whole.filter(pl.col("day") >= changed))
