"""Every notebook runs top to bottom on a world of more than 5,000 operators, charts in bounds.

The smallest simulated world with that many operators: 800 merchants (seed 7: 5,041
operators; 799 merchants have 4,984), over 3 days, the fewest in which more than
:data:`~posaudit.notebook.bounds.RATE_POINTS_TOP` + ``RATE_POINTS_SAMPLE`` operators have a
refund rate, so the chart that stopped 03-refund-anomalies (one point per operator) is cut.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from notebook_helpers import NOTEBOOK_NAMES, chart_titles, execute_notebooks, outputs_of
from test_notebooks_run import PROMISED

from posaudit.classics import ageing, strata
from posaudit.detect.findings import SEVERITIES
from posaudit.detect.policy import load_policy
from posaudit.notebook import bounds, ledger, operators, pins, refunds, sales
from posaudit.pins import WEAKNESS_LABELS
from posaudit.rules import all_rules
from posaudit.run.local import run_pipeline
from posaudit.score import operators as scoring
from posaudit.score.merchants import HOUR_BINS
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.store import Store

pytestmark = pytest.mark.slow

MERCHANTS, DAYS, SEED = 800, 3, 7
RULES = len(all_rules())
# the kinds of operator_events (operator_event_kind_t in schema.sql)
OPERATOR_EVENT_KINDS = ("added", "deleted", "granted", "revoked")
LINKED_ROWS = 14  # the longest linked table (risk matrix: 14 rows per operator)
# The most rows any one dataset of each chart (by title) may carry.
CHART_BOUNDS: dict[str, int] = {
    "Events per day": 4 * bounds.DAYS,
    "Findings of the run by family and severity": len(operators.FAMILIES) * len(SEVERITIES),
    "What changed": 12 * RULES,
    "Failed logins over time": max(4 * bounds.TIME_BUCKETS, bounds.FAILURE_TERMINAL_ROWS),
    "Lockouts per day": 4 * bounds.DAYS,
    "Attacks and sharing, in time": bounds.LOGIN_FINDING_BUBBLES,
    "Terminals by lockout setting": 100,  # the simulator's settings, a handful
    "PIN problems": 2 * (len(pins.ISSUES) + 2),
    "Weak PINs by weakness class": 2 * len(WEAKNESS_LABELS),
    "How old operators' PINs are": 2 * (pins.AGE_BAND_CAP_DAYS // pins.AGE_BAND_DAYS + 1),
    "Refunds against their sales": bounds.REFUND_POINTS_FLAGGED + bounds.REFUND_POINTS_ORDINARY,
    "How long after the sale": int(2 * (refunds.LAG_CAP_DAYS / refunds.LAG_BIN_DAYS + 1)),
    "Refund findings by rule": 12 * RULES,
    "Merchants' refund rates against their category": bounds.RATE_POINTS_TOP
    + bounds.RATE_POINTS_SAMPLE,
    "Operators' refund rates against their peers": bounds.RATE_POINTS_TOP
    + bounds.RATE_POINTS_SAMPLE,
    "Anomaly scores of all operator-days": 2 * 50,
    "Why the top operator-days stand out": bounds.HEATMAP_ROWS * len(scoring.MODEL_FEATURES),
    "What the reported days have in common": 3 * len(scoring.FEATURES),
    "Operators who stand out": LINKED_ROWS * bounds.HEATMAP_ROWS,
    "Around the finding": bounds.TIMELINE_EVENTS,
    "How long after the sale a void comes": int(
        2 * (sales.VOID_DELAY_CAP_MINUTES / sales.VOID_DELAY_BIN_MINUTES + 1)
    ),
    "Declined sales per terminal-hour": bounds.DECLINE_POINTS,
    "Fees and completeness findings per day": len(ledger.LEDGER_RULES) * bounds.DAYS,
    "Operator events per day": len(OPERATOR_EVENT_KINDS) * bounds.DAYS,
    "Privilege findings by rule": RULES,
    "Categories' sales by hour": bounds.CATEGORY_ROWS * HOUR_BINS,
    "Merchants by ticket and card mix": bounds.MERCHANT_POINTS_TOP + bounds.MERCHANT_POINTS_SAMPLE,
    # the classics: a digit combination a row (at most 100), a stratum's two shares a row, an
    # age band a row
    "Benford, ": 100,
    "Approved sales by stratum of amount": 2 * (len(strata.QUANTILES) + 1),
    "Refunds by days after their sale": len(ageing.REFUND_BANDS) + 1,
}


def bound_of(spec: dict[str, Any]) -> int:
    titles = chart_titles(spec)
    for title, bound in CHART_BOUNDS.items():
        if any(t.startswith(title) for t in titles):
            return bound
    raise AssertionError(f"a chart with no bound: {sorted(titles)}")


@pytest.fixture(scope="module")
def large_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("large-world") / "large.duckdb"
    simulate(path, load_scenario(None, merchants=MERCHANTS, days=DAYS), seed=SEED)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return path


@pytest.fixture(scope="module")
def executed_at_scale(large_world: Path) -> dict[str, Any]:
    runs = {name: {"db": str(large_world), "run_id": None} for name in NOTEBOOK_NAMES}
    return execute_notebooks(runs, at_once=2, timeout=900)


def test_the_world_has_more_than_5000_operators(large_world: Path) -> None:
    store = Store.open(large_world, read_only=True)
    try:
        assert int(store.query("SELECT count(*) FROM operators")[0][0]) > 5_000  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_runs_with_every_chart_in_its_bound(executed_at_scale, name: str) -> None:
    shown = outputs_of(executed_at_scale[name])
    assert not shown.errors, shown.errors
    charts, tables = PROMISED[name]
    titles = {title for spec in shown.charts for title in chart_titles(spec)}
    assert all(any(t.startswith(title) for t in titles) for title in charts), sorted(titles)
    assert tables <= set(shown.tables)
    for spec in shown.charts:
        largest = max(len(rows) for rows in spec.get("datasets", {}).values())
        assert 0 < largest <= bound_of(spec) <= bounds.ALTAIR_MAX_ROWS, (
            f"{name}: {sorted(chart_titles(spec))} carries {largest} rows"
        )


def test_the_operator_rates_chart_says_it_shows_a_sample(executed_at_scale) -> None:
    spec = outputs_of(executed_at_scale["03-refund-anomalies"]).chart(
        "Operators' refund rates against their peers"
    )
    text = json.dumps(spec["title"])
    assert "furthest above their peers of" in text and "random sample of 1,000 of the" in text
