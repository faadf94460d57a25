"""Bad input and unusable environments: one line on stderr, exit 2, nothing written.

Each case runs the command line as a user does and checks the exit code, that stderr is one
line naming the problem (no traceback), and that nothing was left behind: no store, no staged
copy, no lock file, an existing store byte for byte as it was.
"""

from __future__ import annotations

import json
import math
import os
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


def refused(result: subprocess.CompletedProcess[str], *needles: str, code: int = 2) -> str:
    """Exit ``code`` with one line on stderr holding every needle; returns that line."""
    assert result.returncode == code, (result.returncode, result.stderr)
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
        ("[review]\ndeadline_days = 0\n", ["'review.deadline_days' must be positive (got 0)"]),
        ("[review]\ndeadline_days = -7\n", ["'review.deadline_days' must not be negative"]),
        ("[review]\ndeadline_days = 7.5\n", ["'review.deadline_days' must be int, not float"]),
        ('[review]\ndeadline_days = "two weeks"\n', ["'review.deadline_days' must be int"]),
        ("[review]\ndeadline_days = true\n", ["'review.deadline_days' must be int, not bool"]),
        ("[review]\ndeadline_dayz = 7\n", ["unknown key 'review.deadline_dayz'"]),
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


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--start", "9999-12-31"],
            ["'world.start' must lie between 2000-01-01 and 2099-12-31", "9999-12-31"],
        ),
        (
            ["--start", "0001-01-01"],
            ["'world.start' must lie between 2000-01-01 and 2099-12-31", "0001-01-01"],
        ),
        (["--start", "2099-12-20"], ["the last simulated day would be 2100-01-18"]),
        (["--start", "2024W01"], ["'world.start' is not a date (YYYY-MM-DD)", "2024W01"]),
        (["--start", "20240101"], ["'world.start' is not a date (YYYY-MM-DD)", "20240101"]),
        (["--seed", "-1"], ["--seed must be between 0 and", "got -1"]),
        (["--seed", str(10**23)], ["--seed must be between 0 and", f"got {10**23}"]),
    ],
)
def test_simulate_refuses_dates_and_seeds_it_cannot_use(
    tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    result = cli(
        "simulate", "--db", str(tmp_path / "w.duckdb"), "--merchants", "2", "--days", "30", *args
    )
    refused(result, *needles)
    assert left_in(tmp_path) == []


def test_the_demo_refuses_a_seed_it_cannot_use(tmp_path: Path) -> None:
    result = cli(
        "demo",
        "--db",
        "demo.duckdb",
        "--out",
        "out",
        "--seed",
        "-1",
        "--merchants",
        "2",
        cwd=tmp_path,
    )
    refused(result, "--seed must be between 0 and")
    assert left_in(tmp_path) == []


def test_an_append_of_no_days_is_refused(store: Path) -> None:
    before = store.read_bytes()
    refused(
        cli("simulate", "--db", str(store), "--append", "--days", "0"),
        "'world.days' must be between 1",
    )
    assert store.read_bytes() == before
    assert left_in(store.parent) == [store.name]


def test_a_world_too_large_is_refused_with_its_estimate_unless_confirmed(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    line = refused(
        cli("simulate", "--db", str(db), "--merchants", "1000000", "--days", "3650"),
        "events",
        "TB",
        "past the limit of 100,000,000 events",
        "--yes",
    )
    assert "billion events" in line
    assert left_in(tmp_path) == []
    small = cli("simulate", "--db", str(db), "--merchants", "2", "--days", "1")
    assert small.returncode == 0, small.stderr
    assert (
        small.stdout.startswith("simulating about ")
        and "(estimated)" in small.stdout.splitlines()[0]
    )


# -- the store's file ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "evaluate", "export", "append", "simulate"])
def test_a_fifo_at_db_is_refused_before_it_is_opened(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "store.duckdb"
    os.mkfifo(fifo)
    args = {
        "run": ["run"],
        "evaluate": ["evaluate"],
        "export": ["export", "--out", str(tmp_path / "out")],
        "append": ["simulate", "--append"],
        "simulate": ["simulate", "--merchants", "2", "--days", "1"],
    }[command]
    result = cli(*args, "--db", str(fifo))
    refused(result, str(fifo), "FIFO")
    assert left_in(tmp_path) == ["store.duckdb"]


@pytest.mark.parametrize("command", ["run", "evaluate", "export", "append", "report"])
def test_a_store_cut_to_half_its_size_is_refused_untouched(
    store: Path, tmp_path: Path, command: str
) -> None:
    with store.open("r+b") as file:
        file.truncate(store.stat().st_size // 2)
    before = store.read_bytes()
    args = {
        "run": ["run"],
        "evaluate": ["evaluate"],
        "export": ["export", "--out", str(tmp_path / "out")],
        "append": ["simulate", "--append"],
        "report": ["report", "--out", str(tmp_path / "out"), "--format", "csv"],
    }[command]
    refused(cli(*args, "--db", str(store)), str(store), "damaged")
    assert store.read_bytes() == before
    assert left_in(tmp_path) == ["audit.duckdb"]


@pytest.mark.parametrize("length", [250, 300])
def test_a_store_name_too_long_for_the_file_system_is_refused(tmp_path: Path, length: int) -> None:
    db = tmp_path / ("w" * (length - len(".duckdb")) + ".duckdb")
    refused(
        cli("simulate", "--db", str(db), "--merchants", "2", "--days", "1"),
        "cannot create the store",
        "255",
    )
    assert left_in(tmp_path) == []


# -- the environment -----------------------------------------------------------------------


def test_a_read_only_file_system_is_one_line(
    read_only_folder: Path, store: Path, tmp_path: Path
) -> None:
    refused(
        cli(
            "simulate",
            "--db",
            str(read_only_folder / "w.duckdb"),
            "--merchants",
            "2",
            "--days",
            "1",
        ),
        str(read_only_folder),
        "Read-only file system",
    )
    db = tmp_path / "w.duckdb"
    parquet = read_only_folder / "parquet"
    refused(
        cli(
            "simulate",
            "--db",
            str(db),
            "--merchants",
            "2",
            "--days",
            "1",
            "--parquet",
            str(parquet),
        ),
        str(parquet),
        "Read-only file system",
    )
    assert not db.exists()
    refused(
        cli("export", "--db", str(store), "--out", str(read_only_folder / "out")),
        "Read-only file system",
    )
    demo = cli(
        "demo",
        "--db",
        str(tmp_path / "demo.duckdb"),
        "--out",
        str(read_only_folder / "out"),
        "--merchants",
        "2",
        "--days",
        "1",
    )
    refused(demo, str(read_only_folder / "out"), "Read-only file system")
    assert left_in(read_only_folder) == []
    assert left_in(tmp_path) == ["audit.duckdb", "read-only"]


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--db", "/proc/posaudit.duckdb", "--merchants", "2", "--days", "1"],
        [
            "simulate",
            "--db",
            "{tmp}/w.duckdb",
            "--merchants",
            "2",
            "--days",
            "1",
            "--parquet",
            "/proc/posaudit",
        ],
        ["export", "--db", "{store}", "--out", "/proc/posaudit"],
        [
            "demo",
            "--db",
            "{tmp}/demo.duckdb",
            "--out",
            "/proc/posaudit",
            "--merchants",
            "2",
            "--days",
            "1",
        ],
        ["simulate", "--db", "/proc/self/status", "--append"],
    ],
)
def test_a_path_under_proc_is_one_line(store: Path, tmp_path: Path, args: list[str]) -> None:
    filled = [a.format(tmp=tmp_path, store=store) for a in args]
    refused(cli(*filled), "/proc/")
    assert left_in(tmp_path) == ["audit.duckdb"]


def test_no_space_left_is_one_line_and_leaves_nothing(full_folder: Path, store: Path) -> None:
    db = full_folder / "w.duckdb"
    refused(
        cli("simulate", "--db", str(db), "--merchants", "20", "--days", "5"),
        str(full_folder),
        "No space left on device",
    )
    assert left_in(full_folder) == []
    # all but 64 KiB taken: the export cannot finish
    free = os.statvfs(full_folder).f_bavail * os.statvfs(full_folder).f_frsize
    (full_folder / "filler").write_bytes(b"\0" * (free - 64 * 1024))
    out = full_folder / "export"
    refused(cli("export", "--db", str(store), "--out", str(out)), "No space left on device")
    assert left_in(full_folder) == ["filler"]


def test_a_run_on_a_full_disk_is_one_line_and_commits_nothing(
    sample_store: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "full"
    folder.mkdir()
    size = sample_store.stat().st_size + 100 * 1024  # the store, and too little for its log
    if shutil.which("mount") is None or not _mount(
        "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)
    ):
        pytest.skip("a small tmpfs needs mount(8) and the right to mount (root)")
    try:
        store = folder / "audit.duckdb"
        shutil.copyfile(sample_store, store)
        result = cli("run", "--db", str(store), "--quiet")
        refused(result, str(folder), "No space left on device")
        assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "bad_input"
        assert not (folder / "audit.duckdb.lock").exists()
        shutil.copyfile(store, tmp_path / "after.duckdb")  # read it where DuckDB has room
        for leftover in folder.glob("audit.duckdb.wal"):
            shutil.copyfile(leftover, tmp_path / "after.duckdb.wal")
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    refused(cli("evaluate", "--db", str(tmp_path / "after.duckdb")), "has no successful run")
