"""Audit sampling: the AICPA's published figures, seeded draws, and evaluations checked by hand."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from posaudit.classics import sampling as sm
from posaudit.store import Store

# The AICPA Audit Guide's MUS evaluation table (confidence factors for 0, 1, 2, ... overstatement
# misstatements), at 5 % and 10 % risk of incorrect acceptance, as published: two decimals,
# rounded up.
AICPA_FACTORS = {
    0.95: (3.00, 4.75, 6.30, 7.76, 9.16, 10.52, 11.85, 13.15, 14.44, 15.71, 16.97),
    0.90: (2.31, 3.89, 5.33, 6.69, 8.00, 9.28, 10.54, 11.78, 13.00, 14.21, 15.41),
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


def ledger(tmp_path: Path, sample_store: Path, amounts: list[int], name: str = "l") -> Path:
    """A copy of the sample store whose only transactions are approved sales of ``amounts``."""
    path = tmp_path / f"{name}.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    try:
        store.execute(
            "CREATE TEMP TABLE one AS SELECT * FROM transactions "
            "WHERE kind = 'sale' AND status = 'approved' LIMIT 1"
        )
        store.execute("DELETE FROM transactions")
        for i, amount in enumerate(amounts):
            store.execute(
                "INSERT INTO transactions SELECT * REPLACE (? AS txn_id, ? AS amount_fen, "
                "ts + TO_SECONDS(?) AS ts) FROM one",
                [f"S{i:05d}", amount, i],
            )
    finally:
        store.close()
    return path


@pytest.mark.parametrize("confidence", sorted(AICPA_FACTORS))
def test_the_confidence_factors_are_the_aicpa_table(confidence: float) -> None:
    for errors, published in enumerate(AICPA_FACTORS[confidence]):
        factor = sm.confidence_factor(errors, confidence)
        assert math.ceil(factor * 100 - 1e-9) / 100 == published, errors


def test_the_sample_size_is_the_aicpa_tables() -> None:
    # 95 % confidence, 5 % tolerable, 1 % expected misstatement: 93 (the Guide's MUS table)
    assert sm.sample_size(0.95, 0.05, 0.01) == 93
    # no misstatement expected: 3.00 / 5 %, the basic precision alone
    assert sm.sample_size(0.95, 0.05, 0.0) == 60
    assert sm.sample_size(0.90, 0.05, 0.0) == 47
    # the smallest such n: one fewer does not reach the tolerable misstatement
    for c, t, e in ((0.95, 0.05, 0.01), (0.9, 0.03, 0.005), (0.99, 0.1, 0.04)):
        n = sm.sample_size(c, t, e)
        assert sm.gamma.ppf(c, 1 + n * e) <= n * t
        assert sm.gamma.ppf(c, 1 + (n - 1) * e) > (n - 1) * t


@pytest.mark.parametrize(
    ("confidence", "tolerable", "expected", "words"),
    [
        (1.0, 0.05, 0.0, "confidence must lie between 0 and 1"),
        (0.95, 0.0, 0.0, "tolerable misstatement must lie between 0 and 1"),
        (0.95, 0.05, 0.05, "below the tolerable"),
        (0.95, 0.05, -0.01, "at least 0"),
        (0.95, 0.05, 0.04999999, "no sample of up to"),
    ],
)
def test_rates_that_make_no_sample_are_refused(
    confidence: float, tolerable: float, expected: float, words: str
) -> None:
    with pytest.raises(sm.SamplingError, match=words):
        sm.sample_size(confidence, tolerable, expected)


@given(
    sizes=hs.lists(hs.integers(0, 50), min_size=1, max_size=8),
    weights=hs.lists(hs.floats(0, 1e6), min_size=8, max_size=8),
    total=hs.integers(0, 300),
)
def test_an_allocation_shares_the_sample_within_what_each_stratum_holds(
    sizes: list[int], weights: list[float], total: int
) -> None:
    share = sm.allocate(sizes, weights[: len(sizes)], total)
    assert sum(share) == min(total, sum(sizes))
    assert all(0 <= s <= n for s, n in zip(share, sizes, strict=True))
    nonempty = sum(1 for n in sizes if n)
    if total >= nonempty:
        assert all(s >= 1 for s, n in zip(share, sizes, strict=True) if n)


def test_an_allocation_follows_the_weights() -> None:
    assert sm.allocate([100, 100, 100], [1.0, 2.0, 7.0], 10) == [1, 2, 7]
    assert sm.allocate([100, 3, 100], [1.0, 8.0, 1.0], 10) == [4, 3, 3]


def test_a_monetary_unit_sample_draws_by_size(tmp_path: Path, sample_store: Path) -> None:
    amounts = [500, 1_200, 35_000, 80, 9_999, 260_000, 4_321, 17_000, 650, 50_000] * 3
    path = ledger(tmp_path, sample_store, amounts)
    store = Store.open(path, read_only=True)
    try:
        first = sm.monetary_unit(store, 12, seed=5)
        again = sm.monetary_unit(store, 12, seed=5)
        hits = {i: 0.0 for i in range(len(amounts))}
        draws = 400
        for seed in range(draws):
            for txn, h in (
                sm.monetary_unit(store, 12, seed=seed).items.select("txn_id", "hits").iter_rows()
            ):
                hits[int(txn[1:])] += h / draws
    finally:
        store.close()
    assert first.items.equals(again.items)
    assert first.population_fen == sum(amounts) and first.population_items == len(amounts)
    assert first.interval_fen == pytest.approx(sum(amounts) / 12)
    assert first.items["hits"].sum() == 12
    # an item of the interval or more is drawn for certain, as often as it holds intervals
    interval = sum(amounts) / 12
    big = first.items.filter(pl.col("amount_fen") >= interval)
    assert big.height == 3 and (big["hits"] >= 1).all()
    # over many starts, each item is drawn as often as its share of the money says (within
    # 4.5 standard errors of the expected hits: it holds the whole intervals of p for certain,
    # and one more hit with the chance of p's fraction)
    for i, amount in enumerate(amounts):
        p = amount / interval
        spread = 4.5 * math.sqrt((p % 1) * (1 - p % 1) / draws)
        assert hits[i] == pytest.approx(p, abs=spread), i


def test_other_seeds_draw_other_samples(sample_store: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        a = sm.monetary_unit(store, 60, seed=1).items["txn_id"].to_list()
        b = sm.monetary_unit(store, 60, seed=2).items["txn_id"].to_list()
        c = sm.stratified(store, 40, seed=1).items["txn_id"].to_list()
        d = sm.stratified(store, 40, seed=2).items["txn_id"].to_list()
    finally:
        store.close()
    assert a != b and c != d
    assert len(set(c)) == 40


def test_a_stratified_sample_draws_each_strata_share_from_inside_its_bounds(
    sample_store: Path,
) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        drawn = sm.stratified(store, 50, seed=9, bounds_fen=(1_000, 10_000, 100_000))
        again = sm.stratified(store, 50, seed=9, bounds_fen=(1_000, 10_000, 100_000))
    finally:
        store.close()
    assert drawn.items.equals(again.items)
    strata = drawn.strata
    assert strata["drawn"].sum() == 50
    assert strata["items"].sum() == drawn.population_items
    assert strata["fen"].sum() == drawn.population_fen
    got = drawn.items.group_by("stratum").len().sort("stratum")
    assert got["len"].to_list() == [n for n in strata["drawn"].to_list() if n]
    for row in drawn.items.iter_rows(named=True):
        bounds = strata.row(row["stratum"] - 1, named=True)
        assert bounds["lower_fen"] is None or row["amount_fen"] >= bounds["lower_fen"]
        assert bounds["upper_fen"] is None or row["amount_fen"] < bounds["upper_fen"]
    # the heavier the stratum's money, the more of the sample it gets
    assert strata["drawn"].to_list() == sm.allocate(
        strata["items"].to_list(), strata["fen"].cast(pl.Float64).to_list(), 50
    )


def test_a_sample_of_findings_is_drawn_within_families(audited_sample: Path) -> None:
    store = Store.open(audited_sample, read_only=True)
    try:
        drawn = sm.findings_sample(store, 25, seed=3)
        open_ = store.frame("SELECT finding_id, family FROM findings WHERE status = 'open'")
    finally:
        store.close()
    assert drawn.items.height == 25
    assert set(drawn.items["finding_id"]) <= set(open_["finding_id"])
    assert (drawn.items["family"] == drawn.items["stratum"]).all()
    assert drawn.strata["items"].sum() == open_.height


def test_the_stringer_bound_of_a_textbook_sample() -> None:
    # interval 10,000; two overstatements with taintings 0.5 and 0.2, one item tested whole
    tested = [
        sm.Misstatement("a", 1_000, 500),
        sm.Misstatement("b", 2_000, 1_600),
        sm.Misstatement("c", 3_000, 3_000),
        sm.Misstatement("d", 25_000, 24_000),
        sm.Misstatement("e", 400, 500),
    ]
    found = sm.evaluate_mus(tested, confidence=0.95, interval_fen=10_000, population_fen=10**7)
    f = [sm.confidence_factor(k, 0.95) for k in range(3)]
    assert found.taintings == (0.5, 0.2)
    assert found.basic_precision_fen == pytest.approx(f[0] * 10_000)
    assert found.projected_fen == pytest.approx(7_000)
    bound = f[0] * 10_000 + 5_000 * (f[1] - f[0]) + 2_000 * (f[2] - f[1])
    assert found.upper_limit_fen == pytest.approx(1_000 + bound)
    assert found.allowance_fen == pytest.approx(bound - f[0] * 10_000 - 7_000)
    # with the published factors the same sample reads 41,850 + 1,000
    assert found.upper_limit_fen == pytest.approx(42_850, abs=60)
    assert found.understatement_fen == pytest.approx(0.25 * 10_000)


def test_a_population_tested_whole_has_no_sampling_risk() -> None:
    found = sm.evaluate_mus(
        [sm.Misstatement("a", 50_000, 49_000, hits=93)],
        confidence=0.95,
        interval_fen=50_000 / 93,
        population_fen=50_000,
    )
    assert found.basic_precision_fen == 0.0
    assert found.upper_limit_fen == 1_000


def test_a_population_of_one_item(tmp_path: Path, sample_store: Path) -> None:
    path = ledger(tmp_path, sample_store, [123_456])
    out = tmp_path / "one.csv"
    made = cli("sample", "draw", "--db", str(path), "--expected", "0.01", "--out", str(out))
    assert made.returncode == 0, made.stderr
    rows = pl.read_csv(out, infer_schema=False)
    assert rows.height == 1 and rows["hits"].item() == "93"
    assert rows["book_cny"].item() == "1234.56"
    rows.with_columns(pl.lit("1200.00").alias("audited_cny")).write_csv(out)
    evaluated = cli("sample", "evaluate", str(out), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    record = json.loads(evaluated.stdout)
    assert record["upper_limit_fen"] == 3_456 and record["basic_precision_fen"] == 0


def test_an_empty_population(tmp_path: Path, sample_store: Path) -> None:
    path = ledger(tmp_path, sample_store, [])
    for method in ("mus", "stratified"):
        out = tmp_path / f"{method}.csv"
        made = cli("sample", "draw", "--db", str(path), "--method", method, "--out", str(out))
        assert made.returncode == 0, made.stderr
        assert "The population is empty" in made.stdout
        assert pl.read_csv(out).height == 0
        evaluated = cli("sample", "evaluate", str(out))
        assert evaluated.returncode == 0, evaluated.stderr
        assert "nothing to evaluate" in evaluated.stdout


def test_a_tested_monetary_unit_sample_end_to_end(tmp_path: Path, sample_store: Path) -> None:
    out = tmp_path / "mus.csv"
    args = ("sample", "draw", "--db", str(sample_store), "--tolerable", "0.05")
    made = cli(*args, "--expected", "0.01", "--seed", "7", "--out", str(out))
    assert made.returncode == 0, made.stderr
    again = tmp_path / "again.csv"
    assert cli(*args, "--expected", "0.01", "--seed", "7", "--out", str(again)).returncode == 0
    assert out.read_bytes() == again.read_bytes()
    rows = pl.read_csv(out, infer_schema=False)
    assert rows["hits"].cast(pl.Int64).sum() == 93
    # the auditor finds two items overstated: one by half, one wholly
    audited = rows["book_cny"].to_list()
    audited[3] = f"{float(audited[3]) / 2:.2f}"
    audited[10] = "0"
    rows.with_columns(pl.Series("audited_cny", audited)).write_csv(out)
    evaluated = cli("sample", "evaluate", str(out), "--json", "--tolerable-cny", "1")
    assert evaluated.returncode == 0, evaluated.stderr
    record = json.loads(evaluated.stdout)
    interval = float(rows["interval_cny"][0]) * 100
    books = [round(float(b) * 100) for b in rows["book_cny"]]
    taint = sorted(
        [
            (books[3] - round(float(audited[3]) * 100)) / books[3],
            1.0,
        ],
        reverse=True,
    )
    f = [sm.confidence_factor(k, 0.95) for k in range(3)]
    bound = f[0] * interval + sum(t * interval * (f[i + 1] - f[i]) for i, t in enumerate(taint))
    assert record["overstatements"] == 2
    assert record["upper_limit_fen"] == pytest.approx(bound)
    assert record["within_tolerable"] is False


def test_a_tested_stratified_sample(tmp_path: Path, sample_store: Path) -> None:
    out = tmp_path / "strata.csv"
    made = cli(
        "sample",
        "draw",
        "--db",
        str(sample_store),
        "--method",
        "stratified",
        "--size",
        "30",
        "--bounds",
        "10,100,1000",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    rows = pl.read_csv(out, infer_schema=False)
    clean = tmp_path / "clean.csv"
    rows.with_columns(pl.col("book_cny").alias("audited_cny")).write_csv(clean)
    record = json.loads(cli("sample", "evaluate", str(clean), "--json").stdout)
    assert record["upper_limit_fen"] == 0 and record["projected_fen"] == 0
    # one item in the top stratum overstated by 100 CNY
    top = rows["stratum"].cast(pl.Int64).max()
    first = rows["stratum"].cast(pl.Int64).arg_max()
    audited = rows["book_cny"].to_list()
    audited[first] = f"{float(audited[first]) - 100:.2f}"
    wrong = tmp_path / "wrong.csv"
    rows.with_columns(pl.Series("audited_cny", audited)).write_csv(wrong)
    record = json.loads(cli("sample", "evaluate", str(wrong), "--json").stdout)
    stratum = next(s for s in record["strata"] if s["stratum"] == top)
    assert stratum["projected_fen"] == pytest.approx(stratum["items"] * 10_000 / stratum["tested"])
    assert record["projected_fen"] == pytest.approx(stratum["projected_fen"])
    assert record["upper_limit_fen"] > record["projected_fen"]


def test_a_tested_sample_of_findings(tmp_path: Path, audited_sample: Path) -> None:
    out = tmp_path / "findings.csv"
    made = cli(
        "sample",
        "draw",
        "--db",
        str(audited_sample),
        "--of",
        "findings",
        "--method",
        "stratified",
        "--size",
        "20",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    rows = pl.read_csv(out, infer_schema=False)
    marks = ["no"] * rows.height
    marks[0] = "yes"
    rows.with_columns(pl.Series("deviation", marks)).write_csv(out)
    record = json.loads(cli("sample", "evaluate", str(out), "--json").stdout)
    assert record["deviations"] == 1 and record["tested"] == 20
    assert record["upper_rate"] == pytest.approx(sm.beta.ppf(0.95, 2, 19))


def test_the_attribute_limit_is_the_aicpa_tables() -> None:
    # the AICPA attribute sampling table: 93 items, 1 deviation: at most 5 % at 95 %
    assert sm.AttributeEvaluation(0.95, 93, 1, 10_000).upper_rate == pytest.approx(0.05, abs=1e-3)
    assert sm.AttributeEvaluation(0.95, 59, 0, 10_000).upper_rate == pytest.approx(0.05, abs=1e-3)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"audited_cny": ""}, "line 2: audited_cny is empty: test every item"),
        ({"audited_cny": "abc"}, "line 2: audited_cny must be an amount in CNY"),
        ({"audited_cny": "-3"}, "line 2: audited_cny must be 0 or more"),
        ({"confidence": "x"}, "the column confidence must hold"),
    ],
)
def test_a_badly_tested_sample_is_one_line_and_exit_2(
    tmp_path: Path, sample_store: Path, change: dict[str, str], words: str
) -> None:
    out = tmp_path / "s.csv"
    assert cli("sample", "draw", "--db", str(sample_store), "--out", str(out)).returncode == 0
    rows = pl.read_csv(out, infer_schema=False).with_columns(
        pl.col("book_cny").alias("audited_cny")
    )
    rows.with_columns(pl.lit(v).alias(k) for k, v in change.items()).write_csv(out)
    made = cli("sample", "evaluate", str(out))
    assert made.returncode == 2
    assert words in made.stderr and len(made.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--of", "findings"), "use --method stratified with --of findings"),
        (("--method", "pps"), "--method must be one of mus, stratified"),
        (("--kind", "tip"), "unknown kind 'tip'"),
        (("--size", "0"), "--size must be at least 1"),
        (("--bounds", "5,1"), "--bounds must rise"),
        (("--expected", "0.2"), "below the tolerable"),
    ],
)
def test_bad_draws_are_one_line_and_exit_2(
    tmp_path: Path, sample_store: Path, args: tuple[str, ...], words: str
) -> None:
    out = tmp_path / "s.csv"
    extra = ("--method", "stratified") if "--bounds" in args else ()
    made = cli("sample", "draw", "--db", str(sample_store), *extra, *args, "--out", str(out))
    assert made.returncode == 2
    assert words in made.stderr and len(made.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_sample_is_never_written_over_and_other_files_are_refused(
    tmp_path: Path, sample_store: Path
) -> None:
    out = tmp_path / "s.csv"
    out.write_text("tested by hand\n")
    made = cli("sample", "draw", "--db", str(sample_store), "--out", str(out))
    assert made.returncode == 2 and "is not overwritten" in made.stderr
    assert out.read_text() == "tested by hand\n"
    made = cli("sample", "evaluate", str(out))
    assert made.returncode == 2 and "not a posaudit sample" in made.stderr
    made = cli("sample", "evaluate", str(tmp_path / "missing.csv"))
    assert made.returncode == 2 and "no such file" in made.stderr
    made = cli("sample", "evaluate", str(tmp_path))
    assert made.returncode == 2 and "is a folder" in made.stderr
    away = tmp_path / "no-such-folder" / "s.csv"
    made = cli("sample", "draw", "--db", str(sample_store), "--out", str(away))
    assert made.returncode == 2 and "no-such-folder does not exist" in made.stderr
    assert len(made.stderr.strip().splitlines()) == 1 and not away.parent.exists()
