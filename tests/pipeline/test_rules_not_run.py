"""A rule switched off in the policy was not run: its open findings stay as they were.

Nothing decided they are gone, so they are not resolved: they stay open, under the run that
last ran their rule, and the run says it kept them (its summary line, its JSON line and the
table of open findings).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from pipeline_kit import cli, copy, findings, summary_line

from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.policy import load_policy
from posaudit.run.plan import RuleScope
from posaudit.run.record import NOT_RUN_COLUMN, write_run
from posaudit.store import Store

pytestmark = pytest.mark.slow

OFF = "[rules.weak_pins]\nenabled = false\n[rules.stale_pins]\nenabled = false\n"


def test_switching_rules_off_keeps_their_findings_open(sample_store: Path, tmp_path: Path) -> None:
    store = copy(sample_store, tmp_path / "audit.duckdb")
    first = cli("run", "--db", str(store))
    assert first.returncode == 0, first.stderr
    before = findings(store, "rule IN ('weak_pins', 'stale_pins')")
    assert before.height > 0 and set(before.get_column("status")) == {"open"}
    policy = tmp_path / "off.toml"
    policy.write_text(OFF)

    off = cli("run", "--db", str(store), "--policy", str(policy))
    assert off.returncode == 0, off.stderr
    summary = summary_line(off.stdout)
    assert summary["resolved"] == 0
    assert summary["not_run"] == before.height
    assert summary["rules_not_run"] == ["stale_pins", "weak_pins"]
    assert summary["findings"] == summary["new"] + summary["seen"]  # the run's own, not the kept
    assert (
        f"{before.height:,} more open findings kept as they were, "
        "their rules not run (stale_pins, weak_pins)" in off.stdout
    )
    assert NOT_RUN_COLUMN in off.stdout  # the table of open findings counts them apart
    kept = findings(store, "rule IN ('weak_pins', 'stale_pins')")
    assert kept.equals(before)  # open, and under the run that last ran their rule

    # switched on again: seen again, as if never off
    back = cli("run", "--db", str(store))
    assert back.returncode == 0, back.stderr
    again = summary_line(back.stdout)
    assert again["not_run"] == 0 and again["resolved"] == 0 and again["new"] == 0
    assert set(findings(store, "rule IN ('weak_pins', 'stale_pins')").get_column("status")) == {
        "open"
    }


def test_the_merge_both_engines_share_keeps_findings_of_rules_not_run(
    sample_store: Path, tmp_path: Path
) -> None:
    """write_run, with the scopes of the rules that ran (as the Spark engine passes them)."""
    store_path = copy(sample_store, tmp_path / "audit.duckdb")
    first = cli("run", "--db", str(store_path))
    assert first.returncode == 0, first.stderr
    open_before = findings(store_path)
    ran = sorted(set(open_before.get_column("rule")) - {"weak_pins"})
    store = Store.open(store_path)
    try:
        written = write_run(
            store,
            pl.DataFrame(schema=FINDINGS_SCHEMA),
            run_id="run-00002",
            scopes={r: RuleScope(r, None, None, "full run") for r in ran},
            policy=load_policy(),
            mode="full",
            engine="spark",
            started_at=datetime.now(),
            started=time.perf_counter(),
            data_from=datetime(2026, 9, 1),
            data_to=datetime(2026, 9, 22),
            rows_read=0,
        )
    finally:
        store.close()
    weak = open_before.filter(pl.col("rule") == "weak_pins").height
    assert written.counts.not_run == weak and written.counts.rules_not_run == ["weak_pins"]
    assert written.counts.resolved == open_before.height - weak
    assert findings(store_path, "rule = 'weak_pins'").equals(
        open_before.filter(pl.col("rule") == "weak_pins")
    )
