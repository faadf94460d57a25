"""What a run keeps in the store for the next one, so that a nightly run does the new day's work.

Everything here is written in the run's own transaction: a killed run leaves the store as it
was, and a run that could not keep something current marks it as nobody's, so that the next
run computes it again. It keeps:

- the anomaly score's operator-days, 28-day sums and week models (below);
- the refunds frame, the approved refunds with their original sales (see "the refunds with
  their sales");
- the columns each rule reads, and the PIN exclusion list, which the code computes the same
  way whatever the new data (see "what this code computed once for the store").

The score. A day's operator-day row depends only on events of that day and the 27 days
before it, and a week's model only on that week's rows (:mod:`posaudit.score.operators`). A
run keeps what the next nightly run needs, for the data's last two weeks (the week of its
last day and the one before, since the next night's first events may come before the
midnight that the last run's data passed):

- ``score_operator_days``: those weeks' operator-day rows (:func:`operator_day_activity`):
  the next run fits a week's model on them once the week is complete, and re-scores them;
- ``score_context``: each operator-day's sales and refunds from 27 days before the first
  kept week's Monday on, from which the next run takes the 28-day sums of new days (and
  which days the week before had data on);
- ``score_models``: the models of those weeks and the week before (a week is scored by the
  week before's model until it is complete), with the day from which a change of data would
  change each (``depends_until``).

An incremental run whose data changed from day ``C`` on (in the kept weeks or later)
recomputes the rows from ``C`` on out of the events from ``C`` on (and the refunds to cards
of the 27 days before), keeps the models that depend on days before ``C`` only, fits the
others, and re-decides the score's findings from ``C`` on (from the week's Monday when the
week got a new model). A change before the kept weeks, or state kept by another run than the
last successful one, makes the score read all the data again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from posaudit import code_digest
from posaudit.pins import WEAKNESS_CLASSES, PinDigester
from posaudit.score.models import WeekModel
from posaudit.score.operators import CONTEXT_DAYS, monday_of, week_plan, weekly_scores
from posaudit.store.catalogue import EVENT_TIME_COLUMNS

if TYPE_CHECKING:
    from posaudit.detect.registry import DerivedTable
    from posaudit.store import Store

DAYS_TABLE: Final = "score_operator_days"
CONTEXT_TABLE: Final = "score_context"
MODELS_TABLE: Final = "score_models"
# The weeks of operator-days kept: the last day's week and the one before.
KEPT_WEEKS: Final = 2
STATE_KEY: Final = "score.state_run_id"  # the run whose rows and models the tables hold
WEEK_KEY: Final = "score.kept_week"  # the Monday of the week whose rows are kept
_CONTEXT_COLUMNS: Final = ("operator_id", "day", "sale_count", "refund_count")


def kept_table(name: str) -> str:
    """The store table in which a run keeps its copy of ``name`` (a table or a frame)."""
    return "kept_" + name


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
    rows = store.query(f"SELECT model FROM {MODELS_TABLE} WHERE depends_until <= ?", [changed_day])
    models = (WeekModel.from_bytes(bytes(blob)) for (blob,) in rows)  # type: ignore[call-overload]
    return {m.week: m for m in models if m is not None}


@dataclass(frozen=True)
class KeptForScore:
    """What the score reads of the kept state in an incremental run: the kept operator-days
    of the changed day's week before it (``earlier``), the days of the week before with
    operator-days (``days_before``) and the kept week models."""

    earlier: pl.DataFrame
    days_before: list[date]
    models: dict[date, WeekModel]


def kept_for_score(store: Store, changed_day: date) -> KeptForScore:
    """The kept state the score needs to score the operator-days from ``changed_day`` on."""
    monday = monday_of(changed_day)
    earlier = _rows(store, DAYS_TABLE, monday, changed_day)
    # which days of the week before had operator-days (it may be this week's reference)
    before = _rows(store, CONTEXT_TABLE, monday - timedelta(days=7), monday, "DISTINCT day")
    days_before = before.get_column("day").to_list()
    return KeptForScore(earlier, days_before, kept_models(store, changed_day))


def incremental_scores(
    kept: KeptForScore,
    new_days: pl.DataFrame,
    changed_day: date,
    thresholds: dict[str, Any],
) -> tuple[pl.DataFrame, dict[date, WeekModel], date]:
    """Score the operator-days from ``changed_day`` on, with the kept rows and models.

    ``new_days``: the operator-days from ``changed_day`` on, computed from the events with
    the kept context (:func:`context_rows`); ``kept``: :func:`kept_for_score`, read before
    (the store is not read here). Returns the scored rows, the models they were scored with
    and the first day re-decided: ``changed_day``, or the Monday of its week when that week's
    days are now scored by another model than the kept one.
    """
    monday = monday_of(changed_day)
    earlier = kept.earlier
    activity = (
        pl.concat([earlier, new_days], how="vertical_relaxed") if earlier.height else new_days
    )
    days = {*activity.get_column("day").unique().to_list(), *kept.days_before}
    plan = week_plan(days)
    models = kept.models
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
        # the week before the last day's too: a night's first events may come before
        # midnight of the Sunday that the last run's data passed (a day's shifts start then)
        week = monday_of(max(found)) - timedelta(days=7 * (KEPT_WEEKS - 1))
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
        fresh = [m for w, m in models.items() if w not in kept and w >= week - timedelta(days=7)]
        if fresh:
            store.append(MODELS_TABLE, _model_rows(fresh, run_id))
        store.set_meta(WEEK_KEY, week.isoformat())
    store.set_meta(STATE_KEY, run_id)


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
    that scored without keeping them leaves the next run to recompute."""
    store.forget_meta(STATE_KEY)


def forget_all_kept(store: Store) -> None:
    """Mark everything kept as nobody's: after a run that keeps nothing (the Spark engine)."""
    forget_kept(store)
    forget_kept_refunds(store)
    forget_kept_days(store)


# -- the refunds with their sales ----------------------------------------------------------
#
# Every refund rule starts from the approved refunds with their original sale
# (:func:`posaudit.detect.refunds.approved_refunds`). A sale may be of any age, so finding the
# sales of a run's refunds scans every transaction id, and finding the earlier refunds of
# the same sales scans every refund again. A run keeps the frame it computed, for all the
# data: the next incremental run computes only the refunds from its changed time on, with
# their sales, and takes the earlier ones, and the earlier refunds of the same sales, from
# what was kept. A kept row never changes: an event loaded late moves the changed time to
# its day, and every refund whose sale it may be comes after it.

REFUNDS_FRAME: Final = "approved_refunds"
REFUNDS_TABLE: Final = "kept_refunds"
REFUNDS_KEY: Final = "refunds.state_run_id"  # the run whose frame the table holds


def refunds_kept_by(store: Store, run_id: str | None) -> bool:
    """Whether the store keeps the refunds frame as run ``run_id`` left it."""
    return (
        run_id is not None
        and store.has_table(REFUNDS_TABLE)
        and store.meta().get(REFUNDS_KEY) == run_id
    )


def kept_refunds(
    store: Store, *, since: datetime, before: datetime, names: pl.Series
) -> pl.DataFrame:
    """The kept refunds before ``before``: those from ``since`` on, and the earlier ones of
    a sale named by one of them or in ``names`` (the sales of the refunds after them)."""
    recent = store.frame(
        f"SELECT * FROM {REFUNDS_TABLE} WHERE ts >= $since AND ts < $before",
        {"since": since, "before": before},
    )
    # the sales named, as a list: a sub-query naming them makes DuckDB read the kept table
    # several times slower (measured)
    named = pl.concat([recent.get_column("original_txn_id"), names]).drop_nulls().unique()
    earlier = store.frame(
        f"SELECT * FROM {REFUNDS_TABLE} WHERE ts < $since "
        "AND original_txn_id IN (SELECT unnest($names))",
        {"since": since, "names": named.to_list()},
    )
    return pl.concat([recent, earlier])


def kept_refund_cards(store: Store, *, since: datetime, before: datetime) -> pl.DataFrame:
    """The kept refunds to a card by an operator, from ``since`` to ``before``, as the score
    reads them (:data:`posaudit.score.operators.APPROVED_REFUND_CARDS_SQL`)."""
    return store.frame(
        f"SELECT txn_id, ts, operator_id, card_token FROM {REFUNDS_TABLE} "
        "WHERE ts >= $since AND ts < $before "
        "AND operator_id IS NOT NULL AND card_token IS NOT NULL",
        {"since": since, "before": before},
    )


def write_kept_refunds(
    store: Store, run_id: str, frame: pl.DataFrame, *, changed_from: datetime | None
) -> None:
    """Keep the refunds frame after a run that computed ``frame``: every refund when
    ``changed_from`` is None, else those from ``changed_from`` on (with the earlier ones it
    took from the kept table). Inside the caller's transaction."""
    if not store.has_table(REFUNDS_TABLE):
        store.create_table_like(REFUNDS_TABLE, frame)
    if changed_from is None:
        store.execute(f"DELETE FROM {REFUNDS_TABLE}")
        store.append(REFUNDS_TABLE, frame)
    else:
        store.execute(f"DELETE FROM {REFUNDS_TABLE} WHERE ts >= ?", [changed_from])
        store.append(REFUNDS_TABLE, frame.filter(pl.col("ts") >= changed_from))
    store.set_meta(REFUNDS_KEY, run_id)


def forget_kept_refunds(store: Store) -> None:
    """Mark the kept refunds as nobody's (inside the caller's transaction)."""
    store.forget_meta(REFUNDS_KEY)


# -- what this code computed once for the store --------------------------------------------
#
# Two things a run needs cost the same whatever the new data: the columns each rule reads
# (found by planning every rule) and the PIN exclusion list (the keyed digest of every weak
# candidate PIN). Both depend only on the code, the policy, the PIN key and the operators'
# numbers; a run keeps them under a digest of those, and the next run reuses them while the
# digest is the same.
#
# The exclusion list is kept sealed under the PIN key: each weak digest d is stored as a tag,
# the first half of HMAC(key, "exclusion:" + d), and its class and operator number as codes
# masked by bytes of the second half. Whoever holds the store without the key learns nothing
# from it, not even which digests are weak: a class can narrow a PIN to a handful of values
# (an operator-number PIN has ten), and the store keeps the digests of PINs no longer held,
# about which the findings say nothing. A run, which has the key, computes the tags of the
# digests in pin_events and unseals the rows they meet.

EXCLUSION_TABLE: Final = "kept_pin_exclusion"
EXCLUSION_KEY: Final = "pins.exclusion_for"
COLUMNS_KEY: Final = "plan.columns_used"


def built_for(*parts: str) -> str:
    """The digest under which something computed from ``parts`` (and this code) is kept."""
    return hashlib.sha256("\x1f".join((code_digest(), *parts)).encode()).hexdigest()


def kept_value(store: Store, key: str, digest: str) -> Any:
    """The JSON value kept under ``key`` for ``digest``; None when another one is kept."""
    stored = store.meta().get(key)
    if stored is None:
        return None
    kept = json.loads(stored)
    return kept["value"] if kept.get("for") == digest else None


def keep_value(store: Store, key: str, digest: str, value: Any) -> None:
    """Keep a JSON value under ``key`` for ``digest`` (inside the caller's transaction)."""
    store.set_meta(key, json.dumps({"for": digest, "value": value}))


def _seals(digests: pl.Series, digester: PinDigester) -> pl.DataFrame:
    """Per digest: its tag in the kept list and the two mask bytes of its codes."""
    sealed = digester.digests("exclusion:" + digests)
    return pl.DataFrame({"pin_digest": digests}).with_columns(
        tag=sealed.str.slice(0, 32),
        class_mask=sealed.str.slice(32, 2).str.to_integer(base=16).cast(pl.UInt8),
        number_mask=sealed.str.slice(34, 2).str.to_integer(base=16).cast(pl.UInt8),
    )


def kept_exclusion_list(
    store: Store, digest: str, *, digester: PinDigester, digests: pl.Series
) -> pl.DataFrame | None:
    """The kept PIN exclusion list when it was built for ``digest``, else None: the rows of
    ``digests`` (those the store's PIN events hold), unsealed through ``digester``."""
    if store.meta().get(EXCLUSION_KEY) != digest or not store.has_table(EXCLUSION_TABLE):
        return None
    sealed = store.frame(f"SELECT * FROM {EXCLUSION_TABLE}")
    classes = pl.Series(WEAKNESS_CLASSES, dtype=pl.String)
    number = (pl.col("number_code") ^ pl.col("number_mask")).cast(pl.Int16) - 1
    found = _seals(digests.unique().sort(), digester).join(sealed, on="tag")
    return found.select(
        "pin_digest",
        weakness_class=pl.lit(classes).gather(pl.col("class_code") ^ pl.col("class_mask")),
        operator_no=pl.when(number >= 0).then(number.cast(pl.String).str.zfill(2)),
    )


def keep_exclusion_list(
    store: Store, digest: str, exclusion: pl.DataFrame, *, digester: PinDigester
) -> None:
    """Keep the PIN exclusion list built for ``digest`` sealed under ``digester``'s key
    (inside the caller's transaction)."""
    codes = {name: code for code, name in enumerate(WEAKNESS_CLASSES)}
    rows = (
        _seals(exclusion.get_column("pin_digest").unique(), digester)
        .join(exclusion, on="pin_digest")
        .select(
            "tag",
            class_code=pl.col("weakness_class").replace_strict(codes, return_dtype=pl.UInt8)
            ^ pl.col("class_mask"),
            number_code=(pl.col("operator_no").cast(pl.Int16).fill_null(-1) + 1).cast(pl.UInt8)
            ^ pl.col("number_mask"),
        )
        .sort("tag")
    )
    if store.has_table(EXCLUSION_TABLE):
        # a run's own table, unknown to Store.schema; an earlier code kept it in the clear
        kept_columns = store.frame(f"SELECT * FROM {EXCLUSION_TABLE} LIMIT 0").columns
        if kept_columns != rows.columns:
            store.execute(f"DROP TABLE {EXCLUSION_TABLE}")
    if not store.has_table(EXCLUSION_TABLE):
        store.create_table_like(EXCLUSION_TABLE, rows)
    store.execute(f"DELETE FROM {EXCLUSION_TABLE}")
    store.append(EXCLUSION_TABLE, rows)
    store.set_meta(EXCLUSION_KEY, digest)


# -- frames of days ------------------------------------------------------------------------
#
# A frame of days (``DerivedTable.per_day``: the merchants' terminal-days and digit-days) has
# a row per day computed from that day's transactions, and the population rules read it over
# all the data: computing it is a pass over every transaction. A run keeps each such frame it
# read whole (``kept_<frame>``); the next incremental run computes only the days from the
# changed day on, and takes the other days from the kept table.
#
# A day of a frame that reaches other days (a cash-like sale's day reads the refunds and voids
# to its card at the merchant, whatever their day) is computed again when new rows reach it:
# the run keeps the keys of the rows that reach (``kept_<frame>_reaching``: each card refunded
# or voided at a merchant) and of those reached, with their day (``kept_<frame>_reached``: the
# cards of cash-like sales), so that finding those days costs what the new day costs. A run
# with events removed (a day's count fell below what the previous run saw: the removed row
# may have reached a day) computes the frames whole.

DAYS_KEY_PREFIX: Final = "days.state_run_id."  # + the frame: the run whose rows the table holds


def kept_reach_tables(name: str) -> tuple[str, str]:
    """The kept keys of the rows that reach other days, and of those they reach (with day)."""
    return f"{kept_table(name)}_reaching", f"{kept_table(name)}_reached"


def days_kept_by(store: Store, table: DerivedTable, run_id: str | None) -> bool:
    """Whether the store keeps the frame of days ``table`` as run ``run_id`` left it."""
    tables = [kept_table(table.name)]
    if table.reaches is not None:
        tables.extend(kept_reach_tables(table.name))
    return (
        run_id is not None
        and store.meta().get(DAYS_KEY_PREFIX + table.name) == run_id
        and all(store.has_table(t) for t in tables)
    )


def kept_day_rows(
    store: Store, table: DerivedTable, *, before: date, besides: list[date]
) -> pl.DataFrame:
    """The kept rows of the frame of days ``table`` before ``before``, but those of
    ``besides``; rolled up when the frame says how (``DerivedTable.rolled_up``)."""
    rows = f"SELECT * FROM {kept_table(table.name)} WHERE day < $before{_besides(besides)}"
    if table.rolled_up is not None:
        rows = f"WITH kept AS ({rows}) " + table.rolled_up.format(kept="kept")
    return store.frame(rows, {"before": before})


def _besides(days: list[date]) -> str:
    """A SQL condition leaving out ``days`` (after an AND), empty when there are none."""
    return f" AND NOT {_among(days)}" if days else ""


def _among(days: list[date]) -> str:
    """The SQL condition that ``day`` is one of ``days``."""
    return "day IN (" + ", ".join(f"DATE '{d}'" for d in days) + ")" if days else "false"


@dataclass(frozen=True)
class Reach:
    """The keys of a frame's rows that reach other days (``reaching``) and of those reached,
    with their day (``reached``), of the source's rows from a time on (or all of them)."""

    reaching: pl.DataFrame
    reached: pl.DataFrame


def reach_rows(store: Store, table: DerivedTable, since: datetime | None) -> Reach:
    """The keys of ``table``'s source rows that reach other days and that are reached, from
    ``since`` on (all of them when None)."""
    assert table.reaches is not None and table.reached_by is not None
    column = EVENT_TIME_COLUMNS[table.source]
    cut = f"{column} >= TIMESTAMP '{since.isoformat(sep=' ')}'" if since is not None else None
    keys = ", ".join(f"CAST({k} AS VARCHAR) AS {k}" for k in table.reach_key)
    reaching = store.read_query(
        f"SELECT DISTINCT {keys} FROM {table.source} WHERE {table.reaches}",
        over={table.source: cut},
    )
    reached = store.read_query(
        f"SELECT DISTINCT * FROM ({table.reached_by})", over={table.source: cut}
    )
    return Reach(reaching, reached)


def days_reached(store: Store, table: DerivedTable, new: Reach, changed: date) -> list[date]:
    """The days whose rows the new rows reach: earlier reached days whose keys the new rows
    that reach share, and new reached days whose keys earlier rows that reach share."""
    reaching, reached = kept_reach_tables(table.name)
    using = ", ".join(table.reach_key)
    earlier = store.frame_with(
        f"SELECT DISTINCT k.day FROM {reached} AS k SEMI JOIN fresh USING ({using}) "
        f"WHERE k.day < DATE '{changed}'",
        fresh=new.reaching,
    )
    later = store.frame_with(
        f"SELECT DISTINCT n.day FROM fresh AS n SEMI JOIN {reaching} USING ({using})",
        fresh=new.reached,
    )
    days = {*earlier.get_column("day").to_list(), *later.get_column("day").to_list()}
    return sorted(days)


def write_kept_days(
    store: Store,
    run_id: str,
    name: str,
    rows: pl.DataFrame,
    *,
    redone: tuple[date, list[date]] | None,
    reach: Reach | None = None,
) -> None:
    """Keep the frame of days ``name`` (inside the caller's transaction): ``rows`` is the whole
    frame when ``redone`` is None, else the rows of the days from ``redone[0]`` on and of the
    days ``redone[1]``, which replace the kept ones. ``reach``: the keys of the rows that
    reach and are reached, all of them or (with ``redone``) those from its first day on."""
    table = kept_table(name)
    _replace_or_create(store, table, rows, whole=redone is None)
    if redone is not None:
        since, days = redone
        store.execute(f"DELETE FROM {table} WHERE day >= ? OR {_among(days)}", [since])
    store.append(table, rows)
    if reach is not None:
        reaching, reached = kept_reach_tables(name)
        _replace_or_create(store, reaching, reach.reaching, whole=redone is None)
        _replace_or_create(store, reached, reach.reached, whole=redone is None)
        if redone is None:
            store.append(reaching, reach.reaching)
        else:
            using = ", ".join(reach.reaching.columns)
            store.frame_with(
                f"INSERT INTO {reaching} SELECT * FROM fresh ANTI JOIN {reaching} USING ({using})",
                fresh=reach.reaching,
            )
            store.execute(f"DELETE FROM {reached} WHERE day >= ?", [redone[0]])
        store.append(reached, reach.reached)
    store.set_meta(DAYS_KEY_PREFIX + name, run_id)


def _replace_or_create(store: Store, table: str, rows: pl.DataFrame, *, whole: bool) -> None:
    """An empty ``table`` shaped as ``rows`` when ``whole`` or when there is none; else the
    table as it is."""
    if whole and store.has_table(table):
        store.execute(f"DROP TABLE {table}")
    if not store.has_table(table):
        store.create_table_like(table, rows)


def forget_kept_days(store: Store) -> None:
    """Mark every kept frame of days as nobody's (inside the caller's transaction)."""
    for key in store.meta():
        if key.startswith(DAYS_KEY_PREFIX):
            store.forget_meta(key)
