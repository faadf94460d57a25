"""What a run reads: only the columns its rules use, and only the rows a derived table needs."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from posaudit.detect.policy import load_policy
from posaudit.detect.registry import DERIVED_INPUTS, DERIVED_TABLES
from posaudit.pins import pin_digester
from posaudit.rules import all_rules
from posaudit.run import kept
from posaudit.run.inputs import derived_inputs, empty_derived_inputs
from posaudit.run.local import run_pipeline
from posaudit.run.plan import data_window
from posaudit.run.read import (
    ColumnsUsed,
    KeptDays,
    KeptRefunds,
    TableReader,
    columns_used,
    derived_rows,
    plain_strings,
    store_columns_used,
)
from posaudit.store import Store
from tests.injected import add_merchant_typologies


@pytest.fixture(scope="module")
def store(sample_store: Path) -> Store:
    return Store.open(sample_store, read_only=True)


def _columns(store: Store, names: list[str]) -> ColumnsUsed:
    rules = [all_rules()[n] for n in names]
    derived = derived_inputs(
        rules, store.read("operators"), window=data_window(store), digester=pin_digester()
    )
    tables = {n for r in rules for n in r.inputs} - DERIVED_INPUTS - set(DERIVED_TABLES)
    tables |= {"transactions"}
    return columns_used(rules, load_policy(), {n: store.schema(n) for n in tables}, derived)


def test_a_rule_reads_only_the_columns_its_plan_uses(store: Store) -> None:
    used = _columns(store, ["lockout_storm"])
    assert set(used.tables) == set(all_rules()["lockout_storm"].inputs)
    # the storm reads every column of lockouts (who lifted a lock tells a forgotten PIN):
    # None, the whole table; of the other tables only what it uses
    assert used.tables.pop("lockouts") is None
    for table, columns in used.tables.items():
        assert columns is not None, table
        assert set(columns) < set(store.schema(table).names()), table
    assert used.tables["operators"] == ["operator_id", "operator_no"]


def test_a_column_read_past_a_join_with_nothing_on_its_other_side_is_read(
    store: Store,
) -> None:
    """Over empty tables the engine skips the operators' rights that weak PINs join to their
    PIN periods (none): the plan still asks for them, and they are read."""
    rules = [all_rules()["weak_pins"]]
    used = store_columns_used(store, rules, load_policy(), empty_derived_inputs(rules))
    assert {"can_refund", "can_transfer", "can_manage"} <= set(used.tables["operators"] or [])


def test_every_rule_finds_from_the_columns_it_reads_what_it_finds_from_whole_tables(
    store: Store,
) -> None:
    """Each rule over its tables cut to the columns found (the others as nulls, as a run
    reads them) gives the findings it gives over the whole tables."""
    policy = load_policy()
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    derived = derived_inputs(
        rules, store.read("operators"), window=data_window(store), digester=pin_digester()
    )
    names = {n for r in rules for n in r.inputs} - DERIVED_INPUTS - set(DERIVED_TABLES)
    # the columns found as a run finds them: its plans over empty tables and empty inputs
    used = store_columns_used(store, rules, policy, empty_derived_inputs(rules))
    whole = {n: plain_strings(store.read(n)) for n in names}
    tables = {n: derived[n] for n in DERIVED_INPUTS if n in derived}
    # the derived tables come from their source tables whole, as both sides share them
    sources = {
        s: plain_strings(store.read(s)).lazy()
        for r in rules
        for n in r.inputs
        if n in DERIVED_TABLES
        for s in DERIVED_TABLES[n].sources
    }
    for r in rules:
        own = {n: t.lazy() for n, t in whole.items() if n in r.inputs}
        cut = {n: _cut(t, used.tables.get(n)) for n, t in own.items()}
        parameters = r.parameters | policy.parameters(r.name)
        found_cut = r({**tables, **sources, **cut}, **parameters).collect()
        found_whole = r({**tables, **sources, **own}, **parameters).collect()
        assert found_cut.sort("finding_id").equals(found_whole.sort("finding_id")), r.name


def _cut(frame: pl.LazyFrame, columns: list[str] | None) -> pl.LazyFrame:
    """``frame`` as a run reads it: ``columns`` only, the others as nulls of their types."""
    if columns is None:
        return frame
    schema = frame.collect_schema()
    return frame.select(columns).with_columns(
        pl.lit(None, dtype=d).alias(c) for c, d in schema.items() if c not in columns
    )


def test_the_refund_rules_read_no_transactions_but_their_shared_frame(store: Store) -> None:
    refund_rules = [n for n, r in all_rules().items() if r.family == "refunds"]
    used = _columns(store, refund_rules)
    assert "transactions" not in used.tables
    assert set(used.derived) == {"approved_refunds"}
    wanted = used.derived["approved_refunds"]
    assert wanted is not None and "fee_fen" not in wanted and "txn_id" in wanted


@pytest.mark.parametrize("days_back", [None, 3, 10])
def test_a_derived_table_from_the_rows_it_needs_equals_it_from_the_whole_table(
    store: Store, days_back: int | None
) -> None:
    table = DERIVED_TABLES["approved_refunds"]
    _, last = data_window(store)
    since = None if days_back is None else last - timedelta(days=days_back)
    read = TableReader(store).read_derived("approved_refunds", since)
    whole = table(store.read("transactions").lazy()).collect()
    order = ["ts", "txn_id"]
    if since is None:
        assert_frame_equal(read.sort(order), whole.sort(order), check_dtypes=False)
        return
    after = read.filter(pl.col("ts") >= since)
    assert after.height > 0
    assert_frame_equal(
        after.sort(order), whole.filter(pl.col("ts") >= since).sort(order), check_dtypes=False
    )
    # before the window: only the other refunds of sales that refunds in the window name,
    # exactly as they are in the whole frame
    before = read.filter(pl.col("ts") < since)
    named = after.get_column("original_txn_id").drop_nulls()
    assert before.get_column("original_txn_id").is_in(named.implode()).all()
    expected = whole.filter(
        (pl.col("ts") < since) & pl.col("original_txn_id").is_in(named.implode())
    )
    assert_frame_equal(before.sort(order), expected.sort(order), check_dtypes=False)


def test_the_rows_a_derived_table_reads_are_few_and_reach_back_to_old_sales(store: Store) -> None:
    _, last = data_window(store)
    since = last - timedelta(days=3)
    conditions = derived_rows(DERIVED_TABLES["approved_refunds"], since)
    rows = store.read("transactions", where=conditions)
    assert rows.get_column("txn_id").is_unique().all()  # the conditions do not overlap
    assert rows.height < store.read("transactions", columns=["txn_id"]).height / 20
    assert rows.filter(pl.col("ts") < since).height > 0  # sales from before the window


def test_store_read_refuses_an_unknown_table(store: Store) -> None:
    from posaudit.store import StoreError

    with pytest.raises(StoreError, match="unknown table"):
        store.read("approved_refunds")


# filled when posaudit.rules imported the rule modules, which register their shared frames
QUERY_TABLES = sorted(n for n, t in DERIVED_TABLES.items() if t.sql is not None)


def test_the_score_counts_transactions_in_the_store() -> None:
    assert "operator_terminal_days" in QUERY_TABLES
    assert all_rules()["operator_anomaly_scores"].inputs[0] == "operator_terminal_days"


@pytest.mark.parametrize("name", QUERY_TABLES)
# 2.5 days: a cut in the middle of a day, where a table joined by day is read from its start
@pytest.mark.parametrize("days_back", [None, 3, 2.5])
def test_a_query_table_from_the_store_equals_it_from_polars(
    store: Store, name: str, days_back: float | None
) -> None:
    table = DERIVED_TABLES[name]
    _, last = data_window(store)
    since = None if days_back is None else last - timedelta(days=days_back)
    read = TableReader(store).read_derived(name, since)
    frames = {s: plain_strings(store.read(s)).lazy() for s in table.sources}
    if since is not None:
        frames[table.source] = frames[table.source].filter(pl.col("ts") >= since)
    computed = table(*frames.values()).collect()
    assert read.height > 0
    assert read.schema == computed.schema
    order = read.columns
    assert_frame_equal(read.sort(order), computed.sort(order))


def test_a_rule_on_a_query_table_reads_none_of_its_sources(store: Store) -> None:
    used = _columns(store, ["operator_anomaly_scores"])
    assert "transactions" not in used.tables
    assert "operator_terminal_days" not in used.derived


def _refund_again(store: Store, *, at: datetime) -> None:
    """Refund the sale of the store's first refund a second time, at ``at``."""
    first = store.frame(
        "SELECT * FROM transactions WHERE kind = 'refund' AND status = 'approved' "
        "AND original_txn_id IS NOT NULL ORDER BY ts, txn_id LIMIT 1"
    )
    again = first.with_columns(txn_id=pl.lit("again-1"), ts=pl.lit(at).cast(first.schema["ts"]))
    store.append("transactions", again)


@pytest.mark.parametrize(("days_back", "changed_days_back"), [(3, 1), (10, 2), (2, 2)])
def test_the_refunds_frame_read_with_what_a_run_kept_equals_it_read_from_the_store(
    sample_store: Path, tmp_path: Path, days_back: int, changed_days_back: int
) -> None:
    path = tmp_path / "kept.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    try:
        _, last = data_window(store)
        _refund_again(store, at=last - timedelta(hours=1))
        summary = run_pipeline(store, load_policy())
        assert kept.refunds_kept_by(store, summary.run_id)
        since = last - timedelta(days=days_back)
        changed_from = last - timedelta(days=changed_days_back)
        reader = TableReader(store, kept=KeptRefunds(changed_from))
        read = reader.read_derived("approved_refunds", since)
        expected = TableReader(store).read_derived("approved_refunds", since)
        assert_frame_equal(read, expected, check_dtypes=False)
        # it reaches back to earlier refunds of the same sales, and keeps the new ones
        assert read.filter(pl.col("ts") < since).height > 0
        frame, new_from = reader.refunds_to_keep  # type: ignore[misc]
        assert frame is read and new_from == changed_from
    finally:
        store.close()


def test_a_run_keeps_the_refunds_frame_and_a_run_that_cannot_forgets_it(
    sample_store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "kept.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    try:
        first = run_pipeline(store, load_policy())
        whole = DERIVED_TABLES["approved_refunds"](store.read("transactions").lazy()).collect()
        assert store.frame(f"SELECT count(*) AS n FROM {kept.REFUNDS_TABLE}").item() == whole.height
        with store.transaction():
            kept.forget_all_kept(store)
        # nothing current is kept: the next run computes the frame whole, and keeps it again
        again = run_pipeline(store, load_policy())
        assert again.previous_run_id == first.run_id
        assert kept.refunds_kept_by(store, again.run_id)
    finally:
        store.close()


def test_a_rule_runs_alone_on_the_columns_it_uses(sample_store: Path, tmp_path: Path) -> None:
    # The stale PINs select pin_digest and drop it unused: run with the other PIN rules off,
    # pin_events is read without it, and the rule's plan must still find the column.
    path = tmp_path / "alone.duckdb"
    shutil.copy(sample_store, path)
    policy = tmp_path / "stale-only.toml"
    policy.write_text(
        "".join(
            f"[rules.{name}]\nenabled = false\n"
            for name in ("weak_pins", "default_pins", "shared_pins", "reused_pins")
        ),
        encoding="utf-8",
    )
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy(policy))
        stale = store.query("SELECT count(*) FROM findings WHERE rule = 'stale_pins'")[0][0]
        assert stale > 0  # type: ignore[operator]
    finally:
        store.close()


def _refund_a_cash_like_card(store: Store, at: datetime) -> str:
    """Refund now, at ``at``, to a card of an earlier cash-like sale (a near-round credit sale
    of a card that made two that day): the sale's day no longer reads as cash-like. Returns
    the sale's day."""
    sale = store.frame(
        "SELECT * FROM transactions WHERE kind = 'sale' AND status = 'approved' "
        "AND channel = 'credit_card' AND amount_fen >= 100000 AND amount_fen % 100000 <> 0 "
        "AND (100000 - amount_fen % 100000) * 50 <= amount_fen AND card_token IN ("
        "  SELECT card_token FROM transactions WHERE kind = 'sale' AND channel = 'credit_card' "
        "  GROUP BY card_token, merchant_id, CAST(ts AS DATE) HAVING count(*) >= 2) "
        "ORDER BY ts, txn_id LIMIT 1"
    )
    assert sale.height == 1, "the world holds no cash-like sale"
    refund = sale.with_columns(
        txn_id=pl.lit("refund-cash-1"),
        ts=pl.lit(at).cast(sale.schema["ts"]),
        kind=pl.lit("refund").cast(sale.schema["kind"]),
        original_txn_id=pl.col("txn_id"),
    )
    store.append("transactions", refund)
    return str(sale.item(0, "ts").date())


def _cash_like_sales_by_a_refunded_card(store: Store, at: datetime) -> None:
    """Two near-round credit sales at ``at`` by a card refunded at the merchant before: not
    cash-like, which only the earlier refund says."""
    refund = store.frame(
        "SELECT * FROM transactions WHERE kind = 'refund' AND card_token IS NOT NULL "
        "AND channel = 'credit_card' ORDER BY ts, txn_id LIMIT 1"
    )
    assert refund.height == 1, "the world holds no refund to a credit card"
    sales = pl.concat([refund, refund]).with_columns(
        txn_id=pl.Series(["cash-again-1", "cash-again-2"]),
        ts=pl.lit(at).cast(refund.schema["ts"]),
        kind=pl.lit("sale").cast(refund.schema["kind"]),
        status=pl.lit("approved").cast(refund.schema["status"]),
        amount_fen=pl.lit(199_800).cast(refund.schema["amount_fen"]),
        original_txn_id=pl.lit(None).cast(refund.schema["original_txn_id"]),
    )
    store.append("transactions", sales)


@pytest.mark.parametrize("name", ["merchant_terminal_days", "merchant_digit_days"])
@pytest.mark.parametrize(
    "reach",
    [None, "refund", "sale"],
    ids=["new days", "a refund reaches an earlier day", "a sale reaches an earlier refund"],
)
def test_a_frame_of_days_read_with_what_a_run_kept_equals_it_read_from_the_store(
    sample_store: Path, tmp_path: Path, name: str, reach: str | None
) -> None:
    path = tmp_path / "days.duckdb"
    shutil.copy(sample_store, path)
    add_merchant_typologies(path)
    store = Store.open(path)
    try:
        _, last = data_window(store)
        summary = run_pipeline(store, load_policy())
        assert kept.days_kept_by(store, DERIVED_TABLES[name], summary.run_id)
        before = store.frame(f"SELECT * FROM {kept.kept_table(name)}")
        at = last + timedelta(hours=1)
        reopened_day = _refund_a_cash_like_card(store, at) if reach == "refund" else None
        if reach == "sale":
            _cash_like_sales_by_a_refunded_card(store, at)
        reader = TableReader(store, days=KeptDays(at.date(), summary.run_id))
        read = reader.read_derived(name)
        expected = TableReader(store).read_derived(name)
        keys = [c for c in ("terminal_id", "merchant_id", "day", "digit") if c in read.columns]
        if DERIVED_TABLES[name].rolled_up is None:
            assert_frame_equal(read.sort(keys), expected.sort(keys), check_dtypes=False)
        else:
            # the kept days rolled up: the same counts per merchant and digit, the same first
            # and last day, in fewer rows
            assert read.height < expected.height / 2

            def sums(frame: pl.DataFrame) -> pl.DataFrame:
                return (
                    frame.group_by("merchant_id", "digit")
                    .agg(pl.col("n").sum())
                    .sort("merchant_id", "digit")
                )

            assert_frame_equal(sums(read), sums(expected))
            span = [pl.col("day").min().alias("first"), pl.col("day").max().alias("last")]
            assert read.select(span).equals(expected.select(span))
        fresh, redone, _ = reader.days_to_keep[name]
        assert redone is not None and redone[0] == at.date()
        if reach == "refund" and name == "merchant_terminal_days":
            # the sale's day was read again (with the card's other near-round days): its
            # cash-like count fell
            assert reopened_day in [str(d) for d in redone[1]]
            day = pl.col("day").cast(pl.String) == reopened_day
            cash = pl.col("cash_count").sum()
            assert read.filter(day).select(cash).item() < before.filter(day).select(cash).item()
        elif reach == "sale" and name == "merchant_terminal_days":
            # the new day read the earlier refund: its two sales are not cash-like
            assert redone[1] == [at.date()]
        else:
            assert redone[1] == []
        assert fresh.height < read.height
    finally:
        store.close()
