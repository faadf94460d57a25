"""The report's charts: small frames in, Altair charts out, drawn to static SVG.

Each chart function takes a frame already counted and labelled in the report's language
(a handful of rows: Altair refuses over 5,000) and returns an ``alt.Chart``;
:func:`chart_svg` styles it with the report's font and draws it with vl-convert, so the
report needs no script and no network to show it, in a browser or in the PDF.
"""

from __future__ import annotations

from typing import Final

import altair as alt
import polars as pl
import vl_convert

from posaudit.palette import SEVERITY_COLORS

# Noto Sans CJK SC draws Latin and Chinese alike (Debian: fonts-noto-cjk).
FONT: Final = "Noto Sans CJK SC"
INK: Final = "#1f2933"
MUTED: Final = "#52606d"
ACCENT: Final = "#1f4e79"
CHART_WIDTH: Final = 600


def severity_bars(
    frame: pl.DataFrame,
    *,
    category: str,
    category_order: list[str],
    severity_labels: dict[str, str],
    category_title: str,
    count_title: str,
    severity_title: str,
    width: int = CHART_WIDTH,
) -> alt.Chart:
    """Horizontal bars of ``count`` per ``category``, stacked by severity, most severe first.

    ``frame`` has columns ``category``, ``severity`` (the machine name) and ``count``;
    ``severity_labels`` maps every severity, most severe first, to the label shown.
    """
    order = list(severity_labels)
    data = frame.with_columns(
        pl.col("severity")
        .replace_strict(severity_labels, default=pl.col("severity"))
        .alias("severity_label"),
        pl.col("severity")
        .replace_strict({s: i for i, s in enumerate(order)}, default=len(order))
        .alias("rank"),
    )
    bar_height = 22
    return (
        alt.Chart(data)
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("sum(count):Q", title=count_title, axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y(
                f"{category}:N",
                title=category_title,
                sort=category_order,
                axis=alt.Axis(labelLimit=260),
            ),
            color=alt.Color(
                "severity_label:N",
                title=severity_title,
                scale=alt.Scale(
                    domain=list(severity_labels.values()),
                    range=[SEVERITY_COLORS[s] for s in order],
                ),
                legend=alt.Legend(orient="bottom", direction="horizontal"),
            ),
            order=alt.Order("rank:Q", sort="ascending"),
        )
        .properties(width=width, height=max(1, len(category_order)) * bar_height)
    )


def count_bars(
    frame: pl.DataFrame,
    *,
    category: str,
    value: str,
    category_title: str,
    value_title: str,
    share: str | None = None,
    width: int = CHART_WIDTH,
) -> alt.LayerChart:
    """Horizontal bars of ``value`` per ``category`` in the frame's order, the figure at each
    bar's end (``share`` names a column of 0..1 shares shown beside the figure)."""
    order = frame.get_column(category).to_list()
    data = frame.with_columns(
        (
            pl.col(value).cast(pl.String)
            + (
                pl.lit(" (") + (pl.col(share) * 100).round(1).cast(pl.String) + pl.lit("%)")
                if share
                else pl.lit("")
            )
        ).alias("figure")
    )
    base = alt.Chart(data).encode(
        y=alt.Y(f"{category}:N", title=category_title, sort=order, axis=alt.Axis(labelLimit=260)),
        x=alt.X(f"{value}:Q", title=value_title, axis=alt.Axis(tickMinStep=1, format="d")),
    )
    bars = base.mark_bar(color=ACCENT, height=14)
    figures = base.mark_text(align="left", dx=4, color=INK, fontSize=10).encode(text="figure:N")
    layered = alt.LayerChart(layer=[bars, figures])
    return layered.properties(width=width, height=max(1, len(order)) * 22)


def styled(chart: alt.Chart | alt.LayerChart, *, font: str = FONT) -> alt.Chart | alt.LayerChart:
    """The report's look: one font everywhere (so Chinese labels draw), quiet axes."""
    return (
        chart.configure(font=font, background="white")
        .configure_axis(
            labelFont=font,
            titleFont=font,
            labelColor=INK,
            titleColor=MUTED,
            labelFontSize=11,
            titleFontSize=11,
            gridColor="#e4e7eb",
            domainColor="#9aa5b1",
            tickColor="#9aa5b1",
        )
        .configure_legend(
            labelFont=font, titleFont=font, labelFontSize=11, titleFontSize=11, labelColor=INK
        )
        .configure_title(font=font, fontSize=13, color=INK)
        .configure_text(font=font)
        .configure_view(stroke=None)
    )


def chart_svg(chart: alt.Chart | alt.LayerChart, *, font: str = FONT) -> str:
    """The chart as a static SVG string (no script, no external reference)."""
    svg = vl_convert.vegalite_to_svg(styled(chart, font=font).to_dict())
    # The report inlines the SVG; a fixed width would overflow a narrow page or window.
    return svg.replace('class="marks"', 'class="marks" preserveAspectRatio="xMinYMin meet"', 1)
