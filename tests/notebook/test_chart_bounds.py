"""Every chart draws a bounded number of rows whatever it is fed, and says what it left out.

Each chart function is fed more rows than its bound (as a large store gives it) and its
Vega-Lite spec is checked: the rows it carries, and the subtitle that says what it shows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from posaudit.notebook import bounds, charts, operators, refunds

START = datetime(2026, 1, 1)
SEVERITIES = ("info", "low", "medium", "high", "critical")


def spec_of(chart: Any) -> dict[str, Any]:
    """The chart's Vega-Lite spec (Altair raises MaxRowsError above its limit here)."""
    return chart.to_dict()


def dataset_rows(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The inline datasets of a spec, largest first."""
    return sorted(spec.get("datasets", {}).values(), key=len, reverse=True)


def subtitles(spec: Any) -> str:
    """Every subtitle line of a spec, at any depth, joined."""
    found: list[str] = []
    if isinstance(spec, dict):
        title = spec.get("title")
        if isinstance(title, dict):
            subtitle = title.get("subtitle")
            found += [subtitle] if isinstance(subtitle, str) else list(subtitle or [])
        for value in spec.values():
            found.append(subtitles(value))
    elif isinstance(spec, list):
        found += [subtitles(value) for value in spec]
    return "\n".join(s for s in found if s)


def values_of(spec: dict[str, Any], field: str) -> set[Any]:
    return {row[field] for rows in dataset_rows(spec) for row in rows if field in row}


# --- time series ------------------------------------------------------------------------------


def test_daily_volumes_keep_the_last_days() -> None:
    days = 400
    volumes = pl.DataFrame(
        {
            "day": [START + timedelta(days=d) for d in range(days) for _ in range(4)],
            "table_name": ["login_events", "lockouts", "pin_events", "transactions"] * days,
            "label": ["logins", "lockouts", "PIN events", "transactions"] * days,
            "events": 100,
            "median_events": 100.0,
            "is_low": False,
        }
    )
    spec = spec_of(charts.daily_volume_chart(volumes))
    assert len(dataset_rows(spec)[0]) == 4 * bounds.DAYS
    assert f"the last {bounds.DAYS} of {days} full days" in subtitles(spec)
    assert max(values_of(spec, "day")) == (START + timedelta(days=days - 1)).isoformat()


def test_lockouts_per_day_keep_the_last_days() -> None:
    days = 400
    lockouts = pl.DataFrame(
        {
            "time": [START + timedelta(days=d) for d in range(days) for _ in range(2)],
            "unlock_method": ["timeout", "admin"] * days,
            "lockouts": 3,
        }
    )
    spec = spec_of(charts.lockouts_chart(lockouts))
    assert len(dataset_rows(spec)[0]) == 2 * bounds.DAYS
    assert f"the last {bounds.DAYS} of {days} days" in subtitles(spec)


def test_failed_logins_keep_the_latest_buckets_and_the_worst_terminals() -> None:
    hours, terminals = 2_000, 60
    times = [START + timedelta(hours=h) for h in range(hours)]
    over_time = pl.DataFrame(
        {
            "time": [t for t in times for _ in range(2)],
            "outcome": ["wrong_pin", "network_error"] * hours,
            "outcome_label": ["wrong PIN", "network error"] * hours,
            "cause": ["credentials", "network"] * hours,
            "attempts": 4,
        }
    )
    # terminal T059 fails most, T000 least; each fails every other hour
    by_terminal = pl.DataFrame(
        [
            (f"T{t:03d}", "M1", times[h], "credentials", t + 1)
            for t in range(terminals)
            for h in range(0, hours, 2)
        ],
        schema=["terminal_id", "merchant_id", "time", "cause", "attempts"],
        orient="row",
    )
    spec = spec_of(charts.failures_chart(over_time, by_terminal, every="1h"))
    timeline, bars = spec["vconcat"]
    timeline_rows = spec["datasets"][timeline["data"]["name"]]
    bar_rows = spec["datasets"][bars["data"]["name"]]
    assert len(timeline_rows) == 2 * bounds.TIME_BUCKETS
    shown = {row["terminal_id"] for row in bar_rows}
    assert len(bar_rows) <= bounds.FAILURE_TERMINAL_ROWS
    assert len(shown) <= bounds.FAILURE_TERMINALS
    assert shown == {f"T{t:03d}" for t in range(terminals - len(shown), terminals)}
    # a terminal is drawn with every one of its buckets in the period shown, or not at all
    assert len(bar_rows) == len(shown) * bounds.TIME_BUCKETS // 2
    text = subtitles(spec)
    assert f"the last {bounds.TIME_BUCKETS} of {hours:,} buckets of 1h" in text
    assert f"the {len(shown)} terminals with the most credential failures, of 60" in text


# --- one mark per finding, refund, merchant or operator ---------------------------------------


def test_login_findings_keep_the_most_severe() -> None:
    n = 5_000
    findings = pl.DataFrame(
        {
            "finding_id": [f"F{i:05d}" for i in range(n)],
            "rule": "pin_brute_force",
            "severity": [SEVERITIES[i % 5] for i in range(n)],
            "score": 0.5,
            "entity_type": "operator",
            "entity_id": "T1-01",
            "terminal_id": "T1",
            "window_start": START,
            "window_end": START,
            "minutes": 5.0,
            "attempts": 9,
            "summary": "guessing",
            "is_new": True,
        }
    )
    spec = spec_of(charts.login_findings_chart(findings))
    rows = dataset_rows(spec)[0]
    assert len(rows) == bounds.LOGIN_FINDING_BUBBLES
    assert {row["severity"] for row in rows} == {"critical"}
    assert f"the {bounds.LOGIN_FINDING_BUBBLES} most severe of 5,000 findings" in subtitles(spec)


def test_refund_scatter_samples_each_kind_to_its_bound() -> None:
    n = 20_000
    points = pl.DataFrame(
        {
            "txn_id": [f"X{i}" for i in range(n)],
            "ts": START,
            "terminal_id": "T1",
            "operator_id": "T1-01",
            "sale_cny": 20.0,
            "refund_cny": 10.0,
            "lag_days": 1.0,
            "flag": ["refunds_over_sale" if i % 4 == 0 else refunds.NO_FINDING for i in range(n)],
            "flagged_total": 9_000,
            "ordinary_total": 30_000,
            "flagged_shown": 5_000,
            "ordinary_shown": 15_000,
        }
    )
    spec = spec_of(charts.refund_scatter_chart(points))
    rows = dataset_rows(spec)[0]
    flagged = [r for r in rows if r["flag"] != refunds.NO_FINDING]
    assert len(flagged) == bounds.REFUND_POINTS_FLAGGED
    assert len(rows) - len(flagged) == bounds.REFUND_POINTS_ORDINARY
    assert (
        f"a random sample (seed 0): {bounds.REFUND_POINTS_FLAGGED:,} of the 9,000 refunds a "
        f"finding names, {bounds.REFUND_POINTS_ORDINARY:,} of the 30,000 others"
    ) in subtitles(spec)
    assert spec == spec_of(charts.refund_scatter_chart(points))  # seeded: the same every time


def _operator_rates(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "operator_id": [f"T{i:05d}-01" for i in range(n)],
            "merchant_id": "M1",
            "operator_no": "01",
            "role": "clerk",
            "can_refund": True,
            "sales": 100,
            "refunds": 3,
            # operator i refunds i / n times as often as its peers (0.01)
            "refund_rate": [0.01 * i / n for i in range(n)],
            "peer_rate": 0.01,
            "rate_vs_peers": [i / n for i in range(n)],
            "flagged_refunds": 0,
            "findings": 0,
        }
    )


def test_operator_rates_keep_those_furthest_above_their_peers_and_a_sample() -> None:
    n = 12_000
    rates = _operator_rates(n).with_columns(
        # one operator refunds where its peers refund nothing: first of all
        pl.when(pl.col("operator_id") == "T00000-01")
        .then(0.0)
        .otherwise(pl.col("peer_rate"))
        .alias("peer_rate"),
        pl.when(pl.col("operator_id") == "T00000-01")
        .then(0.02)
        .otherwise(pl.col("refund_rate"))
        .alias("refund_rate"),
    )
    spec = spec_of(charts.operator_rates_chart(rates))
    rows = dataset_rows(spec)[0]
    top, sample = bounds.RATE_POINTS_TOP, bounds.RATE_POINTS_SAMPLE
    assert len(rows) == top + sample
    ids = {row["operator_id"] for row in rows}
    assert "T00000-01" in ids
    assert {f"T{i:05d}-01" for i in range(n - top + 1, n)} <= ids
    assert (
        f"the {top:,} furthest above their peers of {n:,} operators, and a random sample of "
        f"{sample:,} of the other {n - top:,} (seed 0)"
    ) in subtitles(spec)


def test_merchant_rates_keep_those_furthest_above_their_category() -> None:
    n = 9_000
    rates = pl.DataFrame(
        {
            "merchant_id": [f"M{i:05d}" for i in range(n)],
            "name": "shop",
            "category": "grocery",
            "sales": 1_000,
            "refunds": 10,
            "refund_fen": 100,
            "refund_rate": [0.01 * i / n for i in range(n)],
            "category_rate": 0.01,
            "rate_vs_category": [i / n for i in range(n)],
            "flagged_refunds": 0,
        }
    )
    spec = spec_of(charts.merchant_rates_chart(rates))
    assert len(dataset_rows(spec)[0]) == bounds.RATE_POINTS_TOP + bounds.RATE_POINTS_SAMPLE
    assert f"furthest above their category of {n:,} merchants" in subtitles(spec)


def test_rate_charts_draw_a_small_frame_whole_and_say_nothing_more() -> None:
    spec = spec_of(charts.operator_rates_chart(_operator_rates(300)))
    assert len(dataset_rows(spec)[0]) == 300
    assert "random sample" not in subtitles(spec) and "furthest" not in subtitles(spec)


# --- linked tables and heat maps --------------------------------------------------------------


def _findings(n: int, *, key: str, values: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            key: [f"K{i % values:03d}" for i in range(n)],
            "finding_id": [f"F{i:05d}" for i in range(n)],
            "change": "new",
            "family": "refunds",
            "severity": "high",
            "amount_fen": 1_000,
            "window_start": START,
            "summary": "a finding",
        }
    )


def test_run_changes_table_carries_only_the_rows_it_can_show() -> None:
    changes = _findings(20_000, key="rule", values=21)
    by_rule = (
        changes.group_by("rule", "family", "change")
        .agg(pl.len().cast(pl.Int64).alias("findings"))
        .with_columns(pl.col("findings").alias("signed"))
    )
    spec = spec_of(charts.run_changes_chart(by_rule, changes, previous="run-00001"))
    table = dataset_rows(spec)[0]
    assert len(table) == 21 * 12  # twelve rows of each rule, all a click on a rule shows


def test_refund_rules_table_carries_only_the_rows_it_can_show() -> None:
    findings = _findings(20_000, key="rule", values=9)
    counts = findings.group_by("rule").agg(
        pl.len().alias("findings"),
        pl.len().alias("new"),
        pl.lit(0).alias("critical"),
        pl.len().alias("high"),
        pl.col("amount_fen").sum(),
    )
    spec = spec_of(charts.refund_rules_chart(counts, findings))
    assert len(dataset_rows(spec)[0]) == 9 * 12


def test_feature_heatmap_keeps_the_first_ranks() -> None:
    days, features = 200, 15
    ratios = pl.DataFrame(
        {
            "operator_day": [f"operator {d:03d}" for d in range(days) for _ in range(features)],
            "rank": [d + 1 for d in range(days) for _ in range(features)],
            "feature": [f"f{f}" for _ in range(days) for f in range(features)],
            "label": [f"feature {f}" for _ in range(days) for f in range(features)],
            "value": 2.0,
            "median": 1.0,
            "ratio": 2.0,
            "excess": 0.4,
        }
    )
    spec = spec_of(charts.feature_heatmap(ratios))
    assert len(dataset_rows(spec)[0]) == bounds.HEATMAP_ROWS * features
    assert max(values_of(spec, "rank")) == bounds.HEATMAP_ROWS
    assert f"the first {bounds.HEATMAP_ROWS} of {days} operator-days" in subtitles(spec)


def test_risk_matrix_keeps_the_first_operators_and_only_their_findings() -> None:
    ranked, per = 300, 30
    matrix = pl.DataFrame(
        {
            "operator_id": [f"K{o:03d}" for o in range(ranked) for _ in operators.FAMILIES],
            "operator": [f"operator {o:03d}" for o in range(ranked) for _ in operators.FAMILIES],
            "rank": [o + 1 for o in range(ranked) for _ in operators.FAMILIES],
            "family": list(operators.FAMILIES) * ranked,
            "findings": 2,
        }
    )
    findings = _findings(ranked * per, key="operator_id", values=ranked).with_columns(
        pl.lit("refunds_over_sale").alias("rule")
    )
    spec = spec_of(charts.risk_matrix_chart(matrix, findings))
    shown = {f"K{o:03d}" for o in range(bounds.HEATMAP_ROWS)}
    assert values_of(spec, "operator_id") == shown
    sizes = sorted(len(rows) for rows in dataset_rows(spec))
    assert sizes == sorted([bounds.HEATMAP_ROWS * len(operators.FAMILIES), 14 * len(shown)])
    assert f"the first {bounds.HEATMAP_ROWS} of {ranked} operators" in subtitles(spec)


# --- the drill-down timeline ------------------------------------------------------------------


def test_timeline_keeps_every_evidence_event_and_samples_the_rest() -> None:
    n, named = 10_000, 40
    events = pl.DataFrame(
        {
            "ts": [START + timedelta(seconds=i) for i in range(n)],
            "end_ts": None,
            "lane": "logins",
            "event": "wrong PIN",
            "event_id": [f"L{i:05d}" for i in range(n)],
            "terminal_id": "T1",
            "operator_id": "T1-01",
            "amount_cny": None,
            "detail": "operator number 01",
            "in_evidence": [i % (n // named) == 0 for i in range(n)],
            "in_range": True,
            "events": 1,
        },
        schema_overrides={"end_ts": pl.Datetime("us"), "amount_cny": pl.Float64},
    )
    chart = charts.timeline_chart(
        events,
        window_start=START,
        window_end=START + timedelta(hours=1),
        shown_from=START,
        shown_to=START + timedelta(hours=3),
        title="Around the finding: operator T1-01",
    )
    spec = spec_of(chart)
    rows = dataset_rows(spec)[0]
    assert len(rows) == bounds.TIMELINE_EVENTS
    assert sum(row["in_evidence"] for row in rows) == named
    assert (
        f"every event the evidence names and a random sample of "
        f"{bounds.TIMELINE_EVENTS - named:,} of the other {n - named:,} (seed 0)"
    ) in subtitles(spec)


# --- charts over a fixed domain: their frames are bounded by construction ----------------------


@pytest.mark.parametrize("n", [1_000, 1_000_000])
def test_score_distribution_has_as_many_rows_whatever_the_operator_days(n: int) -> None:
    scores = pl.DataFrame(
        {
            "anomaly_score": pl.int_range(n, eager=True) / n,
            "in_findings": pl.int_range(n, eager=True) % 50 == 0,
        }
    )
    assert operators.score_distribution(scores).height <= 2 * 50


def test_refund_lags_have_as_many_rows_whatever_the_refunds() -> None:
    n = 1_000_000
    lags = refunds.refund_lags(
        pl.DataFrame(
            {
                "has_sale": True,
                "lag_days": pl.int_range(n, eager=True) / 1_000,
                "flag": refunds.NO_FINDING,
            }
        ),
        refund_window_days=15,
    )
    assert lags.height <= 2 * (refunds.LAG_CAP_DAYS / refunds.LAG_BIN_DAYS + 1)
