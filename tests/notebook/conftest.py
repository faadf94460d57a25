"""The sample world audited twice, and the notebooks executed on it.

The first run has a policy that switches two refund rules off and moves two thresholds; the
second uses the default policy. So the latest run has findings that are new, findings that
were resolved, and a policy that changed: everything 00-start-here explains.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from notebook_helpers import NOTEBOOK_NAMES, execute_notebooks

from posaudit.detect.policy import load_policy
from posaudit.run.local import run_pipeline
from posaudit.store import Store

FIRST_POLICY = """
[rules.refund_bursts]
enabled = false

[rules.round_amount_refunds]
enabled = false

[rules.network_failure_burst]
min_errors = 3

[rules.stale_pins]
max_age_days = 120
"""
# the settings FIRST_POLICY changes, as 00-start-here lists them
CHANGED_SETTINGS = 4


@dataclass(frozen=True)
class AuditedStore:
    path: Path
    runs: tuple[str, str]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def audited_store(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> AuditedStore:
    """A copy of the sample world with two successful runs (see the module docstring)."""
    folder = tmp_path_factory.mktemp("notebook-store")
    path = folder / "sample.duckdb"
    shutil.copyfile(sample_store, path)
    policy_file = folder / "first-policy.toml"
    policy_file.write_text(FIRST_POLICY, encoding="utf-8")
    runs = []
    for policy in (load_policy(policy_file), load_policy()):
        store = Store.open(path)
        try:
            runs.append(run_pipeline(store, policy).run_id)
        finally:
            store.close()
    return AuditedStore(path, (runs[0], runs[1]))


@dataclass(frozen=True)
class ExecutedNotebooks:
    notebooks: dict[str, Any]
    store_before: str
    store_after: str
    drilled_finding: str


@pytest.fixture(scope="session")
def executed_notebooks(audited_store: AuditedStore) -> ExecutedNotebooks:
    """Every notebook run once on the audited sample, three kernels at a time.

    The drill-down is given a PIN brute-force finding (a parameter, as a scheduler would).
    """
    store = Store.open(audited_store.path, read_only=True)
    try:
        drilled = str(
            store.query(
                "SELECT finding_id FROM findings WHERE rule = 'pin_brute_force' AND status = "
                "'open' "
                "ORDER BY score DESC, finding_id LIMIT 1"
            )[0][0]
        )
    finally:
        store.close()
    before = file_digest(audited_store.path)
    parameters = {
        name: {"db": str(audited_store.path), "run_id": audited_store.runs[1]}
        for name in NOTEBOOK_NAMES
    }
    parameters["05-finding-drilldown"]["finding_id"] = drilled
    notebooks = execute_notebooks(parameters)
    return ExecutedNotebooks(notebooks, before, file_digest(audited_store.path), drilled)


@pytest.fixture(scope="session")
def notebooks_on_ingested(ingested_store: Path) -> dict[str, Any]:
    """Every notebook run once, with its default parameters, on a store made by ingest."""
    return execute_notebooks({name: {"db": str(ingested_store)} for name in NOTEBOOK_NAMES})
