"""The frames behind notebooks/12-auditors-classics.py: the auditor's classic tests on the
store's amounts (docs/classics.md), each read with the store opened read-only for it."""

from __future__ import annotations

import polars as pl

from posaudit.classics import ageing as ag
from posaudit.classics import benford as bf
from posaudit.classics import duplicates as dup
from posaudit.classics import gaps as gp
from posaudit.classics import sampling as sm
from posaudit.classics import strata as st
from posaudit.notebook import charts
from posaudit.notebook.session import Audit, plain_strings, read_only

# The rule that turns the first-two digits test into findings (posaudit.score.merchants).
INVENTED_AMOUNTS_RULE = "invented_amounts"


def benford(audit: Audit, test: bf.Test) -> bf.Result | None:
    """One Benford test on the store's approved sales (None: no sale to test)."""
    with read_only(audit.db) as store:
        results = bf.benford(store, test)
    return results[0] if results else None


def benford_tests(audit: Audit) -> list[bf.Result]:
    """Every Benford test on the store's approved sales, in order (none: no sale)."""
    return [r for r in (benford(audit, t) for t in bf.TESTS) if r is not None]


def benford_chart_of(result: bf.Result) -> object:
    """The chart of one test's digit combinations against Benford's, with Nigrini's bands of
    the test in its subtitle."""
    bands = bf.BANDS.get(result.test)
    text = (
        f"Nigrini's bands: close to {bands[0]:g}, acceptable to {bands[1]:g}, "
        f"marginal to {bands[2]:g}"
        if bands
        else "no published bands: the chi-square decides"
    )
    return charts.benford_chart(
        benford_curve(result),
        test=result.test,
        n=result.n,
        mad=result.mad,
        band=result.band,
        bounds_text=text,
    )


def benford_curve(result: bf.Result) -> pl.DataFrame:
    """A test's digit combinations: digit, found and expected shares, Z, and whether it is a
    spike (found above expected, Z over 1.96)."""
    return result.table.select(
        "digit",
        "count",
        "found",
        "expected",
        "z",
        ((pl.col("difference") > 0) & (pl.col("z") > bf.SPIKE_Z)).alias("spike"),
    )


def benford_summary(results: list[bf.Result]) -> pl.DataFrame:
    """One row a test: amounts, MAD, band, chi-square, p and spikes."""
    return pl.DataFrame(
        [
            {
                "test": r.test.replace("_", " "),
                "amounts": r.n,
                "MAD": round(r.mad, 5),
                "band": r.band or "no published bands",
                "chi_square": round(r.chi_square, 1),
                "p": r.p_value,
                "spikes": bf.spike_text(r),
            }
            for r in results
        ],
        schema={
            "test": pl.String,
            "amounts": pl.Int64,
            "MAD": pl.Float64,
            "band": pl.String,
            "chi_square": pl.Float64,
            "p": pl.Float64,
            "spikes": pl.String,
        },
    )


def benford_merchants(audit: Audit, *, min_rows: int = bf.MIN_ROWS) -> pl.DataFrame:
    """The first-two digits test per merchant of ``min_rows`` amounts or more, least conforming
    first, with its category and whether a finding of invented amounts names it."""
    with read_only(audit.db) as store:
        results = bf.benford(store, "first_two", by="merchant", min_rows=min_rows)
    named = set(invented_findings(audit)["entity_id"].to_list())
    frame = pl.DataFrame(
        [
            {
                "merchant_id": r.entity,
                "amounts": r.n,
                "MAD": round(r.mad, 5),
                "band": r.band,
                "spikes": bf.spike_text(r),
            }
            for r in results
        ],
        schema={
            "merchant_id": pl.String,
            "amounts": pl.Int64,
            "MAD": pl.Float64,
            "band": pl.String,
            "spikes": pl.String,
        },
    )
    categories = audit.table("merchants").select("merchant_id", pl.col("category").cast(pl.String))
    return frame.join(categories, on="merchant_id", how="left").with_columns(
        pl.col("merchant_id").is_in(list(named)).alias("invented_amounts_finding")
    )


def invented_findings(audit: Audit) -> pl.DataFrame:
    """The run's findings of invented amounts, strongest first."""
    return (
        audit.findings()
        .filter(pl.col("rule") == INVENTED_AMOUNTS_RULE)
        .select("severity", "score", "entity_id", "window_start", "summary")
        .sort("score", "entity_id", descending=[True, False])
    )


def strata(audit: Audit, kind: st.Kind = "sale") -> st.Strata:
    """The approved ``kind`` amounts by the default strata (the amounts' quantiles)."""
    with read_only(audit.db) as store:
        return st.strata(store, kind)


def strata_table(found: st.Strata) -> pl.DataFrame:
    """The strata as an auditor reads them: bounds and mean in CNY, counts, shares."""
    return found.table.select(
        "stratum",
        (pl.col("lower_fen") / 100).alias("from_cny"),
        (pl.col("upper_fen") / 100).alias("below_cny"),
        "count",
        "count_share",
        (pl.col("amount_fen") / 100).alias("amount_cny"),
        "amount_share",
        (pl.col("mean_fen") / 100).round(2).alias("mean_cny"),
    )


def duplicates(audit: Audit) -> dup.Duplicates:
    with read_only(audit.db) as store:
        return dup.duplicates(store)


def duplicate_totals(found: dup.Duplicates) -> pl.DataFrame:
    """Per kind of pair: pairs and the amount of the later sales, in CNY."""
    return found.totals().select("kind", "pairs", (pl.col("amount_fen") / 100).alias("amount_cny"))


def largest_duplicates(found: dup.Duplicates, limit: int = 50) -> pl.DataFrame:
    return plain_strings(found.largest(limit))


def gaps(audit: Audit) -> gp.Gaps:
    with read_only(audit.db) as store:
        return gp.gaps(store)


def ageing(audit: Audit) -> ag.Ageing:
    with read_only(audit.db) as store:
        return ag.ageing(store)


def refund_ages(found: ag.Ageing) -> pl.DataFrame:
    """Refunds by days after their sale, in the bands' order, amounts in CNY."""
    return found.refunds.with_columns(
        (pl.col("amount_fen") / 100).alias("amount_cny"),
        pl.int_range(pl.len()).alias("order"),
    ).drop("amount_fen")


def sample_size(confidence: float, tolerable: float, expected: float) -> int:
    """The AICPA monetary-unit sample size (:func:`posaudit.classics.sampling.sample_size`)."""
    return sm.sample_size(confidence, tolerable, expected)


def sample_line(sample: sm.Sample) -> str:
    """What a monetary-unit sample drew, in a sentence."""
    return (
        f"{sample.size} units: {sample.items.height:,} of {sample.population_items:,} sales "
        f"worth {sample.population_fen / 100:,.2f} CNY, one every "
        f"{(sample.interval_fen or 0) / 100:,.2f} CNY from a random start (seed {sample.seed})"
    )


def monetary_unit_sample(audit: Audit, size: int, *, seed: int) -> sm.Sample:
    """A monetary-unit sample of ``size`` units of the approved sales (not written anywhere:
    ``posaudit sample draw`` writes the file to test)."""
    with read_only(audit.db) as store:
        return sm.monetary_unit(store, size, seed=seed)


def sample_items(sample: sm.Sample) -> pl.DataFrame:
    return plain_strings(
        sample.items.select(
            "txn_id",
            "ts",
            "merchant_id",
            "terminal_id",
            (pl.col("amount_fen") / 100).alias("book_cny"),
            "hits",
        )
    )


__all__ = [
    "ageing",
    "benford",
    "benford_chart_of",
    "benford_curve",
    "benford_merchants",
    "benford_summary",
    "benford_tests",
    "duplicate_totals",
    "duplicates",
    "gaps",
    "invented_findings",
    "largest_duplicates",
    "monetary_unit_sample",
    "refund_ages",
    "sample_items",
    "sample_line",
    "sample_size",
    "strata",
    "strata_table",
]
