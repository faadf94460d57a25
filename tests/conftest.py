"""Shared fixtures: small simulated worlds, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posaudit.pins import DEMO_PIN_KEY, PIN_KEY_ENV

# Every world the tests build is simulated, so its PINs are digested under the published demo
# key, set here explicitly (a key in the developer's own environment must not change what the
# tests see). The tests of a missing or bad key unset or change it for their own commands.
os.environ[PIN_KEY_ENV] = DEMO_PIN_KEY

from posaudit.simulate.engine import SimulationSummary, simulate
from posaudit.simulate.scenario import load_scenario

SAMPLE_SEED = 11
SAMPLE_MERCHANTS = 20
SAMPLE_DAYS = 21


def build_store(
    path: Path, *, merchants: int, days: int, seed: int, fraud: bool = True
) -> SimulationSummary:
    scenario = load_scenario(None, merchants=merchants, days=days)
    return simulate(path, scenario, seed=seed, fraud_on=fraud)


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-merchant, 21-day world (about 70k events), the size of data_samples/."""
    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    build_store(path, merchants=SAMPLE_MERCHANTS, days=SAMPLE_DAYS, seed=SAMPLE_SEED)
    return path
