"""What the anomaly score keeps in the store between runs, so a nightly run scores one day.

A day's operator-day row depends only on events of that day and the 27 days before it, and a
week's model only on that week's rows (:mod:`posaudit.score.operators`). A run keeps what the
next nightly run needs, for the data's last week (the week of its last day):

- ``score_operator_days``: that week's operator-day rows (:func:`operator_day_activity`): the
  next run fits the week's model on them once the week is complete, and re-scores them;
- ``score_context``: each operator-day's sales and refunds from 27 days before that week's
  Monday on, from which the next run takes the 28-day sums of new days (and which days the
  week before had data on);
- ``score_models``: the models of that week and the week before (the current week is scored
  by the week before's model until it is complete), with the day from which a change of
  data would change each (``depends_until``).

An incremental run whose data changed from day ``C`` on (in the kept week or later)
recomputes the rows from ``C`` on out of the events from ``C`` on (and the refunds to cards
of the 27 days before), keeps the models that depend on days before ``C`` only, fits the
others, and re-decides the score's findings from ``C`` on (from the week's Monday when the
week got a new model). A change before the kept week, or state kept by another run than the
last successful one, makes the score read all the data again. The tables are written in the
run's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from posaudit.score.models import WeekModel
from posaudit.score.operators import (
    CONTEXT_DAYS,
    _monday,
    week_plan,
    weekly_scores,
)

if TYPE_CHECKING:
    from posaudit.store import Store

DAYS_TABLE: Final = "score_operator_days"
CONTEXT_TABLE: Final = "score_context"
MODELS_TABLE: Final = "score_models"
STATE_KEY: Final = "score.state_run_id"  # the run whose rows and models the tables hold
WEEK_KEY: Final = "score.kept_week"  # the Monday of the week whose rows are kept
_CONTEXT_COLUMNS: Final = ("operator_id", "day", "sale_count", "refund_count")


def kept_week(store: Store, run_id: str | None) -> date | None:
    """The Monday of the week whose operator-days the store keeps for the score, when kept by
    run ``run_id``; None when nothing is kept for it."""
    if run_id is None or not all(
        store.has_table(t) for t in (DAYS_TABLE, CONTEXT_TABLE, MODELS_TABLE)
    ):
        return None
    meta = store.meta()
    if meta.get(STATE_KEY) != run_id or WEEK_KEY not in meta:
        return None
    return date.fromisoformat(meta[WEEK_KEY])


def day_start(day: date) -> datetime:
    return datetime.combine(day, time())


@dataclass(frozen=True)
class IncrementalScore:
    """How an incremental run reads for the score: events from ``changed_day`` on, the
    refunds to cards from ``refunds_from`` on (repeat cards look back 27 days)."""

    changed_day: date

    @property
    def refunds_from(self) -> datetime:
        return day_start(self.changed_day - timedelta(days=CONTEXT_DAYS - 1))

    @property
    def events_from(self) -> datetime:
        return day_start(self.changed_day)


def _rows(store: Store, table: str, since: date, before: date, columns: str = "*") -> pl.DataFrame:
    return store.frame(
        f"SELECT {columns} FROM {table} WHERE day >= DATE '{since}' AND day < DATE '{before}'"
    )


def context_rows(store: Store, changed_day: date) -> pl.DataFrame:
    """The kept sales and refunds of the 27 days before ``changed_day``: the new days' context."""
    first = changed_day - timedelta(days=CONTEXT_DAYS - 1)
    return _rows(store, CONTEXT_TABLE, first, changed_day, ", ".join(_CONTEXT_COLUMNS))


def kept_models(store: Store, changed_day: date) -> dict[date, WeekModel]:
    """The kept week models that no change from ``changed_day`` on can touch."""
    rows = store.query(
        f"SELECT model FROM {MODELS_TABLE} WHERE depends_until <= ?", [changed_day]
    )
    models = (WeekModel.from_bytes(bytes(blob)) for (blob,) in rows)  # type: ignore[call-overload]
    return {m.week: m for m in models if m is not None}


def incremental_scores(
    store: Store,
    new_days: pl.DataFrame,
    changed_day: date,
    thresholds: dict[str, Any],
) -> tuple[pl.DataFrame, dict[date, WeekModel], date]:
    """Score the operator-days from ``changed_day`` on, with the kept rows and models.

    ``new_days``: the operator-days from ``changed_day`` on, computed from the events with
    the kept context (:func:`context_rows`). Returns the scored rows, the models they were
    scored with and the first day re-decided: ``changed_day``, or the Monday of its week when
    that week's days are now scored by another model than the kept one.
    """
    monday = _monday(changed_day)
    earlier = _rows(store, DAYS_TABLE, monday, changed_day)
    activity = (
        pl.concat([earlier, new_days], how="vertical_relaxed") if earlier.height else new_days
    )
    # which days of the week before had operator-days (it may be this week's reference)
    before = _rows(store, CONTEXT_TABLE, monday - timedelta(days=7), monday, "DISTINCT day")
    days = {*activity.get_column("day").unique().to_list(), *before.get_column("day").to_list()}
    plan = week_plan(days)
    models = kept_models(store, changed_day)
    this_week = plan.filter(pl.col("week") == monday).get_column("model_week").to_list()
    score_from = changed_day if this_week and this_week[0] in models else monday
    forest = {k: thresholds[k] for k in ("seed", "n_estimators", "max_samples", "fit_rows")}
    scored, used = weekly_scores(
        activity, models=models, score_from=score_from, other_days=days, **forest
    )
    return scored, used, score_from


def write_kept(
    store: Store,
    run_id: str,
    days: pl.DataFrame,
    models: dict[date, WeekModel],
    *,
    changed_day: date | None,
) -> None:
    """Keep what the next run needs (see the module docstring) after a run that computed the
    operator-days ``days`` from ``changed_day`` on (all of them when None) and scored with
    ``models`` (inside the caller's transaction)."""
    if not store.has_table(DAYS_TABLE) and days.width:
        store.create_table_like(DAYS_TABLE, days)
    if not store.has_table(CONTEXT_TABLE) and days.width:
        store.create_table_like(CONTEXT_TABLE, days.select(_CONTEXT_COLUMNS))
    if not store.has_table(MODELS_TABLE):
        store.execute(
            f"CREATE TABLE {MODELS_TABLE} (model_week DATE PRIMARY KEY, "
            "depends_until DATE NOT NULL, run_id VARCHAR NOT NULL, model BLOB NOT NULL)"
        )
    if changed_day is None:
        for table in (DAYS_TABLE, CONTEXT_TABLE, MODELS_TABLE):
            if store.has_table(table):
                store.execute(f"DELETE FROM {table}")
    else:
        for table in (DAYS_TABLE, CONTEXT_TABLE):
            store.execute(f"DELETE FROM {table} WHERE day >= ?", [changed_day])
        store.execute(f"DELETE FROM {MODELS_TABLE} WHERE depends_until > ?", [changed_day])
    kept_last = store.query(f"SELECT max(day) FROM {CONTEXT_TABLE}")[0][0]
    new_last = days.get_column("day").max() if days.height else None
    found: list[date] = [d for d in (kept_last, new_last) if isinstance(d, date)]
    if found:
        week = _monday(max(found))
        context_from = week - timedelta(days=CONTEXT_DAYS - 1)
        store.execute(f"DELETE FROM {DAYS_TABLE} WHERE day < ?", [week])
        store.execute(f"DELETE FROM {CONTEXT_TABLE} WHERE day < ?", [context_from])
        store.execute(
            f"DELETE FROM {MODELS_TABLE} WHERE model_week < ?", [week - timedelta(days=7)]
        )
        store.append(DAYS_TABLE, days.filter(pl.col("day") >= week))
        store.append(
            CONTEXT_TABLE,
            days.filter(pl.col("day") >= context_from).select(_CONTEXT_COLUMNS),
        )
        kept = {w for (w,) in store.query(f"SELECT model_week FROM {MODELS_TABLE}")}
        fresh = [
            m for w, m in models.items() if w not in kept and w >= week - timedelta(days=7)
        ]
        if fresh:
            store.append(MODELS_TABLE, _model_rows(fresh, run_id))
        store.execute(
            "INSERT OR REPLACE INTO posaudit_meta VALUES (?, ?)", [WEEK_KEY, week.isoformat()]
        )
    store.execute("INSERT OR REPLACE INTO posaudit_meta VALUES (?, ?)", [STATE_KEY, run_id])


def _model_rows(models: list[WeekModel], run_id: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model_week": [m.week for m in models],
            "depends_until": [m.depends_until for m in models],
            "run_id": run_id,
            "model": [m.to_bytes() for m in models],
        },
        schema={
            "model_week": pl.Date,
            "depends_until": pl.Date,
            "run_id": pl.String,
            "model": pl.Binary,
        },
    )


def forget_kept(store: Store) -> None:
    """Mark the kept rows and models as nobody's (inside the caller's transaction): a run
    that scored without keeping them (the Spark engine) leaves the next run to recompute."""
    store.execute("DELETE FROM posaudit_meta WHERE key = ?", [STATE_KEY])
