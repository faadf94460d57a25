"""``posaudit export --layout lakala-tms``: the files an analyst would receive from a terminal
management system and a merchant portal, written from a simulated store."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.ingest.layout import masked_card_number
from posaudit.simulate import catalog
from posaudit.simulate.engine import world_pins
from posaudit.store import Store
from tests.conftest import build_store
from tests.pin_leaks import SIX_DIGITS

POSAUDIT = [sys.executable, "-m", "posaudit"]

HEADERS = {
    "商户信息.csv": (
        "商户编号,商户名称,行业类别,费率类型,优惠费率(基点),所在城市,营业开始,营业结束,全天营业"
    ),
    "终端信息.csv": "终端编号,商户编号,终端型号,终端类型,装机时间,锁定阈值,锁定时长(分钟)",
    "操作员信息.csv": (
        "操作员ID,终端编号,商户编号,操作员号,操作员姓名,角色,权限,创建时间,停用时间"
    ),
    "密码变更记录.csv": "事件编号,变更时间,终端编号,操作员号,变更类型,密码摘要,操作人",
    "登录日志.csv": "日志编号,登录日期,登录时间,终端编号,操作员号,操作员所属终端,登录结果",
    "锁定记录.csv": "锁定编号,终端编号,操作员所属终端,操作员号,锁定时间,解锁时间,解锁方式",
    "交易明细_YYYYMM.csv": (
        "交易流水号,交易日期,交易时间,终端编号,商户编号,操作员所属终端,操作员号,交易类型,"
        "支付方式,交易金额(元),手续费(元),卡号,卡标识,支付账户参考号,原交易流水号,凭证号,批次号,"
        "交易结果,失败原因"
    ),
}
# Yuan as a portal shows it: thousands separated, two decimals.
YUAN = re.compile(r"^-?\d{1,3}(,\d{3})*\.\d{2}$")
# A card number in clear: 13-19 digits standing alone (ids and digests hold long runs of
# digits next to letters, which no card number is).
CARD_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{13,19}(?![0-9A-Za-z])")
# Columns of times and counters: six digits there are a time of day or a number, checked
# against the store instead of scanned for PINs.
TIMES_AND_NUMBERS = ("交易时间", "凭证号", "批次号")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, timeout=600)


def luhn(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


def read_file(path: Path) -> pl.DataFrame:
    """A file of the export as strings, decoded with Python's own GB18030 codec."""
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("gb18030"), newline="")))
    return pl.DataFrame(rows[1:], schema=dict.fromkeys(rows[0], pl.String), orient="row")


def export(store: Path, out: Path) -> dict[str, pl.DataFrame]:
    result = run("export", "--db", str(store), "--layout", "lakala-tms", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "lakala-tms" in result.stdout
    return {p.name: read_file(p) for p in sorted(out.iterdir())}


def table(store: Path, name: str) -> pl.DataFrame:
    opened = Store.open(store, read_only=True)
    try:
        return opened.read(name).with_columns(pl.col(pl.Categorical).cast(pl.String))
    finally:
        opened.close()


@pytest.fixture(scope="module")
def exported(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lakala") / "export"
    export(sample_store, out)
    return out


@pytest.fixture(scope="module")
def frames(exported: Path) -> dict[str, pl.DataFrame]:
    return {p.name: read_file(p) for p in sorted(exported.iterdir())}


@pytest.fixture(scope="module")
def mapping() -> dict[str, object]:
    text = files("posaudit.ingest").joinpath("mappings", "lakala-tms.toml").read_bytes()
    return tomllib.loads(text.decode("utf-8"))


def test_files_names_and_headers_of_the_layout(exported: Path) -> None:
    names = sorted(p.name for p in exported.iterdir())
    monthly = re.compile(r"^交易明细_\d{6}\.csv$")
    assert [n for n in names if not monthly.match(n)] == sorted(
        set(HEADERS) - {"交易明细_YYYYMM.csv"}
    )
    assert [n for n in names if monthly.match(n)] == ["交易明细_202609.csv"]
    for name in names:
        raw = (exported / name).read_bytes()
        header = raw.split(b"\r\n", 1)[0].decode("gb18030")
        assert header == HEADERS["交易明细_YYYYMM.csv" if monthly.match(name) else name]


def test_encoding_is_gb18030_with_crlf_line_ends(exported: Path) -> None:
    for path in exported.iterdir():
        raw = path.read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")  # Chinese text in GB18030 is not UTF-8
        assert raw.decode("gb18030").encode("gb18030") == raw
        assert raw.endswith(b"\r\n")
        assert raw.count(b"\n") == raw.count(b"\r\n")


def test_every_row_of_the_store_is_in_its_file(
    sample_store: Path, frames: dict[str, pl.DataFrame]
) -> None:
    counted = {
        "merchants": "商户信息.csv",
        "terminals": "终端信息.csv",
        "operators": "操作员信息.csv",
        "pin_events": "密码变更记录.csv",
        "login_events": "登录日志.csv",
        "lockouts": "锁定记录.csv",
        "transactions": "交易明细_202609.csv",
    }
    for name, file in counted.items():
        assert frames[file].height == table(sample_store, name).height > 0, name


def test_months_split_the_transactions(tmp_path: Path) -> None:
    store = tmp_path / "w.duckdb"
    from posaudit.simulate.engine import simulate
    from posaudit.simulate.scenario import load_scenario

    simulate(store, load_scenario(None, merchants=4, days=4, start="2026-08-30"), seed=3)
    written = export(store, tmp_path / "out")
    months = {n: f for n, f in written.items() if n.startswith("交易明细_")}
    assert sorted(months) == ["交易明细_202608.csv", "交易明细_202609.csv"]
    for name, rows in months.items():
        assert set(rows.get_column("交易日期").str.slice(0, 6)) == {name[5:11]}
    assert sum(f.height for f in months.values()) == table(store, "transactions").height


def test_yuan_amounts_are_the_fen_exactly(
    sample_store: Path, frames: dict[str, pl.DataFrame]
) -> None:
    rows = frames["交易明细_202609.csv"]
    txns = table(sample_store, "transactions").select("txn_id", "amount_fen", "fee_fen")
    both = rows.join(txns, left_on="交易流水号", right_on="txn_id", how="inner", validate="1:1")
    assert both.height == txns.height
    for column, fen in (("交易金额(元)", "amount_fen"), ("手续费(元)", "fee_fen")):
        for text, value in both.select(column, fen).iter_rows():
            assert YUAN.match(text), text
            assert Decimal(text.replace(",", "")) * 100 == value
    # thousands separators appear where the amounts reach them
    large = both.filter(pl.col("amount_fen") >= 100_000)
    assert large.height and large.get_column("交易金额(元)").str.contains(",").all()


def test_times_are_the_store_times_to_the_microsecond(
    sample_store: Path, frames: dict[str, pl.DataFrame]
) -> None:
    rows = frames["交易明细_202609.csv"]
    stamps = (pl.col("交易日期") + pl.col("交易时间")).str.strptime(
        pl.Datetime("us"), "%Y%m%d%H%M%S%.f"
    )
    got = rows.select(pl.col("交易流水号").alias("txn_id"), stamps.alias("ts"))
    expected = table(sample_store, "transactions").select("txn_id", "ts")
    assert got.sort("txn_id").equals(expected.sort("txn_id"))
    logins = frames["登录日志.csv"].select(
        pl.col("日志编号").alias("event_id"),
        (pl.col("登录日期") + " " + pl.col("登录时间"))
        .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f")
        .alias("ts"),
    )
    assert logins.sort("event_id").equals(
        table(sample_store, "login_events").select("event_id", "ts").sort("event_id")
    )


def test_operators_named_by_their_terminal_and_number(
    sample_store: Path, frames: dict[str, pl.DataFrame]
) -> None:
    operators = table(sample_store, "operators")
    # the pair is unique among operators, so it names one operator
    assert operators.select("terminal_id", "operator_no").is_unique().all()
    pairs = operators.select("operator_id", "terminal_id", "operator_no")
    txns = frames["交易明细_202609.csv"].join(
        pairs,
        left_on=["操作员所属终端", "操作员号"],
        right_on=["terminal_id", "operator_no"],
        how="left",
    )
    expected = table(sample_store, "transactions").select("txn_id", "operator_id")
    got = txns.select(pl.col("交易流水号").alias("txn_id"), "operator_id")
    assert got.sort("txn_id").equals(expected.sort("txn_id"))
    # some operators work at another terminal of their merchant: the reason for the column
    assert (txns.get_column("终端编号") != txns.get_column("操作员所属终端")).any()
    lockouts = frames["锁定记录.csv"].join(
        pairs, left_on=["操作员所属终端", "操作员号"], right_on=["terminal_id", "operator_no"]
    )
    got = lockouts.select(pl.col("锁定编号").alias("lockout_id"), "operator_id")
    expected = table(sample_store, "lockouts").select("lockout_id", "operator_id")
    assert got.sort("lockout_id").equals(expected.sort("lockout_id"))
    logins = frames["登录日志.csv"].join(
        pairs,
        left_on=["操作员所属终端", "操作员号"],
        right_on=["terminal_id", "operator_no"],
        how="left",
    )
    expected = table(sample_store, "login_events").select("event_id", "operator_id")
    got = logins.select(pl.col("日志编号").alias("event_id"), "operator_id")
    assert got.sort("event_id").equals(expected.sort("event_id"))


def test_permissions_in_one_cell(sample_store: Path, frames: dict[str, pl.DataFrame]) -> None:
    words = {"查询": "can_query", "消费": "can_sale", "退货": "can_refund"}
    words |= {"转账": "can_transfer", "管理": "can_manage"}
    cells = dict(frames["操作员信息.csv"].select("操作员ID", "权限").iter_rows())
    for row in table(sample_store, "operators").iter_rows(named=True):
        held = cells[row["operator_id"]].split("|")
        assert held == [word for word, flag in words.items() if row[flag]]


def _enums(store: Path) -> dict[tuple[str, str], list[str]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE data_type LIKE 'ENUM(%'"
        ).fetchall()
    finally:
        con.close()
    return {(t, c): re.findall(r"'([^']*)'", kind) for t, c, kind in rows}


def test_every_value_has_its_chinese_word(
    sample_store: Path, frames: dict[str, pl.DataFrame], mapping: Mapping[str, object]
) -> None:
    tables = mapping["tables"]
    assert isinstance(tables, dict)
    checked = 0
    for (name, column), values in _enums(sample_store).items():
        if name not in tables:
            continue
        rule = tables[name]["columns"][column]
        assert set(values) <= set(rule["values"].values()), (name, column)
        checked += 1
    assert checked == 10  # fee class, role, PIN event kind and actor, outcome, unlock, 4 of txns
    merchants = tables["merchants"]["columns"]
    assert set(catalog.CATEGORY_NAMES) <= set(merchants["category"]["values"].values())
    families = {family for _, family, _ in catalog.MODELS}
    assert families <= set(tables["terminals"]["columns"]["family"]["values"].values())
    # and the export holds words only, never the store's own codes
    for file, column in (("交易明细_202609.csv", "交易类型"), ("登录日志.csv", "登录结果")):
        assert not frames[file].get_column(column).str.contains("[a-z]").any()
    reasons = frames["交易明细_202609.csv"].get_column("失败原因")
    words = tables["transactions"]["columns"]["failure_reason"]["values"]
    assert set(reasons) - {""} <= set(words) and len(set(reasons) - {""}) >= 3


def test_masked_card_numbers_are_stable_and_never_full(
    sample_store: Path, exported: Path, frames: dict[str, pl.DataFrame]
) -> None:
    rows = frames["交易明细_202609.csv"]
    cards = rows.filter(pl.col("支付方式").is_in(["借记卡", "贷记卡"]))
    others = rows.filter(~pl.col("支付方式").is_in(["借记卡", "贷记卡"]))
    assert cards.height and others.height
    assert (others.get_column("卡号") == "").all()
    numbers = cards.get_column("卡号")
    assert numbers.str.contains(r"^62\d{4}\*{6}\d{4}$").all()
    debit = cards.filter(pl.col("支付方式") == "借记卡").get_column("卡号")
    assert debit.str.slice(0, 3).is_in(["622", "621"]).all()
    credit = cards.filter(pl.col("支付方式") == "贷记卡").get_column("卡号")
    assert credit.str.starts_with("625").all()
    # one number per token and card type, the same last four digits for a token
    per_card = cards.group_by("卡标识", "支付方式").agg(pl.col("卡号").n_unique())
    assert (per_card.get_column("卡号") == 1).all()
    per_token = cards.group_by("卡标识").agg(pl.col("卡号").str.slice(12).n_unique())
    assert (per_token.get_column("卡号") == 1).all()
    assert masked_card_number("C1", "debit_card") == masked_card_number("C1", "debit_card")
    assert masked_card_number("C1", "debit_card") != masked_card_number("C2", "debit_card")
    # no full card number anywhere
    for path in exported.iterdir():
        text = path.read_bytes().decode("gb18030")
        assert not [n for n in CARD_NUMBER.findall(text) if luhn(n)], path.name


def test_no_pin_in_any_file(
    sample_store: Path, exported: Path, frames: dict[str, pl.DataFrame]
) -> None:
    held = world_pins(sample_store)
    every = frozenset().union(*held.values())
    for name, rows in frames.items():
        scanned = rows.drop(TIMES_AND_NUMBERS, strict=False)
        text = scanned.write_csv()
        assert not set(SIX_DIGITS.findall(text)) & every, name
    # the PIN events carry the store's digests, nothing else
    digests = frames["密码变更记录.csv"].get_column("密码摘要")
    assert digests.str.contains(r"^[0-9a-f]{64}$").all()
    expected = table(sample_store, "pin_events").sort("event_id").get_column("pin_digest")
    assert (
        frames["密码变更记录.csv"]
        .sort("事件编号")
        .get_column("密码摘要")
        .equals(expected, check_names=False)
    )
    # the columns left out of the scan hold times and numbers the store holds
    txns = table(sample_store, "transactions").select(
        pl.col("txn_id").alias("交易流水号"),
        pl.col("trace_no").cast(pl.String).alias("凭证号"),
        pl.col("batch_no").cast(pl.String).alias("批次号"),
    )
    got = frames["交易明细_202609.csv"].select(txns.columns)
    assert got.sort("交易流水号").equals(txns.sort("交易流水号"))


def test_text_is_quoted_and_safe_for_spreadsheets(tmp_path: Path) -> None:
    store = tmp_path / "w.duckdb"
    build_store(store, merchants=3, days=1, seed=9, fraud=False)
    con = duckdb.connect(str(store))
    names = ['=HYPERLINK("http://x","y")', 'Wang, "Big" Shop', "雪\x1b花"]
    for number, name in enumerate(names, start=1):
        con.execute("UPDATE merchants SET name = ? WHERE merchant_id = ?", [name, f"M{number:06d}"])
    con.close()
    written = export(store, tmp_path / "out")
    raw = (tmp_path / "out" / "商户信息.csv").read_bytes().decode("gb18030")
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert [row[1] for row in rows[1:4]] == ["'" + names[0], names[1], "雪花"]
    assert '"Wang, ""Big"" Shop"' in raw
    # numbers are never taken for formulas: a void's negative fee stays a number
    fees = next(f for n, f in written.items() if n.startswith("交易明细_")).get_column("手续费(元)")
    assert not fees.str.starts_with("'").any()


def test_bad_input_is_one_line_and_writes_nothing(sample_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for args, needle in (
        (["--layout", "lakala"], "unknown layout 'lakala': choose from"),
        (["--layout", "lakala-tms", "--flat"], "--flat is for the Parquet export"),
    ):
        result = run("export", "--db", str(sample_store), "--out", str(out), *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and needle in result.stderr
        assert not out.exists()
    out.mkdir()
    (out / "old.csv").write_text("kept")
    result = run("export", "--db", str(sample_store), "--layout", "lakala-tms", "--out", str(out))
    assert result.returncode == 2 and "must be a new or empty folder" in result.stderr
    assert [p.name for p in out.iterdir()] == ["old.csv"]
    missing = run("export", "--db", str(tmp_path / "no.duckdb"), "--layout", "lakala-tms")
    assert missing.returncode == 2


def test_a_failed_export_leaves_no_folder(sample_store: Path, tmp_path: Path) -> None:
    """A value the layout has no word for stops the export; no files are left behind."""
    store = tmp_path / "w.duckdb"
    store.write_bytes(sample_store.read_bytes())
    con = duckdb.connect(str(store))
    con.execute("UPDATE merchants SET category = 'casino' WHERE merchant_id = 'M000001'")
    con.close()
    out = tmp_path / "out"
    result = run("export", "--db", str(store), "--layout", "lakala-tms", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "'casino'" in result.stderr and "category" in result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))


def test_the_parquet_export_is_unchanged(sample_store: Path, tmp_path: Path) -> None:
    result = run("export", "--db", str(sample_store), "--out", str(tmp_path / "p"), "--flat")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "transactions" / "part-0.parquet").exists()
    assert not list((tmp_path / "p").rglob("*.csv"))


def test_store_times_without_a_fraction_print_none(frames: dict[str, pl.DataFrame]) -> None:
    installed = frames["终端信息.csv"].get_column("装机时间")
    assert installed.str.contains(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").all()
    assert datetime.strptime(installed[0], "%Y-%m-%d %H:%M:%S")


def test_an_operator_locked_out_at_another_terminal(sample_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "w.duckdb"
    store.write_bytes(sample_store.read_bytes())
    con = duckdb.connect(str(store))
    lockout, home, sibling = con.execute(
        "SELECT k.lockout_id, k.terminal_id, t.terminal_id FROM lockouts k "
        "JOIN terminals h ON h.terminal_id = k.terminal_id "
        "JOIN terminals t ON t.merchant_id = h.merchant_id AND t.terminal_id <> h.terminal_id "
        "ORDER BY k.lockout_id LIMIT 1"
    ).fetchone()
    con.execute("UPDATE lockouts SET terminal_id = ? WHERE lockout_id = ?", [sibling, lockout])
    con.close()
    rows = export(store, tmp_path / "out")["锁定记录.csv"].filter(pl.col("锁定编号") == lockout)
    assert rows.select("终端编号", "操作员所属终端").row(0) == (sibling, home)

    # a mapping that names the operator by the lockout's own terminal cannot carry that row
    from posaudit.ingest.layout import LayoutError, write_layout
    from posaudit.ingest.mapping import load_mapping

    text = files("posaudit.ingest").joinpath("mappings", "lakala-tms.toml").read_text("utf-8")
    own = 'operator_id = { operator_of = { terminal = "终端编号", operator_no = "操作员号" } }'
    lockouts = text.index("[tables.lockouts.columns]")
    at = text.index("operator_id = ", lockouts)
    narrow = text[:at] + own + text[text.index("\n", at) :]
    mapping_file = tmp_path / "narrow.toml"
    mapping_file.write_text(narrow, encoding="utf-8")
    folder = tmp_path / "narrow"
    folder.mkdir()
    opened = Store.open(store, read_only=True)
    try:
        with pytest.raises(LayoutError, match=f"lockouts row {lockout}: .* 终端编号"):
            write_layout(opened, folder, load_mapping(mapping_file))
    finally:
        opened.close()


def _mapping_like_lakala(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The lakala-tms mapping with lines changed: (pattern of a whole line, its new text)."""
    text = files("posaudit.ingest").joinpath("mappings", "lakala-tms.toml").read_text("utf-8")
    for pattern, new in edits:
        text, count = re.subn(f"^{pattern}$", new, text, count=1, flags=re.MULTILINE)
        assert count == 1, pattern
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _write(store: Path, folder: Path, mapping_file: Path) -> list[str]:
    from posaudit.ingest.layout import write_layout
    from posaudit.ingest.mapping import load_mapping

    folder.mkdir()
    opened = Store.open(store, read_only=True)
    try:
        return write_layout(opened, folder, load_mapping(mapping_file))
    finally:
        opened.close()


def test_times_in_the_source_time_zone(sample_store: Path, tmp_path: Path) -> None:
    """A mapping whose source is in UTC gets UTC times, and months by the UTC date."""
    utc = _mapping_like_lakala(tmp_path, ('timezone = "Asia/Shanghai"', 'timezone = "UTC"'))
    names = _write(sample_store, tmp_path / "utc", utc)
    # the first hours of 1 September in Shanghai are still August in UTC
    assert [n for n in names if n.startswith("交易明细_")] == [
        "交易明细_202608.csv",
        "交易明细_202609.csv",
    ]
    rows = pl.concat(read_file(tmp_path / "utc" / n) for n in names if n.startswith("交易明细_"))
    stamps = (pl.col("交易日期") + pl.col("交易时间")).str.strptime(
        pl.Datetime("us"), "%Y%m%d%H%M%S%.f"
    )
    got = rows.select(pl.col("交易流水号").alias("txn_id"), stamps.alias("ts"))
    local = table(sample_store, "transactions").select("txn_id", "ts")
    shifted = local.with_columns(pl.col("ts") - pl.duration(hours=8))
    assert got.sort("txn_id").equals(shifted.sort("txn_id"))


def test_a_constant_the_store_does_not_hold_is_refused(sample_store: Path, tmp_path: Path) -> None:
    from posaudit.ingest.layout import LayoutError

    constant = _mapping_like_lakala(tmp_path, ("channel = .*", 'channel = { value = "account" }'))
    with pytest.raises(LayoutError, match=r"transactions\.channel: .* is a constant"):
        _write(sample_store, tmp_path / "constant", constant)
