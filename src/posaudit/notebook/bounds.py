"""How many rows each notebook chart may carry, and how a chart cuts its frame down to them.

Altair embeds every row a chart draws in the notebook and refuses more than 5,000
(``MaxRowsError``): one point per operator stops a notebook on a store of 5,000 operators,
and well before that the chart is a blot of ink and the notebook megabytes larger. So every
chart function cuts the frame it is given to a bound named here, keeping what the chart is
for (the most severe, the furthest above their peers, the latest) and saying on the chart
what it shows: "the 1,000 furthest above their peers of 5,870 operators, and a random
sample of 1,000 of the other 4,870 (seed 0)". A frame within its bound is drawn whole, and
the chart says nothing more.

Charts over a fixed domain (families by severity, score bins, PIN problems) are bounded by
their data functions' constants and need no cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

# Altair's own limit per dataset (``alt.data_transformers`` default); every bound is under it.
ALTAIR_MAX_ROWS: Final = 5_000
# The seed of every sample a chart draws: the same store gives the same chart.
SAMPLE_SEED: Final = 0

# Peers' rate scatters (one point per merchant or operator) are 340 x 330 px: past about
# 2,000 circles the cloud is solid ink. Half are the furthest above their peers (what the
# chart is for), half a sample of the rest (the cloud they stand out from).
RATE_POINTS_TOP: Final = 1_000
RATE_POINTS_SAMPLE: Final = 1_000
# Refunds against their sales (440 x 380 px, smaller circles): refunds a finding names first,
# as many ordinary ones for the shape of the cloud.
REFUND_POINTS_FLAGGED: Final = 1_500
REFUND_POINTS_ORDINARY: Final = 1_000
# Login findings as bubbles in four 56-px lanes across the data window: past about 600 the
# bubbles hide each other; the most severe are kept.
LOGIN_FINDING_BUBBLES: Final = 600
# Time series: one bar per bucket across 560 px. The data modules pick a bucket width giving
# at most 800 buckets (``logins.time_bucket``); a longer series keeps its latest buckets.
TIME_BUCKETS: Final = 800
# Daily series (events per day, lockouts per day): 180 days are 3 px a day, the least a day
# (and a red low-day dot) can take.
DAYS: Final = 180
# Terminals with the most credential failures: 20 bars of 14 px, and at most 2,000 rows of
# them per bucket and cause (the brushed period is summed in the browser).
FAILURE_TERMINALS: Final = 20
FAILURE_TERMINAL_ROWS: Final = 2_000
# Heat maps (top operator-days by feature, top operators by family): rows of 17-18 px; past
# 50 rows the chart is taller than a screen.
HEATMAP_ROWS: Final = 50
# Coverage per day and terminal (a heat map of 18-px rows, one column a day): the terminals
# with the most silent days, as many as keep a chart of the last DAYS days within Altair's
# limit (25 x 180 = 4,500 cells) and on one screen.
COVERAGE_TERMINALS: Final = 25
# Declined sales per terminal-hour (a scatter of 440 x 200 px): the terminal-hours with the
# most declines; past about 2,000 circles the cloud is solid ink.
DECLINE_POINTS: Final = 2_000
# Categories' sales by hour (a heat map of 20-px rows): past 40 categories it is taller than a
# screen; the categories with the most sales are kept.
CATEGORY_ROWS: Final = 40
# Merchants by ticket and card mix (a log-scale scatter of 340 px): the merchants a finding
# names first, then those with the most sales, as for the peers' rate scatters.
MERCHANT_POINTS_TOP: Final = 1_000
MERCHANT_POINTS_SAMPLE: Final = 1_000
# A drill-down timeline (640 px, zoomable): every event the evidence names, and others up
# to this many. Its data function counts ordinary sales per hour past the same number
# (``drilldown.MAX_EVENTS``); the chart samples only if that was not enough.
TIMELINE_EVENTS: Final = 3_000


@dataclass(frozen=True)
class Shown:
    """The rows a chart draws, and what to say about those it left out (None: it drew all)."""

    frame: pl.DataFrame
    note: str | None = None


def _sorted(frame: pl.DataFrame, by: Sequence[str], descending: Sequence[bool]) -> pl.DataFrame:
    return frame.sort(list(by), descending=list(descending), nulls_last=True)


def top_and_sample(
    frame: pl.DataFrame,
    *,
    by: Sequence[str],
    descending: Sequence[bool],
    top: int,
    sample: int = 0,
    noun: str,
    ranked: str,
) -> Shown:
    """The first ``top`` rows in the order of ``by``, and a seeded sample of ``sample`` others.

    ``noun`` names the rows ('operators'), ``ranked`` what the first are ('furthest above
    their peers', 'most severe').

    Examples
    --------
    >>> frame = pl.DataFrame({"id": range(10), "rate": range(10)})
    >>> shown = top_and_sample(frame, by=["rate"], descending=[True], top=3, sample=2,
    ...     noun="operators", ranked="highest-rated")
    >>> shown.frame.height, shown.frame.get_column("id").head(3).to_list()
    (5, [9, 8, 7])
    >>> shown.note
    'the 3 highest-rated of 10 operators, and a random sample of 2 of the other 7 (seed 0)'
    """
    if frame.height <= top + sample:
        return Shown(frame)
    ordered = _sorted(frame, by, descending)
    head, rest = ordered.head(top), ordered.slice(top)
    if sample == 0:
        return Shown(head, f"the {top:,} {ranked} of {frame.height:,} {noun}")
    drawn = rest.sample(sample, seed=SAMPLE_SEED)
    return Shown(
        pl.concat([head, _sorted(drawn, by, descending)]),
        f"the {top:,} {ranked} of {frame.height:,} {noun}, and a random sample of {sample:,} "
        f"of the other {rest.height:,} (seed {SAMPLE_SEED})",
    )


def latest(frame: pl.DataFrame, column: str, *, limit: int, unit: str) -> Shown:
    """The rows of the last ``limit`` distinct values of ``column`` (a time), oldest first.

    >>> frame = pl.DataFrame({"day": [1, 1, 2, 3, 4], "events": [5, 6, 7, 8, 9]})
    >>> shown = latest(frame, "day", limit=2, unit="days")
    >>> shown.frame.get_column("day").to_list(), shown.note
    ([3, 4], 'the last 2 of 4 days')
    """
    values = frame.get_column(column).unique().sort()
    if values.len() <= limit:
        return Shown(frame)
    first = values.tail(limit).item(0)
    return Shown(
        frame.filter(pl.col(column) >= first), f"the last {limit:,} of {values.len():,} {unit}"
    )


def whole_groups(
    frame: pl.DataFrame,
    key: str,
    *,
    rank: pl.Expr,
    max_groups: int,
    max_rows: int,
    noun: str,
    ranked: str,
) -> Shown:
    """Whole groups of rows (all rows of a terminal), best ``rank`` first, within both bounds.

    A group is kept only with all its rows, so a chart summing a group shows its true total.

    >>> frame = pl.DataFrame({"terminal": ["a", "a", "b", "c", "c", "c"], "n": [1, 1, 5, 1, 1, 1]})
    >>> shown = whole_groups(frame, "terminal", rank=pl.col("n").sum(), max_groups=5,
    ...     max_rows=4, noun="terminals", ranked="with the most failures")
    >>> sorted(set(shown.frame.get_column("terminal"))), shown.note
    (['b', 'c'], 'the 2 terminals with the most failures, of 3')
    """
    groups = (
        frame.group_by(key)
        .agg(rank.alias("_rank"), pl.len().alias("_rows"))
        .sort(["_rank", key], descending=[True, False])
        .with_columns(pl.col("_rows").cum_sum().alias("_cumulative"))
    )
    kept = groups.filter(
        (pl.int_range(pl.len()) < max_groups) & (pl.col("_cumulative") <= max_rows)
    )
    if kept.height == groups.height:
        return Shown(frame)
    return Shown(
        frame.join(kept.select(key), on=key, how="semi"),
        f"the {kept.height:,} {noun} {ranked}, of {groups.height:,}",
    )


def sample_keeping(frame: pl.DataFrame, keep: pl.Expr, *, limit: int, kept: str) -> Shown:
    """Every row where ``keep`` holds, and a seeded sample of the others up to ``limit`` in all.

    >>> frame = pl.DataFrame({"id": range(10), "named": [True] * 2 + [False] * 8})
    >>> shown = sample_keeping(frame, pl.col("named"), limit=5,
    ...     kept="every event the evidence names")
    >>> shown.frame.height, shown.frame.get_column("named").sum(), shown.note
    (5, 2, 'every event the evidence names and a random sample of 3 of the other 8 (seed 0)')
    """
    if frame.height <= limit:
        return Shown(frame)
    always, others = frame.filter(keep), frame.filter(~keep)
    room = max(limit - always.height, 0)
    drawn = others.sample(min(room, others.height), seed=SAMPLE_SEED)
    return Shown(
        pl.concat([always, drawn]),
        f"{kept} and a random sample of {drawn.height:,} of the "
        f"other {others.height:,} (seed {SAMPLE_SEED})",
    )


def sample(frame: pl.DataFrame, limit: int) -> pl.DataFrame:
    """The frame, or a seeded sample of ``limit`` of its rows in their order when it is longer."""
    if frame.height <= limit:
        return frame
    return frame.with_row_index("_row").sample(limit, seed=SAMPLE_SEED).sort("_row").drop("_row")
