"""A year of nightly runs on a small world: each night incremental, the year's findings those of
one full run at its end, and the year's late data audited from its day."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pipeline_kit import comparable, copy, findings, frame, run_here

from posaudit.run.record import RunSummary
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario

pytestmark = pytest.mark.slow

FIRST_DAYS = 7
NIGHTS = 358  # a year: the first week, then a night per day
CHECKED_AT = (90, 180)  # nights after which a full run over the same data is compared too


def equal_to_a_full_run(nightly: Path, folder: Path, name: str) -> None:
    once = copy(nightly, folder / f"{name}.duckdb")
    assert run_here(once, full=True).mode == "full"
    ran, full = comparable(findings(nightly)), comparable(findings(once))
    keys = ["finding_id", "window_start", "window_end"]
    assert ran.select(keys).equals(full.select(keys)), (
        f"{name}: only nightly {ran.join(full, on=keys, how='anti').select('rule', *keys)}, "
        f"only full {full.join(ran, on=keys, how='anti').select('rule', *keys)}"
    )
    differ = ran.join(full, on=keys, suffix="_full").filter(
        pl.any_horizontal(
            pl.col(c).ne_missing(pl.col(f"{c}_full")) for c in ran.columns if c not in keys
        )
    )
    assert differ.height == 0, f"{name}: {differ.head(3).to_dicts()}"


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[RunSummary]]:
    """Three merchants audited night by night for a year, compared with a full run on the
    way; clerks are promoted, granted refunds, hired and let go as the days go."""
    folder = tmp_path_factory.mktemp("year")
    scenario = folder / "staff.toml"
    scenario.write_text(
        # rates per 1,000 merchant-days (operator-days for the grants): about one a night
        "[scenarios.privilege_grant_abuse]\nrate = 20.0\n"
        "[lookalikes]\npromotion = 300.0\nstaff_turnover = 300.0\n"
    )
    nightly = folder / "nightly.duckdb"
    simulate(nightly, load_scenario(scenario, merchants=3, days=FIRST_DAYS), seed=5)
    nights = [run_here(nightly)]
    for night in range(1, NIGHTS + 1):
        simulate(nightly, load_scenario(scenario, days=1), seed=0, append=True)
        nights.append(run_here(nightly))
        if night in CHECKED_AT:
            equal_to_a_full_run(nightly, folder, f"after-{night}-nights")
    return nightly, nights


def test_every_night_of_the_year_is_incremental(year: tuple[Path, list[RunSummary]]) -> None:
    _, nights = year
    first, *later = nights
    assert first.mode == "full"
    reasons = Counter(n.reason for n in later if n.mode != "incremental")
    assert not reasons, reasons.most_common(3)
    # hires, grants and deletions came with the days, and kept the nights incremental
    assert any("operators added or changed" in n.reason for n in later)


def test_the_year_of_nights_equals_one_full_run(
    year: tuple[Path, list[RunSummary]], tmp_path: Path
) -> None:
    nightly, _ = year
    equal_to_a_full_run(nightly, tmp_path, "the-year")
    # the year's findings include PINs that grew stale on a night, and the merchants' rules
    stale_on_a_night = frame(
        nightly,
        "SELECT count(*) AS n FROM findings WHERE rule = 'stale_pins' "
        "AND first_run_id <> 'run-00001'",
    ).item()
    assert stale_on_a_night > 0


def test_late_data_six_months_back_is_audited_from_its_day(
    year: tuple[Path, list[RunSummary]], tmp_path: Path
) -> None:
    nightly, _ = year
    store = copy(nightly, tmp_path / "late.duckdb")
    con = duckdb.connect(str(store))
    try:
        (late_day,) = con.execute(
            "SELECT CAST(max(ts) AS DATE) - INTERVAL 182 DAY FROM transactions"
        ).fetchall()[0]
        # a burst of wrong PINs on one operator, and a refund, on that day, loaded now
        con.execute(
            "INSERT INTO login_events SELECT 'LATE' || lpad(CAST(i AS VARCHAR), 3, '0'), "
            "$day + INTERVAL 10 HOUR + INTERVAL (i * 20) SECOND, o.terminal_id, o.operator_no, "
            "o.operator_id, 'wrong_pin' FROM range(30) r(i), "
            "(SELECT * FROM operators ORDER BY operator_id LIMIT 1) o",
            {"day": late_day},
        )
        # a refund, in the day's batch, of a sale made that morning
        con.execute(
            "INSERT INTO transactions SELECT * REPLACE ('LATE-REFUND' AS txn_id, "
            "$day + INTERVAL 11 HOUR AS ts, 'refund' AS kind, txn_id AS original_txn_id) "
            "FROM transactions WHERE kind = 'sale' AND status = 'approved' "
            "AND ts >= $day AND ts < $day + INTERVAL 11 HOUR ORDER BY ts LIMIT 1",
            {"day": late_day},
        )
    finally:
        con.close()
    late = run_here(store)
    assert late.mode == "incremental", late.reason
    assert f"events changed from {late_day:%Y-%m-%d} on" in late.reason
    equal_to_a_full_run(store, tmp_path, "late-in-full")
    burst = findings(store, "rule = 'pin_brute_force' AND status = 'open'")
    assert burst.filter(burst["window_start"].dt.date() == late_day).height == 1
