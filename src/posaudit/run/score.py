"""The operator anomaly score's part of a local run.

The score is the longest step of a run and the one that keeps most for the next: over all
the data it computes every operator-day and fits a model per week; in an incremental run it
computes the operator-days from the changed day on, with the 28-day context and the week
models the previous run kept (:mod:`posaudit.run.kept`), and re-decides its findings from
that day (or the week's Monday, when the week gets a new model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from posaudit.detect.policy import Policy
from posaudit.detect.registry import Rule, with_derived_tables
from posaudit.run.detect import shaped_findings
from posaudit.run.kept import (
    IncrementalScore,
    context_rows,
    day_start,
    forget_kept,
    incremental_scores,
    kept_for_score,
    kept_refund_cards,
    write_kept,
)
from posaudit.run.plan import RuleScope
from posaudit.run.read import KeptRefunds, TableReader
from posaudit.score.models import WeekModel
from posaudit.score.operators import (
    FINDING_PARAMETERS,
    anomaly_findings,
    monday_of,
    operator_day_activity,
    weekly_scores,
)
from posaudit.store import Store

FOREST_PARAMETERS = ("seed", "n_estimators", "max_samples", "fit_rows")


@dataclass(frozen=True)
class ScoreOutcome:
    """The anomaly score's part of a run: its findings, and what the run keeps for the next.

    ``changed_day``: the first day whose operator-days were recomputed (None: all of them);
    ``recheck_from``: the first day whose findings were re-decided (None: all).
    """

    findings: pl.DataFrame
    days: pl.DataFrame
    models: dict[date, WeekModel]
    changed_day: date | None
    recheck_from: datetime | None

    def keep(self, store: Store, run_id: str) -> None:
        """Keep the operator-days and models for the next run (in the run's transaction)."""
        write_kept(store, run_id, self.days, self.models, changed_day=self.changed_day)


def keep_score(store: Store, run_id: str, outcome: ScoreOutcome | None) -> None:
    """Keep the score's operator-days and models, or mark them as nobody's (no score ran)."""
    if outcome is not None:
        outcome.keep(store, run_id)
    else:
        forget_kept(store)


def fits_a_model(scope: RuleScope, data_to: datetime) -> bool:
    """Whether the score will fit a model: in a full run, and when the data reaches the end
    of the week of the changed day (which then gets its own model)."""
    if scope.recheck_from is None or scope.read_from is None:
        return True
    return data_to.date() >= monday_of(scope.recheck_from.date()) + timedelta(days=6)


def score_outcome(
    store: Store,
    rule: Rule,
    tables: Mapping[str, pl.LazyFrame],
    policy: Policy,
    scope: RuleScope,
    refunds: KeptRefunds | None = None,
    done_with_store: Callable[[], None] | None = None,
) -> ScoreOutcome:
    """Run the anomaly score, over all the data or from the changed day on with what the
    previous run kept; ``refunds``: how the run reads the refunds. ``done_with_store`` is
    called once the score reads the store no more (its tables, given, are in memory)."""
    thresholds = rule.parameters | policy.parameters(rule.name)
    frames = with_derived_tables(rule.inputs, dict(tables))
    inputs = [frames[name] for name in rule.inputs]
    forest = {k: thresholds[k] for k in FOREST_PARAMETERS}
    finding = {k: thresholds[k] for k in FINDING_PARAMETERS}
    if scope.read_from is None:
        if done_with_store is not None:
            done_with_store()
        days = operator_day_activity(*inputs).collect()
        scored, models = weekly_scores(days, **forest)
        changed_day, recheck_from = None, None
    else:
        assert scope.recheck_from is not None
        changed_day = scope.recheck_from.date()
        # everything the score reads of the store first, so that the run can let go of what
        # DuckDB cached while the score computes
        try:
            with store.cursor() as cursor:
                context = context_rows(cursor, changed_day).lazy()
                cards = refund_cards(cursor, frames["approved_refunds"], changed_day, refunds)
                kept = kept_for_score(cursor, changed_day)
        finally:
            if done_with_store is not None:
                done_with_store()
        days = operator_day_activity(*inputs, refund_cards=cards.lazy(), context=context).collect()
        scored, models, score_from = incremental_scores(kept, days, changed_day, thresholds)
        recheck_from = day_start(score_from)
    findings = shaped_findings(anomaly_findings(scored.lazy(), **finding)).collect()
    return ScoreOutcome(findings, days, models, changed_day, recheck_from)


def refund_cards(
    store: Store, refunds: pl.LazyFrame, changed_day: date, kept: KeptRefunds | None
) -> pl.DataFrame:
    """The refunds to cards the score reads in an incremental run, 27 days back: from the
    kept refunds and the run's own (``refunds``, from ``changed_day`` on) when the kept
    ones are current, else from the transactions."""
    reads = IncrementalScore(changed_day)
    if kept is None or kept.changed_from is None or kept.changed_from < reads.events_from:
        return TableReader(store).read_derived("approved_refund_cards", reads.refunds_from)
    earlier = kept_refund_cards(store, since=reads.refunds_from, before=reads.events_from)
    new = refunds.filter(
        (pl.col("ts") >= reads.events_from)
        & pl.col("operator_id").is_not_null()
        & pl.col("card_token").is_not_null()
    ).select(earlier.columns)
    return pl.concat([earlier.lazy(), new.cast(earlier.schema)]).collect()  # type: ignore[arg-type]
