"""Shared fixtures: small simulated worlds, built once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
# Scenarios the sample world is too small for: a month's silence and the surge after it need
# 45 days; 20 merchants may hold no discount- or charity-class merchant to misuse its category,
# and at 15 per 1,000 merchants most worlds of 20 hold no merchant inventing amounts
SAMPLE_LACKS = frozenset({"dormant_surge", "category_misuse", "invented_amounts"})


def build_store(
    path: Path,
    *,
    merchants: int,
    days: int,
    seed: int,
    fraud: bool = True,
    without: tuple[str, ...] = (),
) -> SimulationSummary:
    """A simulated world of the default scenario, ``without`` these scenarios."""
    if without:
        from posaudit.simulate.scenario import scenario_from_text

        text = "".join(f"[scenarios.{name}]\nenabled = false\n" for name in without)
        scenario = scenario_from_text(text, merchants=merchants, days=days)
    else:
        scenario = load_scenario(None, merchants=merchants, days=days)
    return simulate(path, scenario, seed=seed, fraud_on=fraud)


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-merchant, 21-day world (about 70k events), the size of data_samples/."""
    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    build_store(path, merchants=SAMPLE_MERCHANTS, days=SAMPLE_DAYS, seed=SAMPLE_SEED)
    return path


@pytest.fixture(scope="session")
def audited_sample(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample world after one full run, for tests that only read it."""
    from posaudit.detect.policy import load_policy
    from posaudit.run.local import run_pipeline
    from posaudit.store import Store

    path = tmp_path_factory.mktemp("audited-sample") / "w.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return path


# Lines of the lakala-tms transactions export that an ingested store's tests damage, and how:
# each becomes one quarantined row with its own reason, so the tests can count them by reason.
DAMAGE: tuple[tuple[int, int, str], ...] = (
    (10, 1, "20261345"),  # 交易日期: no such month -> bad_timestamp
    (20, 3, "T999999"),  # 终端编号: no such terminal -> unknown_terminal
    (30, 9, '"1,2.3"'),  # 交易金额(元): no amount -> bad_amount
)


def build_ingested_store(
    folder: Path, *, merchants: int, days: int, seed: int, audited: bool = True
) -> Path:
    """A store made by `posaudit ingest` from a damaged lakala-tms export, then audited once
    by `posaudit run` (unless not ``audited``).

    The simulated world it comes from stays beside it (``world.duckdb``); the ingested store
    has no ground truth, as a store of real exports would not.
    """
    world, export, store = folder / "world.duckdb", folder / "export", folder / "ingested.duckdb"
    build_store(world, merchants=merchants, days=days, seed=seed)

    def posaudit(*args: str) -> None:
        command = [sys.executable, "-m", "posaudit", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stderr

    posaudit("export", "--db", str(world), "--layout", "lakala-tms", "--out", str(export))
    (transactions,) = export.glob("交易明细_*.csv")
    lines = transactions.read_bytes().decode("gb18030").split("\n")
    for line, column, value in DAMAGE:
        fields = lines[line].split(",")
        fields[column] = value
        lines[line] = ",".join(fields)
    transactions.write_bytes("\n".join(lines).encode("gb18030"))
    posaudit("ingest", "--db", str(store), "--mapping", "lakala-tms", str(export))
    if audited:
        posaudit("run", "--db", str(store))
    return store


@pytest.fixture(scope="session")
def ingested_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-merchant, 7-day world exported, damaged on 3 lines, ingested and audited once."""
    return build_ingested_store(
        tmp_path_factory.mktemp("ingested"), merchants=10, days=7, seed=SAMPLE_SEED
    )
