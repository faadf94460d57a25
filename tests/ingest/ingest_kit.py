"""What the ingest tests share: a small world written by hand in the store's own layout, the
command line, and ways to look at a store from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

POSAUDIT = [sys.executable, "-m", "posaudit"]

# One merchant, two terminals, three operators: the world every hand-written file refers to.
MERCHANTS = """merchant_id,name,category,fee_class,discount_rate_bp,city,opens_at,closes_at,is_24h
M1,Corner shop,grocery,standard,,Shanghai,08:00:00,22:00:00,false
M2,Tea house,restaurant,discount,38,Hangzhou,00:00:00,23:59:59,true
"""
TERMINALS = """terminal_id,merchant_id,model,family,installed_at,lockout_threshold,lockout_minutes
T1,M1,A8,smart,2024-01-01 09:00:00,5,30
T2,M2,ME31,esign,2024-01-02 09:00:00,,
"""
OPERATORS = (
    "operator_id,terminal_id,merchant_id,operator_no,name,role,can_query,can_sale,can_refund,"
    "can_transfer,can_manage,created_at,disabled_at\n"
    "T1-01,T1,M1,01,Ann,admin,true,true,true,false,true,2024-01-01 09:00:00,\n"
    "T1-02,T1,M1,02,Bo,clerk,true,true,false,false,false,2024-01-01 09:00:00,\n"
    "T2-01,T2,M2,01,Cy,admin,true,true,true,true,true,2024-01-02 09:00:00,2024-02-01 18:00:00\n"
)
TXN_HEADER = (
    "txn_id,ts,terminal_id,merchant_id,operator_id,kind,channel,amount_fen,fee_fen,card_token,"
    "original_txn_id,trace_no,batch_no,status,failure_reason\n"
)


def txn(
    txn_id: str,
    ts: str = "2024-03-01 10:00:00",
    *,
    terminal: str = "T1",
    merchant: str = "M1",
    operator: str = "T1-01",
    kind: str = "sale",
    amount: str = "1000",
    card: str = "C1",
    status: str = "approved",
) -> str:
    """One transactions.csv line in the store's own layout."""
    return (
        f"{txn_id},{ts},{terminal},{merchant},{operator},{kind},debit_card,{amount},6,{card},,"
        f"1,1,{status},\n"
    )


def write_world(folder: Path, transactions: list[str] | None = None) -> Path:
    """The hand-written world as CSV files in ``folder`` (the contract mapping's layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "merchants.csv").write_text(MERCHANTS)
    (folder / "terminals.csv").write_text(TERMINALS)
    (folder / "operators.csv").write_text(OPERATORS)
    lines = transactions if transactions is not None else [txn("X1"), txn("X2")]
    (folder / "transactions.csv").write_text(TXN_HEADER + "".join(lines))
    return folder


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSAUDIT, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **(env or {})},
    )


def ingest(db: Path, *sources: Path | str, mapping: str = "contract") -> dict[str, Any]:
    """`posaudit ingest --json`, which must succeed; its JSON summary."""
    done = cli("ingest", "--db", str(db), "--mapping", mapping, "--json", *map(str, sources))
    assert done.returncode == 0, done.stderr
    return summary_line(done.stdout)


def summary_line(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def one_error_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The single error line of a refused command, holding every needle."""
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("posaudit: error: ")]
    assert len(errors) == 1 and not [x for x in lines if "Traceback" in x], done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def query(db: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def count(db: Path, table: str) -> int:
    return int(query(db, f"SELECT count(*) AS n FROM {table}")["n"][0])


def file_bytes(path: Path) -> dict[str, bytes]:
    """The store file and its write-ahead log (if any), byte for byte."""
    return {
        p.name: p.read_bytes() for p in (path, path.with_name(path.name + ".wal")) if p.exists()
    }
