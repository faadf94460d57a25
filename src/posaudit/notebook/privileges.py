"""The privilege audit notebook's frames: who may do what, how rights changed, and the run's
findings of the ``privileges`` family (notebooks/10-operator-privileges.py)."""

from __future__ import annotations

from typing import Final

import altair as alt
import polars as pl

from posaudit.notebook import bounds
from posaudit.notebook.charts import _title
from posaudit.notebook.session import Audit

FAMILY: Final = "privileges"
RIGHTS: Final = ("can_sale", "can_refund", "can_transfer", "can_manage")


def rights_by_role(audit: Audit) -> pl.DataFrame:
    """Operators still active at the end of the data, by role: how many hold each right, and
    how many clerks hold both manage and refund."""
    operators = audit.table("operators").filter(pl.col("disabled_at").is_null())
    return (
        operators.group_by("role")
        .agg(
            pl.len().alias("operators"),
            *(pl.col(right).sum().alias(right.removeprefix("can_")) for right in RIGHTS),
            (pl.col("can_manage") & pl.col("can_refund")).sum().alias("manage_and_refund"),
        )
        .sort("role")
    )


def operator_event_days(audit: Audit) -> pl.DataFrame:
    """Operator events per day and kind inside the data window (additions, deletions, grants,
    revokes); empty when the store holds none."""
    start, end = audit.data_window
    events = audit.table("operator_events")
    if events.is_empty():
        return pl.DataFrame(schema={"day": pl.Date, "kind": pl.String, "events": pl.UInt32})
    return (
        events.filter(pl.col("ts").is_between(start, end))
        .group_by(pl.col("ts").dt.date().alias("day"), pl.col("kind").cast(pl.String))
        .agg(pl.len().alias("events"))
        .sort("day", "kind")
    )


def grants_in_window(audit: Audit) -> pl.DataFrame:
    """The rights granted and revoked inside the data window, with who made each change."""
    start, end = audit.data_window
    return (
        audit.table("operator_events")
        .filter(
            pl.col("ts").is_between(start, end)
            & pl.col("kind").cast(pl.String).is_in(["granted", "revoked"])
        )
        .select("ts", "operator_id", "kind", "permission", "actor", "actor_operator_id")
        .sort("ts")
    )


def privilege_findings(audit: Audit) -> pl.DataFrame:
    """The run's findings of the privilege family, most severe and strongest first."""
    return (
        audit.findings()
        .filter(pl.col("family") == FAMILY)
        .select("rule", "severity", "score", "entity_id", "window_start", "summary", "finding_id")
        .sort("rule", "score", descending=[False, True])
    )


def findings_by_rule(findings: pl.DataFrame) -> pl.DataFrame:
    return findings.group_by("rule").agg(pl.len().alias("findings")).sort("rule")


def operator_events_chart(days: pl.DataFrame) -> alt.Chart:
    """Operator events per day, stacked by kind; at most the last
    :data:`~posaudit.notebook.bounds.DAYS` days."""
    shown = bounds.latest(days, "day", limit=bounds.DAYS, unit="days")
    return (
        alt.Chart(shown.frame, title=_title("Operator events per day", shown.note))
        .mark_bar()
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("events:Q", title="events"),
            color=alt.Color("kind:N", legend=alt.Legend(title=None, orient="top")),
            tooltip=["day:T", "kind:N", "events:Q"],
        )
    )


def privilege_findings_chart(counts: pl.DataFrame) -> alt.Chart:
    """Findings of the privilege family, by rule."""
    return (
        alt.Chart(counts, title="Privilege findings by rule")
        .mark_bar()
        .encode(
            y=alt.Y("rule:N", title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("findings:Q", title="findings"),
            tooltip=["rule:N", "findings:Q"],
        )
    )
