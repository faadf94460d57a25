"""The store the report tests read: the sample world, audited once for the session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from posaudit.detect.policy import load_policy
from posaudit.run.local import run_pipeline
from posaudit.store import Store


@pytest.fixture(scope="session")
def audited_sample(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample world after one full run (reports only read it)."""
    path = tmp_path_factory.mktemp("audited-sample") / "w.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return path
