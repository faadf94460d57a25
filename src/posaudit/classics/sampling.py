"""Audit sampling: how many items to test, which ones, and what the tested sample says of the
whole population (docs/classics.md).

Three parts, each as the AICPA Audit Guide *Audit Sampling* defines it:

- **Sample size** for a monetary-unit (MUS) sample: the smallest *n* whose upper misstatement
  limit, were the expected misstatement found, stays within the tolerable one. With the
  Poisson model (the gamma distribution of the AICPA tables, Stewart's technical notes),
  that is the smallest *n* with ``GammaInv(confidence, 1 + n * expected) <= n * tolerable``,
  both misstatements as shares of the population's value.
- **Selection**, seeded and reproducible: a monetary-unit sample (probability proportional
  to size, systematic from a random start: each item holds as many units as fen, and the
  item holding unit ``start + k * interval`` is drawn for k = 0 .. n - 1), or a stratified
  random sample (strata of amount; the sample shared out by the strata's value, at least one
  item from each stratum that has any). Findings are sampled stratified by family. The same
  seed on the same population gives the same sample.
- **Evaluation** of the tested sample, when it comes back with what the auditor found:
  - a monetary-unit sample: the upper misstatement limit (UML) by the Stringer bound of the
    AICPA Guide: basic precision, the projected misstatement of each tainting and its
    incremental allowance from the Poisson confidence factors (3.00, 4.75, 6.30, 7.76, 9.16
    at 95 %). Items as large as the interval or larger are tested whole and add their
    misstatement as found, unprojected;
  - a stratified sample: the difference estimate per stratum, and its one-sided upper limit
    at the confidence (normal approximation, finite population correction);
  - a sample of findings: the share of deviations (findings that did not hold up) and its
    upper limit at the confidence (exact binomial, as the AICPA attribute tables).

The amounts are fen throughout; the sample's file shows CNY for the auditor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import polars as pl
from scipy.stats import beta, gamma, norm

from posaudit.classics import strata as st
from posaudit.store import Store

Method = Literal["mus", "stratified"]
METHODS: Final[tuple[Method, ...]] = ("mus", "stratified")
Population = Literal["transactions", "findings"]
POPULATIONS: Final[tuple[Population, ...]] = ("transactions", "findings")
# The largest sample size this module computes: past it the expected misstatement is too close
# to the tolerable one for any sample to tell them apart.
MAX_SAMPLE: Final = 1_000_000


class SamplingError(ValueError):
    """A sampling request or a tested sample that cannot be used, said in one line."""


def confidence_factor(errors: int, confidence: float) -> float:
    """The Poisson confidence factor: the upper limit, at ``confidence``, of the mean number of
    misstatements in a sample that found ``errors`` (the AICPA Guide's MUS evaluation table;
    3.00, 4.75, 6.30, ... at 95 %)."""
    return float(gamma.ppf(confidence, errors + 1))


def _check_rates(confidence: float, tolerable: float, expected: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise SamplingError(f"the confidence must lie between 0 and 1, got {confidence}")
    if not 0.0 < tolerable < 1.0:
        raise SamplingError(f"the tolerable misstatement must lie between 0 and 1, got {tolerable}")
    if not 0.0 <= expected < tolerable:
        raise SamplingError(
            f"the expected misstatement must be at least 0 and below the tolerable "
            f"({tolerable}), got {expected}"
        )


def sample_size(confidence: float, tolerable: float, expected: float = 0.0) -> int:
    """The MUS sample size: the smallest n with GammaInv(confidence, 1 + n * expected) at most
    n * tolerable (the AICPA Guide's table: 93 at 95 % confidence, 5 % tolerable and 1 %
    expected misstatement)."""
    _check_rates(confidence, tolerable, expected)
    start = 1
    chunk = 4_096
    while start <= MAX_SAMPLE:
        n = np.arange(start, start + chunk, dtype=np.float64)
        fits = gamma.ppf(confidence, 1.0 + n * expected) <= n * tolerable
        if fits.any():
            return int(n[int(np.argmax(fits))])
        start += chunk
        chunk *= 2
    raise SamplingError(
        f"no sample of up to {MAX_SAMPLE:,} items tells {expected} expected from {tolerable} "
        "tolerable misstatement: expect less or tolerate more"
    )


# --- selection ------------------------------------------------------------------------------

KIND_SQL: Final = "kind = $kind AND status = 'approved' AND amount_fen > 0"
# The columns of a transaction in a sample, in order.
TRANSACTION_COLUMNS: Final = (
    "txn_id",
    "ts",
    "merchant_id",
    "terminal_id",
    "operator_id",
    "kind",
    "amount_fen",
)
FINDING_COLUMNS: Final = (
    "finding_id",
    "family",
    "rule",
    "severity",
    "entity_type",
    "entity_id",
    "merchant_id",
    "window_start",
    "window_end",
    "summary",
)


@dataclass(frozen=True)
class Sample:
    """A drawn sample: ``items`` (one row per item drawn, in the population's order) and what
    is needed to evaluate it once tested."""

    population: Population
    method: Method
    seed: int
    size: int  # the sample size asked for (units for MUS, items for stratified)
    population_items: int
    population_fen: int  # 0 for findings
    items: pl.DataFrame
    confidence: float | None = None
    tolerable: float | None = None
    expected: float | None = None
    interval_fen: float | None = None  # MUS
    start_fen: float | None = None  # MUS: the first unit drawn
    strata: pl.DataFrame = field(default_factory=pl.DataFrame)  # stratum, bounds, items, fen


def _order_sql() -> str:
    # the population's order: what makes the same seed draw the same items
    return "ORDER BY ts, txn_id"


def _check_kind(kind: str) -> None:
    if kind not in st.KINDS:
        raise SamplingError(f"unknown kind {kind!r}: one of {', '.join(st.KINDS)}")


def population_size(store: Store, kind: str) -> tuple[int, int]:
    """The approved ``kind`` transactions of a positive amount: how many, and their fen."""
    _check_kind(kind)
    row = store.frame(
        f"SELECT COUNT(*) AS n, CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS fen "
        f"FROM transactions WHERE {KIND_SQL}",
        {"kind": kind},
    )
    return int(row["n"][0]), int(row["fen"][0])


def monetary_unit(store: Store, size: int, *, seed: int, kind: str = "sale") -> Sample:
    """A monetary-unit sample of ``size`` units of the approved ``kind`` amounts: systematic
    from a random start in the first interval. An item as large as the interval or larger is
    drawn for certain, and ``hits`` says how many of the units drawn it holds."""
    if size < 1:
        raise SamplingError(f"the sample size must be at least 1, got {size}")
    items, total = population_size(store, kind)
    if total == 0:
        empty = store.frame(
            f"SELECT {', '.join(TRANSACTION_COLUMNS)}, 0 AS hits FROM transactions LIMIT 0"
        )
        return Sample("transactions", "mus", seed, size, 0, 0, empty)
    interval = total / size
    # a start in (0, interval]: the unit that starts the selection
    start = interval * (1.0 - np.random.default_rng(seed).random())
    # an item holds the units (cum - amount, cum]; the units drawn are start + k * interval
    found = store.frame(
        f"""
        WITH ordered AS (
            SELECT {", ".join(TRANSACTION_COLUMNS)},
                SUM(amount_fen) OVER ({_order_sql()} ROWS UNBOUNDED PRECEDING) AS cum
            FROM transactions WHERE {KIND_SQL}
        )
        SELECT * EXCLUDE (cum, hits), CAST(hits AS BIGINT) AS hits FROM (
            SELECT *, FLOOR((cum - $start) / $interval)
                - FLOOR((cum - amount_fen - $start) / $interval) AS hits
            FROM ordered
        ) WHERE hits > 0
        {_order_sql()}
        """,
        {"kind": kind, "start": start, "interval": interval},
    )
    return Sample(
        "transactions",
        "mus",
        seed,
        size,
        items,
        total,
        found,
        interval_fen=interval,
        start_fen=float(start),
    )


def allocate(sizes: list[int], weights: list[float], total: int) -> list[int]:
    """Share ``total`` items among strata of ``sizes`` items in proportion to ``weights``: at
    least one from each stratum that has any (the heaviest first when there are fewer items
    than strata), never more than a stratum has, what whole parts leave over to the largest
    fractions (ties: the earlier stratum)."""
    total = min(total, sum(sizes))
    share = [0] * len(sizes)
    nonempty = sorted((i for i, s in enumerate(sizes) if s > 0), key=lambda i: (-weights[i], i))
    for i in nonempty[:total]:
        share[i] = 1
    left = total - sum(share)
    while left > 0:
        room = [i for i in sorted(nonempty) if share[i] < sizes[i]]
        weight = sum(weights[i] for i in room)
        ideal = {i: left * (weights[i] / weight if weight > 0 else 1 / len(room)) for i in room}
        given = 0
        for i in room:
            more = min(int(ideal[i]), sizes[i] - share[i])
            share[i] += more
            given += more
        left -= given
        if left > 0 and given == 0:
            # each ideal part is under one item, so fewer items are left than strata with room
            for i in sorted(room, key=lambda i: (-(ideal[i] % 1), i))[:left]:
                share[i] += 1
            left = 0
    return share


def _draw_within(
    store: Store, source_sql: str, strata: pl.DataFrame, share: list[int], seed: int, order: str
) -> pl.DataFrame:
    """Rows drawn at random without replacement within each stratum: the ``share`` of each,
    from ``source_sql``'s rows numbered in ``order`` within their stratum."""
    rng = np.random.default_rng(seed)
    stratum_ids, positions = [], []
    for (stratum, items), take in zip(
        strata.select("stratum", "items").iter_rows(), share, strict=True
    ):
        if take == 0:
            continue
        chosen = np.sort(rng.choice(items, size=take, replace=False)) + 1
        stratum_ids.extend([stratum] * take)
        positions.extend(chosen.tolist())
    picks = pl.DataFrame(
        {"stratum": stratum_ids, "position": positions},
        schema={"stratum": strata["stratum"].dtype, "position": pl.Int64},
    )
    return store.frame_with(
        f"""
        SELECT s.* EXCLUDE (position) FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY stratum {order}) AS position
            FROM ({source_sql}) AS src
        ) AS s
        SEMI JOIN picks AS p ON p.stratum = s.stratum AND p.position = s.position
        ORDER BY s.stratum, s.position
        """,
        picks=picks,
    )


def stratified(
    store: Store,
    size: int,
    *,
    seed: int,
    kind: str = "sale",
    bounds_fen: tuple[int, ...] | None = None,
) -> Sample:
    """A stratified random sample of ``size`` approved ``kind`` transactions: strata of amount
    (``bounds_fen``, by default the amounts' quantiles as ``posaudit analyze strata`` draws
    them), the sample shared out by the strata's value."""
    if size < 1:
        raise SamplingError(f"the sample size must be at least 1, got {size}")
    items, total = population_size(store, kind)
    bounds = st.quantile_bounds(store, kind) if bounds_fen is None else tuple(bounds_fen)  # type: ignore[arg-type]
    if list(bounds) != sorted(set(bounds)):
        raise SamplingError(f"the bounds must rise, each once: {', '.join(map(str, bounds))}")
    source = (
        f"SELECT {', '.join(TRANSACTION_COLUMNS)}, "
        f"CAST({st.stratum_sql(bounds)} AS BIGINT) AS stratum "
        f"FROM transactions WHERE kind = '{kind}' AND status = 'approved' AND amount_fen > 0"
    )
    counted = store.frame(
        f"SELECT stratum, COUNT(*) AS items, CAST(SUM(amount_fen) AS BIGINT) AS fen "
        f"FROM ({source}) GROUP BY stratum"
    )
    every = st.bounds_frame(bounds).cast({"stratum": pl.Int64})
    strata = (
        every.join(counted.cast({"stratum": pl.Int64}), on="stratum", how="left")
        .with_columns(pl.col("items", "fen").fill_null(0).cast(pl.Int64))
        .sort("stratum")
    )
    share = allocate(strata["items"].to_list(), strata["fen"].cast(pl.Float64).to_list(), size)
    strata = strata.with_columns(pl.Series("drawn", share, dtype=pl.Int64))
    drawn = (
        _draw_within(store, source, strata, share, seed, _order_sql())
        if items
        else store.frame(f"SELECT * FROM ({source}) LIMIT 0")
    )
    return Sample("transactions", "stratified", seed, size, items, total, drawn, strata=strata)


def findings_sample(store: Store, size: int, *, seed: int) -> Sample:
    """A stratified random sample of ``size`` open findings, by family, shared out by how many
    each family has (at least one from each)."""
    if size < 1:
        raise SamplingError(f"the sample size must be at least 1, got {size}")
    source = (
        f"SELECT {', '.join(FINDING_COLUMNS)}, family AS stratum "
        "FROM findings WHERE status = 'open'"
    )
    strata = store.frame(
        f"SELECT stratum, COUNT(*) AS items FROM ({source}) GROUP BY stratum ORDER BY stratum"
    ).with_columns(pl.col("items").cast(pl.Int64))
    share = allocate(strata["items"].to_list(), strata["items"].cast(pl.Float64).to_list(), size)
    strata = strata.with_columns(pl.Series("drawn", share, dtype=pl.Int64))
    items = int(strata["items"].sum()) if strata.height else 0
    drawn = (
        _draw_within(store, source, strata, share, seed, "ORDER BY finding_id")
        if items
        else store.frame(f"SELECT * FROM ({source}) LIMIT 0")
    )
    return Sample("findings", "stratified", seed, size, items, 0, drawn, strata=strata)


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Misstatement:
    """One tested item's misstatement: book less audited, in fen (positive: overstated)."""

    item: str
    book_fen: int
    audited_fen: int
    hits: int = 1
    stratum: int | None = None

    @property
    def difference_fen(self) -> int:
        return self.book_fen - self.audited_fen


@dataclass(frozen=True)
class MusEvaluation:
    """What a tested monetary-unit sample says of its population (fen)."""

    confidence: float
    interval_fen: float
    items_tested: int
    overstatements: int  # in the items below the interval
    known_fen: int  # the misstatement found in the items tested whole
    basic_precision_fen: float
    projected_fen: float  # the projected overstatement of the items below the interval
    allowance_fen: float  # the incremental allowance for sampling risk
    upper_limit_fen: float  # the UML: overstatement of the population at the confidence
    understatement_fen: float  # the projected understatement (a point estimate, not bounded)
    taintings: tuple[float, ...]  # the overstatement taintings, largest first

    def as_dict(self) -> dict[str, object]:
        return {
            "method": "mus",
            "confidence": self.confidence,
            "interval_fen": self.interval_fen,
            "items_tested": self.items_tested,
            "overstatements": self.overstatements,
            "taintings": list(self.taintings),
            "known_fen": self.known_fen,
            "basic_precision_fen": self.basic_precision_fen,
            "projected_fen": self.projected_fen,
            "allowance_fen": self.allowance_fen,
            "upper_limit_fen": self.upper_limit_fen,
            "understatement_fen": self.understatement_fen,
        }


def evaluate_mus(
    tested: list[Misstatement],
    *,
    confidence: float,
    interval_fen: float,
    population_fen: int,
) -> MusEvaluation:
    """The Stringer bound of the AICPA Guide on a tested monetary-unit sample.

    Items of ``interval_fen`` or more were tested whole: their overstatement adds as found.
    For each other item, its tainting t = (book - audited) / book, at most 1, projects t times
    the interval. UML = known + F(0) x interval + the projections, largest tainting first, each
    times (F(i) - F(i - 1)), F being the confidence factors. The sampled part is never put
    above the value it holds: a population made only of items tested whole has no basic
    precision.
    """
    if not 0.0 < confidence < 1.0:
        raise SamplingError(f"the confidence must lie between 0 and 1, got {confidence}")
    whole = [m for m in tested if m.book_fen >= interval_fen]
    sampled = [m for m in tested if m.book_fen < interval_fen]
    known = sum(max(m.difference_fen, 0) for m in whole)
    taint = sorted(
        (min(m.difference_fen / m.book_fen, 1.0) for m in sampled if m.difference_fen > 0),
        reverse=True,
    )
    under = sum(max(-m.difference_fen, 0) / m.book_fen * interval_fen for m in sampled) + sum(
        max(-m.difference_fen, 0) for m in whole
    )
    rest_fen = population_fen - sum(m.book_fen for m in whole)
    factors = [confidence_factor(k, confidence) for k in range(len(taint) + 1)]
    basic = factors[0] * interval_fen if rest_fen > 0 else 0.0
    projected = sum(t * interval_fen for t in taint)
    bound = basic + sum(
        t * interval_fen * (factors[i + 1] - factors[i]) for i, t in enumerate(taint)
    )
    bound = min(bound, float(max(rest_fen, 0)))
    allowance = max(bound - basic - projected, 0.0)
    return MusEvaluation(
        confidence=confidence,
        interval_fen=interval_fen,
        items_tested=len(tested),
        overstatements=len(taint),
        known_fen=known,
        basic_precision_fen=basic,
        projected_fen=projected,
        allowance_fen=allowance,
        upper_limit_fen=known + bound,
        understatement_fen=under,
        taintings=tuple(taint),
    )


@dataclass(frozen=True)
class StratifiedEvaluation:
    """The difference estimate of a tested stratified sample (fen): per stratum and whole."""

    confidence: float
    strata: pl.DataFrame  # stratum, items, tested, book_fen, difference_fen, projected_fen, se_fen
    projected_fen: float
    standard_error_fen: float
    upper_limit_fen: float

    def as_dict(self) -> dict[str, object]:
        return {
            "method": "stratified",
            "confidence": self.confidence,
            "projected_fen": self.projected_fen,
            "standard_error_fen": self.standard_error_fen,
            "upper_limit_fen": self.upper_limit_fen,
            "strata": self.strata.to_dicts(),
        }


def evaluate_stratified(
    tested: list[Misstatement], *, confidence: float, strata: dict[int, int]
) -> StratifiedEvaluation:
    """The stratified difference estimate: each stratum's mean misstatement (book less
    audited) times its items, summed; its standard error with the finite population
    correction; the one-sided upper limit at ``confidence`` (normal). With no misstatement in a
    stratum its error is 0: the limit then says only what was found, as the method does."""
    if not 0.0 < confidence < 1.0:
        raise SamplingError(f"the confidence must lie between 0 and 1, got {confidence}")
    rows = []
    for stratum in sorted(strata):
        items = strata[stratum]
        found = [m for m in tested if m.stratum == stratum]
        n = len(found)
        if n > items:
            raise SamplingError(
                f"stratum {stratum} holds {items} items but {n} were tested from it"
            )
        diffs = np.array([m.difference_fen for m in found], dtype=np.float64)
        mean = float(diffs.mean()) if n else 0.0
        variance = float(diffs.var(ddof=1)) if n > 1 else 0.0
        se = items * math.sqrt((1 - n / items) * variance / n) if n and items else 0.0
        rows.append(
            {
                "stratum": stratum,
                "items": items,
                "tested": n,
                "book_fen": int(sum(m.book_fen for m in found)),
                "difference_fen": int(diffs.sum()) if n else 0,
                "projected_fen": items * mean,
                "se_fen": se,
            }
        )
    table = pl.DataFrame(
        rows,
        schema={
            "stratum": pl.Int64,
            "items": pl.Int64,
            "tested": pl.Int64,
            "book_fen": pl.Int64,
            "difference_fen": pl.Int64,
            "projected_fen": pl.Float64,
            "se_fen": pl.Float64,
        },
    )
    projected = float(table["projected_fen"].sum())
    se = math.sqrt(float((table["se_fen"] ** 2).sum()))
    return StratifiedEvaluation(
        confidence=confidence,
        strata=table,
        projected_fen=projected,
        standard_error_fen=se,
        upper_limit_fen=projected + float(norm.ppf(confidence)) * se,
    )


@dataclass(frozen=True)
class AttributeEvaluation:
    """A tested sample of findings: how many did not hold up, and the upper limit of that
    share in the population at the confidence."""

    confidence: float
    tested: int
    deviations: int
    population_items: int

    @property
    def rate(self) -> float:
        return self.deviations / self.tested if self.tested else 0.0

    @property
    def upper_rate(self) -> float:
        """The exact binomial (Clopper-Pearson) one-sided upper limit of the deviation rate."""
        if self.tested == 0:
            return 0.0
        if self.deviations >= self.tested:
            return 1.0
        return float(beta.ppf(self.confidence, self.deviations + 1, self.tested - self.deviations))

    def as_dict(self) -> dict[str, object]:
        return {
            "method": "attribute",
            "confidence": self.confidence,
            "tested": self.tested,
            "deviations": self.deviations,
            "population_items": self.population_items,
            "rate": self.rate,
            "upper_rate": self.upper_rate,
        }


# --- the sample's file ----------------------------------------------------------------------

# What the auditor fills in: the audited amount of a transaction (CNY), or whether a finding
# did not hold up (a deviation: yes or no); and a note of their own.
AUDITED: Final = "audited_cny"
DEVIATION: Final = "deviation"
NOTE: Final = "note"
# What every row carries so that the file alone can be evaluated, however it was sorted.
PARAMETERS: Final = (
    "method",
    "population",
    "seed",
    "confidence",
    "interval_cny",
    "population_cny",
    "population_items",
    "stratum_items",
)


def _cny(fen: pl.Expr) -> pl.Expr:
    """Fen as CNY text with two decimals (no float rounding: 12345 is 123.45)."""
    whole = fen // 100
    part = (fen % 100).cast(pl.String).str.zfill(2)
    return pl.format("{}.{}", whole, part)


def sample_frame(sample: Sample, confidence: float) -> pl.DataFrame:
    """The rows of the sample's file: each item with an empty column for what the auditor
    finds, and the sample's parameters on every row."""
    items = sample.items
    index = pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("sample_item")
    counts = (
        dict(sample.strata.select("stratum", "items").iter_rows()) if sample.strata.height else {}
    )
    if sample.population == "findings":
        body = items.select(
            index,
            *(pl.col(c).cast(pl.String) for c in FINDING_COLUMNS),
            pl.col("stratum").cast(pl.String),
            pl.lit("", pl.String).alias(DEVIATION),
        )
    else:
        marks = (
            [pl.col("hits").cast(pl.Int64)]
            if sample.method == "mus"
            else [pl.col("stratum").cast(pl.String)]
        )
        body = items.select(
            index,
            pl.col("txn_id").cast(pl.String),
            pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S").alias("time"),
            *(pl.col(c).cast(pl.String) for c in ("merchant_id", "terminal_id", "operator_id")),
            pl.col("kind").cast(pl.String),
            _cny(pl.col("amount_fen")).alias("book_cny"),
            *marks,
            pl.lit("", pl.String).alias(AUDITED),
        )
    stratum_items = (
        pl.col("stratum").replace_strict(
            {str(k): v for k, v in counts.items()}, return_dtype=pl.Int64, default=None
        )
        if "stratum" in body.columns
        else pl.lit(None, pl.Int64)
    )
    interval = (
        pl.lit(f"{sample.interval_fen / 100:.6f}")
        if sample.interval_fen is not None
        else pl.lit("", pl.String)
    )
    return body.with_columns(
        pl.lit("", pl.String).alias(NOTE),
        pl.lit(sample.method).alias("method"),
        pl.lit(sample.population).alias("population"),
        pl.lit(sample.seed, pl.Int64).alias("seed"),
        pl.lit(confidence, pl.Float64).alias("confidence"),
        interval.alias("interval_cny"),
        _cny(pl.lit(sample.population_fen, pl.Int64)).alias("population_cny"),
        pl.lit(sample.population_items, pl.Int64).alias("population_items"),
        stratum_items.alias("stratum_items"),
    )


def _fen(text: str, what: str, line: int) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip().replace(",", "")) * 100
    except InvalidOperation:
        raise SamplingError(f"line {line}: {what} must be an amount in CNY, got {text!r}") from None
    if value != value.to_integral_value() or value < 0:
        raise SamplingError(f"line {line}: {what} must be 0 or more, to the fen, got {text!r}")
    return int(value)


def _one(frame: pl.DataFrame, column: str) -> str:
    values = frame[column].unique().to_list()
    if len(values) != 1:
        raise SamplingError(
            f"the column {column} must hold one value on every row (it is the sample's), "
            f"found {len(values)}"
        )
    return str(values[0])


def evaluate_file(
    frame: pl.DataFrame,
) -> MusEvaluation | StratifiedEvaluation | AttributeEvaluation | None:
    """The evaluation of a tested sample's rows (every column read as text), or None for the
    sample of an empty population. Every item must have been tested."""
    missing = [c for c in ("sample_item", *PARAMETERS) if c not in frame.columns]
    if missing:
        raise SamplingError(
            f"not a posaudit sample: the column {missing[0]} is missing "
            "(draw one with posaudit sample draw)"
        )
    if frame.height == 0:
        return None
    frame = frame.with_columns(pl.col(c).fill_null("") for c in frame.columns)
    method, population = _one(frame, "method"), _one(frame, "population")
    try:
        confidence = float(_one(frame, "confidence"))
    except ValueError:
        raise SamplingError("the column confidence must hold a number") from None
    lines = range(2, frame.height + 2)
    if population == "findings":
        if DEVIATION not in frame.columns:
            raise SamplingError(f"not a sample of findings: the column {DEVIATION} is missing")
        marks = []
        for line, value in zip(lines, frame[DEVIATION].to_list(), strict=True):
            answer = value.strip().lower()
            if answer not in ("yes", "no"):
                raise SamplingError(
                    f"line {line}: {DEVIATION} must be yes or no (did the finding not hold "
                    f"up?), got {value!r}: test every item before evaluating"
                )
            marks.append(answer == "yes")
        return AttributeEvaluation(
            confidence, len(marks), sum(marks), int(_one(frame, "population_items"))
        )
    if population != "transactions" or method not in METHODS:
        raise SamplingError(f"unknown sample: population {population!r}, method {method!r}")
    for column in ("book_cny", AUDITED):
        if column not in frame.columns:
            raise SamplingError(f"not a sample of transactions: the column {column} is missing")
    tested = []
    for line, row in zip(lines, frame.iter_rows(named=True), strict=True):
        if not row[AUDITED].strip():
            raise SamplingError(
                f"line {line}: {AUDITED} is empty: test every item before evaluating"
            )
        book = _fen(row["book_cny"], "book_cny", line)
        if book == 0:
            raise SamplingError(f"line {line}: book_cny must be above 0, got {row['book_cny']!r}")
        tested.append(
            Misstatement(
                item=row.get("txn_id", str(line)),
                book_fen=book,
                audited_fen=_fen(row[AUDITED], AUDITED, line),
                hits=int(row["hits"]) if method == "mus" else 1,
                stratum=int(row["stratum"]) if method == "stratified" else None,
            )
        )
    if method == "mus":
        return evaluate_mus(
            tested,
            confidence=confidence,
            interval_fen=float(_one(frame, "interval_cny")) * 100,
            population_fen=_fen(_one(frame, "population_cny"), "population_cny", 2),
        )
    strata = dict(
        frame.select(pl.col("stratum").cast(pl.Int64), pl.col("stratum_items").cast(pl.Int64))
        .unique()
        .iter_rows()
    )
    return evaluate_stratified(tested, confidence=confidence, strata=strata)


__all__ = [
    "AUDITED",
    "DEVIATION",
    "FINDING_COLUMNS",
    "MAX_SAMPLE",
    "METHODS",
    "NOTE",
    "PARAMETERS",
    "POPULATIONS",
    "TRANSACTION_COLUMNS",
    "AttributeEvaluation",
    "Misstatement",
    "MusEvaluation",
    "Sample",
    "SamplingError",
    "StratifiedEvaluation",
    "allocate",
    "confidence_factor",
    "evaluate_file",
    "evaluate_mus",
    "evaluate_stratified",
    "findings_sample",
    "monetary_unit",
    "population_size",
    "sample_frame",
    "sample_size",
    "stratified",
]
