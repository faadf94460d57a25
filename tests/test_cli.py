"""The command line as a user meets it: help, summaries, and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

POSAUDIT = [sys.executable, "-m", "posaudit"]


def run(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSAUDIT, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=600
    )


def one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("posaudit: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_every_command_has_help_with_an_example() -> None:
    import typer.main

    from posaudit.cli import app

    group = typer.main.get_command(app)
    commands = dict(group.commands)  # type: ignore[attr-defined]
    for group in ("pins", "review", "analyze", "sample"):
        commands.update({f"{group} {k}": v for k, v in commands.pop(group).commands.items()})
    assert {
        "simulate",
        "demo",
        "export",
        "pins check",
        "review decide",
        "analyze benford",
        "analyze duplicates",
        "analyze gaps",
        "analyze strata",
        "analyze ageing",
        "sample size",
        "sample draw",
        "sample evaluate",
    } <= set(commands)
    for name, command in commands.items():
        assert (
            command.help
            and "Example: " in command.help
            and "posaudit" in command.help.split("Example: ")[1]
        ), name
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in commands:
        if name != "version":
            assert f"posaudit {name}" in readme, f"{name} is not documented in the README"


def test_version_as_an_option_and_as_a_command() -> None:
    from posaudit import __version__

    for args in (["--version"], ["version"], ["--version", "simulate"]):
        result = run(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{__version__}\n" and not result.stderr


def test_simulate_summarises_what_it_wrote(tmp_path: Path) -> None:
    result = run("simulate", "--db", str(tmp_path / "w.duckdb"), "--merchants", "4", "--days", "2")
    assert result.returncode == 0, result.stderr
    for word in ("transactions", "login_events", "ground_truth", "events/s", "weak_pin"):
        assert word in result.stdout


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("[world]\nmerchantz = 3\n", ["unknown key 'world.merchantz'"]),
        ("[scenarios.pin_brute_forse]\nrate = 1.0\n", ["unknown key 'scenarios.pin_brute_forse'"]),
        ('[world]\nmerchants = "many"\n', ["'world.merchants' must be int", "str"]),
        (
            "[scenarios.refund_burst]\nrate = -2.0\n",
            ["'scenarios.refund_burst.rate' must not be negative"],
        ),
        ("[world]\ndays = -1\n", ["'world.days' must not be negative"]),
        ("[behaviour]\ntypo_share = 3.0\n", ["'behaviour.typo_share' is a share"]),
        ("[world\n", ["is not valid TOML"]),
        ('[world]\nstart = "2026-13-45"\n', ["'world.start' is not a date"]),
    ],
)
def test_bad_scenario_files(tmp_path: Path, content: str, needles: list[str]) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(content)
    db = tmp_path / "w.duckdb"
    result = run("simulate", "--db", str(db), "--scenario", str(scenario))
    one_error_line(result, *needles)
    assert not db.exists()


def test_unreadable_or_missing_scenario_file(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    one_error_line(
        run("simulate", "--db", str(db), "--scenario", str(tmp_path / "nope.toml")),
        "does not exist",
    )
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    one_error_line(
        run("simulate", "--db", str(db), "--scenario", str(binary)), "cannot read scenario file"
    )
    assert not db.exists()


def test_negative_counts_and_wrong_types_on_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    one_error_line(
        run("simulate", "--db", str(db), "--merchants", "-5"),
        "'world.merchants' must not be negative",
    )
    one_error_line(
        run("simulate", "--db", str(db), "--days", "0"), "'world.days' must be between 1"
    )
    one_error_line(run("simulate", "--db", str(db), "--seed", "abc"), "--seed")
    one_error_line(
        run("simulate", "--db", str(db), "--start", "yesterday"), "'world.start' is not a date"
    )
    assert not db.exists()


def test_database_in_a_missing_folder(tmp_path: Path) -> None:
    result = run("simulate", "--db", str(tmp_path / "no" / "such" / "w.duckdb"))
    one_error_line(result, "folder", "does not exist")
    assert not (tmp_path / "no").exists()


def test_database_of_another_schema_is_refused_untouched(tmp_path: Path) -> None:
    foreign = tmp_path / "other.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
    con.close()
    before = foreign.read_bytes()
    one_error_line(
        run("simulate", "--db", str(foreign), "--append", "--days", "1"), "not a posaudit store"
    )
    one_error_line(
        run("export", "--db", str(foreign), "--out", str(tmp_path / "pq")), "not a posaudit store"
    )
    assert foreign.read_bytes() == before
    not_duckdb = tmp_path / "text.duckdb"
    not_duckdb.write_text("hello")
    one_error_line(
        run("simulate", "--db", str(not_duckdb), "--append", "--days", "1"), "not a DuckDB database"
    )


def test_older_schema_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    assert run("simulate", "--db", str(db), "--merchants", "2", "--days", "1").returncode == 0
    con = duckdb.connect(str(db))
    con.execute("UPDATE posaudit_meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    one_error_line(run("simulate", "--db", str(db), "--append", "--days", "1"), "schema version 0")


def test_existing_store_needs_append(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    assert run("simulate", "--db", str(db), "--merchants", "2", "--days", "1").returncode == 0
    before = db.read_bytes()
    one_error_line(run("simulate", "--db", str(db)), "already holds a world", "--append")
    assert db.read_bytes() == before


def test_append_under_another_pin_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "w.duckdb"
    assert run("simulate", "--db", str(db), "--merchants", "2", "--days", "1").returncode == 0
    monkeypatch.setenv("POSAUDIT_PIN_KEY", "another deployment's key, 32 bytes long")
    one_error_line(run("simulate", "--db", str(db), "--append", "--days", "1"), "another PIN key")


def test_pins_check_classifies_and_refuses_bad_lines() -> None:
    result = run("pins", "check", stdin="123456\n111111\n739204\n")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "123456\tascending_run",
        "111111\trepeated_digit",
        "739204\t-",
    ]
    bad = run("pins", "check", stdin="123456\n12a456\n")
    one_error_line(bad, "line 2")
    assert "12a456" not in bad.stderr
    assert bad.stdout == ""


def test_pins_check_flags_the_ten_most_common_pins_and_few_random_ones() -> None:
    common = [
        "123456",
        "111111",
        "123123",
        "000000",
        "123321",
        "666666",
        "888888",
        "654321",
        "112233",
        "520520",
    ]
    result = run("pins", "check", stdin="\n".join(common) + "\n")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == common
    assert all(line.split("\t")[1] != "-" for line in lines)
    import random

    rng = random.Random(5)
    randoms = [f"{rng.randrange(1_000_000):06d}" for _ in range(20_000)]
    result = run("pins", "check", stdin="\n".join(randoms) + "\n")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == len(randoms)
    flagged = sum(line.split("\t")[1] != "-" for line in lines)
    assert flagged / len(randoms) <= 0.15


def test_pins_check_flags_the_pins_people_really_choose() -> None:
    chosen = {
        "197001": "date",
        "198807": "date",
        "199912": "date",
        "200001": "date",
        "111222": "tripled_digits",
        "555666": "tripled_digits",
        "222333": "tripled_digits",
        "134679": "keypad_shape",
        "142536": "keypad_shape",
        "124578": "keypad_shape",
        "123457": "near_run",
        "314159": "famous_number",
        "739204": "-",
    }
    result = run("pins", "check", stdin="".join(f"{pin}\n" for pin in chosen))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"{pin}\t{cls}" for pin, cls in chosen.items()]
