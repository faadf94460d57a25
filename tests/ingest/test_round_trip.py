"""The round trip that proves ingest: simulate -> export --layout lakala-tms -> ingest --mapping
lakala-tms into a new store -> run, and the same findings as the run on the original store.

docs/ingest.md lists what the layout cannot carry; none of it is in a simulated world's event
and dimension tables, so every row and every finding id must come back. A damaged export
(bad dates, unknown terminals, malformed amounts, duplicated lines, a truncated last line)
must lose exactly the damaged rows, each quarantined by file and line.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import build_store

POSAUDIT = [sys.executable, "-m", "posaudit"]
WORLD_TABLES = (
    "merchants",
    "terminals",
    "operators",
    "pin_events",
    "login_events",
    "lockouts",
    "transactions",
)
CRLF = b"\r\n"


def posaudit(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def rows_of(store: Path, table: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        con.close()


def finding_ids(store: Path) -> dict[str, str]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return dict(con.execute("SELECT finding_id, rule FROM findings").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("round_trip")
    build_store(folder / "original.duckdb", merchants=10, days=7, seed=21)
    posaudit(
        "export",
        "--db",
        str(folder / "original.duckdb"),
        "--layout",
        "lakala-tms",
        "--out",
        str(folder / "export"),
    )
    return folder


def test_the_round_trip_keeps_every_row_and_every_finding(world: Path) -> None:
    original, ingested = world / "original.duckdb", world / "ingested.duckdb"
    summary = posaudit(
        "ingest", "--db", str(ingested), "--mapping", "lakala-tms", "--json", str(world / "export")
    )
    line = json.loads(summary.stdout.strip().splitlines()[-1])
    assert line["rows_quarantined"] == 0 and line["rows_loaded"] == line["rows_read"] > 0
    for table in WORLD_TABLES:
        assert rows_of(ingested, table) == rows_of(original, table), table
    posaudit("run", "--db", str(original), "--quiet")
    posaudit("run", "--db", str(ingested), "--quiet")
    found, again = finding_ids(original), finding_ids(ingested)
    assert again == found
    # findings of every family of rule, so the trip carries what each family reads
    rules = set(found.values())
    assert len(rules) >= 8, rules
    assert any("refund" in r for r in rules) and any("pin" in r for r in rules)


def _damage(
    path: Path, rng: random.Random, share: float, kinds: dict[str, tuple[str, str] | None]
) -> set[int]:
    """Damage about ``share`` of the rows of the CSV at ``path`` in place; the lines (header is
    line 1) of the rows that must be quarantined."""
    raw = path.read_bytes()
    lines = raw.split(CRLF)[:-1]  # the file ends with a line end
    header = lines[0].decode("gb18030").split(",")
    rows = list(range(1, len(lines) - 1))  # the last line is kept for the truncation
    chosen = rng.sample(rows, max(len(kinds), int(len(rows) * share)))
    names = list(kinds)
    edits: dict[int, str] = {}
    for n, index in enumerate(chosen):
        edits[index] = names[n % len(names)]
    out: list[bytes] = []
    damaged: set[int] = set()
    for index, line in enumerate(lines):
        kind = edits.get(index)
        if kind is None:
            out.append(line)
            continue
        if kind == "duplicate":
            out += [line, line]
            damaged.add(len(out))  # the second copy is the one quarantined
            continue
        spec = kinds[kind]
        assert spec is not None
        column, value = spec
        cells = line.decode("gb18030").split(",")
        cells[header.index(column)] = f'"{value}"' if "," in value else value
        out.append(",".join(cells).encode("gb18030"))
        damaged.add(len(out))
    last = out.pop()
    out.append(last[: len(last) // 2])  # cut short, as a copy that ran out of space
    damaged.add(len(out))
    path.write_bytes(CRLF.join(out))  # and no line end after it
    return damaged


def test_damaged_rows_are_exactly_the_quarantined_ones(world: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    for file in (world / "export").iterdir():
        (export / file.name).write_bytes(file.read_bytes())
    rng = random.Random(16)
    transactions = next(export.glob("交易明细_*.csv"))
    damaged = {
        transactions.name: _damage(
            transactions,
            rng,
            0.03,
            {
                "bad_date": ("交易日期", "20260931"),
                "unknown_terminal": ("终端编号", "T999999"),
                "bad_amount": ("交易金额(元)", "1,2.3"),
                "duplicate": None,
            },
        ),
        "登录日志.csv": _damage(
            export / "登录日志.csv",
            rng,
            0.03,
            {
                "bad_date": ("登录日期", "2026-02-30"),
                "unknown_terminal": ("终端编号", "T999999"),
                "duplicate": None,
            },
        ),
    }
    store = tmp_path / "ingested.duckdb"
    summary = posaudit(
        "ingest", "--db", str(store), "--mapping", "lakala-tms", "--json", str(export)
    )
    line = json.loads(summary.stdout.strip().splitlines()[-1])
    con = duckdb.connect(str(store), read_only=True)
    try:
        quarantined = con.execute(
            "SELECT file_name, source_line, reason FROM quarantine"
        ).fetchall()
    finally:
        con.close()
    found: dict[str, set[int]] = {}
    for file_name, source_line, _ in quarantined:
        found.setdefault(Path(file_name).name, set()).add(int(source_line))
    assert found == damaged
    reasons = {reason for _, _, reason in quarantined}
    expected = {"bad_timestamp", "unknown_terminal", "bad_amount", "duplicate_in_file", "bad_row"}
    assert reasons == expected
    assert line["rows_quarantined"] == sum(len(lines) for lines in damaged.values())
    assert line["rows_read"] == line["rows_loaded"] + line["rows_quarantined"]
