"""What the anomaly score keeps in the store between runs, so a nightly run scores one day.

A day's operator-day rows depend only on events of that day and the 27 days before it, and a
week's model only on that week's rows (:mod:`posaudit.score.operators`). So a run keeps:

- ``score_operator_days``: every operator-day's row (:func:`operator_day_activity`), from
  which the next run takes the 28-day context of new days and the rows of a week to fit;
- ``score_models``: each week's model (:class:`~posaudit.score.models.WeekModel`), with the
  day from which a change of data would change it (``depends_until``).

An incremental run whose data changed from day ``C`` on recomputes the rows from ``C`` on out
of the events from ``C`` on (and the refunds to cards of the 27 days before), keeps
the models that depend on days before ``C`` only, fits the others, and re-decides the score's
findings from ``C`` on (from the week's Monday when the week got a new model). Both tables are
written in the run's own transaction; they belong to the run recorded in ``posaudit_meta``,
and a run that is not the last successful one's successor recomputes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from posaudit.score.models import WeekModel
from posaudit.score.operators import CONTEXT_DAYS, _monday, week_plan, weekly_scores

if TYPE_CHECKING:
    from posaudit.store import Store

DAYS_TABLE: Final = "score_operator_days"
MODELS_TABLE: Final = "score_models"
STATE_KEY: Final = "score.state_run_id"  # the run whose rows and models the tables hold
SCORE_RULE: Final = "operator_anomaly_scores"
_CONTEXT_COLUMNS: Final = ("operator_id", "day", "sale_count", "refund_count")


def _exists(store: Store, table: str) -> bool:
    rows = store.query(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
        [table],
    )
    return bool(rows[0][0])


def kept_by(store: Store) -> str | None:
    """The run whose operator-days and models the store keeps, if any."""
    if not (_exists(store, DAYS_TABLE) and _exists(store, MODELS_TABLE)):
        return None
    return store.meta().get(STATE_KEY)


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


def _days(store: Store, where: str, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    return store.frame(f"SELECT {selected} FROM {DAYS_TABLE} WHERE {where}")


def context_rows(store: Store, changed_day: date) -> pl.DataFrame:
    """The kept operator-days of the 27 days before ``changed_day``: the new days' context."""
    first = changed_day - timedelta(days=CONTEXT_DAYS - 1)
    return _days(
        store, f"day >= DATE '{first}' AND day < DATE '{changed_day}'", _CONTEXT_COLUMNS
    )


def kept_models(store: Store, changed_day: date) -> dict[date, WeekModel]:
    """The kept week models that no change from ``changed_day`` on can touch."""
    rows = store.query(
        f"SELECT model FROM {MODELS_TABLE} WHERE depends_until <= ?", [changed_day]
    )
    models = (WeekModel.from_bytes(bytes(blob)) for (blob,) in rows)  # type: ignore[arg-type]
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
    earlier = _days(
        store, f"day >= DATE '{monday - timedelta(days=7)}' AND day < DATE '{changed_day}'"
    )
    activity = pl.concat([earlier, new_days], how="vertical_relaxed") if earlier.height else new_days
    plan = week_plan(activity.get_column("day").unique().to_list())
    models = kept_models(store, changed_day)
    this_week = plan.filter(pl.col("week") == monday).get_column("model_week").to_list()
    score_from = changed_day if this_week and this_week[0] in models else monday
    forest = {k: thresholds[k] for k in ("seed", "n_estimators", "max_samples", "fit_rows")}
    scored, used = weekly_scores(activity, models=models, score_from=score_from, **forest)
    return scored, used, score_from


def write_kept(
    store: Store,
    run_id: str,
    days: pl.DataFrame,
    models: dict[date, WeekModel],
    *,
    changed_day: date | None,
) -> None:
    """Keep a run's operator-days (from ``changed_day`` on; all when None) and the models it
    fitted, dropping what they replace (inside the caller's transaction)."""
    if not _exists(store, DAYS_TABLE) and days.width:
        store.create_table_like(DAYS_TABLE, days)
    if not _exists(store, MODELS_TABLE):
        store.execute(
            f"CREATE TABLE {MODELS_TABLE} (model_week DATE PRIMARY KEY, "
            "depends_until DATE NOT NULL, run_id VARCHAR NOT NULL, model BLOB NOT NULL)"
        )
    if changed_day is None:
        if _exists(store, DAYS_TABLE):
            store.execute(f"DELETE FROM {DAYS_TABLE}")
        store.execute(f"DELETE FROM {MODELS_TABLE}")
    else:
        store.execute(f"DELETE FROM {DAYS_TABLE} WHERE day >= ?", [changed_day])
        store.execute(f"DELETE FROM {MODELS_TABLE} WHERE depends_until > ?", [changed_day])
    if days.height:
        store.append(DAYS_TABLE, days)
    kept = {w for (w,) in store.query(f"SELECT model_week FROM {MODELS_TABLE}")}
    fresh = [m for w, m in models.items() if w not in kept]
    if fresh:
        store.append(
            MODELS_TABLE,
            pl.DataFrame(
                {
                    "model_week": [m.week for m in fresh],
                    "depends_until": [m.depends_until for m in fresh],
                    "run_id": run_id,
                    "model": [m.to_bytes() for m in fresh],
                },
                schema={
                    "model_week": pl.Date,
                    "depends_until": pl.Date,
                    "run_id": pl.String,
                    "model": pl.Binary,
                },
            ),
        )
    store.execute("INSERT OR REPLACE INTO posaudit_meta VALUES (?, ?)", [STATE_KEY, run_id])


def forget_kept(store: Store) -> None:
    """Mark the kept rows and models as nobody's (inside the caller's transaction): a run
    that scored without keeping them (the Spark engine) leaves the next run to recompute."""
    store.execute("DELETE FROM posaudit_meta WHERE key = ?", [STATE_KEY])
