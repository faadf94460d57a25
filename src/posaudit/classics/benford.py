"""Benford's law tests on transaction amounts, as Nigrini defines them (docs/classics.md).

Four tests on the amounts of approved sales, in fen (a whole number, so no rounding):

- ``first_digit``: the first digit (1-9) of every amount;
- ``first_two``: the first two digits (10-99) of every amount of 10 fen or more;
- ``last_two``: the last two digits (00-99) of every amount of 10 CNY or more, expected
  uniform (amounts typed by hand end in round numbers);
- ``second_order``: the first two digits of the differences between the amounts sorted
  in order, zeros left out; close to Benford's whatever the amounts' own distribution.

Per test: each digit combination's count, found and expected proportions and Z statistic
(with the continuity correction, used where it is smaller than the difference); the
chi-square statistic and its p-value; the mean absolute deviation (MAD) and its conformity
band from Nigrini (2012), in words. The store counts the digits (one grouping of the
amounts per test); the statistics are computed here from the counts.

Per merchant, terminal or operator the same, for those with at least ``min_rows`` amounts in
the test: the MAD bands are calibrated on large data sets, and a small one fails them by
chance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import polars as pl
from scipy.stats import chi2

from posaudit.classics import ENTITIES, ENTITY_COLUMN, Entity
from posaudit.store import Store

Test = Literal["first_digit", "first_two", "last_two", "second_order"]
TESTS: Final[tuple[Test, ...]] = ("first_digit", "first_two", "last_two", "second_order")
# The fewest amounts an entity needs in a test to be tested on its own.
MIN_ROWS: Final = 1_000
# Nigrini (2012), table 7.1: the upper MAD bound of close conformity, acceptable conformity and
# marginally acceptable conformity; above the last, nonconformity. The second-order test is
# read with the first-two digits' bands (Nigrini 2012, chapter 9). The last-two digits test
# has no published bands: its chi-square decides.
BANDS: Final[dict[Test, tuple[float, float, float]]] = {
    "first_digit": (0.006, 0.012, 0.015),
    "first_two": (0.0012, 0.0018, 0.0022),
    "second_order": (0.0012, 0.0018, 0.0022),
}
BAND_NAMES: Final = (
    "close conformity",
    "acceptable conformity",
    "marginally acceptable conformity",
    "nonconformity",
)
# A spike: a digit combination found more often than expected, its Z above this (5 %, two-sided).
SPIKE_Z: Final = 1.96
SPIKES_SHOWN: Final = 5

_AMOUNTS: Final = (
    "kind = 'sale' AND status = 'approved' AND amount_fen > 0 AND amount_fen IS NOT NULL"
)


def digits(test: Test) -> np.ndarray:
    """The digit combinations of ``test``, in order."""
    if test == "first_digit":
        return np.arange(1, 10)
    if test == "last_two":
        return np.arange(0, 100)
    return np.arange(10, 100)


def expected(test: Test) -> np.ndarray:
    """Benford's proportion of each digit combination of ``test`` (uniform for the last two)."""
    if test == "last_two":
        return np.full(100, 0.01)
    d = digits(test).astype(np.float64)
    return np.log10(1.0 + 1.0 / d)


def _digit_sql(test: Test, amount: str) -> tuple[str, str]:
    """The SQL of a digit combination of ``amount``, and of the amounts it is defined for."""
    text = f"CAST({amount} AS VARCHAR)"
    if test == "first_digit":
        return f"CAST(LEFT({text}, 1) AS INTEGER)", f"{amount} >= 1"
    if test == "last_two":
        return f"CAST({amount} % 100 AS INTEGER)", f"{amount} >= 1000"
    return f"CAST(LEFT({text}, 2) AS INTEGER)", f"{amount} >= 10"


def counts_sql(test: Test, by: Entity | None) -> str:
    """The store's query for the digit counts of ``test``: ``entity`` (null for the whole
    store), ``digit`` and ``n``."""
    entity = f"CAST({ENTITY_COLUMN[by]} AS VARCHAR)" if by else "CAST(NULL AS VARCHAR)"
    if test == "second_order":
        partition = f"PARTITION BY {ENTITY_COLUMN[by]} " if by else ""
        source = f"""(
            SELECT {entity} AS entity,
                amount_fen - LAG(amount_fen) OVER ({partition}ORDER BY amount_fen) AS amount
            FROM transactions
            WHERE {_AMOUNTS} {f"AND {ENTITY_COLUMN[by]} IS NOT NULL" if by else ""}
        )"""
        digit, defined = _digit_sql(test, "amount")
    else:
        source = f"""(
            SELECT {entity} AS entity, amount_fen AS amount
            FROM transactions
            WHERE {_AMOUNTS} {f"AND {ENTITY_COLUMN[by]} IS NOT NULL" if by else ""}
        )"""
        digit, defined = _digit_sql(test, "amount")
    return f"""
        SELECT entity, {digit} AS digit, CAST(COUNT(*) AS BIGINT) AS n
        FROM {source} AS a
        WHERE a.amount IS NOT NULL AND {defined}
        GROUP BY ALL
    """


@dataclass(frozen=True)
class Result:
    """One test on one set of amounts."""

    test: Test
    entity: str | None
    n: int
    table: pl.DataFrame  # digit, count, found, expected, difference, z
    mad: float
    chi_square: float
    degrees_of_freedom: int
    p_value: float
    band: str | None  # None: the test has no published bands

    @property
    def conforms(self) -> bool | None:
        """Whether the MAD lies inside the bands (None: the test has none)."""
        return None if self.band is None else self.band != BAND_NAMES[-1]

    def spikes(self, limit: int = SPIKES_SHOWN) -> pl.DataFrame:
        """The digit combinations most over-represented: found above expected, Z above
        ``SPIKE_Z``, the largest Z first."""
        return (
            self.table.filter((pl.col("difference") > 0) & (pl.col("z") > SPIKE_Z))
            .sort("z", "digit", descending=[True, False])
            .head(limit)
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "test": self.test,
            "entity": self.entity,
            "n": self.n,
            "mad": self.mad,
            "band": self.band,
            "chi_square": self.chi_square,
            "degrees_of_freedom": self.degrees_of_freedom,
            "p_value": self.p_value,
            "spikes": self.spikes().select("digit", "count", "found", "expected", "z").to_dicts(),
        }


def band(test: Test, mad: float) -> str | None:
    """Nigrini's conformity band of ``mad`` in ``test``, in words (None: no published bands)."""
    bounds = BANDS.get(test)
    if bounds is None:
        return None
    for bound, name in zip(bounds, BAND_NAMES, strict=False):
        if mad <= bound:
            return name
    return BAND_NAMES[-1]


def z_statistics(found: np.ndarray, expect: np.ndarray, n: int) -> np.ndarray:
    """Nigrini's Z of each proportion: |found - expected| less the continuity correction
    1/(2n), over the proportion's standard error; the correction only where it is smaller than
    the difference (Nigrini 2012, equation 4.5)."""
    difference = np.abs(found - expect)
    correction = 1.0 / (2.0 * n)
    numerator = np.where(correction < difference, difference - correction, difference)
    return numerator / np.sqrt(expect * (1.0 - expect) / n)


def result(test: Test, counts: dict[int, int], entity: str | None = None) -> Result:
    """The test's statistics from the count of each digit combination (missing ones: 0)."""
    keys = digits(test)
    count = np.array([counts.get(int(k), 0) for k in keys], dtype=np.int64)
    n = int(count.sum())
    if n == 0:
        msg = f"no amounts for the {test} test"
        raise ValueError(msg)
    expect = expected(test)
    found = count / n
    z = z_statistics(found, expect, n)
    expected_counts = n * expect
    chi_square = float(((count - expected_counts) ** 2 / expected_counts).sum())
    dof = keys.size - 1
    mad = float(np.abs(found - expect).mean())
    table = pl.DataFrame(
        {
            "digit": keys,
            "count": count,
            "found": found,
            "expected": expect,
            "difference": found - expect,
            "z": z,
        }
    )
    return Result(
        test=test,
        entity=entity,
        n=n,
        table=table,
        mad=mad,
        chi_square=chi_square,
        degrees_of_freedom=dof,
        p_value=float(chi2.sf(chi_square, dof)),
        band=band(test, mad),
    )


def benford(
    store: Store, test: Test, *, by: Entity | None = None, min_rows: int = MIN_ROWS
) -> list[Result]:
    """``test`` on the store's approved sales: the whole store (``by`` None, one result) or
    each entity with at least ``min_rows`` amounts in the test, the least conforming first
    (by MAD)."""
    if test not in TESTS:
        msg = f"unknown Benford test {test!r}: one of {', '.join(TESTS)}"
        raise ValueError(msg)
    if by is not None and by not in ENTITIES:
        msg = f"unknown entity {by!r}: one of {', '.join(ENTITIES)}"
        raise ValueError(msg)
    return results_of(store.frame(counts_sql(test, by)), test, by=by, min_rows=min_rows)


def results_of(
    counts: pl.DataFrame, test: Test, *, by: Entity | None = None, min_rows: int = MIN_ROWS
) -> list[Result]:
    """:func:`benford`'s results from the store's digit counts (``counts_sql``'s rows)."""
    if by is None:
        whole = dict(zip(counts["digit"].to_list(), counts["n"].to_list(), strict=True))
        return [result(test, whole)] if whole else []
    sizes = counts.group_by("entity").agg(pl.col("n").sum().alias("size"))
    kept = counts.join(sizes.filter(pl.col("size") >= min_rows), on="entity", how="semi")
    results = [
        result(
            test,
            dict(zip(part["digit"].to_list(), part["n"].to_list(), strict=True)),
            str(entity[0]),
        )
        for entity, part in kept.partition_by("entity", as_dict=True).items()
    ]
    return sorted(results, key=lambda r: (-r.mad, r.entity or ""))


def spike_text(r: Result) -> str:
    """The spikes in a line: ``45 (z 6.1), 49 (z 4.0)``."""
    spikes = r.spikes()
    width = 1 if r.test == "first_digit" else 2
    return (
        ", ".join(
            f"{int(d):0{width}d} (z {z:.1f})" for d, z in spikes.select("digit", "z").iter_rows()
        )
        or "-"
    )


__all__ = [
    "BANDS",
    "BAND_NAMES",
    "ENTITIES",
    "MIN_ROWS",
    "TESTS",
    "Result",
    "band",
    "benford",
    "counts_sql",
    "digits",
    "expected",
    "result",
    "results_of",
    "spike_text",
    "z_statistics",
]
