"""The estimate a simulation prints before it starts, against what simulations wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from posaudit.simulate.engine import simulate
from posaudit.simulate.estimate import EVENTS_LIMIT, simulation_estimate
from posaudit.simulate.scenario import load_scenario, scenario_from_text


def test_the_estimate_is_near_what_a_world_writes(tmp_path: Path) -> None:
    for merchants, days, text in ((12, 5, None), (12, 5, "[behaviour]\nsales_scale = 3.0\n")):
        scenario = scenario_from_text(text, merchants=merchants, days=days)
        written = simulate(tmp_path / f"w{len(text or '')}.duckdb", scenario, seed=3)
        estimate = simulation_estimate(scenario)
        assert estimate.events == pytest.approx(written.events, rel=0.3)
        assert not estimate.over_limit


def test_a_million_merchants_over_ten_years_is_past_the_limit() -> None:
    estimate = simulation_estimate(load_scenario(None, merchants=1_000_000, days=3_650))
    assert estimate.over_limit and estimate.events > 1000 * EVENTS_LIMIT
    assert estimate.describe().startswith("about ") and "billion events" in estimate.describe()
    assert "TB" in estimate.describe() and "days" in estimate.describe()
    appended = simulation_estimate(load_scenario(None, merchants=200, days=1), new_store=False)
    assert appended.events < simulation_estimate(load_scenario(None, merchants=200, days=1)).events
