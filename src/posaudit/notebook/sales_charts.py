"""The charts of 08-sales-patterns: a frame of :mod:`posaudit.notebook.sales` in, a chart out."""

from __future__ import annotations

import altair as alt
import polars as pl

from posaudit.notebook import bounds
from posaudit.notebook.charts import AnyChart, _title
from posaudit.notebook.style import WIDTH

FLAGGED_COLORS = alt.Scale(domain=[False, True], range=["#9aa5b1", "#c2410c"])


def void_delay_chart(delays: pl.DataFrame, *, late_void_minutes: int) -> AnyChart:
    """Voids by minutes after their sale; the rule's late line dashed; flagged ones coloured."""
    bars = (
        alt.Chart(delays)
        .mark_bar()
        .encode(
            x=alt.X("delay_minutes:Q", title="minutes from the sale to its void", bin=False),
            y=alt.Y("sum(voids):Q", title="voids", scale=alt.Scale(type="symlog")),
            color=alt.Color(
                "flagged:N", scale=FLAGGED_COLORS, legend=alt.Legend(title="named by a finding")
            ),
            tooltip=["delay_minutes:Q", "voids:Q", "flagged:N"],
        )
    )
    rule = (
        alt.Chart(pl.DataFrame({"late": [late_void_minutes]}))
        .mark_rule(strokeDash=[4, 4])
        .encode(x="late:Q")
    )
    return (bars + rule).properties(
        width=WIDTH - 120,
        height=180,
        title=_title(
            "How long after the sale a void comes",
            f"dashed: {late_void_minutes} minutes, after which a void is late",
        ),
    )


def declines_chart(declines: pl.DataFrame) -> AnyChart:
    """Terminal-hours by declined sales and distinct cards; flagged ones coloured. At most
    :data:`~posaudit.notebook.bounds.DECLINE_POINTS`, those with the most declines."""
    shown = bounds.top_and_sample(
        declines,
        by=["declines", "cards"],
        descending=[True, True],
        top=bounds.DECLINE_POINTS,
        noun="terminal-hours",
        ranked="with the most declines",
    )
    return (
        alt.Chart(shown.frame)
        .mark_circle(opacity=0.7)
        .encode(
            x=alt.X("declines:Q", title="declined sales in the hour"),
            y=alt.Y("cards:Q", title="distinct cards"),
            size=alt.Size("median_amount_fen:Q", title="median amount (fen)", legend=None),
            color=alt.Color(
                "flagged:N", scale=FLAGGED_COLORS, legend=alt.Legend(title="card testing")
            ),
            tooltip=["terminal_id:N", "hour:T", "declines:Q", "cards:Q", "median_amount_fen:Q"],
        )
        .properties(
            width=WIDTH - 120,
            height=200,
            title=_title("Declined sales per terminal-hour", shown.note),
        )
    )
