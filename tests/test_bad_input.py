"""Bad input and unusable environments: one line on stderr, exit 2, nothing written.

Each case runs the command line as a user does and checks the exit code, that stderr is one
line naming the problem (no traceback), and that nothing was left behind: no store, no staged
copy, no lock file, an existing store byte for byte as it was.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from posaudit.config import ConfigError, merge_settings

POSAUDIT = [sys.executable, "-m", "posaudit"]
# Guards a refusal that once hung (a FIFO, a NaN rate): a refusal takes seconds.
HANG_GUARD_SECONDS = 300


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSAUDIT, *args], capture_output=True, text=True, cwd=cwd, timeout=HANG_GUARD_SECONDS
    )


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2 with one line on stderr holding every needle; returns that line."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("posaudit: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def left_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def store(sample_store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "audit.duckdb"
    shutil.copyfile(sample_store, target)
    return target


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only file system (a read-only bind mount: root ignores chmod)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if shutil.which("mount") is None or not _mount("--bind", str(folder), str(folder)):
        pytest.skip("a read-only bind mount needs mount(8) and the right to mount (root)")
    try:
        if not _mount("-o", "remount,bind,ro", str(folder)):
            pytest.skip("the bind mount could not be made read-only here")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def full_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 2 MiB tmpfs: a small world's store fills it."""
    folder = tmp_path / "full"
    folder.mkdir()
    if shutil.which("mount") is None or not _mount(
        "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)
    ):
        pytest.skip("a small tmpfs needs mount(8) and the right to mount (root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


# -- numbers that are not numbers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "key", "value"),
    [
        ("[scenarios.weak_pin]\nrate = nan\n", "scenarios.weak_pin.rate", "nan"),
        ("[behaviour]\ntypo_share = nan\n", "behaviour.typo_share", "nan"),
        ("[scenarios.refund_burst]\nrate = inf\n", "scenarios.refund_burst.rate", "inf"),
        ("[behaviour]\nsales_scale = +inf\n", "behaviour.sales_scale", "inf"),
    ],
)
def test_a_scenario_with_nan_or_infinity_is_refused(
    tmp_path: Path, content: str, key: str, value: str
) -> None:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(content)
    db = tmp_path / "w.duckdb"
    result = cli(
        "simulate", "--db", str(db), "--scenario", str(scenario), "--merchants", "2", "--days", "1"
    )
    refused(result, str(scenario), f"'{key}'", value, "finite")
    assert left_in(tmp_path) == ["scenario.toml"]


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (
            "[rules.operator_anomaly_scores]\ntop_fraction = nan\n",
            ["'rules.operator_anomaly_scores.top_fraction'", "nan"],
        ),
        (
            "[rules.reused_pins]\nhistory_size = 0\n",
            ["'rules.reused_pins.history_size' must be positive"],
        ),
        (
            "[rules.round_amount_refunds]\nround_unit_fen = 0\n",
            ["'rules.round_amount_refunds.round_unit_fen' must be positive"],
        ),
    ],
)
def test_a_policy_with_nan_or_an_empty_history_is_refused(
    store: Path, tmp_path: Path, content: str, needles: list[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(content)
    before = store.read_bytes()
    result = cli("run", "--db", str(store), "--policy", str(policy))
    refused(result, str(policy), *needles)
    assert store.read_bytes() == before
    assert left_in(tmp_path) == ["audit.duckdb", "policy.toml"]


def test_every_settings_file_refuses_nan_and_infinity_where_it_reads_a_number() -> None:
    """Scenario, policy and pipeline definitions all pass through merge_settings."""
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(
            ConfigError, match=r"f\.toml: 'steps\[1\]\.share' must be a finite number"
        ):
            merge_settings({"share": 0.5}, {"share": bad}, source="f.toml", where="steps[1]")
        with pytest.raises(ConfigError, match="'weights' must hold finite numbers"):
            merge_settings({"weights": [1.0]}, {"weights": [0.5, bad]}, source="f.toml")
    settings = {"share": 0.5}
    merge_settings(settings, {"share": 1}, source="f.toml")
    assert settings == {"share": 1.0}
