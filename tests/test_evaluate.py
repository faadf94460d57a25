"""The evaluation rule of DESIGN.md on literal frames."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from posaudit.detect.policy import load_policy
from posaudit.evaluate import (
    TOTAL,
    alert_volume,
    evaluate,
    precision_from_reviews,
    wilson_interval,
)
from posaudit.run.local import run_pipeline
from posaudit.simulate.scenario import ATTACK_SCENARIOS
from posaudit.store import Store

T = datetime


def _findings(rows: list[tuple[str, str, str, str, str, datetime, datetime]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        rows,
        schema=[
            "finding_id",
            "rule",
            "severity",
            "entity_type",
            "entity_id",
            "window_start",
            "window_end",
        ],
        orient="row",
    )


def _truth(rows: list[tuple[str, str, str, str, datetime, datetime]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        rows,
        schema=["incident_id", "scenario", "entity_type", "entity_id", "start_ts", "end_ts"],
        orient="row",
    )


OPS = pl.LazyFrame({"operator_id": [f"O{i}" for i in range(2000)]})


def test_overlap_and_entity_decide_a_match() -> None:
    # the hour of both brute-force incidents, and a day inside the lockout incident
    start, end = T(2026, 3, 4, 10), T(2026, 3, 4, 11)
    march_2, march_3 = T(2026, 3, 2), T(2026, 3, 3)
    day = timedelta(days=1)
    truth = _truth(
        [
            ("G1", "pin_brute_force", "operator", "O1", start, end),
            ("G2", "pin_brute_force", "operator", "O2", start, end),
            ("G3", "lockout_not_enforced", "terminal", "T1", T(2026, 3, 1), T(2026, 3, 30)),
        ]
    )
    findings = _findings(
        [
            # touches the incident's end: overlap is inclusive
            ("F1", "pin_brute_force", "high", "operator", "O1", end, T(2026, 3, 4, 12)),
            # right entity, window a day later: no match
            ("F2", "pin_brute_force", "high", "operator", "O2", start + day, end + day),
            # same id but another entity type: no match
            ("F3", "lockout_not_enforced", "high", "operator", "T1", march_2, march_3),
            ("F4", "lockout_not_enforced", "medium", "terminal", "T1", march_2, march_3),
            # info findings are health notes: neither precision nor recall
            ("F5", "network_failure_burst", "info", "operator", "O2", start, end),
        ]
    )
    result = evaluate(findings, truth, OPS)
    recall = dict(result.recall.select("scenario", "recall").iter_rows())
    assert recall == {"lockout_not_enforced": 1.0, "pin_brute_force": 0.5}
    precision = dict(result.precision.select("rule", "precision").iter_rows())
    assert precision == {"lockout_not_enforced": 0.5, "pin_brute_force": 0.5}
    assert "network_failure_burst" not in precision
    # F2 and F3 are unmatched and above 'low'
    assert result.unmatched_above_low == 2
    assert result.unmatched_per_1000_operators == 1.0


def test_a_finding_may_detect_several_incidents_and_an_incident_needs_one_finding() -> None:
    truth = _truth(
        [
            ("G1", "weak_pin", "operator", "O1", T(2026, 1, 1), T(2026, 2, 1)),
            ("G2", "stale_pin", "operator", "O1", T(2026, 1, 15), T(2026, 3, 1)),
        ]
    )
    findings = _findings(
        [("F1", "weak_pins", "medium", "operator", "O1", T(2026, 1, 20), T(2026, 1, 25))]
    )
    result = evaluate(findings, truth, OPS)
    assert result.recall.get_column("recall").to_list() == [1.0, 1.0]
    assert result.precision.get_column("precision").to_list() == [1.0]


def test_a_rule_is_credited_with_its_own_scenarios_and_a_score_with_every_attack() -> None:
    week = (T(2026, 3, 2), T(2026, 3, 8))
    truth = _truth(
        [
            ("G1", "refund_burst", "operator", "O1", *week),
            ("G2", "weak_pin", "operator", "O2", *week),
            ("G3", "credential_sharing", "operator", "O3", *week),
        ]
    )
    at = (T(2026, 3, 4, 10), T(2026, 3, 4, 11))
    findings = _findings(
        [
            ("F1", "refund_bursts", "high", "operator", "O1", *at),  # its own scenario
            ("F2", "refund_bursts", "high", "operator", "O3", *at),  # sharing is not a burst
            ("F3", "operator_anomaly_scores", "low", "operator", "O1", *at),  # an attack
            ("F4", "operator_anomaly_scores", "low", "operator", "O3", *at),  # an attack
            ("F5", "operator_anomaly_scores", "low", "operator", "O2", *at),  # a weak PIN only
        ]
    )
    rows = {row["rule"]: row for row in evaluate(findings, truth, OPS).precision.to_dicts()}
    burst, score = rows["refund_bursts"], rows["operator_anomaly_scores"]
    assert (burst["true_positives"], burst["true_positives_any"]) == (1, 2)
    assert (burst["precision"], burst["precision_any"]) == (0.5, 1.0)
    assert (score["true_positives"], score["true_positives_any"]) == (2, 3)
    assert score["precision"] == pytest.approx(2 / 3)


def test_a_store_without_labels_says_so_in_one_line(sample_store: Path, tmp_path: Path) -> None:
    """Ingested data has no ground truth: evaluate refuses in one line, exit 2."""
    path = Path(shutil.copy(sample_store, tmp_path / "unlabelled.duckdb"))
    store = Store.open(path)
    try:
        store.execute("DELETE FROM ground_truth")
        run_pipeline(store, load_policy())
    finally:
        store.close()
    done = subprocess.run(
        [sys.executable, "-m", "posaudit", "evaluate", "--db", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"posaudit: error: {path} holds no ground truth (only a simulated world has labels): "
        "nothing to evaluate against\n"
    )


def _reviews(rows: list[tuple[int, str, str | None]]) -> pl.LazyFrame:
    schema = {"review_id": pl.Int64, "finding_id": pl.String, "decision": pl.String}
    return pl.LazyFrame(rows, schema=schema, orient="row")


@pytest.mark.parametrize(
    ("true", "decided", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # Statistics in Medicine 17:857-872, Table I, method 3 (the Wilson score interval);
        # scipy.stats.binomtest(k, n).proportion_ci(method="wilson") gives the same
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # all decided true: the interval still reaches below 1
        (10, 10, 0.7225, 1.0),
    ],
)
def test_the_wilson_interval_on_known_numbers(
    true: int, decided: int, low: float, high: float
) -> None:
    frame = pl.DataFrame({"true": [true], "decided": [decided]})
    bounds = frame.select(wilson_interval(pl.col("true"), pl.col("decided")))
    assert bounds.row(0) == pytest.approx((low, high), abs=5e-5)


def test_the_wilson_interval_of_no_decisions_is_null() -> None:
    frame = pl.DataFrame({"true": [0], "decided": [0]})
    assert frame.select(wilson_interval(pl.col("true"), pl.col("decided"))).row(0) == (None, None)


def test_precision_from_reviews_counts_each_findings_latest_decision() -> None:
    day = (T(2026, 3, 1), T(2026, 3, 2))
    findings = _findings(
        [
            ("F1", "weak_pins", "medium", "operator", "O1", *day),
            ("F2", "weak_pins", "medium", "operator", "O2", *day),
            ("F3", "weak_pins", "low", "operator", "O3", *day),
            ("F4", "weak_pins", "high", "operator", "O4", *day),
            ("F5", "refunds_over_sale", "high", "operator", "O5", *day),
            # a health note: not in precision's population, its decision does not count
            ("F6", "network_failure_burst", "info", "terminal", "T1", *day),
        ]
    )
    reviews = _reviews(
        [
            (1, "F1", "false_positive"),
            (2, "F2", "confirmed_fraud"),
            (3, "F1", "policy_breach"),  # decided again: the later decision is current
            (4, "F3", "benign_explained"),
            (5, "F4", None),  # assigned, not decided
            (6, "F6", "false_positive"),
            (7, "F5", "false_positive"),
        ]
    )
    result = precision_from_reviews(findings, reviews).collect()
    rows = {row.pop("rule"): row for row in result.iter_rows(named=True)}
    assert list(rows) == ["refunds_over_sale", "weak_pins", TOTAL]
    weak = rows["weak_pins"]
    assert (weak["findings"], weak["decided"], weak["decided_true"], weak["decided_false"]) == (
        4,
        3,
        2,
        1,
    )
    assert weak["undecided_share"] == 0.25
    assert weak["precision"] == pytest.approx(2 / 3)
    assert (weak["precision_low"], weak["precision_high"]) == pytest.approx(
        (0.2077, 0.9385), abs=5e-5
    )
    assert rows["refunds_over_sale"]["precision"] == 0.0
    total = rows[TOTAL]
    assert (total["findings"], total["decided"], total["decided_true"]) == (5, 4, 2)
    assert total["precision"] == 0.5


def test_a_rule_without_decisions_has_no_precision() -> None:
    day = (T(2026, 3, 1), T(2026, 3, 2))
    findings = _findings([("F1", "weak_pins", "medium", "operator", "O1", *day)])
    result = precision_from_reviews(findings, _reviews([])).collect()
    row = result.row(0, named=True)
    assert (row["decided"], row["undecided_share"], row["precision"]) == (0, 1.0, None)
    assert (row["precision_low"], row["precision_high"]) == (None, None)


def _operators(rows: list[tuple[str, datetime, datetime | None]]) -> pl.LazyFrame:
    schema = {"operator_id": pl.String, "created_at": pl.Datetime, "disabled_at": pl.Datetime}
    return pl.LazyFrame(rows, schema=schema, orient="row")


def test_alert_volume_counts_per_1000_active_operators_per_day() -> None:
    # a window of 2.5 days; 4 operators active in it, 2 not
    data_from, data_to = T(2026, 3, 1), T(2026, 3, 3, 12)
    operators = _operators(
        [
            ("O1", T(2025, 1, 1), None),
            ("O2", T(2025, 1, 1), T(2026, 3, 2)),  # disabled inside the window: active
            ("O3", T(2026, 3, 3), None),  # created inside the window: active
            ("O4", T(2026, 3, 3, 12), None),  # created at its last instant: active
            ("O5", T(2025, 1, 1), T(2026, 2, 28)),  # disabled before it
            ("O6", T(2026, 3, 4), None),  # created after it
        ]
    )
    day = (data_from, data_to)
    severities = ["critical", "high", "high", "high", "medium", "info"]
    findings = _findings(
        [(f"F{i}", "r", s, "operator", "O1", *day) for i, s in enumerate(severities)]
    )
    volume = alert_volume(findings, operators, data_from=data_from, data_to=data_to).collect()
    assert volume.get_column("operators").unique().to_list() == [4]
    assert volume.get_column("days").unique().to_list() == [2.5]
    rates = dict(volume.select("severity", "per_1000_operators_per_day").iter_rows())
    # by hand: 1000 x findings / 4 operators / 2.5 days = 100 per finding
    assert rates == {
        "info": 100.0,
        "low": 0.0,
        "medium": 100.0,
        "high": 300.0,
        "critical": 100.0,
        "critical+high": 400.0,
        "all": 600.0,
    }
    assert volume.get_column("findings").to_list() == [1, 0, 1, 3, 1, 4, 6]


@pytest.mark.parametrize(
    ("operators", "window"),
    [
        pytest.param(_operators([]), (T(2026, 3, 1), T(2026, 3, 2)), id="no operators"),
        pytest.param(
            _operators([("O1", T(2026, 3, 5), None)]),
            (T(2026, 3, 1), T(2026, 3, 2)),
            id="no operator active",
        ),
        pytest.param(
            _operators([("O1", T(2025, 1, 1), None)]),
            (T(2026, 3, 1), T(2026, 3, 1)),
            id="zero-day window",
        ),
        pytest.param(_operators([("O1", T(2025, 1, 1), None)]), (None, None), id="no window"),
    ],
)
def test_alert_volume_without_operators_or_days_has_no_rate(
    operators: pl.LazyFrame, window: tuple[datetime | None, datetime | None]
) -> None:
    day = (T(2026, 3, 1), T(2026, 3, 2))
    findings = _findings([("F1", "r", "high", "operator", "O1", *day)])
    data_from, data_to = window
    volume = alert_volume(findings, operators, data_from=data_from, data_to=data_to).collect()
    assert volume.get_column("per_1000_operators_per_day").null_count() == volume.height == 7
    assert dict(volume.select("severity", "findings").iter_rows())["high"] == 1


def _posaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posaudit", *args], capture_output=True, text=True, check=False
    )


def test_evaluate_json_carries_the_alert_volume(audited_sample: Path) -> None:
    done = _posaudit("evaluate", "--db", str(audited_sample), "--json")
    assert done.returncode == 0, done.stderr
    volume = json.loads(done.stdout)["alert_volume"]
    store = Store.open(audited_sample, read_only=True)
    try:
        data_from, data_to = store.query("SELECT data_from, data_to FROM pipeline_runs")[0]
        ((findings, paging),) = store.query(
            "SELECT count(*), count(*) FILTER (severity IN ('critical', 'high')) FROM findings"
        )
        (operators,) = store.query("SELECT count(*) FROM operators")[0]
    finally:
        store.close()
    days = (data_to - data_from).total_seconds() / 86_400
    assert (volume["data_from"], volume["data_to"]) == (data_from.isoformat(), data_to.isoformat())
    # the simulator hires every operator before the world's first day and disables none
    assert volume["operators"] == operators
    assert volume["days"] == pytest.approx(days, abs=1e-4)
    assert (volume["findings"]["all"], volume["findings"]["critical+high"]) == (findings, paging)
    assert volume["per_1000_operators_per_day"]["critical+high"] == pytest.approx(
        1000 * paging / operators / days, abs=1e-3
    )
    assert list(volume["findings"]) == [
        "info",
        "low",
        "medium",
        "high",
        "critical",
        "critical+high",
        "all",
    ]


def test_evaluate_with_reviews_carries_the_alert_volume(
    audited_sample: Path, tmp_path: Path
) -> None:
    path = Path(shutil.copy(audited_sample, tmp_path / "reviewed.duckdb"))
    store = Store.open(path, read_only=True)
    try:
        (finding_id,) = store.query("SELECT finding_id FROM findings WHERE severity = 'high'")[0]
    finally:
        store.close()
    decided = _posaudit(
        "review", "decide", str(finding_id), "--decision", "confirmed_fraud", "--db", str(path)
    )
    assert decided.returncode == 0, decided.stderr
    done = _posaudit("evaluate", "--db", str(path), "--labels", "reviews", "--json")
    assert done.returncode == 0, done.stderr
    with_reviews = json.loads(done.stdout)["alert_volume"]
    truth = json.loads(_posaudit("evaluate", "--db", str(path), "--json").stdout)
    assert with_reviews == truth["alert_volume"]
    table = _posaudit("evaluate", "--db", str(path), "--labels", "reviews")
    assert table.returncode == 0, table.stderr
    assert "alert volume, findings per 1,000 operators per day" in table.stdout
    assert "critical+high" in table.stdout


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("DELETE FROM operators", "no operator was active in the run's data window"),
        ("UPDATE pipeline_runs SET data_to = data_from", "the run's data window has no length"),
    ],
)
def test_evaluate_without_operators_or_days_says_there_is_no_rate(
    audited_sample: Path, tmp_path: Path, damage: str, why: str
) -> None:
    path = Path(shutil.copy(audited_sample, tmp_path / "damaged.duckdb"))
    store = Store.open(path)
    try:
        store.execute(damage)
    finally:
        store.close()
    done = _posaudit("evaluate", "--db", str(path))
    assert done.returncode == 0, done.stderr
    assert f"alert volume: no rate, {why} (docs/evaluation.md)" in done.stdout
    record = json.loads(_posaudit("evaluate", "--db", str(path), "--json").stdout)
    assert record["alert_volume"]["per_1000_operators_per_day"]["critical+high"] is None


def test_lookalikes_are_false_positives_and_no_part_of_recall() -> None:
    start, end = T(2026, 3, 4, 10), T(2026, 3, 4, 11)
    truth = _truth(
        [
            ("G1", "benign:return_wave", "operator", "O1", start, end),
            ("G2", "benign:return_wave", "operator", "O2", start, end),
            ("G3", "benign:shift_cover", "operator", "O3", start, end),
            ("G4", "weak_pin", "operator", "O1", T(2026, 3, 1), T(2026, 3, 30)),
            ("G5", "refund_burst", "operator", "O4", start, end),
            ("G6", "benign:hotel_deposits", "operator", "O5", start, end),
        ]
    )
    at = (T(2026, 3, 4, 10, 10), T(2026, 3, 4, 10, 40))
    findings = _findings(
        [
            # on a return wave of an operator whose weak PIN it does not detect (not its rule)
            ("F1", "refund_bursts", "high", "operator", "O1", *at),
            # on a return wave alone
            ("F2", "refund_bursts", "medium", "operator", "O2", *at),
            # the weak PIN of O1: its own incident, no false positive on the wave
            ("F3", "weak_pins", "medium", "operator", "O1", *at),
            ("F4", "credential_sharing", "critical", "operator", "O3", *at),
            # info is neither
            ("F5", "refund_bursts", "info", "operator", "O2", *at),
            ("F6", "refund_bursts", "high", "operator", "O4", *at),
        ]
    )
    result = evaluate(findings, truth, OPS)
    recall = dict(result.recall.select("scenario", "recall").iter_rows())
    assert recall == {"refund_burst": 1.0, "weak_pin": 1.0}
    precision = {row["rule"]: row for row in result.precision.iter_rows(named=True)}
    # F1 names O1, whose weak PIN (G4) is no refund burst: only precision_any credits it;
    # F2 matches only a look-alike; F6 detects its own scenario
    assert precision["refund_bursts"]["findings"] == 3
    assert precision["refund_bursts"]["true_positives"] == 1
    assert precision["refund_bursts"]["precision"] == pytest.approx(1 / 3)
    assert precision["refund_bursts"]["true_positives_any"] == 2
    assert precision["refund_bursts"]["precision_any"] == pytest.approx(2 / 3)
    assert precision["refund_bursts"]["on_lookalikes"] == 1
    assert precision["credential_sharing"]["precision"] == 0.0
    assert precision["credential_sharing"]["on_lookalikes"] == 1
    assert (precision["weak_pins"]["precision"], precision["weak_pins"]["on_lookalikes"]) == (1, 0)
    # F1, F2 and F4 detect none of their rule's scenarios and are above 'low' (F1's operator
    # has a weak PIN, which no refund burst detects)
    assert result.unmatched_above_low == 3
    record = result.to_dict()["lookalikes"]
    severities = {"low": 0, "medium": 0, "high": 0, "critical": 0}
    assert record == {
        "hotel_deposits": {"incidents": 1, "findings": 0, "by_rule": {}},
        "return_wave": {
            "incidents": 2,
            "findings": 2,
            "by_rule": {
                "refund_bursts": {
                    "findings": 2,
                    "incidents_flagged": 2,
                    "by_severity": severities | {"medium": 1, "high": 1},
                }
            },
        },
        "shift_cover": {
            "incidents": 1,
            "findings": 1,
            "by_rule": {
                "credential_sharing": {
                    "findings": 1,
                    "incidents_flagged": 1,
                    "by_severity": severities | {"critical": 1},
                }
            },
        },
    }


ATTACKS = {"pin_brute_force", "refund_burst", "takeover_refund"}


def _recall_rows(path: Path) -> dict[str, dict[str, object]]:
    done = _posaudit("evaluate", "--db", str(path), "--json")
    assert done.returncode == 0, done.stderr
    return {row["scenario"]: row for row in json.loads(done.stdout)["recall"]}


@pytest.fixture(scope="module")
def evaded_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world simulated at `--evasion 0.5`, with two appended days (which continue at
    the store's level), audited."""
    path = tmp_path_factory.mktemp("evasion") / "evaded.duckdb"
    size = ("--merchants", "12", "--seed", "5")
    for args in (("--days", "5", *size, "--evasion", "0.5"), ("--days", "2", "--append")):
        done = _posaudit("simulate", "--db", str(path), *args)
        assert done.returncode == 0, done.stderr
    done = _posaudit("run", "--db", str(path))
    assert done.returncode == 0, done.stderr
    return path


def test_evaluate_shows_the_evasion_level_a_world_was_simulated_at(evaded_world: Path) -> None:
    rows = _recall_rows(evaded_world)
    assert ATTACKS | {"weak_pin"} <= set(rows)
    for name, row in rows.items():
        # the conditions (weak, shared, default PINs...) take no level
        level = (0.5, [0.5]) if name in ATTACK_SCENARIOS else (None, [])
        assert (row["evasion"], row["evasion_levels"]) == level, name
    table = _posaudit("evaluate", "--db", str(evaded_world))
    assert table.returncode == 0, table.stderr
    assert "evasion" in table.stdout
    line = next(ln for ln in table.stdout.splitlines() if "pin_brute_force" in ln)
    assert line.split("│")[2].strip() == "0.5"


def test_a_store_simulated_before_evasion_levels_reads_as_0(audited_sample: Path) -> None:
    store = Store.open(audited_sample, read_only=True)
    try:
        texts = [row[0] for row in store.query("SELECT scenario_toml FROM simulations")]
    finally:
        store.close()
    assert texts and not any("evasion" in text for text in texts)
    rows = _recall_rows(audited_sample)
    for name in ATTACKS & set(rows):
        assert (rows[name]["evasion"], rows[name]["evasion_levels"]) == (0.0, [0.0])


def test_days_simulated_at_different_levels_read_as_mixed(
    evaded_world: Path, tmp_path: Path
) -> None:
    path = Path(shutil.copy(evaded_world, tmp_path / "mixed.duckdb"))
    store = Store.open(path)
    try:
        # the appended days as a store made before levels existed would have recorded them
        store.execute("UPDATE simulations SET scenario_toml = '' WHERE simulation_id = 2")
    finally:
        store.close()
    rows = _recall_rows(path)
    assert (rows["refund_burst"]["evasion"], rows["refund_burst"]["evasion_levels"]) == (
        "mixed",
        [0.0, 0.5],
    )
    table = _posaudit("evaluate", "--db", str(path))
    line = next(ln for ln in table.stdout.splitlines() if "refund_burst" in ln)
    assert line.split("│")[2].strip() == "mixed: 0, 0.5"


def test_without_simulations_no_scenario_has_a_level() -> None:
    """An ingested store has no simulations: its scenarios show no level, not 0."""
    truth = _truth([("G1", "refund_burst", "operator", "O1", T(2026, 1, 1), T(2026, 1, 2))])
    findings = _findings(
        [("F1", "refund_burst", "high", "operator", "O1", T(2026, 1, 1), T(2026, 1, 2))]
    )
    (row,) = evaluate(findings, truth, OPS).to_dict()["recall"]
    assert (row["evasion"], row["evasion_levels"]) == (None, [])
