"""What a scheduler and a person see of a run: logs on stderr, one JSON line last on stdout."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest
from pipeline_kit import POSAUDIT, cli, copy, summary_line

pytestmark = pytest.mark.slow

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
STAGES = ["plan", "read", "detect", "write"]
SUMMARY_KEYS = {
    "run_id",
    "status",
    "mode",
    "reason",
    "previous_run_id",
    "started_at",
    "finished_at",
    "seconds",
    "data_from",
    "data_to",
    "watermark",
    "rows_read",
    "findings",
    "new",
    "seen",
    "carried",
    "reopened",
    "resolved",
    "not_run",
    "rules_not_run",
    "dismissed",
    "reopened_by_evidence",
    "snoozed",
    "queued_reviews_applied",
    "new_by_severity",
    "rules_over_all_data",
    "policy_hash",
    "code_version",
    "stage_seconds",
    "fail_on",
    "alert",
    "exit_code",
}


@pytest.fixture(scope="module")
def store(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy(sample_store, tmp_path_factory.mktemp("output") / "output.duckdb")


def test_logs_json_logs_and_quiet(store: Path) -> None:
    plain = cli("run", "--db", str(store))
    assert plain.returncode == 0, plain.stderr
    events = [re.search(r"\bevent=(\w+)", line).group(1) for line in plain.stderr.splitlines()]  # type: ignore[union-attr]
    assert events == STAGES
    assert all(line.startswith("ts=") for line in plain.stderr.splitlines())
    assert "run-00001: open findings" in plain.stdout and "│ refunds " in plain.stdout
    summary = summary_line(plain.stdout)
    assert set(summary) == SUMMARY_KEYS
    assert summary["mode"] == "full" and summary["findings"] == summary["new"] > 100

    logged = cli("run", "--db", str(store), "--log-json")
    records = [json.loads(line) for line in logged.stderr.splitlines()]
    assert [r["event"] for r in records] == STAGES
    assert records[0]["mode"] == "incremental" and records[-1]["new"] == 0
    assert summary_line(logged.stdout)["run_id"] == "run-00002"

    quiet = cli("run", "--db", str(store), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert (
        len(quiet.stdout.splitlines()) == 1 and summary_line(quiet.stdout)["run_id"] == "run-00003"
    )

    only_json = cli("run", "--db", str(store), "--json", "--quiet")
    assert json.loads(only_json.stdout)["resolved"] == 0


def test_a_terminal_gets_a_progress_bar(store: Path) -> None:
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"COLUMNS": "120"}
    process = subprocess.Popen(
        [*POSAUDIT, "run", "--db", str(store)],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        env=env,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    stdout, _ = process.communicate(timeout=300)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode("utf-8", "replace"))
    assert process.returncode == 0
    assert "━" in text and "detecting" in text and "rows read" in text
    assert "event=" not in text
    assert summary_line(stdout)["mode"] == "incremental"


def test_an_output_root_that_is_a_file_is_refused_before_the_run(
    store: Path, tmp_path: Path
) -> None:
    """The run is not committed when its output steps could not be written."""
    before = store.read_bytes()
    target = tmp_path / "outputs"
    target.write_text("a file, not a folder\n")
    nightly = str(PIPELINES / "nightly.toml")
    for out in (target, target / "nightly"):
        result = cli("run", "--db", str(store), "--pipeline", nightly, "--out", str(out))
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            f"posaudit: error: --out {out}: {target} is a file, "
            "not a folder for the run's outputs\n"
        )
        assert store.read_bytes() == before
