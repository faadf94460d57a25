"""What a change of the dimension tables since the last run leaves the next run to redo.

The dimension tables (merchants, terminals, operators) hold what each one is now; a day of
new data changes them too: an operator is hired, granted the refund right, or deleted. A run
keeps a copy of them as they were at its watermark (``kept_merchants``, ``kept_terminals``,
``kept_operators``), and the next run compares row by row:

- **a row added** that no event before the changed time names (a clerk hired today, a
  terminal installed today) changes nothing the earlier events decided;
- **an operator's rights or deletion changed**, each change recorded in ``operator_events``
  at or after the changed time and ending as the table now says: the rules read a right as
  of each event's time (a refund's right is the table's unless a later change of it says
  otherwise) and a deletion as of ``disabled_at``, so the change is new data at its time,
  which the run's look-backs cover like any other event;
- **anything else** (a row removed; a name, role, merchant, terminal or creation time
  changed; a right changed with no event saying when) may change what the rules decided
  about any earlier event, and the run is full.

The rules that judge the operators as they are now (the PIN rules' privileged operators,
managers who refund, operators never logged in) decide findings that run to the data's last
day, which every run re-decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

import polars as pl

from posaudit.run.kept import kept_table
from posaudit.store.catalogue import CATALOGUE, DIMENSION_TABLES, EVENT_TIME_COLUMNS

if TYPE_CHECKING:
    from posaudit.store import Store

DIMENSIONS_KEY: Final = "dimensions.state_run_id"  # the run whose copies the tables hold
# An operator's rights: the operators column and the permission its events grant or revoke.
RIGHTS: Final = {
    "can_query": "query",
    "can_sale": "sale",
    "can_refund": "refund",
    "can_transfer": "transfer",
    "can_manage": "manage",
}
DELETION: Final = "disabled_at"


@dataclass(frozen=True)
class DimensionChanges:
    """How the dimensions changed since the kept copies: ``full`` names what forces a full
    run (empty: nothing does); ``rows``: the rows added or changed, per table."""

    full: str
    rows: dict[str, int]

    @property
    def explained(self) -> bool:
        return not self.full


def dimensions_kept_by(store: Store, run_id: str | None) -> bool:
    """Whether the store keeps the dimensions as run ``run_id`` left them."""
    return (
        run_id is not None
        and store.meta().get(DIMENSIONS_KEY) == run_id
        and all(store.has_table(kept_table(t)) for t in DIMENSION_TABLES)
    )


def keep_dimensions(store: Store, run_id: str) -> None:
    """Keep a copy of the dimension tables as they are at the run's end (inside the caller's
    transaction); the next run compares with it."""
    for table in DIMENSION_TABLES:
        store.execute(f"CREATE OR REPLACE TABLE {kept_table(table)} AS SELECT * FROM {table}")
    store.set_meta(DIMENSIONS_KEY, run_id)


def _naming_events(store: Store, key: str) -> list[tuple[str, str]]:
    """The event tables with a column ``key``, with their time column."""
    return [
        (table, column)
        for table, column in EVENT_TIME_COLUMNS.items()
        if key in store.read(table, where="false").columns
    ]


def _named_before(
    store: Store, key: str, keys: list[str], before: datetime
) -> tuple[str, str] | None:
    """One of ``keys`` named by an event before ``before``, and the event's table (None:
    no such event)."""
    for table, column in _naming_events(store, key):
        hit = store.frame(
            f"SELECT {key} FROM {table} WHERE {column} < $before "
            f"AND {key} IN (SELECT unnest($keys)) LIMIT 1",
            {"before": before, "keys": keys},
        )
        if hit.height:
            return str(hit.item()), table
    return None


def _unexplained_operator_changes(
    store: Store, changed: pl.DataFrame, since: datetime
) -> str | None:
    """What in ``changed`` (operator_id, column, old, new: rows whose value differs) no
    operator event from ``since`` on explains; None when each change is explained."""
    other = changed.filter(~pl.col("column").is_in([*RIGHTS, DELETION]))
    if other.height:
        row = other.row(0, named=True)
        return f"operator {row['operator_id']}'s {row['column']} changed"
    rights = changed.filter(pl.col("column").is_in(list(RIGHTS)))
    if rights.height:
        last = store.frame(
            "SELECT operator_id, CAST(permission AS VARCHAR) AS permission, "
            "arg_max(CAST(kind AS VARCHAR), ts) AS kind FROM operator_events "
            "WHERE ts >= $since AND kind IN ('granted', 'revoked') "
            "AND operator_id IN (SELECT unnest($ids)) GROUP BY ALL",
            {"since": since, "ids": rights.get_column("operator_id").unique().to_list()},
        )
        checked = rights.with_columns(
            permission=pl.col("column").replace_strict(RIGHTS, return_dtype=pl.String)
        ).join(last, on=["operator_id", "permission"], how="left")
        wrong = checked.filter(
            pl.col("kind").is_null() | ((pl.col("kind") == "granted") != (pl.col("new") == "true"))
        )
        if wrong.height:
            row = wrong.row(0, named=True)
            return (
                f"operator {row['operator_id']}'s {row['column']} changed with no event saying when"
            )
    deleted = changed.filter(pl.col("column") == DELETION)
    if deleted.height:
        stamps = deleted.select(
            "operator_id",
            *(pl.col(c).str.to_datetime(strict=False).alias(c) for c in ("old", "new")),
        )
        early = stamps.filter(
            pl.col("new").is_null()
            | (pl.col("new") < since)
            | (pl.col("old").is_not_null() & (pl.col("old") < since))
        )
        if early.height:
            return f"operator {early.row(0, named=True)['operator_id']}'s {DELETION} changed"
    return None


def _rewritten_rights(store: Store, watermark: datetime) -> str | None:
    """A right whose first change after ``watermark`` does not change it: a grant of a right
    the kept table says the operator held, or a revoke of one it did not. A refund rule reads
    the right before a change from the change (a grant: not held before), so such an event
    rewrites what the earlier refunds were judged by. None when every first change flips the
    kept right."""
    first = store.frame(
        "SELECT operator_id, CAST(permission AS VARCHAR) AS permission, "
        "arg_min(CAST(kind AS VARCHAR), ts) AS kind, min(ts) AS ts FROM operator_events "
        "WHERE ts > $after AND kind IN ('granted', 'revoked') GROUP BY ALL",
        {"after": watermark},
    )
    if not first.height:
        return None
    kept = store.frame(f"SELECT * FROM {kept_table('operators')}").unpivot(
        on=list(RIGHTS), index="operator_id", variable_name="column", value_name="held"
    )
    checked = first.with_columns(
        column=pl.col("permission").replace_strict(
            {v: k for k, v in RIGHTS.items()}, return_dtype=pl.String
        )
    ).join(kept, on=["operator_id", "column"])
    same = checked.filter((pl.col("kind") == "granted") == pl.col("held"))
    if not same.height:
        return None
    row = same.sort("ts").row(0, named=True)
    held = "held" if row["held"] else "did not hold"
    return (
        f"operator {row['operator_id']} {row['kind']} {row['permission']} on "
        f"{row['ts']:%Y-%m-%d %H:%M}, which it {held} already"
    )


def dimension_changes(store: Store, since: datetime, watermark: datetime) -> DimensionChanges:
    """Compare the dimensions with the kept copies (see the module docstring); ``since``:
    the earliest time of the new or changed events; ``watermark``: the kept copies' time."""
    rows: dict[str, int] = {}
    for table in DIMENSION_TABLES:
        key = CATALOGUE[table].key
        now = store.frame(f"SELECT * FROM {table}")
        kept = store.frame(f"SELECT * FROM {kept_table(table)}")
        if now.columns != kept.columns:
            return DimensionChanges(f"the columns of {table} changed", rows)
        as_text = [pl.col(c).cast(pl.String) for c in now.columns]
        now, kept = now.select(as_text), kept.select(as_text)
        removed = kept.join(now, on=key, how="anti")
        if removed.height:
            return DimensionChanges(f"{table[:-1]} {removed.item(0, key)} removed", rows)
        added = now.join(kept, on=key, how="anti").get_column(key).to_list()
        if added:
            named = _named_before(store, key, added, since)
            if named is not None:
                what = f"{table[:-1]} {named[0]} added, named by earlier {named[1]}"
                return DimensionChanges(what, rows)
        old = kept.unpivot(index=key, variable_name="column", value_name="old")
        new = now.unpivot(index=key, variable_name="column", value_name="new")
        changed = old.join(new, on=[key, "column"]).filter(pl.col("old").ne_missing(pl.col("new")))
        if changed.height:
            if table != "operators":
                row = changed.row(0, named=True)
                return DimensionChanges(f"{table[:-1]} {row[key]}'s {row['column']} changed", rows)
            why = _unexplained_operator_changes(store, changed, since)
            if why is not None:
                return DimensionChanges(why, rows)
        rows[table] = len(added) + changed.get_column(key).n_unique()
    rewritten = _rewritten_rights(store, watermark)
    if rewritten is not None:
        return DimensionChanges(rewritten, rows)
    return DimensionChanges("", rows)
