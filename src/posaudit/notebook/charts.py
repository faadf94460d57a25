"""The notebooks' charts: one function per chart, a prepared frame in, an Altair chart out.

Every chart function cuts the frame it is given to a bound of :mod:`posaudit.notebook.bounds`
(Altair embeds the rows it draws and refuses more than 5,000) and says in its subtitle what it
left out, so a chart draws the same whatever the store's size. Every chart names its subject
in its title so a notebook (and its tests) can tell them apart. Where a chart has a "linked
table", clicking or brushing the chart filters the table next to it; clicking empty space
clears the filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import altair as alt
import polars as pl

from posaudit.detect.findings import SEVERITIES, SEVERITY_RANK
from posaudit.notebook import bounds
from posaudit.notebook.session import first_per
from posaudit.notebook.style import (
    FAMILY_COLORS,
    GRID,
    HIGHLIGHT,
    INK,
    LANES,
    MUTED,
    WIDTH,
)
from posaudit.palette import SEVERITY_COLORS

# What a chart function returns: a single view, a layer, a facet or a concatenation.
AnyChart = alt.Chart | alt.LayerChart | alt.FacetChart | alt.VConcatChart | alt.HConcatChart

# Colours of the outcomes of failed logins: credentials in warm tones, the network in grey.
OUTCOME_COLORS: Final[dict[str, str]] = {
    "wrong PIN": "#d6604d",
    "unknown operator number": "#8c510a",
    "attempt while locked": "#b2182b",
    "network error": "#bababa",
}
UNLOCK_COLORS: Final[dict[str, str]] = {
    "timeout": "#9ecae1",
    "admin": "#4292c6",
    "service_desk": "#08519c",
    "still locked": "#d62728",
}
ROLE_COLORS: Final[dict[str, str]] = {"admin": "#6a51a3", "clerk": "#bcbddc"}
# Events on a drill-down timeline: logins by outcome, lockouts, PIN events, transactions by status.
EVENT_COLORS: Final[dict[str, str]] = {
    "success": "#54a24b",
    "wrong PIN": "#e45756",
    "unknown operator": "#8c510a",
    "attempt while locked": "#a50f15",
    "network error": "#bababa",
    "lockout": "#4c78a8",
    "PIN initial": "#c5b0d5",
    "PIN change": "#9467bd",
    "PIN reset": "#5b3a8c",
    "approved": "#72b7b2",
    "approved (counted per hour)": "#b7dcd9",
    "declined": "#f58518",
    "failed": "#9d755d",
}
NO_FINDING: Final = "no finding"


def _title(text: str, subtitle: str | Sequence[str | None] | None = None) -> alt.TitleParams:
    """A title; ``subtitle`` lines that are None (a bound that cut nothing) are left out."""
    lines = [subtitle] if isinstance(subtitle, str) else [s for s in subtitle or () if s]
    return alt.TitleParams(text, subtitle=lines or alt.Undefined)


def side_legend(title: str | None, *, x: float) -> alt.Legend:
    """A legend placed at ``x`` pixels right of the plot's left edge, level with its top.

    In a chart with a linked table below, a legend at the usual right-hand place would sit
    right of the (wider) table; placed by hand it sits beside its own plot.
    """
    return alt.Legend(title=title, orient="none", legendX=x, legendY=0, direction="vertical")


def severity_scale() -> alt.Scale:
    return alt.Scale(domain=list(SEVERITIES), range=[SEVERITY_COLORS[s] for s in SEVERITIES])


def _scale(colors: dict[str, str]) -> alt.Scale:
    return alt.Scale(domain=list(colors), range=list(colors.values()))


@dataclass(frozen=True)
class Column:
    """One column of a linked table: the field, its heading, its width in pixels, its format."""

    field: str
    heading: str
    width: int
    kind: str = "N"  # Vega-Lite type: N text, Q number, T time
    format: str | None = None


def linked_table(
    data: pl.DataFrame,
    selection: alt.Parameter | None,
    columns: Sequence[Column],
    *,
    title: str,
    rows: int = 12,
    severity: bool = True,
    pick_field: str | None = None,
) -> alt.HConcatChart:
    """A table of text marks showing the first ``rows`` rows of ``data`` that pass ``selection``.

    The data keeps its order (sort it most important first). With ``severity`` and a
    ``severity`` field, each row starts with a coloured square. With ``pick_field`` (the field
    the selection picks), the table carries only the first ``rows`` rows of each of its values:
    all it can ever show.
    """
    if pick_field is not None:
        data = first_per(data, pick_field, rows)
    base = alt.Chart(data)
    if selection is not None:
        base = base.transform_filter(selection)
    base = base.transform_window(row="row_number()").transform_filter(alt.datum.row <= rows)
    row = alt.Y("row:O", axis=None)
    height = max(rows, 1) * 17
    parts: list[alt.Chart] = []
    if severity and "severity" in data.columns:
        parts.append(
            base.mark_square(size=90, opacity=1)
            .encode(
                x=alt.value(7),
                y=row,
                color=alt.Color("severity:N", scale=severity_scale(), legend=None),
                tooltip=[alt.Tooltip("severity:N")],
            )
            .properties(width=14, height=height, title=alt.TitleParams(" ", fontSize=11))
        )
    for column in columns:
        fmt = column.format or ("%Y-%m-%d %H:%M" if column.kind == "T" else None)
        text = alt.Text(f"{column.field}:{column.kind}", format=fmt or alt.Undefined)
        parts.append(
            base.mark_text(align="left", baseline="middle", limit=column.width - 6, fontSize=11)
            .encode(
                x=alt.value(0),
                y=row,
                text=text,
                tooltip=[alt.Tooltip(f"{column.field}:{column.kind}", title=column.heading)],
            )
            .properties(
                width=column.width,
                height=height,
                title=alt.TitleParams(
                    column.heading, fontSize=11, fontWeight=600, anchor="start", color=MUTED
                ),
            )
        )
    return alt.hconcat(*parts, spacing=6).properties(
        title=_title(title, "click the chart above to filter; click empty space to clear")
    )


# --- 00 start here ----------------------------------------------------------------------------


def daily_volume_chart(volumes: pl.DataFrame) -> AnyChart:
    """Events per day, one small chart per table, low days (possible missing data) in red.

    At most the last :data:`~posaudit.notebook.bounds.DAYS` days.
    """
    shown = bounds.latest(volumes, "day", limit=bounds.DAYS, unit="full days")
    base = alt.Chart(shown.frame).encode(
        x=alt.X("day:T", title=None, axis=alt.Axis(format="%m-%d", labelAngle=0)),
        y=alt.Y("events:Q", title=None, axis=alt.Axis(tickCount=3)),
        tooltip=[
            alt.Tooltip("day:T", format="%Y-%m-%d"),
            "label:N",
            alt.Tooltip("events:Q", format=","),
            alt.Tooltip("median_events:Q", title="median day", format=",.0f"),
            alt.Tooltip("is_low:N", title="low day"),
        ],
    )
    line = base.mark_area(line={"color": "#4c78a8", "strokeWidth": 1.5}, color="#dbe6f1")
    dots = base.mark_point(filled=True, size=22, color="#4c78a8")
    low = base.mark_point(filled=True, size=80, color=HIGHLIGHT).transform_filter(alt.datum.is_low)
    return (
        alt.layer(line, dots, low)
        .properties(width=WIDTH, height=62)
        .facet(
            row=alt.Row(
                "label:N",
                title=None,
                header=alt.Header(
                    labelAngle=0,
                    labelAlign="left",
                    labelAnchor="start",
                    labelOrient="top",
                    labelFontWeight=600,
                ),
            )
        )
        .resolve_scale(y="independent")
        .properties(
            title=_title(
                "Events per day",
                [
                    "full days of the data, one panel per table; red: under half the usual volume",
                    shown.note,
                ],
            )
        )
    )


def findings_by_family_chart(counts: pl.DataFrame) -> AnyChart:
    """The run's findings per family, stacked by severity."""
    return (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            y=alt.Y("family:N", title=None, sort=list(FAMILY_COLORS)),
            x=alt.X("sum(findings):Q", title="findings"),
            color=alt.Color(
                "severity:N",
                scale=severity_scale(),
                legend=alt.Legend(title="severity", orient="right"),
            ),
            order=alt.Order("severity_rank:Q", sort="descending"),
            tooltip=[
                "family:N",
                "severity:N",
                alt.Tooltip("findings:Q", format=","),
                alt.Tooltip("new:Q", format=","),
            ],
        )
        .properties(
            width=WIDTH - 90, height=120, title=_title("Findings of the run by family and severity")
        )
    )


def run_changes_chart(
    by_rule: pl.DataFrame, changes: pl.DataFrame, *, previous: str | None
) -> alt.VConcatChart:
    """New (right) and resolved (left) findings per rule; click a rule to list them below."""
    pick = alt.selection_point(name="rule_pick", fields=["rule"])
    since = f"since {previous}" if previous else "in the store's first run (everything is new)"
    bars = (
        alt.Chart(by_rule)
        .mark_bar()
        .encode(
            y=alt.Y("rule:N", title=None, sort="-x"),
            x=alt.X("signed:Q", title="findings (resolved to the left, new to the right)"),
            color=alt.Color(
                "change:N",
                scale=alt.Scale(domain=["new", "resolved"], range=["#e8601c", "#54a24b"]),
                legend=side_legend(None, x=WIDTH - 140),
            ),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
            tooltip=["rule:N", "family:N", "change:N", alt.Tooltip("findings:Q", format=",")],
        )
        .add_params(pick)
        .properties(width=WIDTH - 160, height=alt.Step(16), title=_title("What changed", since))
    )
    table = linked_table(
        changes,
        pick,
        [
            Column("change", "change", 56),
            Column("rule", "rule", 150),
            Column("window_start", "from", 112, "T"),
            Column("summary", "summary", 400),
        ],
        title="New and resolved findings",
        pick_field="rule",
    )
    return alt.vconcat(bars, table).resolve_scale(color="independent")


# --- 01 logins and lockouts -------------------------------------------------------------------


def failures_chart(
    over_time: pl.DataFrame, by_terminal: pl.DataFrame, *, every: str
) -> alt.VConcatChart:
    """Failed logins over time by outcome; brush a period to see which terminals they hit.

    At most the last :data:`~posaudit.notebook.bounds.TIME_BUCKETS` buckets, and the
    terminals with the most credential failures in them within
    :data:`~posaudit.notebook.bounds.FAILURE_TERMINALS` and
    :data:`~posaudit.notebook.bounds.FAILURE_TERMINAL_ROWS`.
    """
    brush = alt.selection_interval(name="period", encodings=["x"])
    times = bounds.latest(over_time, "time", limit=bounds.TIME_BUCKETS, unit=f"buckets of {every}")
    if times.note is not None:
        by_terminal = by_terminal.filter(pl.col("time") >= times.frame.get_column("time").min())
    worst = bounds.whole_groups(
        by_terminal,
        "terminal_id",
        rank=pl.col("attempts").filter(pl.col("cause") == "credentials").sum(),
        max_groups=bounds.FAILURE_TERMINALS,
        max_rows=bounds.FAILURE_TERMINAL_ROWS,
        noun="terminals",
        ranked="with the most credential failures",
    )
    timeline = (
        alt.Chart(times.frame)
        .mark_bar()
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y("sum(attempts):Q", title=f"failed logins per {every}"),
            color=alt.Color(
                "outcome_label:N",
                scale=_scale(OUTCOME_COLORS),
                legend=side_legend("outcome", x=WIDTH + 16),
            ),
            tooltip=[
                alt.Tooltip("time:T", format="%Y-%m-%d %H:%M"),
                "outcome_label:N",
                "cause:N",
                "attempts:Q",
            ],
        )
        .add_params(brush)
        .properties(
            width=WIDTH,
            height=170,
            title=_title(
                "Failed logins over time", ["drag across the chart to pick a period", times.note]
            ),
        )
    )
    terminals = (
        alt.Chart(worst.frame)
        .transform_filter(brush)
        .mark_bar()
        .encode(
            y=alt.Y("terminal_id:N", title=None, sort="-x"),
            x=alt.X("sum(attempts):Q", title="failed logins in the period"),
            color=alt.Color(
                "cause:N",
                scale=alt.Scale(domain=["credentials", "network"], range=["#d6604d", "#bababa"]),
                legend=side_legend("cause", x=WIDTH - 60),
            ),
            tooltip=[
                "terminal_id:N",
                "merchant_id:N",
                "cause:N",
                alt.Tooltip("sum(attempts):Q", title="attempts"),
            ],
        )
        .properties(
            width=WIDTH - 80,
            height=alt.Step(14),
            title=_title(
                "Terminals with the most credential failures",
                ["in the period picked above", worst.note],
            ),
        )
    )
    return alt.vconcat(timeline, terminals).resolve_scale(color="independent")


def lockouts_chart(lockouts: pl.DataFrame) -> AnyChart:
    """Lockouts per day, by how they ended; at most the last :data:`~bounds.DAYS` days."""
    shown = bounds.latest(lockouts, "time", limit=bounds.DAYS, unit="days")
    return (
        alt.Chart(shown.frame)
        .mark_bar()
        .encode(
            x=alt.X("time:T", title=None, timeUnit="yearmonthdate", axis=alt.Axis(format="%m-%d")),
            y=alt.Y("sum(lockouts):Q", title="lockouts"),
            color=alt.Color(
                "unlock_method:N",
                scale=_scale(UNLOCK_COLORS),
                legend=alt.Legend(title="ended by", orient="top"),
            ),
            tooltip=[
                alt.Tooltip("time:T", format="%Y-%m-%d", title="day"),
                "unlock_method:N",
                "lockouts:Q",
            ],
        )
        .properties(
            width=WIDTH,
            height=150,
            title=_title(
                "Lockouts per day",
                ["a storm is many operators of one terminal within the hour", shown.note],
            ),
        )
    )


def login_findings_chart(findings: pl.DataFrame) -> alt.VConcatChart:
    """Login findings in time, one lane per rule, sized by attempts; click one to read it below.

    At most the :data:`~bounds.LOGIN_FINDING_BUBBLES` most severe findings.
    """
    pick = alt.selection_point(name="finding_pick", fields=["finding_id"])
    shown = bounds.top_and_sample(
        findings.with_columns(
            pl.col("severity")
            .replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8)
            .alias("severity_rank")
        ),
        by=["severity_rank", "score", "window_start", "finding_id"],
        descending=[True, True, False, False],
        top=bounds.LOGIN_FINDING_BUBBLES,
        noun="findings",
        ranked="most severe",
    )
    findings = shown.frame.drop("severity_rank")
    rules = sorted(findings.get_column("rule").unique().to_list()) if findings.height else []
    chart = (
        alt.Chart(findings)
        .mark_circle(stroke=INK, strokeWidth=0.4)
        .transform_calculate(jitter="(random() - 0.5) * 0.8")
        .encode(
            x=alt.X("window_start:T", title=None),
            y=alt.Y("rule:N", title=None, sort=rules),
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-1, 1])),
            size=alt.Size(
                "attempts:Q", title="attempts", scale=alt.Scale(range=[25, 360]), legend=None
            ),
            color=alt.Color(
                "severity:N", scale=severity_scale(), legend=side_legend("severity", x=WIDTH - 40)
            ),
            opacity=alt.condition(pick, alt.value(0.75), alt.value(0.15)),
            tooltip=[
                "rule:N",
                "severity:N",
                "terminal_id:N",
                "entity_id:N",
                alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M", title="from"),
                "attempts:Q",
                "minutes:Q",
                "summary:N",
            ],
        )
        .add_params(pick)
        .properties(
            width=WIDTH - 60,
            height=alt.Step(56),
            title=_title(
                "Attacks and sharing, in time",
                ["bubble size: attempts or switches; click a bubble", shown.note],
            ),
        )
    )
    table = linked_table(
        findings,
        pick,
        [
            Column("terminal_id", "terminal", 66),
            Column("window_start", "from", 112, "T"),
            Column("summary", "summary", 560),
        ],
        title="The findings",
    )
    return alt.vconcat(chart, table).resolve_scale(color="independent")


def lockout_settings_chart(
    counts: pl.DataFrame, *, max_failures: int, min_lockout_minutes: int
) -> AnyChart:
    """Terminals per lockout setting, red where the setting is looser than the policy."""
    order = (
        counts.sort("threshold_order")
        .get_column("locks_after")
        .unique(maintain_order=True)
        .to_list()
    )
    minutes = (
        counts.sort("minutes_order").get_column("locks_for").unique(maintain_order=True).to_list()
    )
    counts = counts.with_columns(
        pl.when(pl.col("within_policy"))
        .then(pl.lit("within policy"))
        .otherwise(pl.lit("looser than policy"))
        .alias("verdict")
    )
    base = alt.Chart(counts).encode(
        x=alt.X("locks_after:N", title="locks after", sort=order, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("locks_for:N", title="locks for", sort=minutes),
        tooltip=["locks_after:N", "locks_for:N", "terminals:Q", "verdict:N"],
    )
    circles = base.mark_circle(opacity=0.85).encode(
        size=alt.Size("terminals:Q", scale=alt.Scale(range=[200, 2600]), legend=None),
        color=alt.Color(
            "verdict:N",
            scale=alt.Scale(
                domain=["within policy", "looser than policy"], range=["#74a9cf", HIGHLIGHT]
            ),
            legend=alt.Legend(title=None, orient="right"),
        ),
    )
    labels = base.mark_text(fontWeight=600, color="white").encode(text="terminals:Q")
    return alt.layer(circles, labels).properties(
        width=WIDTH - 200,
        height=alt.Step(56),
        title=_title(
            "Terminals by lockout setting",
            f"policy: lock after at most {max_failures} wrong PINs, for at least "
            f"{min_lockout_minutes} minutes",
        ),
    )


# --- 02 PIN hygiene ---------------------------------------------------------------------------


def pin_problems_chart(summary: pl.DataFrame) -> AnyChart:
    """Operators per PIN problem, administrators and clerks stacked, share of all in the label."""
    problems = summary.filter(pl.col("problem") != "operators audited")
    long = problems.unpivot(
        index=["problem", "share"],
        on=["administrators", "clerks"],
        variable_name="role",
        value_name="count",
    )
    order = problems.get_column("problem").to_list()
    bars = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("problem:N", title=None, sort=order, axis=alt.Axis(labelLimit=260)),
            x=alt.X("sum(count):Q", title="operators"),
            color=alt.Color(
                "role:N",
                scale=alt.Scale(
                    domain=["administrators", "clerks"], range=list(ROLE_COLORS.values())
                ),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=[
                "problem:N",
                "role:N",
                "count:Q",
                alt.Tooltip("share:Q", format=".1%", title="share of all operators"),
            ],
        )
    )
    labels = (
        alt.Chart(problems)
        .mark_text(align="left", dx=4, color=INK)
        .encode(
            y=alt.Y("problem:N", sort=order),
            x=alt.X("operators:Q"),
            text=alt.Text("share:Q", format=".0%"),
        )
    )
    audited = (
        int(summary.filter(pl.col("problem") == "operators audited").item(0, "operators"))
        if summary.height
        else 0
    )
    return alt.layer(bars, labels).properties(
        width=WIDTH - 260,
        height=alt.Step(22),
        title=_title("PIN problems", f"of {audited:,} operators holding a PIN today"),
    )


def weakness_chart(classes: pl.DataFrame) -> AnyChart:
    """Operators holding a weak PIN, per weakness class (never the PIN), by role."""
    order = (
        classes.sort("class_total", descending=True)
        .get_column("weakness")
        .unique(maintain_order=True)
        .to_list()
    )
    return (
        alt.Chart(classes)
        .mark_bar()
        .encode(
            y=alt.Y("weakness:N", title=None, sort=order),
            x=alt.X("sum(operators):Q", title="operators"),
            color=alt.Color(
                "role:N", scale=_scale(ROLE_COLORS), legend=alt.Legend(title=None, orient="top")
            ),
            tooltip=["weakness:N", "role:N", "operators:Q"],
        )
        .properties(
            width=WIDTH - 200,
            height=alt.Step(18),
            title=_title(
                "Weak PINs by weakness class",
                "a guesser's first tries; the class only, never the PIN",
            ),
        )
    )


def pin_age_chart(ages: pl.DataFrame, *, max_age_days: int) -> AnyChart:
    """Operators per PIN age band, by role, with the policy's maximum age."""
    bars = (
        alt.Chart(ages)
        .mark_bar(binSpacing=1)
        .encode(
            x=alt.X("age_from_days:Q", bin="binned", title="age of the PIN held today (days)"),
            x2="age_to_days:Q",
            y=alt.Y("sum(operators):Q", title="operators"),
            color=alt.Color(
                "role:N", scale=_scale(ROLE_COLORS), legend=alt.Legend(title=None, orient="top")
            ),
            tooltip=["band:N", "role:N", "operators:Q"],
        )
    )
    rule = (
        alt.Chart(pl.DataFrame({"days": [max_age_days]}))
        .mark_rule(color=HIGHLIGHT, strokeDash=[4, 3])
        .encode(x="days:Q")
    )
    note = (
        alt.Chart(pl.DataFrame({"days": [max_age_days], "text": [f"policy: {max_age_days} days"]}))
        .mark_text(align="left", dx=4, dy=-4, color=HIGHLIGHT, baseline="top")
        .encode(x="days:Q", y=alt.value(0), text="text:N")
    )
    return alt.layer(bars, rule, note).properties(
        width=WIDTH, height=180, title=_title("How old operators' PINs are")
    )


# --- 03 refunds -------------------------------------------------------------------------------


def _flag_scale(flags: Sequence[str]) -> alt.Scale:
    rules = [f for f in sorted(set(flags)) if f != NO_FINDING]
    palette = [
        "#e45756",
        "#f58518",
        "#b279a2",
        "#4c78a8",
        "#72b7b2",
        "#54a24b",
        "#eeca3b",
        "#9d755d",
        "#ff9da6",
        "#1f77b4",
        "#8c564b",
    ]
    return alt.Scale(domain=[NO_FINDING, *rules], range=["#c7c7c7", *palette[: len(rules)]])


def refund_scatter_chart(points: pl.DataFrame) -> AnyChart:
    """Each refund against its sale (log scales); above the line is more than the sale took.

    At most :data:`~bounds.REFUND_POINTS_FLAGGED` refunds a finding names and
    :data:`~bounds.REFUND_POINTS_ORDINARY` others, seeded samples of each; ``flagged_total``
    and ``ordinary_total`` say how many there were before any sample.
    """
    pick = alt.selection_point(name="flag_pick", fields=["flag"], bind="legend")
    is_flagged = pl.col("flag") != NO_FINDING
    flagged = bounds.sample(points.filter(is_flagged), bounds.REFUND_POINTS_FLAGGED)
    ordinary = bounds.sample(points.filter(~is_flagged), bounds.REFUND_POINTS_ORDINARY)
    flagged_total, ordinary_total = (
        max(int(points.item(0, column)) if points.height else 0, part.height)
        for column, part in (("flagged_total", flagged), ("ordinary_total", ordinary))
    )
    points = pl.concat([ordinary, flagged])
    subtitle = ["grey: no finding names the refund; click a legend entry to pick one rule"]
    if flagged.height < flagged_total or ordinary.height < ordinary_total:
        subtitle.append(
            f"a random sample (seed {bounds.SAMPLE_SEED}): {flagged.height:,} of the "
            f"{flagged_total:,} refunds a finding names, {ordinary.height:,} of the "
            f"{ordinary_total:,} others"
        )
    low = max(
        float(points.select(pl.min_horizontal("sale_cny", "refund_cny").min()).item() or 0.01), 0.01
    )
    high = float(points.select(pl.max_horizontal("sale_cny", "refund_cny").max()).item() or 1.0)
    scale = alt.Scale(type="log", domain=[low, high], nice=False)
    decades = [10.0**k for k in range(-2, 8) if low <= 10.0**k <= high]
    axis = alt.Axis(values=decades, format=",", gridColor=GRID)
    dots = (
        alt.Chart(points)
        .mark_circle(size=28)
        .encode(
            x=alt.X("sale_cny:Q", title="sale (CNY)", scale=scale, axis=axis),
            y=alt.Y("refund_cny:Q", title="refund (CNY)", scale=scale, axis=axis),
            color=alt.Color(
                "flag:N",
                scale=_flag_scale(points.get_column("flag").to_list()),
                legend=alt.Legend(title="named by", orient="right", symbolLimit=20, labelLimit=260),
            ),
            opacity=alt.condition(pick, alt.value(0.8), alt.value(0.08)),
            order=alt.Order("flag:N"),
            tooltip=[
                "txn_id:N",
                alt.Tooltip("ts:T", format="%Y-%m-%d %H:%M"),
                "terminal_id:N",
                "operator_id:N",
                alt.Tooltip("sale_cny:Q", format=",.2f"),
                alt.Tooltip("refund_cny:Q", format=",.2f"),
                alt.Tooltip("lag_days:Q", title="days after sale"),
                "flag:N",
            ],
        )
        .add_params(pick)
    )
    line = (
        alt.Chart(pl.DataFrame({"cny": [low, high]}))
        .mark_line(color=INK, strokeDash=[4, 3], strokeWidth=1)
        .encode(x=alt.X("cny:Q", scale=scale), y=alt.Y("cny:Q", scale=scale))
    )
    return alt.layer(line, dots).properties(
        width=WIDTH - 120, height=380, title=_title("Refunds against their sales", subtitle)
    )


def refund_lag_chart(lags: pl.DataFrame, *, refund_window_days: float) -> AnyChart:
    """Refunds by days after their sale, with the acquirer's refund window."""
    bars = (
        alt.Chart(lags)
        .mark_bar(binSpacing=0)
        .encode(
            x=alt.X("lag_from_days:Q", bin="binned", title="days after the sale"),
            x2="lag_to_days:Q",
            y=alt.Y("sum(refunds):Q", title="refunds"),
            color=alt.Color(
                "flagged:N",
                scale=alt.Scale(domain=[False, True], range=["#c7c7c7", "#e8601c"]),
                legend=alt.Legend(
                    title=None,
                    orient="top",
                    labelExpr="datum.value ? 'named by a finding' : 'no finding'",
                ),
            ),
            tooltip=[
                alt.Tooltip("lag_from_days:Q", title="from day"),
                alt.Tooltip("lag_to_days:Q", title="to day"),
                "flagged:N",
                "refunds:Q",
            ],
        )
    )
    rule = (
        alt.Chart(pl.DataFrame({"days": [refund_window_days]}))
        .mark_rule(color=HIGHLIGHT, strokeDash=[4, 3])
        .encode(x="days:Q")
    )
    return alt.layer(bars, rule).properties(
        width=WIDTH,
        height=160,
        title=_title(
            "How long after the sale", f"red line: the {refund_window_days:g}-day refund window"
        ),
    )


def refund_rules_chart(counts: pl.DataFrame, findings: pl.DataFrame) -> alt.VConcatChart:
    """Findings per refund rule; click a rule to list its findings below."""
    pick = alt.selection_point(name="refund_rule_pick", fields=["rule"])
    bars = (
        alt.Chart(counts)
        .mark_bar(color="#f58518")
        .encode(
            y=alt.Y("rule:N", title=None, sort="-x"),
            x=alt.X("findings:Q", title="findings"),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
            tooltip=[
                "rule:N",
                "findings:Q",
                "new:Q",
                "critical:Q",
                "high:Q",
                alt.Tooltip("amount_cny:Q", title="refunded (CNY)", format=",.2f"),
            ],
        )
        .transform_calculate(amount_cny="datum.amount_fen / 100")
        .add_params(pick)
        .properties(
            width=WIDTH - 200,
            height=alt.Step(20),
            title=_title("Refund findings by rule", "click a rule"),
        )
    )
    table = linked_table(
        findings.with_columns((pl.col("amount_fen") / 100).alias("amount_cny")),
        pick,
        [
            Column("amount_cny", "CNY", 72, "Q", ",.2f"),
            Column("window_start", "when", 112, "T"),
            Column("summary", "summary", 520),
        ],
        title="Refund findings",
        pick_field="rule",
    )
    return alt.vconcat(bars, table).resolve_scale(color="independent")


def _rate_scatter(
    data: pl.DataFrame,
    *,
    x: str,
    y: str,
    x_title: str,
    y_title: str,
    color: alt.Color,
    size: str,
    tooltip: list[Any],
    title: str,
    subtitle: str,
    key: str,
    noun: str,
    ranked: str,
) -> AnyChart:
    """A rate against its peers' rate, one point per ``key``.

    At most the :data:`~bounds.RATE_POINTS_TOP` points furthest above their peers (``y`` over
    ``x``; any rate over a peers' rate of 0 first) and a sample of
    :data:`~bounds.RATE_POINTS_SAMPLE` of the rest. The axes span every rated point, so a cut
    never moves them.
    """
    rated = data.filter(pl.col(x).is_not_null() & pl.col(y).is_not_null())
    top = float(rated.select(pl.max_horizontal(x, y).max()).item() or 0.05) * 1.05
    shown = bounds.top_and_sample(
        rated.with_columns(
            pl.when(pl.col(x) > 0)
            .then(pl.col(y) / pl.col(x))
            .when(pl.col(y) > 0)
            .then(float("inf"))
            .otherwise(0.0)
            .alias("_above_peers")
        ),
        by=["_above_peers", key],
        descending=[True, False],
        top=bounds.RATE_POINTS_TOP,
        sample=bounds.RATE_POINTS_SAMPLE,
        noun=noun,
        ranked=ranked,
    )
    rated = shown.frame.drop("_above_peers")
    guides = pl.DataFrame(
        {"from": [0.0, 0.0], "to": [top, top], "times": ["1x", "3x"], "slope": [1.0, 3.0]}
    )
    lines = (
        alt.Chart(
            guides.with_columns(
                (pl.col("to") / pl.col("slope")).alias("x_end"), pl.col("to").alias("y_end")
            )
        )
        .mark_rule(color=MUTED, strokeDash=[4, 3])
        .encode(
            x=alt.X("from:Q"),
            y=alt.Y("from:Q"),
            x2="x_end:Q",
            y2="y_end:Q",
            tooltip=[alt.Tooltip("times:N", title="peers times")],
        )
    )
    points = (
        alt.Chart(rated)
        .mark_circle(opacity=0.75, stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X(
                f"{x}:Q", title=x_title, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, top])
            ),
            y=alt.Y(
                f"{y}:Q", title=y_title, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, top])
            ),
            color=color,
            size=alt.Size(
                f"{size}:Q",
                scale=alt.Scale(range=[25, 500]),
                legend=alt.Legend(title=size.replace("_", " ")),
            ),
            tooltip=tooltip,
        )
    )
    return alt.layer(lines, points).properties(
        width=WIDTH - 220, height=330, title=_title(title, [subtitle, shown.note])
    )


def merchant_rates_chart(rates: pl.DataFrame) -> AnyChart:
    """Each merchant's refund rate against its category's median; lines at 1x and 3x."""
    return _rate_scatter(
        rates,
        x="category_rate",
        y="refund_rate",
        x_title="category's median refund rate",
        y_title="merchant's refund rate",
        size="flagged_refunds",
        color=alt.Color(
            "category:N",
            legend=alt.Legend(title="category", orient="right"),
            scale=alt.Scale(scheme="tableau10"),
        ),
        tooltip=[
            "merchant_id:N",
            "name:N",
            "category:N",
            alt.Tooltip("sales:Q", format=","),
            "refunds:Q",
            alt.Tooltip("refund_rate:Q", format=".2%"),
            alt.Tooltip("category_rate:Q", format=".2%"),
            alt.Tooltip("rate_vs_category:Q", format=".1f", title="times the category"),
            "flagged_refunds:Q",
        ],
        title="Merchants' refund rates against their category",
        subtitle="dashed: as the category, and three times it",
        key="merchant_id",
        noun="merchants",
        ranked="furthest above their category",
    )


def operator_rates_chart(rates: pl.DataFrame) -> AnyChart:
    """Each operator's refund rate against its merchant's other refunding operators."""
    return _rate_scatter(
        rates.with_columns(
            pl.when(pl.col("findings") > 0)
            .then(pl.lit("has findings"))
            .otherwise(pl.lit("none"))
            .alias("findings_on_operator")
        ),
        x="peer_rate",
        y="refund_rate",
        x_title="median of the merchant's other operators",
        y_title="operator's refund rate",
        size="flagged_refunds",
        color=alt.Color(
            "findings_on_operator:N",
            scale=alt.Scale(domain=["none", "has findings"], range=["#9ecae1", "#e8601c"]),
            legend=alt.Legend(title="findings on the operator", orient="right"),
        ),
        tooltip=[
            "operator_id:N",
            "role:N",
            "can_refund:N",
            alt.Tooltip("sales:Q", format=","),
            "refunds:Q",
            alt.Tooltip("refund_rate:Q", format=".2%"),
            alt.Tooltip("peer_rate:Q", format=".2%", title="peers"),
            alt.Tooltip("rate_vs_peers:Q", format=".1f", title="times the peers"),
            "flagged_refunds:Q",
            "findings:Q",
        ],
        title="Operators' refund rates against their peers",
        subtitle="operators with at least 20 sales; dashed: as the peers, and three times",
        key="operator_id",
        noun="operators",
        ranked="furthest above their peers",
    )


# --- 04 operator risk -------------------------------------------------------------------------


def score_distribution_chart(distribution: pl.DataFrame, *, cut: float | None) -> AnyChart:
    """Operator-days per anomaly score, the reported top in colour, the cut as a line."""
    bars = (
        alt.Chart(distribution)
        .mark_bar(binSpacing=0)
        .encode(
            x=alt.X(
                "score_from:Q",
                bin="binned",
                title="anomaly score (Isolation Forest; about 0.5 is ordinary)",
            ),
            x2="score_to:Q",
            y=alt.Y(
                "sum(operator_days):Q",
                title="operator-days (square-root scale)",
                scale=alt.Scale(type="sqrt"),
            ),
            color=alt.Color(
                "in_findings:N",
                scale=alt.Scale(domain=[False, True], range=["#c7c7c7", "#54a24b"]),
                legend=alt.Legend(title="reported by the run", orient="top"),
            ),
            tooltip=[
                alt.Tooltip("score_from:Q", format=".3f", title="from"),
                alt.Tooltip("score_to:Q", format=".3f", title="to"),
                "in_findings:N",
                "operator_days:Q",
            ],
        )
    )
    layers: list[alt.Chart] = [bars]
    subtitle = "no operator-day reaches the run's cut"
    if cut is not None:
        layers.append(
            alt.Chart(pl.DataFrame({"score": [cut]}))
            .mark_rule(color=HIGHLIGHT, strokeDash=[4, 3])
            .encode(x="score:Q")
        )
        subtitle = f"red line: the lowest score the run reports ({cut:.3f})"
    return alt.layer(*layers).properties(
        width=WIDTH, height=180, title=_title("Anomaly scores of all operator-days", subtitle)
    )


def _first_ranks(frame: pl.DataFrame, noun: str) -> bounds.Shown:
    """The rows of the first :data:`~bounds.HEATMAP_ROWS` values of ``rank`` (a heat map's rows)."""
    ranks = frame.get_column("rank").n_unique()
    if ranks <= bounds.HEATMAP_ROWS:
        return bounds.Shown(frame)
    first = frame.get_column("rank").unique().sort().head(bounds.HEATMAP_ROWS)
    return bounds.Shown(
        frame.filter(pl.col("rank").is_in(first.implode())),
        f"the first {bounds.HEATMAP_ROWS:,} of {ranks:,} {noun}",
    )


def feature_heatmap(ratios: pl.DataFrame) -> AnyChart:
    """For the top operator-days: how far each feature sits above the merchant's median day.

    At most the first :data:`~bounds.HEATMAP_ROWS` operator-days by rank.
    """
    shown = _first_ranks(ratios, "operator-days")
    ratios = shown.frame
    rows = ratios.sort("rank").get_column("operator_day").unique(maintain_order=True).to_list()
    return (
        alt.Chart(ratios)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("label:N", title=None, axis=alt.Axis(labelAngle=-40, labelLimit=160)),
            y=alt.Y("operator_day:N", title=None, sort=rows),
            color=alt.Color(
                "excess:Q",
                title="above median (log)",
                scale=alt.Scale(scheme="oranges", domainMin=0),
            ),
            tooltip=[
                "operator_day:N",
                alt.Tooltip("label:N", title="feature"),
                alt.Tooltip("value:Q", format=",.2f"),
                alt.Tooltip("median:Q", format=",.2f", title="merchant median"),
                alt.Tooltip("ratio:Q", format=".1f", title="times the median"),
            ],
        )
        .properties(
            width=alt.Step(30),
            height=alt.Step(18),
            title=_title(
                "Why the top operator-days stand out",
                [
                    "each feature against the merchant's median day; darker is further above",
                    shown.note,
                ],
            ),
        )
    )


def standout_chart(standouts: pl.DataFrame) -> AnyChart:
    """How often each feature is among the three that explain a reported operator-day."""
    return (
        alt.Chart(standouts)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None, sort="-x"),
            x=alt.X("sum(operator_days):Q", title="reported operator-days"),
            color=alt.Color(
                "rank:O",
                title="named",
                scale=alt.Scale(domain=[1, 2, 3], range=["#2ca25f", "#8fd0b5", "#cdeadf"]),
                legend=alt.Legend(
                    orient="top", labelExpr="['', 'first', 'second', 'third'][datum.value]"
                ),
            ),
            tooltip=["label:N", "rank:O", "operator_days:Q"],
        )
        .properties(
            width=WIDTH - 220,
            height=alt.Step(18),
            title=_title("What the reported days have in common"),
        )
    )


def risk_matrix_chart(matrix: pl.DataFrame, findings: pl.DataFrame) -> alt.VConcatChart:
    """The operators who stand out, findings per family; click an operator to list its findings.

    At most the first :data:`~bounds.HEATMAP_ROWS` operators by rank, and the findings of
    those only.
    """
    pick = alt.selection_point(name="operator_pick", fields=["operator_id"])
    shown = _first_ranks(matrix, "operators")
    matrix = shown.frame
    findings = findings.join(matrix.select("operator_id").unique(), on="operator_id", how="semi")
    order = matrix.sort("rank").get_column("operator").unique(maintain_order=True).to_list()
    base = alt.Chart(matrix).encode(
        x=alt.X(
            "family:N",
            title=None,
            sort=list(FAMILY_COLORS),
            axis=alt.Axis(orient="top", labelAngle=0),
        ),
        y=alt.Y("operator:N", title=None, sort=order),
        tooltip=["operator:N", "family:N", "findings:Q"],
    )
    cells = (
        base.mark_rect(stroke="white", strokeWidth=1)
        .encode(
            color=alt.condition(
                alt.datum.findings > 0,
                alt.Color(
                    "findings:Q",
                    scale=alt.Scale(scheme="reds", domainMin=0),
                    legend=side_legend("findings", x=4 * 70 + 16),
                ),
                alt.value("#f4f4f4"),
            ),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.3)),
        )
        .add_params(pick)
    )
    text = base.mark_text(fontSize=10.5).encode(
        text=alt.condition(alt.datum.findings > 0, alt.Text("findings:Q"), alt.value("")),
        color=alt.condition(alt.datum.findings >= 10, alt.value("white"), alt.value(INK)),
    )
    heat = alt.layer(cells, text).properties(
        width=alt.Step(70),
        height=alt.Step(17),
        title=_title(
            "Operators who stand out",
            ["ranked by the kinds of trouble found on them; click a row", shown.note],
        ),
    )
    table = linked_table(
        findings,
        pick,
        [
            Column("rule", "rule", 190),
            Column("window_start", "from", 112, "T"),
            Column("summary", "summary", 400),
        ],
        title="Their findings",
        rows=14,
        pick_field="operator_id",
    )
    return alt.vconcat(heat, table).resolve_scale(color="independent")


# --- 05 drill-down ----------------------------------------------------------------------------


def _datetime(value: Any) -> alt.DateTime:
    """A Vega-Lite date-time in local time, as the charts read the store's naive timestamps."""
    return alt.DateTime(
        year=value.year,
        month=value.month,
        date=value.day,
        hours=value.hour,
        minutes=value.minute,
        seconds=value.second,
    )


def _event_scale(events: Sequence[str]) -> alt.Scale:
    known = [e for e in EVENT_COLORS if e in set(events)]
    others = sorted(set(events) - set(EVENT_COLORS))
    return alt.Scale(
        domain=[*known, *others],
        range=[*(EVENT_COLORS[e] for e in known), *(["#bab0ac"] * len(others))],
    )


def timeline_chart(
    events: pl.DataFrame,
    *,
    window_start: Any,
    window_end: Any,
    shown_from: Any,
    shown_to: Any,
    title: str,
) -> AnyChart:
    """The subject's events around a finding, one lane per kind, the evidence ringed.

    ``shown_from`` and ``shown_to`` fix the time axis (the finding's window with padding).
    """
    cut = bounds.sample_keeping(
        events.filter(pl.col("in_range")),
        pl.col("in_evidence"),
        limit=bounds.TIMELINE_EVENTS,
        kept="every event the evidence names",
    )
    shown = cut.frame.sort("ts", "lane", "event_id")
    lanes = [lane for lane in LANES if lane in set(shown.get_column("lane").to_list())] or list(
        LANES[:1]
    )
    zoom = alt.selection_interval(name="zoom", bind="scales", encodings=["x"])
    y = alt.Y("lane:N", title=None, sort=lanes, axis=alt.Axis(labelFontSize=11.5))
    domain = [_datetime(shown_from), _datetime(shown_to)]
    x_scale = alt.Scale(domain=domain)
    window = (
        alt.Chart(
            pl.DataFrame(
                {"start": [max(window_start, shown_from)], "end": [min(window_end, shown_to)]}
            )
        )
        .mark_rect(color="#fde0c5", opacity=0.6)
        .encode(x=alt.X("start:T", scale=x_scale), x2="end:T")
    )
    spans = (
        alt.Chart(shown.filter(pl.col("end_ts").is_not_null()))
        .mark_bar(height=7, color="#6baed6", opacity=0.7)
        .encode(
            x="ts:T",
            x2="end_ts:T",
            y=y,
            tooltip=[
                alt.Tooltip("ts:T", format="%Y-%m-%d %H:%M:%S", title="locked"),
                alt.Tooltip("end_ts:T", format="%Y-%m-%d %H:%M:%S", title="unlocked"),
                "event:N",
            ],
        )
    )
    tooltip = [
        alt.Tooltip("ts:T", format="%Y-%m-%d %H:%M:%S", title="time"),
        "lane:N",
        "event:N",
        "event_id:N",
        "terminal_id:N",
        "operator_id:N",
        alt.Tooltip("amount_cny:Q", format=",.2f", title="CNY"),
        "detail:N",
        "in_evidence:N",
    ]
    dots = (
        alt.Chart(shown)
        .mark_point(filled=True, opacity=0.85)
        .encode(
            x=alt.X("ts:T", title=None, scale=x_scale, axis=alt.Axis(labelAngle=0, tickCount=8)),
            y=y,
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-1, 1])),
            color=alt.Color(
                "event:N",
                legend=alt.Legend(title="event", orient="right", symbolLimit=24, labelLimit=220),
                scale=_event_scale(shown.get_column("event").unique().to_list()),
            ),
            size=alt.condition(alt.datum.in_evidence, alt.value(150), alt.value(34)),
            stroke=alt.condition(alt.datum.in_evidence, alt.value("black"), alt.value(None)),
            strokeWidth=alt.condition(alt.datum.in_evidence, alt.value(1.6), alt.value(0)),
            tooltip=tooltip,
        )
        .transform_calculate(jitter="(random() - 0.5) * 0.9")
        .add_params(zoom)
    )
    return alt.layer(window, spans, dots).properties(
        width=WIDTH + 80,
        height=alt.Step(46),
        title=_title(
            title,
            [
                "shaded: the finding's window; ringed: events the evidence names; drag to pan, "
                "scroll to zoom",
                cut.note,
            ],
        ),
    )


def coverage_chart(coverage: pl.DataFrame, by_terminal: pl.DataFrame) -> AnyChart:
    """Events per day and terminal, a day without any in red: where the data has holes.

    At most the :data:`~bounds.COVERAGE_TERMINALS` terminals first in ``by_terminal`` (the most
    silent days first) and the last :data:`~bounds.DAYS` days.
    """
    total = by_terminal.height
    chosen = by_terminal.head(bounds.COVERAGE_TERMINALS).get_column("terminal_id")
    days = bounds.latest(coverage, "day", limit=bounds.DAYS, unit="days")
    shown = days.frame.filter(pl.col("terminal_id").is_in(chosen.implode()))
    kept = (
        f"the {chosen.len():,} of {total:,} terminals with the most silent days, "
        "then the fewest events"
        if total > chosen.len()
        else None
    )
    base = alt.Chart(shown).encode(
        x=alt.X("day:O", title=None, timeUnit="monthdate", axis=alt.Axis(labelAngle=-50)),
        y=alt.Y("terminal_id:N", title=None, sort=chosen.to_list()),
        tooltip=[
            "terminal_id:N",
            alt.Tooltip("day:T", format="%Y-%m-%d"),
            alt.Tooltip("events:Q", format=","),
        ],
    )
    cells = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color("events:Q", title="events", scale=alt.Scale(scheme="blues", domainMin=0))
    )
    silent = base.mark_rect(stroke="white", strokeWidth=1, color=HIGHLIGHT).transform_filter(
        alt.datum.is_silent
    )
    return alt.layer(cells, silent).properties(
        width=alt.Step(16),
        height=alt.Step(18),
        title=_title(
            "Events per day and terminal",
            [
                "logins, lockouts and transactions; red: a full day the terminal reported nothing",
                kept,
                days.note,
            ],
        ),
    )


def category_hours_chart(hours: pl.DataFrame, *, odd_hour_percent: float) -> AnyChart:
    """Each category's sales by three-hour bin; the cash-out rule counts sales in the pale bins.
    At most :data:`~posaudit.notebook.bounds.CATEGORY_ROWS` categories, those with the most
    sales (``hours`` carries each category's ``sales``)."""
    shown = bounds.whole_groups(
        hours.with_columns((pl.col("share") * 100 < odd_hour_percent).alias("odd")),
        "category",
        rank=pl.col("sales").sum(),
        max_groups=bounds.CATEGORY_ROWS,
        max_rows=bounds.ALTAIR_MAX_ROWS,
        noun="categories",
        ranked="with the most sales",
    )
    return (
        alt.Chart(shown.frame.to_pandas())
        .mark_rect()
        .encode(
            x=alt.X("hours:O", title="hours of the day"),
            y=alt.Y("category:N", title=None),
            color=alt.Color("share:Q", title="share of sales", scale=alt.Scale(scheme="blues")),
            tooltip=["category:N", "hours:N", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(
            width=WIDTH // 2,
            title=_title(
                "Categories' sales by hour",
                [
                    f"cash-out counts sales in bins under {odd_hour_percent:g} % of the category's",
                    shown.note,
                ],
            ),
        )
    )


def merchant_profiles_chart(profiles: pl.DataFrame) -> AnyChart:
    """Each merchant's mean ticket against its credit share, by category; ringed when a
    merchant typology finding names it. At most
    :data:`~posaudit.notebook.bounds.MERCHANT_POINTS_TOP` merchants, those a finding names
    first and then those with the most sales, and a sample of the others."""
    shown = bounds.top_and_sample(
        profiles.with_columns((pl.col("findings") != "none").alias("named")),
        by=["named", "sales"],
        descending=[True, True],
        top=bounds.MERCHANT_POINTS_TOP,
        sample=bounds.MERCHANT_POINTS_SAMPLE,
        noun="merchants",
        ranked="named by a finding or selling most",
    )
    return (
        alt.Chart(shown.frame.drop("named").to_pandas())
        .mark_point(filled=True, size=60)
        .encode(
            x=alt.X("mean_ticket_yuan:Q", title="mean ticket (CNY)", scale=alt.Scale(type="log")),
            y=alt.Y("credit_share:Q", title="credit-card share", axis=alt.Axis(format="%")),
            color=alt.Color("category:N", scale=alt.Scale(scheme="tableau10")),
            shape=alt.Shape("fee_class:N", title="fee class"),
            stroke=alt.condition(
                alt.datum.findings != "none", alt.value(INK), alt.value("transparent")
            ),
            tooltip=[
                "merchant_id:N",
                "category:N",
                "fee_class:N",
                alt.Tooltip("sales:Q", format=","),
                "mean_ticket_yuan:Q",
                alt.Tooltip("credit_share:Q", format=".1%"),
                alt.Tooltip("night_share:Q", format=".1%"),
                "findings:N",
            ],
        )
        .properties(
            width=WIDTH // 2,
            title=_title(
                "Merchants by ticket and card mix",
                [
                    "a discount- or charity-class merchant among another category's is misuse",
                    shown.note,
                ],
            ),
        )
    )


def benford_chart(
    curve: pl.DataFrame, *, test: str, n: int, mad: float, band: str | None, bounds_text: str | None
) -> AnyChart:
    """A Benford test's found share of each digit combination (bars; the spikes in red)
    against Benford's expected share (the line) and the range where a share is within 1.96
    standard errors of it (the shaded band). The MAD and its conformity band in the subtitle.
    At most 100 combinations: the test's own."""
    frame = curve.with_columns(
        (1.96 * (pl.col("expected") * (1 - pl.col("expected")) / n).sqrt()).alias("se"),
        pl.when(pl.col("spike")).then(pl.lit("spike")).otherwise(pl.lit("found")).alias("mark"),
    ).with_columns(
        (pl.col("expected") - pl.col("se")).clip(lower_bound=0).alias("low"),
        (pl.col("expected") + pl.col("se")).alias("high"),
    )
    base = alt.Chart(frame.drop("se").to_pandas())
    x = alt.X("digit:O", title="digits", axis=alt.Axis(labelAngle=0, labelOverlap=True))
    tooltip = [
        "digit:O",
        alt.Tooltip("count:Q", format=","),
        alt.Tooltip("found:Q", format=".2%"),
        alt.Tooltip("expected:Q", format=".2%"),
        alt.Tooltip("z:Q", format=".1f"),
    ]
    bars = base.mark_bar(opacity=0.85).encode(
        x=x,
        y=alt.Y("found:Q", title="share of amounts", axis=alt.Axis(format="%")),
        color=alt.Color(
            "mark:N",
            title=None,
            scale=alt.Scale(domain=["found", "spike"], range=["#9ecae1", HIGHLIGHT]),
        ),
        tooltip=tooltip,
    )
    spread = base.mark_area(opacity=0.25, color=MUTED, interpolate="step").encode(
        x=x, y="low:Q", y2="high:Q"
    )
    line = base.mark_line(color=INK, strokeWidth=1.5).encode(x=x, y="expected:Q")
    words = band or "no published bands"
    return alt.layer(spread, bars, line).properties(
        width=WIDTH,
        height=220,
        title=_title(
            f"Benford, {test.replace('_', ' ')}: found against expected",
            [f"{n:,} amounts; MAD {mad:.4f}: {words}", bounds_text],
        ),
    )


def strata_chart(table: pl.DataFrame) -> AnyChart:
    """Each stratum's share of the amounts counted and of the money, side by side."""
    frame = (
        table.with_columns(
            pl.when(pl.col("from_cny").is_null())
            .then(pl.format("under {}", pl.col("below_cny")))
            .when(pl.col("below_cny").is_null())
            .then(pl.format("{} or more", pl.col("from_cny")))
            .otherwise(pl.format("{} to {}", pl.col("from_cny"), pl.col("below_cny")))
            .alias("amounts")
        )
        .select("stratum", "amounts", "count", "amount_cny", "count_share", "amount_share")
        .unpivot(
            index=["stratum", "amounts", "count", "amount_cny"],
            variable_name="share_of",
            value_name="share",
        )
        .with_columns(
            pl.col("share_of").replace({"count_share": "amounts", "amount_share": "money"})
        )
    )
    return (
        alt.Chart(frame.to_pandas())
        .mark_bar()
        .encode(
            x=alt.X("amounts:N", title="stratum (CNY)", sort=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("share_of:N"),
            y=alt.Y("share:Q", title="share", axis=alt.Axis(format="%")),
            color=alt.Color(
                "share_of:N",
                title="share of",
                scale=alt.Scale(domain=["amounts", "money"], range=["#9ecae1", "#08519c"]),
            ),
            tooltip=[
                "stratum:O",
                "amounts:N",
                alt.Tooltip("count:Q", format=","),
                alt.Tooltip("amount_cny:Q", format=",.2f"),
                "share_of:N",
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(
            width=WIDTH,
            height=200,
            title=_title(
                "Approved sales by stratum of amount",
                "the few largest sales carry much of the money",
            ),
        )
    )


def refund_ages_chart(ages: pl.DataFrame) -> AnyChart:
    """Approved refunds by days after their sale, in the bands' order; the 15-day refund window
    of the domain ends after the third band."""
    return (
        alt.Chart(ages.to_pandas())
        .mark_bar(color="#6baed6")
        .encode(
            x=alt.X(
                "band:N",
                title="days after the sale",
                sort=alt.EncodingSortField(field="order"),
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y("refunds:Q", title="refunds"),
            tooltip=[
                "band:N",
                alt.Tooltip("refunds:Q", format=","),
                alt.Tooltip("amount_cny:Q", format=",.2f"),
            ],
        )
        .properties(
            width=WIDTH,
            height=180,
            title=_title("Refunds by days after their sale", "the refund window is 15 days"),
        )
    )
