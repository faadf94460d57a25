"""Exporting the review trail and importing an analyst's CSV of decisions, through the
command line: good rows recorded in one go, bad rows named by line, the trail still whole."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from posaudit.review.trail import COLUMNS
from posaudit.store import Store
from tests.review.conftest import cli
from tests.test_bad_input import refused

DECISIONS = ("confirmed_fraud", "policy_breach", "false_positive", "benign_explained")


def write_csv(path: Path, rows: list[list[str]], *, encoding: str = "utf-8") -> Path:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    path.write_bytes(text.getvalue().encode(encoding))
    return path


def current(world: Path) -> dict[str, tuple[object, ...]]:
    """Each reviewed finding's current (status, decision, assignee, note)."""
    store = Store.open(world, read_only=True)
    try:
        rows = store.query(
            "SELECT finding_id, CAST(status AS VARCHAR), CAST(decision AS VARCHAR), assignee, "
            "note FROM finding_reviews "
            "QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY review_id DESC) = 1"
        )
    finally:
        store.close()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def trail_of(world: Path) -> list[tuple[object, ...]]:
    store = Store.open(world, read_only=True)
    try:
        return store.query(
            "SELECT review_id, finding_id, CAST(decision AS VARCHAR), note "
            "FROM finding_reviews ORDER BY review_id"
        )
    finally:
        store.close()


def verified(world: Path) -> str:
    done = cli("review", "verify", "--db", str(world))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_good_rows_are_recorded_in_order_and_bad_rows_named_by_line(
    world: Path, finding_ids: list[str], tmp_path: Path
) -> None:
    first, second, third = finding_ids
    decisions = write_csv(
        tmp_path / "decisions.csv",
        [
            ["finding_id", "decision", "note", "status", "assignee", "analyst's own column"],
            [second, "false_positive", "the hotel's deposits", "", "", "x"],  # line 2
            [first, "fraud", "", "", "", ""],  # line 3
            ["0000nosuchfinding000", "false_positive", "", "", "", ""],  # line 4
            [third, "confirmed_fraud", "two lines\nof note", "in_review", "bo", ""],  # 5-6
            [first, "false_positive", "ok\x1b[2J", "", "", ""],  # line 7
            [first, "policy_breach", "", "done", "", ""],  # line 8
            [first, "policy_breach", "", "", "", ""],  # line 9
            [first],  # line 10: too few fields
        ],
    )
    done = cli("review", "import", str(decisions), "--db", str(world), analyst="ana")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert [line.split(" line ")[1].split(":")[0] for line in lines] == ["3", "4", "7", "8", "10"]
    assert all(line.startswith(f"posaudit: error: {decisions} line ") for line in lines)
    assert "line 3: unknown decision 'fraud': a decision is one of" in lines[0]
    assert "line 4: unknown finding '0000nosuchfinding000'" in lines[1]
    assert "line 7: the note holds the control character U+001B" in lines[2]
    assert "line 8: unknown status 'done'" in lines[3]
    assert "line 10: " in lines[4]
    summary = done.stdout.strip()
    assert summary.startswith(f"{decisions}: 3 recorded, 5 refused; the last review 3 with digest ")
    # the good rows, in the file's order, each a review of its own
    assert [(r[0], r[1], r[2]) for r in trail_of(world)] == [
        (1, second, "false_positive"),
        (2, third, "confirmed_fraud"),
        (3, first, "policy_breach"),
    ]
    now = current(world)
    assert now[third] == ("in_review", "confirmed_fraud", "bo", "two lines\nof note")
    assert now[second] == ("closed", "false_positive", None, "the hotel's deposits")
    assert now[first] == ("closed", "policy_breach", None, None)
    assert summary.endswith(verified(world).strip().rsplit(" ", 1)[1])


def test_every_row_good_exits_0_and_the_trail_verifies(
    world: Path, finding_ids: list[str], tmp_path: Path
) -> None:
    rows = [["finding_id", "decision"], *([f, "benign_explained"] for f in finding_ids)]
    done = cli("review", "import", str(write_csv(tmp_path / "d.csv", rows)), "--db", str(world))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert ": 3 recorded, 0 refused; the last review 3 with digest " in done.stdout
    assert "the review trail is whole: 3 reviews" in verified(world)


def test_utf8_with_a_bom_and_gb18030_files_are_read(
    world: Path, finding_ids: list[str], tmp_path: Path
) -> None:
    note = "商户确认为押金退款"
    rows = [["finding_id", "decision", "note"], [finding_ids[0], "false_positive", note]]
    with_bom = write_csv(tmp_path / "bom.csv", rows, encoding="utf-8-sig")
    chinese = write_csv(tmp_path / "gb.csv", rows, encoding="gb18030")
    for path in (with_bom, chinese):
        done = cli("review", "import", str(path), "--db", str(world))
        assert done.returncode == 0, done.stderr
    assert [r[3] for r in trail_of(world)] == [note, note]


def test_a_file_without_the_columns_or_not_text_is_refused_and_nothing_written(
    world: Path, finding_ids: list[str], tmp_path: Path
) -> None:
    before = world.read_bytes()
    no_decision = write_csv(
        tmp_path / "no-decision.csv", [["finding_id", "verdict"], [finding_ids[0], "fraud"]]
    )
    line = refused(cli("review", "import", str(no_decision), "--db", str(world)), "no decision")
    assert "line 1: the header has no decision column" in line
    neither = write_csv(tmp_path / "neither.csv", [["id", "what"], [finding_ids[0], "x"]])
    line = refused(cli("review", "import", str(neither), "--db", str(world)), "no finding_id")
    assert "no finding_id and no decision column" in line
    binary = tmp_path / "decisions.csv"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\xff\xfe\x00\x81\x00" * 20)
    refused(
        cli("review", "import", str(binary), "--db", str(world)),
        "is not a CSV file of decisions: not UTF-8 or GB18030 text",
    )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    refused(cli("review", "import", str(empty), "--db", str(world)), "is empty")
    refused(
        cli("review", "import", str(tmp_path / "missing.csv"), "--db", str(world)),
        "missing.csv",
    )
    assert world.read_bytes() == before
    assert not list(world.parent.glob("*.lock"))


def test_a_locked_store_is_exit_3_and_nothing_recorded(
    world: Path, finding_ids: list[str], tmp_path: Path
) -> None:
    rows = [["finding_id", "decision"], [finding_ids[0], "false_positive"]]
    path = write_csv(tmp_path / "d.csv", rows)
    holder = Store.open(world, purpose="run")
    try:
        refused(cli("review", "import", str(path), "--db", str(world)), "locked", code=3)
    finally:
        holder.close()
    assert trail_of(world) == []


def test_export_current_then_import_into_a_copy_reproduces_the_decisions(
    audited_world: Path, world: Path, finding_ids: list[str], tmp_path: Path
) -> None:
    first, second, third = finding_ids
    for args in (
        ["assign", first, "--to", "bo"],
        ["decide", first, "--decision", "confirmed_fraud", "--note", '=HYPERLINK("x"), "quoted"'],
        ["decide", second, "--decision", "false_positive", "--note", "line one\nline two"],
        ["decide", second, "--decision", "benign_explained", "--status", "in_review"],
        ["decide", third, "--decision", "policy_breach"],
    ):
        done = cli("review", *args, "--db", str(world))
        assert done.returncode == 0, done.stderr
    exported = tmp_path / "current.csv"
    done = cli("review", "export", "--current", "--out", str(exported), "--db", str(world))
    assert done.returncode == 0, done.stderr
    assert f"exported 3 current reviews to {exported}" in done.stdout
    table = pl.read_csv(exported)
    assert table.columns[:8] == [
        "finding_id",
        "rule",
        "family",
        "severity",
        "entity_type",
        "entity_id",
        "window_start",
        "window_end",
    ]
    assert {"decision", "status", "note", "assignee", "digest"} <= set(table.columns)
    copy = Path(shutil.copyfile(audited_world, tmp_path / "copy.duckdb"))
    imported = cli("review", "import", str(exported), "--db", str(copy))
    assert imported.returncode == 0, imported.stderr
    assert current(copy) == current(world)
    assert "the review trail is whole: 3 reviews" in verified(copy)


def test_export_writes_every_column_of_the_trail_in_order_to_csv_stdout_and_excel(
    world: Path, finding_ids: list[str], tmp_path: Path
) -> None:
    for finding_id, decision in zip(finding_ids, DECISIONS, strict=False):
        done = cli("review", "decide", finding_id, "--decision", decision, "--db", str(world))
        assert done.returncode == 0, done.stderr
    # a column added to the trail later comes along, read by its name
    store = Store.open(world)
    try:
        store.execute("ALTER TABLE finding_reviews ADD COLUMN ticket VARCHAR")
        store.execute("UPDATE finding_reviews SET ticket = 'AUD-1207'")
    finally:
        store.close()
    on_stdout = cli("review", "export", "--db", str(world))
    assert on_stdout.returncode == 0, on_stdout.stderr
    trail = pl.read_csv(io.StringIO(on_stdout.stdout))
    assert trail.columns[-1] == "ticket"
    assert trail.get_column("ticket").to_list() == ["AUD-1207"] * 3
    assert trail.columns[:-1] == list(COLUMNS)
    assert trail.get_column("review_id").to_list() == [1, 2, 3]
    assert trail.get_column("decision").to_list() == list(DECISIONS[:3])
    workbook = tmp_path / "out" / "trail.xlsx"
    done = cli("review", "export", "--out", str(workbook), "--db", str(world))
    assert done.returncode == 0, done.stderr
    sheet = pl.read_excel(workbook)
    assert sheet.columns == trail.columns
    assert sheet.get_column("digest").to_list() == trail.get_column("digest").to_list()
    assert [p.name for p in workbook.parent.iterdir()] == ["trail.xlsx"]


def test_export_of_a_store_without_reviews_is_the_header(world: Path) -> None:
    done = cli("review", "export", "--db", str(world))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("review_id,reviewed_at,analyst,finding_id")
    current_only = cli("review", "export", "--current", "--db", str(world))
    assert current_only.returncode == 0, current_only.stderr
    assert current_only.stdout.splitlines()[0].startswith("finding_id,rule,family")


def test_evaluate_with_reviews_on_a_store_without_decisions_is_one_line(world: Path) -> None:
    before = world.read_bytes()
    line = refused(cli("evaluate", "--labels", "reviews", "--db", str(world)), "holds no decisions")
    assert "nothing to evaluate against" in line
    refused(cli("evaluate", "--labels", "guesses", "--db", str(world)), "--labels must be")
    assert world.read_bytes() == before


def test_evaluate_with_reviews_needs_no_ground_truth(world: Path, finding_ids: list[str]) -> None:
    store = Store.open(world)
    try:
        store.execute("DELETE FROM ground_truth")
        accusing = store.query(
            "SELECT finding_id, rule FROM findings WHERE severity != 'info' ORDER BY finding_id"
        )
    finally:
        store.close()
    finding_id, rule = accusing[0]
    done = cli(
        "review", "decide", str(finding_id), "--decision", "false_positive", "--db", str(world)
    )
    assert done.returncode == 0, done.stderr
    result = cli("evaluate", "--labels", "reviews", "--json", "--db", str(world))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    row = next(r for r in shown["precision"] if r["rule"] == rule)
    assert (row["decided"], row["decided_true"], row["decided_false"]) == (1, 0, 1)
    assert row["precision"] == 0.0
    assert shown["total"]["decided"] == 1
    assert shown["total"]["findings"] == len(accusing)
    table = cli("evaluate", "--labels", "reviews", "--db", str(world))
    assert table.returncode == 0, table.stderr
    assert "precision per rule from the analysts' decisions" in table.stdout


def test_a_failure_while_recording_records_none_of_the_rows(
    world: Path, finding_ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from posaudit.review import record
    from posaudit.review.batch import DecisionRow

    done = cli(
        "review", "decide", finding_ids[0], "--decision", "policy_breach", "--db", str(world)
    )
    assert done.returncode == 0, done.stderr
    store = Store.open(world, read_only=True)
    try:
        meta = store.meta()
    finally:
        store.close()
    trail = trail_of(world)
    appended = record.append_reviews
    calls: list[object] = []

    def fails_after_the_first(store: Store, drafts: list[dict[str, object]]) -> object:
        calls.extend(d["finding_id"] for d in drafts)
        appended(store, drafts[:1])  # the first row written, then the disk fills
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record, "append_reviews", fails_after_the_first)
    rows = [DecisionRow(line, f, "false_positive") for line, f in enumerate(finding_ids, 2)]
    with pytest.raises(OSError, match="No space"):
        record.decide_many(world, rows, analyst="ana")
    assert len(calls) == len(finding_ids)
    assert trail_of(world) == trail
    store = Store.open(world, read_only=True)
    try:
        assert store.meta() == meta
    finally:
        store.close()
    assert "the review trail is whole: 1 review," in verified(world)
