"""The bucketed export and the per-bucket work, without Spark (each bucket run in turn here)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from posaudit.detect.findings import FINDINGS_SCHEMA, to_findings
from posaudit.detect.policy import load_policy
from posaudit.detect.registry import RULES, Rule
from posaudit.pins import pin_digester
from posaudit.rules import all_rules
from posaudit.run.detect import findings_for_tables, one_per_finding_id
from posaudit.run.plan import POPULATION_FAMILIES, data_window
from posaudit.spark.buckets import (
    BucketJob,
    local_bucket_findings,
    place_rules,
    store_tables,
    table_schemas,
)
from posaudit.spark.export import (
    MANIFEST,
    ExportError,
    check_export_matches,
    export_buckets,
    read_export,
)
from posaudit.store import Store, read_parquet_table
from posaudit.store.catalogue import BUCKETED_TABLES
from tests.spark.spark_kit import assert_same_findings, copy_store

BUCKETS = 4


@pytest.fixture(scope="module")
def exported(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the sample store and its bucketed export (4 buckets)."""
    folder = tmp_path_factory.mktemp("spark-export")
    db = copy_store(sample_store, folder / "store.duckdb")
    store = Store.open(db, read_only=True)
    try:
        export_buckets(store, folder / "export", buckets=BUCKETS)
    finally:
        store.close()
    return db, folder / "export"


def _md5_bucket(value: str) -> int:
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "little") % BUCKETS


def test_export_holds_every_row_once_with_its_merchants_bucket(exported: tuple[Path, Path]) -> None:
    db, root = exported
    store = Store.open(db, read_only=True)
    try:
        counts = {t: int(store.query(f"SELECT count(*) FROM {t}")[0][0]) for t in BUCKETED_TABLES}  # type: ignore[call-overload]
    finally:
        store.close()
    terminals = read_parquet_table(root, "terminals").select("terminal_id", "merchant_id").collect()
    for table in BUCKETED_TABLES:
        frame = read_parquet_table(root, table).collect()
        assert frame.height == counts[table], table
        with_merchant = (
            frame
            if "merchant_id" in frame.columns
            else frame.join(terminals, on="terminal_id", how="left")
            if "terminal_id" in frame.columns
            else frame.join(
                read_parquet_table(root, "operators")
                .select("operator_id", "merchant_id")
                .collect(),
                on="operator_id",
                how="left",
            )
        )
        expected = with_merchant.get_column("merchant_id").map_elements(
            _md5_bucket, return_dtype=pl.Int64
        )
        assert (with_merchant.get_column("bucket").cast(pl.Int64) == expected).all(), table
    cards = read_parquet_table(root, "transactions").select("card_token", "card_bucket").collect()
    expected = (
        cards.get_column("card_token")
        .fill_null("")
        .map_elements(_md5_bucket, return_dtype=pl.Int64)
    )
    assert (cards.get_column("card_bucket").cast(pl.Int64) == expected).all()
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["buckets"] == BUCKETS and manifest["rows"] == counts
    assert manifest["cross_merchant_rows"] == 0


def test_plain_exports_have_no_bucket_column(sample_store: Path, tmp_path: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        store.export_parquet(tmp_path / "plain")
    finally:
        store.close()
    assert not list((tmp_path / "plain" / "transactions").glob("bucket=*"))
    columns = read_parquet_table(tmp_path / "plain", "transactions").collect_schema().names()
    assert "bucket" not in columns and "card_bucket" not in columns


def test_rules_run_where_their_partition_key_allows() -> None:
    rules = list(all_rules().values())
    placement = place_rules(rules)
    assert "operator_anomaly_scores" in placement.driver  # ranks the whole population
    # each merchant against its category: the whole population too
    assert {"cash_out_sales", "category_misuse", "dormant_surge"} <= set(placement.driver)
    assert set(placement.merchant) == {r.name for r in rules if r.family not in POPULATION_FAMILIES}
    card = _card_rule()
    mixed = Rule(
        **{**card.__dict__, "name": "cards_and_logins", "inputs": ("transactions", "login_events")}
    )
    placed = place_rules([card, mixed])
    assert placed.card == ("cards_at_several_merchants",)
    assert placed.driver == ("cards_and_logins",)
    assert "login_events" in placed.why_driver["cards_and_logins"]


def test_buckets_together_give_the_local_findings(exported: tuple[Path, Path]) -> None:
    db, root = exported
    store = Store.open(db, read_only=True)
    try:
        window = data_window(store)
        policy = load_policy()
        rules = [
            r
            for r in all_rules().values()
            if policy.enabled(r.name) and r.family not in POPULATION_FAMILIES
        ]
        whole = {t: store.scan(t) for t in store_tables(rules)}
        want = findings_for_tables(rules, whole, policy, window=window, digester=pin_digester())
    finally:
        store.close()
    job = BucketJob(
        str(root),
        "merchant",
        tuple(r.name for r in rules),
        table_schemas(root, store_tables(rules)),
        policy,
        window,
        pin_digester(),
        BUCKETS,
    )
    got = one_per_finding_id(local_bucket_findings(job))
    assert want.height > 100  # the sample world has findings of most rules
    assert_same_findings(got, want.select(FINDINGS_SCHEMA.names()))


def _card_rule() -> Rule:
    """A rule keyed by card: cards that paid at two or more merchants (crosses merchants)."""

    def cards_at_several_merchants(transactions: pl.LazyFrame) -> pl.LazyFrame:
        return (
            transactions.filter((pl.col("kind") == "sale") & pl.col("card_token").is_not_null())
            .group_by("card_token")
            .agg(
                pl.col("merchant_id").n_unique().alias("merchants"),
                pl.col("merchant_id").min(),
                pl.col("ts").min().alias("window_start"),
                pl.col("ts").max().alias("window_end"),
            )
            .filter(pl.col("merchants") >= 2)
            .pipe(
                to_findings,
                rule="cards_at_several_merchants",
                family="refunds",
                entity_type="card",
                severity="low",
                score=0.5,
                entity_id="card_token",
                summary=pl.format("card paid at {} merchants", "merchants"),
                evidence={"merchants": pl.col("merchants")},
            )
        )

    return Rule(
        name="cards_at_several_merchants",
        family="refunds",
        function=cards_at_several_merchants,
        entity_type="card",
        partition_key="card_token",
        lookback=timedelta(days=30),
        inputs=("transactions",),
        scenarios=(),
    )


def test_a_card_rule_runs_per_card_bucket(
    exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, root = exported
    card = _card_rule()
    monkeypatch.setitem(RULES, card.name, card)
    store = Store.open(db, read_only=True)
    try:
        window = data_window(store)
        whole = {"transactions": store.scan("transactions")}
    finally:
        store.close()
    policy = load_policy()
    want = findings_for_tables([card], whole, policy, window=window, digester=pin_digester())
    job = BucketJob(
        str(root),
        "card",
        (card.name,),
        table_schemas(root, ["transactions"]),
        policy,
        window,
        pin_digester(),
        BUCKETS,
    )
    got = one_per_finding_id(local_bucket_findings(job))
    assert_same_findings(got, want.select(FINDINGS_SCHEMA.names()))
    assert want.height > 100  # the sample's shoppers pay at several merchants
    # merchant buckets would split those cards' sales: the card bucket is needed
    merchant_job = BucketJob(**{**job.__dict__, "scheme": "merchant"})
    assert local_bucket_findings(merchant_job).height < want.height


def test_export_refuses_what_it_cannot_use(exported: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = exported
    with pytest.raises(ExportError, match="no bucketed export"):
        read_export(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        read_export(tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.parquet").write_text("x")
    with pytest.raises(ExportError, match="not a bucketed posaudit export"):
        read_export(tmp_path / "other")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / MANIFEST).write_text("{not json")
    with pytest.raises(ExportError, match="cannot read"):
        read_export(damaged)
    store = Store.open(db, read_only=True)
    try:
        with pytest.raises(ExportError, match="new or empty folder"):
            export_buckets(store, tmp_path / "other", buckets=2)
        assert not list(tmp_path.glob(".other.partial-*"))
    finally:
        store.close()


def test_an_export_of_older_data_is_refused(exported: tuple[Path, Path], tmp_path: Path) -> None:
    db, root = exported
    changed = copy_store(db, tmp_path / "changed.duckdb")
    store = Store.open(changed)
    try:
        check_export_matches(read_export(root), store)
        store.execute(
            "DELETE FROM transactions WHERE txn_id = (SELECT min(txn_id) FROM transactions)"
        )
        with pytest.raises(ExportError, match="not of the current data"):
            check_export_matches(read_export(root), store)
    finally:
        store.close()
