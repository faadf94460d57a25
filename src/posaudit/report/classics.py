"""The report's section of the auditor's classics (docs/classics.md): Benford's tests on the
store's sales, the sales by stratum, duplicate sales, gaps, ageing, and the sample size an
auditor would test by hand; and the workbook's sheet of each.

The figures are read with their own read-only connection, so the report can compute them
beside its other work (:func:`start`): on a 10 M-event store they take seconds.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import altair as alt
import polars as pl
from markupsafe import Markup

from posaudit.classics import ageing as ag
from posaudit.classics import benford as bf
from posaudit.classics import duplicates as dup
from posaudit.classics import gaps as gp
from posaudit.classics import sampling as sm
from posaudit.classics import strata as st
from posaudit.report import charts
from posaudit.report.translations import AGE_BANDS, Language, label, text
from posaudit.store import Store

# The sample size the section states: the AICPA Guide's example parameters.
SAMPLE_CONFIDENCE: Final = 0.95
SAMPLE_TOLERABLE: Final = 0.05
SAMPLE_EXPECTED: Final = 0.01
# Rows listed in the page; the workbook holds them all.
LISTED: Final = 10
BAND_KEYS: Final = {
    "close conformity": "band_close",
    "acceptable conformity": "band_acceptable",
    "marginally acceptable conformity": "band_marginal",
    "nonconformity": "band_nonconformity",
}


@dataclass(frozen=True)
class Figures:
    """What the section and the sheets show, read from the store."""

    benford: list[bf.Result]
    strata: st.Strata
    duplicates: dup.Duplicates
    gaps: gp.Gaps
    ageing: ag.Ageing
    sample_size: int
    population_items: int
    population_fen: int


def figures(db: Path | str) -> Figures:
    """The classics on the store's sales, with a read-only connection of their own."""
    store = Store.open(db, read_only=True)
    try:
        results = [r for t in bf.TESTS for r in bf.benford(store, t)]
        items, fen = sm.population_size(store, "sale")
        return Figures(
            benford=results,
            strata=st.strata(store, "sale"),
            duplicates=dup.duplicates(store),
            gaps=gp.gaps(store),
            ageing=ag.ageing(store),
            sample_size=sm.sample_size(SAMPLE_CONFIDENCE, SAMPLE_TOLERABLE, SAMPLE_EXPECTED),
            population_items=items,
            population_fen=fen,
        )
    finally:
        store.close()


def start(db: Path | str) -> Future[Figures]:
    """:func:`figures` in a thread of its own: the store does the work, outside the GIL."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classics")
    job = pool.submit(figures, db)
    pool.shutdown(wait=False)
    return job


def _cny(fen: float | None) -> str:
    return "—" if fen is None else f"{fen / 100:,.2f}"


def _band(result: bf.Result, lang: Language) -> str:
    return text(BAND_KEYS[result.band], lang) if result.band else text("band_none", lang)


def _test_name(test: str, lang: Language) -> str:
    return text(f"benford_{test}", lang)


def benford_chart(result: bf.Result, lang: Language) -> str:
    """The first-two digits' found shares (bars, spikes in red) against Benford's (the line),
    as SVG."""
    frame = result.table.select(
        "digit",
        "found",
        "expected",
        ((pl.col("difference") > 0) & (pl.col("z") > bf.SPIKE_Z)).alias("spike"),
    )
    x = alt.X("digit:O", title=text("classics_digits", lang), axis=alt.Axis(labelOverlap=True))
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("found:Q", title=text("classics_share", lang), axis=alt.Axis(format="%")),
            color=alt.condition(alt.datum.spike, alt.value("#b91c1c"), alt.value("#9ecae1")),
        )
    )
    line = alt.Chart(frame).mark_line(color=charts.INK, strokeWidth=1.5).encode(x=x, y="expected:Q")
    chart = alt.layer(bars, line).properties(width=charts.CHART_WIDTH, height=180)
    return charts.chart_svg(chart)


def section(found: Figures, lang: Language, *, number: int) -> dict[str, Any]:
    """The section's content, in ``lang``."""
    first_two = next((r for r in found.benford if r.test == "first_two"), None)
    benford_rows = [
        {
            "test": _test_name(r.test, lang),
            "amounts": f"{r.n:,}",
            "mad": f"{r.mad:.5f}",
            "band": _band(r, lang),
            "chi_square": f"{r.chi_square:,.1f}",
            "spikes": bf.spike_text(r),
        }
        for r in found.benford
    ]
    strata_rows = [
        {
            "amounts": (
                text("stratum_under", lang, upper=_cny(row["upper_fen"]))
                if row["lower_fen"] is None
                else text("stratum_over", lang, lower=_cny(row["lower_fen"]))
                if row["upper_fen"] is None
                else text(
                    "stratum_between",
                    lang,
                    lower=_cny(row["lower_fen"]),
                    upper=_cny(row["upper_fen"]),
                )
            ),
            "count": f"{row['count']:,}",
            "count_share": f"{row['count_share']:.1%}",
            "amount": _cny(row["amount_fen"]),
            "amount_share": f"{row['amount_share']:.1%}",
        }
        for row in found.strata.table.iter_rows(named=True)
    ]
    duplicate_rows = [
        {
            "kind": text(f"duplicate_{kind}", lang),
            "pairs": f"{pairs:,}",
            "amount": _cny(amount),
        }
        for kind, pairs, amount in found.duplicates.totals().iter_rows()
    ]
    traces = found.gaps.trace_totals()
    days = found.gaps.day_totals()
    refund_rows = [
        {"band": label(AGE_BANDS, band, lang), "refunds": f"{n:,}", "amount": _cny(amount)}
        for band, n, amount in found.ageing.refunds.iter_rows()
    ]
    interval = found.population_fen / found.sample_size if found.population_fen else None
    return {
        "number": number,
        "benford": benford_rows,
        "benford_chart": Markup(benford_chart(first_two, lang)) if first_two else None,
        "strata": strata_rows,
        "duplicates": duplicate_rows,
        "gaps": text(
            "gaps_line",
            lang,
            missing=f"{traces['missing_trace_numbers']:,}",
            gaps=f"{traces['gaps']:,}",
            batches=f"{traces['batches']:,}",
            terminals=f"{traces['terminals']:,}",
            days=f"{days['missing_days']:,}",
            day_terminals=f"{days['terminals']:,}",
        ),
        "refunds": refund_rows,
        "sample": text(
            "sample_line",
            lang,
            size=f"{found.sample_size:,}",
            items=f"{found.population_items:,}",
            amount=_cny(found.population_fen),
            interval=_cny(interval),
        )
        if interval
        else text("sample_empty", lang),
    }


def sheets(found: Figures, lang: Language) -> list[tuple[str, pl.DataFrame]]:
    """The workbook's sheet of each classic: its name in ``lang`` and its rows."""
    benford = (
        pl.concat(
            [
                r.table.select(
                    pl.lit(_test_name(r.test, lang)).alias(text("classics_test", lang)),
                    pl.col("digit").alias(text("classics_digits", lang)),
                    pl.col("count").alias(text("classics_count", lang)),
                    pl.col("found").alias(text("classics_found", lang)),
                    pl.col("expected").alias(text("classics_expected", lang)),
                    pl.col("z").round(3).alias("Z"),
                )
                for r in found.benford
            ]
        )
        if found.benford
        else pl.DataFrame()
    )
    strata = found.strata.table.select(
        pl.col("stratum").alias(text("classics_stratum", lang)),
        (pl.col("lower_fen") / 100).alias(text("classics_from", lang)),
        (pl.col("upper_fen") / 100).alias(text("classics_below", lang)),
        pl.col("count").alias(text("classics_count", lang)),
        pl.col("count_share").alias(text("classics_count_share", lang)),
        (pl.col("amount_fen") / 100).alias(text("classics_amount", lang)),
        pl.col("amount_share").alias(text("classics_amount_share", lang)),
    )
    duplicates = (
        found.duplicates.pairs.select(
            pl.col("kind")
            .cast(pl.String)
            .replace_strict({k: text(f"duplicate_{k}", lang) for k in dup.KINDS})
            .alias(text("classics_kind", lang)),
            pl.exclude("kind"),
        )
        .with_columns(
            (pl.col("amount_fen") / 100).alias("amount_fen"),
        )
        .rename({"amount_fen": text("classics_amount", lang)})
    )
    gaps = found.gaps.traces
    silent = found.gaps.days
    bands = {band: label(AGE_BANDS, band, lang) for band in AGE_BANDS}
    refunds = found.ageing.refunds.select(
        pl.col("band").replace(bands).alias(text("classics_age", lang)),
        pl.col("refunds").alias(text("classics_refunds", lang)),
        (pl.col("amount_fen") / 100).alias(text("classics_amount", lang)),
    )
    return [
        (text("sheet_benford", lang), benford),
        (text("sheet_strata", lang), strata),
        (text("sheet_duplicates", lang), duplicates),
        (text("sheet_trace_gaps", lang), gaps),
        (text("sheet_silent_days", lang), silent),
        (text("sheet_refund_ageing", lang), refunds),
        (
            text("sheet_findings_ageing", lang),
            found.ageing.findings.with_columns(pl.col("band").replace(bands)),
        ),
    ]


__all__ = ["Figures", "figures", "section", "sheets", "start"]
