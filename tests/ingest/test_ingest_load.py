"""An ingest end to end through the command line: what it loads, what it quarantines and why,
what it refuses, and that it is safe to repeat, to interrupt and to run beside another writer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.ingest.secrets import luhn_valid
from posaudit.spark.export import check_export_matches, read_export
from posaudit.store import Store
from posaudit.store.catalogue import INGEST_TABLES
from tests.ingest.ingest_kit import (
    MERCHANTS,
    OPERATORS,
    TERMINALS,
    TXN_HEADER,
    cli,
    count,
    file_bytes,
    ingest,
    one_error_line,
    query,
    summary_line,
    txn,
    write_world,
)

# A card number that passes the Luhn check (a network's published test number).
CARD = "4111111111111111"
HOOKED = [sys.executable, str(Path(__file__).with_name("hooked_ingest.py"))]


def test_a_world_loads_and_the_same_files_again_add_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    first = ingest(db, write_world(tmp_path / "in"))
    assert first["ingest_id"] == "ingest-00001"
    assert first["rows_loaded_by_table"] == {
        "merchants": 2,
        "terminals": 2,
        "operators": 3,
        "transactions": 2,
    }
    assert (first["rows_read"], first["rows_quarantined"]) == (9, 0)
    stored = query(db, "SELECT * FROM operators ORDER BY operator_id")
    assert stored["disabled_at"].null_count() == 2 and stored["can_transfer"].to_list() == [
        False,
        False,
        True,
    ]
    tables = ("merchants", "terminals", "operators", "transactions", *INGEST_TABLES)
    before = {t: count(db, t) for t in tables}
    again = ingest(db, tmp_path / "in")
    assert again["ingest_id"] is None and again["files_already_loaded"] == 4
    assert {f["already_loaded"] for f in again["per_file"]} == {"ingest-00001"}
    assert {t: count(db, t) for t in tables} == before


def test_overlapping_exports_do_not_double_rows(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_world(tmp_path / "day1", [txn("X1"), txn("X2")]))
    later = tmp_path / "later"
    later.mkdir()
    (later / "transactions-2.csv").write_text(
        (tmp_path / "day1/transactions.csv").read_text().splitlines()[0]
        + "\n"
        + txn("X2")
        + txn("X3", "2024-03-02 09:00:00")
    )
    summary = ingest(db, later)
    (report,) = summary["per_file"]
    assert (report["rows_read"], report["rows_loaded"], report["rows_duplicate"]) == (2, 1, 1)
    assert report["rows_quarantined"] == 0
    assert query(db, "SELECT txn_id FROM transactions ORDER BY 1")["txn_id"].to_list() == [
        "X1",
        "X2",
        "X3",
    ]


def test_the_same_key_twice_in_one_ingest_keeps_the_first(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    folder = write_world(tmp_path / "in", [txn("X1"), txn("X1", amount="999")])
    summary = ingest(db, folder)
    assert summary["rows_quarantined"] == 1
    got = query(db, "SELECT reason, source_line, detail FROM quarantine")
    assert got.row(0) == ("duplicate_in_file", 3, "txn_id 'X1' came before in this ingest")
    assert query(db, "SELECT amount_fen FROM transactions")["amount_fen"].to_list() == [1000]


# Each damaged line, and the reason it must be quarantined with.
DAMAGED = [
    (txn("B1", "2024-02-30 10:00:00"), "bad_timestamp"),
    (txn("B2", amount="12.5"), "bad_amount"),
    (txn("B3", kind="chargeback"), "unknown_value"),
    (txn("B4", terminal="T9"), "unknown_terminal"),
    (txn("B5", operator="T1-99"), "unknown_operator"),
    (txn("B6", merchant="M7"), "unknown_merchant"),
    (txn("B7", status=""), "missing_value"),
    (txn("B8", amount="-5"), "out_of_range"),
    (txn("B9", card=f"{CARD}"), None),  # loaded, its card number tokenised
    (txn("X1"), "duplicate_in_file"),
    ("B10,2024-03-01 10:00:00,T1\n", "bad_row"),
]


def test_every_damaged_row_is_quarantined_with_its_reason_and_line(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    lines = [txn("X1"), *(line for line, _ in DAMAGED)]
    summary = ingest(db, write_world(tmp_path / "in", lines))
    expected = {i + 3: reason for i, (_, reason) in enumerate(DAMAGED) if reason}
    got = query(db, "SELECT source_line, reason FROM quarantine ORDER BY source_line")
    assert dict(got.iter_rows()) == expected
    files = query(db, "SELECT * FROM ingested_files WHERE target_table = 'transactions'")
    row = files.row(0, named=True)
    assert row["rows_read"] == len(lines)
    assert row["rows_loaded"] + row["rows_duplicate"] + row["rows_quarantined"] == len(lines)
    assert (row["rows_loaded"], row["rows_quarantined"]) == (2, len(expected))
    assert row["cards_in_clear"] == 1
    (report,) = [f for f in summary["per_file"] if f["table"] == "transactions"]
    assert sum(report["quarantined_by_reason"].values()) == report["rows_quarantined"]
    raw = json.loads(
        query(db, "SELECT raw_row FROM quarantine WHERE reason = 'bad_amount'")["raw_row"][0]
    )
    assert raw["txn_id"] == "B2" and raw["amount_fen"] == "12.5"


def test_card_numbers_become_tokens_and_are_masked_everywhere(tmp_path: Path) -> None:
    assert luhn_valid(CARD) and not luhn_valid("4111111111111112")
    db, out = tmp_path / "s.duckdb", tmp_path / "parquet"
    lines = [
        txn("X1", card=CARD),
        txn("X2", card="4111111111111112"),  # fails Luhn: a reference, not a card number
        txn("X3", card=CARD, kind="chargeback"),  # quarantined with its card masked
    ]
    done = cli(
        "ingest",
        "--db",
        str(db),
        "--mapping",
        "contract",
        "--parquet",
        str(out),
        str(write_world(tmp_path / "in", lines)),
    )
    assert done.returncode == 0, done.stderr
    assert summary_line(done.stdout)["cards_in_clear"] == 2
    tokens = query(db, "SELECT card_token FROM transactions ORDER BY txn_id")["card_token"]
    assert tokens[0] != CARD and len(tokens[0]) == 64 and tokens[1] == "4111111111111112"
    raw = query(db, "SELECT raw_row FROM quarantine")["raw_row"][0]
    assert "411111******1111" in raw
    # the number is in no table, no Parquet file and no output
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        text = "".join(str(con.sql(f"SELECT * FROM {t}").fetchall()) for t in tables)
    finally:
        con.close()
    assert CARD not in text and CARD not in done.stdout + done.stderr
    parquet = "".join(str(pl.read_parquet(p).rows()) for p in sorted(out.rglob("*.parquet")))
    assert parquet and CARD not in parquet
    # the export the Spark engine reads, and made from the store as it is now
    export = read_export(out)
    assert export.rows["transactions"] == 2 and any(out.glob("transactions/bucket=*/*.parquet"))
    store = Store.open(db, read_only=True)
    try:
        check_export_matches(export, store)
    finally:
        store.close()
    # nor in what the audit of the ingested store gives: its run, its report, its logs
    run = cli("run", "--db", str(db), "--json")
    assert run.returncode == 0, run.stderr
    report = cli(
        "report", "--db", str(db), "--out", str(tmp_path / "report"), "--format", "html,xlsx,csv"
    )
    assert report.returncode == 0, report.stderr
    written = sorted((tmp_path / "report").rglob("*"))
    assert [p.suffix for p in written if p.is_file()].count(".html") == 1
    outputs = [run.stdout, run.stderr, report.stdout, report.stderr]
    for path in written:
        if path.suffix == ".xlsx":
            outputs += [str(frame.rows()) for frame in pl.read_excel(path, sheet_id=0).values()]
        elif path.is_file():
            outputs.append(path.read_text(encoding="utf-8"))
    assert not [text for text in outputs if CARD in text]


def test_a_plaintext_pin_column_refuses_the_file_and_is_written_nowhere(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_world(tmp_path / "in"))
    before = file_bytes(db)
    pin = "739152"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "transactions.csv").write_text(
        TXN_WITH_PIN_HEADER + txn("X5").rstrip("\n") + f",{pin}\n"
    )
    done = cli("ingest", "--db", str(db), "--mapping", "contract", str(bad))
    assert done.returncode == 2
    one_error_line(done, "transactions.csv", "'operator_pin'", "plaintext PINs")
    assert pin not in done.stdout + done.stderr
    assert file_bytes(db) == before


TXN_WITH_PIN_HEADER = (
    "txn_id,ts,terminal_id,merchant_id,operator_id,kind,channel,amount_fen,fee_fen,card_token,"
    "original_txn_id,trace_no,batch_no,status,failure_reason,operator_pin\n"
)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    """Each bad input of the issue: the ingest's arguments and what its one line says."""
    good = write_world(tmp_path / "good")
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        (Path(__file__).parents[2] / "src/posaudit/ingest/mappings/contract.toml")
        .read_text()
        .replace('name = "contract"', 'name = "contract"\nsize = 3')
    )
    lacking = tmp_path / "lacking.toml"
    lacking.write_text(
        textwrap.dedent(
            """
            [mapping]
            name = "lacking"
            [tables.merchants]
            files = ["merchants*.csv"]
            [tables.merchants.columns]
            merchant_id = "商户编号"
            name = "name"
            category = "category"
            fee_class = "fee_class"
            city = "city"
            opens_at = "opens_at"
            closes_at = "closes_at"
            is_24h = "is_24h"
            """
        )
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "merchants.csv").write_text(MERCHANTS + "M3,Noodles,restaurant,standard,,Wuhan,,,\n")
    # terminals (one more than the store has) in transactions' place
    (other / "transactions.csv").write_text(TERMINALS + "T3,M1,A8,smart,2024-01-03 09:00:00,5,30\n")
    encoded = tmp_path / "encoded"
    encoded.mkdir()
    (encoded / "merchants.csv").write_bytes(MERCHANTS.replace("Corner", "街角").encode("gb18030"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "operators.csv").write_bytes(b"")
    pins = tmp_path / "pins"
    pins.mkdir()
    (pins / "operators.csv").write_text(
        OPERATORS.replace("disabled_at\n", "disabled_at,密码\n").replace(":00,\n", ":00,,123456\n")
    )
    digests = tmp_path / "digests"
    digests.mkdir()
    (digests / "pin_events.csv").write_text(
        "event_id,ts,operator_id,kind,pin_digest,actor\n"
        f"P1,2024-03-01 08:00:00,T1-01,initial,{'a' * 64},self\n"
        "P2,2024-03-01 08:00:00,T1-02,initial,123456,self\n"
    )
    return {
        "a pin_digest holding a PIN": (
            ["--mapping", "contract", str(digests)],
            ("pin_events.csv", "'pin_digest'", "plaintext PINs"),
        ),
        "unknown mapping key": (
            ["--mapping", str(mapping), str(good)],
            ("m.toml", "unknown key 'mapping.size'"),
        ),
        "column the file lacks": (
            ["--mapping", str(lacking), str(other / "merchants.csv")],
            ("merchants.csv", "no column '商户编号'"),
        ),
        "another table's layout": (
            ["--mapping", "contract", str(other)],
            ("transactions.csv", "no column 'txn_id'"),
        ),
        "wrong encoding": (
            ["--mapping", "contract", str(encoded)],
            ("merchants.csv line 2", "not utf-8"),
        ),
        "empty file": (["--mapping", "contract", str(empty)], ("operators.csv is empty",)),
        "missing file": (
            ["--mapping", "contract", str(tmp_path / "none.csv")],
            ("none.csv does not exist",),
        ),
        "plaintext PIN column": (
            ["--mapping", "contract", str(pins)],
            ("operators.csv", "'密码'", "plaintext PINs"),
        ),
        "a file no table takes": (
            ["--mapping", "contract", str(good / "merchants.csv"), str(mapping)],
            (".toml: ingest reads",),
        ),
    }


BAD_INPUTS = [
    "a pin_digest holding a PIN",
    "unknown mapping key",
    "column the file lacks",
    "another table's layout",
    "wrong encoding",
    "empty file",
    "missing file",
    "plaintext PIN column",
    "a file no table takes",
]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, case: str) -> None:
    args, needles = _bad_inputs(tmp_path)[case]
    db = tmp_path / "s.duckdb"
    ingest(db, tmp_path / "good")
    before = file_bytes(db)
    done = cli("ingest", "--db", str(db), *args)
    assert done.returncode == 2, done.stderr
    one_error_line(done, *needles)
    assert summary_line(done.stdout) == {"status": "bad_input", "exit_code": 2}
    assert file_bytes(db) == before
    assert "123456" not in done.stdout + done.stderr
    # into a store that does not exist yet: none is made
    fresh = tmp_path / "fresh.duckdb"
    assert cli("ingest", "--db", str(fresh), *args).returncode == 2
    assert not list(tmp_path.glob("fresh.duckdb*"))


def test_a_store_held_by_another_writer_is_exit_3(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_world(tmp_path / "in"))
    more = write_world(tmp_path / "more", [txn("X9")])
    before = file_bytes(db)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from posaudit.store import Store; s = Store.open(sys.argv[1], "
            "purpose='run'); print('held', flush=True); sys.stdin.readline(); s.close()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = cli("ingest", "--db", str(db), "--mapping", "contract", str(more))
        assert done.returncode == 3, done.stderr
        one_error_line(done, "locked")
        assert summary_line(done.stdout)["status"] == "locked"
    finally:
        holder.communicate("\n", timeout=60)
    assert file_bytes(db) == before
    assert ingest(db, more)["rows_loaded"] == 1


def test_a_killed_ingest_leaves_the_store_byte_for_byte_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_world(tmp_path / "in"))
    before = file_bytes(db)
    more = write_world(tmp_path / "more", [txn("X7"), txn("X8")])
    process = subprocess.Popen(
        [*HOOKED, "ingest", "--db", str(db), "--mapping", "contract", str(more)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "paused at written" in line:
                break
        assert any("paused at written" in line for line in lines), "".join(lines)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert file_bytes(db) == before
    # the next ingest, holding the lock the dead one left, loads the same files whole
    summary = ingest(db, more)
    assert summary["ingest_id"] == "ingest-00002" and summary["rows_loaded"] == 2


def test_a_store_made_before_the_ingest_tables_gains_them(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_world(tmp_path / "in"))
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE quarantine; DROP TABLE ingested_files")
    con.close()
    assert cli("export", "--db", str(db), "--out", str(tmp_path / "x")).returncode == 0
    summary = ingest(db, write_world(tmp_path / "more", [txn("X5")]))
    assert summary["ingest_id"] == "ingest-00001"
    assert count(db, "ingested_files") == 4 and count(db, "transactions") == 3


def test_lookups_and_operators_by_terminal_and_number_in_a_gb18030_export(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_world(tmp_path / "in", []))
    mapping = tmp_path / "tms.toml"
    mapping.write_text(
        textwrap.dedent(
            """
            [mapping]
            name = "tms"
            encoding = "gb18030"
            [tables.transactions]
            files = ["交易明细*.csv"]
            [tables.transactions.columns]
            txn_id = "交易流水号"
            terminal_id = "终端编号"
            merchant_id = { lookup = "terminals", key = "terminal_id", value = "merchant_id" }
            operator_id = { operator_of = { terminal = "终端编号", operator_no = "操作员号" } }
            kind = { column = "交易类型", values = { "消费" = "sale", "退货" = "refund" } }
            channel = { value = "debit_card" }
            amount_fen = { column = "交易金额(元)", yuan = true }
            fee_fen = { column = "手续费(元)", yuan = true }
            trace_no = "凭证号"
            batch_no = { value = 1 }
            status = { column = "交易结果", values = { "成功" = "approved", "失败" = "failed" } }
            [tables.transactions.columns.ts]
            date = "交易日期"
            date_format = "%Y%m%d"
            time = "交易时间"
            time_format = "%H%M%S"
            """
        ),
        encoding="utf-8",
    )
    rows = (
        "交易流水号,交易日期,交易时间,终端编号,操作员号,交易类型,交易金额(元),手续费(元),凭证号,交易结果\r\n"
        'L1,20240301,081500,T1,02,消费,"1,234.56",0.60,11,成功\r\n'
        "L2,20240301,091500,T2,01,退货,12.3,0,12,成功\r\n"
        "L3,20240301,101500,T1,07,消费,5,0,13,成功\r\n"
        "L4,20240301,111500,T8,01,消费,5,0,14,成功\r\n"
        "L5,20240301,121500,T1,01,消费,1,2.3,0,15,成功\r\n"
    )
    source = tmp_path / "交易明细_202403.csv"
    source.write_bytes(rows.encode("gb18030"))
    summary = ingest(db, source, mapping=str(mapping))
    got = query(db, "SELECT * FROM transactions ORDER BY txn_id")
    assert got.select("txn_id", "merchant_id", "operator_id", "amount_fen", "fee_fen").rows() == [
        ("L1", "M1", "T1-02", 123456, 60),
        ("L2", "M2", "T2-01", 1230, 0),
    ]
    reasons = query(db, "SELECT source_line, reason FROM quarantine ORDER BY 1").rows()
    assert reasons == [(4, "unknown_operator"), (5, "unknown_terminal"), (6, "bad_row")]
    assert summary["rows_quarantined"] == 3


def test_create_missing_makes_the_terminals_and_operators_events_name(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_world(tmp_path / "in"))
    contract = Path(__file__).parents[2] / "src/posaudit/ingest/mappings/contract.toml"
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        contract.read_text().replace(
            "[tables.transactions]\n",
            '[tables.transactions]\ncreate_missing = ["operators", "terminals"]\n',
        )
    )
    lines = [
        txn("N1", "2024-03-02 10:00:00", terminal="T5", operator="T5-01"),
        txn("N2", "2024-03-02 09:00:00", terminal="T5", operator="T5-01"),
        txn("N3", terminal="T6", operator="T6-01", merchant="M9"),  # no such merchant
    ]
    summary = ingest(db, write_world(tmp_path / "more", lines), mapping=str(mapping))
    assert summary["created"] == {"terminals": 1, "operators": 1}
    terminal = query(db, "SELECT * FROM terminals WHERE terminal_id = 'T5'").row(0, named=True)
    assert (terminal["merchant_id"], terminal["model"]) == ("M1", "unknown")
    assert str(terminal["installed_at"]) == "2024-03-02 09:00:00"  # its first event
    operator = query(db, "SELECT * FROM operators WHERE operator_id = 'T5-01'").row(0, named=True)
    assert (operator["terminal_id"], operator["can_refund"]) == ("T5", False)
    reasons = query(db, "SELECT reason FROM quarantine")["reason"].to_list()
    assert reasons == ["unknown_merchant"]  # nothing is made under a merchant nobody holds
    assert count(db, "transactions") == 4


def test_an_excel_workbook_per_table(tmp_path: Path) -> None:
    folder = write_world(tmp_path / "in")
    for name in ("merchants", "operators"):
        csv = folder / f"{name}.csv"
        pl.read_csv(csv, infer_schema=False).write_excel(folder / f"{name}.xlsx")
        csv.unlink()
    db = tmp_path / "s.duckdb"
    summary = ingest(db, folder)
    assert summary["rows_quarantined"] == 0
    assert summary["rows_loaded_by_table"]["operators"] == 3
    got = query(db, "SELECT opens_at, is_24h FROM merchants ORDER BY merchant_id").rows()
    assert [(str(t), b) for t, b in got] == [("08:00:00", False), ("00:00:00", True)]


def test_pin_and_login_events_their_digests_and_operators(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    folder = write_world(tmp_path / "in", [])
    (folder / "pin_events.csv").write_text(
        "event_id,ts,operator_id,kind,pin_digest,actor\n"
        f"P1,2024-03-01 08:00:00,T1-01,initial,{'a1' * 32},self\n"
        "P2,2024-03-01 08:01:00,T1-02,initial,not-a-digest,self\n"
        f"P3,2024-03-01 08:02:00,T1-02,rotate,{'b2' * 32},self\n"
    )
    (folder / "login_events.csv").write_text(
        "event_id,ts,terminal_id,operator_no,operator_id,outcome\n"
        "E1,2024-03-01 08:00:00,T1,01,T1-01,success\n"
        "E2,2024-03-01 08:01:00,T1,77,,unknown_operator\n"  # a mistyped number: no operator
        "E3,2024-03-01 08:02:00,T1,02,T1-77,success\n"
    )
    ingest(db, folder)
    reasons = query(db, "SELECT target_table, source_line, reason FROM quarantine ORDER BY 1, 2")
    assert reasons.rows() == [
        ("login_events", 4, "unknown_operator"),
        ("pin_events", 3, "bad_digest"),
        ("pin_events", 4, "unknown_value"),
    ]
    logins = query(db, "SELECT event_id, operator_id FROM login_events ORDER BY 1").rows()
    assert logins == [("E1", "T1-01"), ("E2", None)]


def test_a_parquet_export_that_fails_after_the_ingest_says_the_ingest_is_committed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.duckdb"
    folder = write_world(tmp_path / "in")
    (folder / "transactions.csv").unlink()  # dimensions only: no events to export
    done = cli(
        "ingest",
        "--db",
        str(db),
        "--mapping",
        "contract",
        "--parquet",
        str(tmp_path / "p"),
        str(folder),
    )
    assert done.returncode == 1
    one_error_line(done, "ingest committed (ingest-00001)", "holds no events")
    assert summary_line(done.stdout) == {"status": "failed", "exit_code": 1}
    assert count(db, "terminals") == 2 and not (tmp_path / "p").exists()


# Payment Account References (EMVCo: 4 characters, then 25): one account with two cards.
PAR = "V0010013816180398169200863191"
OTHER_PAR = "V0010013816180398169200000000"


def test_account_references_become_tokens_and_tell_a_reissued_card(tmp_path: Path) -> None:
    header = TXN_HEADER.replace("card_token,", "card_token,account_ref,")
    rows = [
        ("X1", "sale", "C1", PAR, ""),
        ("X2", "refund", "C2", f" {PAR} ", "X1"),  # the customer's reissued card
        ("X3", "refund", "C3", OTHER_PAR, "X1"),  # a card of another account
        ("X4", "refund", "C4", "", "X1"),  # no reference: the data cannot tell
        ("X5", "chargeback", "C5", PAR, ""),  # quarantined without its reference
    ]
    lines = [
        f"{i},2024-03-0{n + 1} 10:00:00,T1,M1,T1-01,{kind},debit_card,1000,6,{card},{par},"
        f"{original},{n + 1},1,approved,\n"
        for n, (i, kind, card, par, original) in enumerate(rows)
    ]
    folder = write_world(tmp_path / "in")
    (folder / "transactions.csv").write_text(header + "".join(lines))
    db = tmp_path / "s.duckdb"
    summary = ingest(db, folder)
    assert summary["rows_quarantined"] == 1
    stored = query(db, "SELECT txn_id, account_ref FROM transactions ORDER BY txn_id")
    tokens = stored["account_ref"].to_list()
    assert tokens[0] == tokens[1] != tokens[2] and tokens[3] is None
    assert all(len(t) == 64 for t in tokens[:3])
    # the reference itself is in no table, the quarantine included
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        text = "".join(str(con.sql(f"SELECT * FROM {t}").fetchall()) for t in tables)
    finally:
        con.close()
    assert PAR not in text and OTHER_PAR not in text and "X5" in text
    # the refund to the reissued card goes back to the customer who paid; the others do not
    run = cli("run", "--db", str(db), "--json")
    assert run.returncode == 0, run.stderr
    flagged = query(
        db, "SELECT entity_id FROM findings WHERE rule = 'refunds_to_other_card' ORDER BY 1"
    )
    assert flagged["entity_id"].to_list() == ["X3", "X4"]
    # exported and ingested again (the contract layout), the tokens stay as they are
    export = tmp_path / "export"
    done = cli("export", "--db", str(db), "--layout", "contract", "--out", str(export))
    assert done.returncode == 0, done.stderr
    again = tmp_path / "again.duckdb"
    ingest(again, export)
    assert (
        query(again, "SELECT account_ref FROM transactions ORDER BY txn_id")[
            "account_ref"
        ].to_list()
        == tokens
    )


def test_an_export_without_account_references_loads_them_as_null(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert "account_ref" not in TXN_HEADER
    ingest(db, write_world(tmp_path / "in"))
    stored = query(db, "SELECT count(*) AS n, count(account_ref) AS refs FROM transactions")
    assert stored.row(0) == (2, 0)
