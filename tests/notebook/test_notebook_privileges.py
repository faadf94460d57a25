"""The privilege notebook on a world with operator events: what it shows is in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_helpers import chart_titles, execute_notebooks, outputs_of

from posaudit.detect.policy import load_policy
from posaudit.notebook import privileges
from posaudit.notebook.session import open_audit
from posaudit.run.local import run_pipeline
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("privilege-notebook")
    scenario = folder / "often.toml"
    scenario.write_text(
        "[scenarios.privilege_grant_abuse]\nrate = 5.0\n"
        "[lookalikes]\npromotion = 40.0\nstaff_turnover = 40.0\n"
    )
    path = folder / "w.duckdb"
    simulate(path, load_scenario(scenario, merchants=15, days=8), seed=4)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy(), full=True)
    finally:
        store.close()
    return path


def test_the_privilege_notebook_shows_the_events_and_findings(audited: Path) -> None:
    notebook = execute_notebooks({"10-operator-privileges": {"db": str(audited)}})
    shown = outputs_of(notebook["10-operator-privileges"])
    assert not shown.errors, shown.errors
    titles = {title for spec in shown.charts for title in chart_titles(spec)}
    assert {"Operator events per day", "Privilege findings by rule"} <= titles
    store = Store.open(audited, read_only=True)
    try:
        found = int(
            store.query(
                "SELECT count(*) FROM findings WHERE status = 'open' AND family = 'privileges'"
            )[0][0]
        )
    finally:
        store.close()
    assert shown.tables["Privilege findings"] == found > 0
    audit = open_audit(audited)
    granted = privileges.grants_in_window(audit)
    assert shown.tables["Rights granted and revoked in the data window"] == granted.height > 0
    roles = privileges.rights_by_role(audit)
    # every administrator holds manage and refund; among clerks only some do
    admins = roles.filter(roles.get_column("role") == "admin").row(0, named=True)
    assert admins["manage"] == admins["refund"] == admins["operators"]
