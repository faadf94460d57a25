"""The Spark engine in local mode gives the local engine's findings (one session for the module)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.policy import load_policy
from posaudit.pins import pin_digester
from posaudit.rules import all_rules
from posaudit.run.detect import findings_for_tables
from posaudit.run.local import run_pipeline
from posaudit.run.plan import data_window
from posaudit.run.record import RunSummary
from posaudit.score.operators import operator_day_scores
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.spark.buckets import BucketJob, store_tables, table_schemas
from posaudit.spark.export import export_buckets, read_export
from posaudit.store import Store
from tests.conftest import build_ingested_store
from tests.injected import add_invented_amounts, add_lockout_storm, add_merchant_typologies
from tests.pipeline.pipeline_kit import append_days, run_here
from tests.review.conftest import held_by_another_process
from tests.spark.spark_kit import (
    DATA_SAMPLES,
    SCORE_TOLERANCE,
    assert_same_findings,
    copy_store,
    store_findings,
    wrong_pins_loaded_late,
)

pytest.importorskip("pyspark", reason="the Spark engine is the optional extra posaudit[spark]")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip(
        "Spark needs Java 17 or later: no java on PATH and no $JAVA_HOME", allow_module_level=True
    )

from pyspark.sql import SparkSession

from posaudit.spark.runner import SparkRun, detect, run_spark
from posaudit.spark.score import SCORE_RULE, STAGING_PREFIX, staged_scores
from posaudit.spark.session import start_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = start_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def sample_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data_samples/world as a store (with the findings and runs the sample holds)."""
    path = tmp_path_factory.mktemp("spark-sample") / "world.duckdb"
    fingerprint = pin_digester().fingerprint
    return Store.from_parquet(
        DATA_SAMPLES, path, code_version="data_samples", pin_key_fingerprint=fingerprint
    )


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated world: 30 merchants over 6 buckets, 10 days; flaky terminals enough
    for bursts of network errors, ghost accounts, a lockout storm and the merchant typologies,
    so that every rule finds something."""
    folder = tmp_path_factory.mktemp("spark-small")
    scenario = folder / "flaky.toml"
    # ghost accounts often enough that some are due their terminal's logins within 10 days
    scenario.write_text(
        "[behaviour]\nflaky_terminal_share = 0.3\n[scenarios.ghost_operator]\nrate = 0.1\n"
    )
    path = folder / "small.duckdb"
    simulate(path, load_scenario(scenario, merchants=30, days=10), seed=5)
    add_lockout_storm(path)
    add_merchant_typologies(path)
    add_invented_amounts(path)
    return path


def test_spark_run_gives_the_local_runs_findings(
    spark: SparkSession, sample_world: Path, tmp_path: Path
) -> None:
    local, remote = (
        copy_store(sample_world, tmp_path / "local.duckdb"),
        copy_store(sample_world, tmp_path / "spark.duckdb"),
    )
    store = Store.open(local)
    try:
        run_pipeline(store, load_policy(), full=True)
    finally:
        store.close()
    store = Store.open(remote)
    try:
        summary = run_spark(
            SparkRun(master="local[2]", buckets=5), load_policy(), store=store, session=spark
        )
        runs = store.frame(
            "SELECT run_id, engine, mode, status, findings_total FROM pipeline_runs "
            "ORDER BY started_at DESC, run_id DESC"
        )
    finally:
        store.close()
    want = store_findings(local)
    assert want.height > 100
    assert_same_findings(store_findings(remote), want)
    assert runs.row(0) == (summary.run_id, "spark", "full", "succeeded", want.height)
    assert summary.findings_open == want.height


def test_both_strategies_match_the_local_engine_on_several_buckets(
    spark: SparkSession, small_world: Path, tmp_path: Path
) -> None:
    # the 10-day world has no sale older than the acquirer's 15-day refund window
    late = tmp_path / "policy.toml"
    late.write_text("[rules.late_refunds]\nrefund_window_days = 4\n")
    policy = load_policy(late)
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    store = Store.open(small_world, read_only=True)
    try:
        window = data_window(store)
        want = findings_for_tables(
            rules,
            {t: store.scan(t) for t in store_tables(rules)},
            policy,
            window=window,
            digester=pin_digester(),
        )
        export = export_buckets(store, tmp_path / "export", buckets=6)
    finally:
        store.close()
    assert export.buckets == 6
    silent = {r.name for r in rules} - set(want.get_column("rule"))
    assert not silent, f"rules with no findings to compare: {sorted(silent)}"
    for strategy in ("shards", "groupby"):
        got = detect(spark, export, rules, policy, digester=pin_digester(), strategy=strategy)  # type: ignore[arg-type]
        assert_same_findings(got.findings, want.select(FINDINGS_SCHEMA.names()))


def test_findings_from_an_export_alone_go_to_parquet(
    spark: SparkSession, small_world: Path, tmp_path: Path
) -> None:
    store = Store.open(small_world, read_only=True)
    try:
        export_buckets(store, tmp_path / "export", buckets=3)
    finally:
        store.close()
    audited = copy_store(small_world, tmp_path / "audited.duckdb")
    store = Store.open(audited)
    try:
        run_pipeline(store, load_policy(), full=True)
    finally:
        store.close()
    settings = SparkRun(
        master="local[2]", parquet=tmp_path / "export", findings_out=tmp_path / "findings"
    )
    summary = run_spark(settings, load_policy(), store=None, session=spark)
    written = pl.read_parquet(tmp_path / "findings" / f"findings-{summary.run_id}.parquet")
    assert_same_findings(written.drop("run_id"), store_findings(audited))
    record = json.loads((tmp_path / "findings" / "run-00001.json").read_text())
    assert record["engine"] == "spark" and record["findings"] == written.height


def test_spark_nights_over_the_updated_export_equal_a_full_run(
    spark: SparkSession, small_world: Path, tmp_path: Path
) -> None:
    local, remote = (
        copy_store(small_world, tmp_path / "local.duckdb"),
        copy_store(small_world, tmp_path / "spark.duckdb"),
    )
    settings = SparkRun(master="local[2]", buckets=4, parquet=tmp_path / "export")

    def night() -> RunSummary:
        store = Store.open(remote)
        try:
            return run_spark(settings, load_policy(), store=store, session=spark)
        finally:
            store.close()

    assert night().mode == "full"
    for late in (False, True):
        for path in (local, remote):
            append_days(path)
            if late:
                wrong_pins_loaded_late(path, days_in=2, hour=10)
        run_here(local, full=True)
        summary = night()
        assert summary.mode == "incremental", summary.reason
        if late:
            # a day so far back that a burst's look-back covers the whole 12-day world
            assert "events changed from" in summary.reason
        else:
            assert "pin_brute_force" not in summary.rules_over_all_data
        assert_same_findings(store_findings(remote), store_findings(local))
    assert read_export(tmp_path / "export").generation == 2
    # the late burst is found on its own day
    store = Store.open(remote, read_only=True)
    try:
        (late_day,) = store.query(
            "SELECT CAST(ts AS DATE) FROM login_events WHERE event_id = 'L99000000'"
        )[0]
    finally:
        store.close()
    brute = store_findings(remote).filter(pl.col("rule") == "pin_brute_force")
    assert brute.filter(pl.col("window_start").dt.date() == late_day).height >= 1


def test_the_command_line_runs_spark_and_prints_the_json_line(
    small_world: Path, tmp_path: Path
) -> None:
    db = copy_store(small_world, tmp_path / "cli.duckdb")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "posaudit",
            "run",
            "--db",
            str(db),
            "--engine",
            "spark",
            "--master",
            "local[2]",
            "--buckets",
            "3",
            "--parquet",
            str(tmp_path / "export"),
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert record["findings"] == store_findings(db).height > 0
    assert (tmp_path / "export" / "_posaudit_export.json").exists()


def test_a_store_made_by_ingest_gives_the_local_findings(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """An ingested store (no ground truth, quarantined rows left out) through `posaudit run
    --engine spark`: the findings of the local engine on the same store."""
    folder = tmp_path_factory.mktemp("spark-ingested")
    ingested = build_ingested_store(folder, merchants=12, days=7, seed=8, audited=False)
    local = copy_store(ingested, folder / "local.duckdb")
    store = Store.open(local)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "posaudit",
            "run",
            "--db",
            str(ingested),
            "--engine",
            "spark",
            "--master",
            "local[2]",
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "succeeded"
    store = Store.open(ingested, read_only=True)
    try:
        assert store.query("SELECT CAST(engine AS VARCHAR) FROM pipeline_runs") == [("spark",)]
    finally:
        store.close()
    want = store_findings(local)
    assert want.height > 0
    assert_same_findings(store_findings(ingested), want)


def test_the_staged_score_gives_the_local_scores(
    spark: SparkSession, small_world: Path, tmp_path: Path
) -> None:
    """Features and scores per bucket, the forest fitted on the driver: the same numbers."""
    policy = load_policy()
    rule = all_rules()[SCORE_RULE]
    settings = rule.parameters | policy.parameters(rule.name)
    store = Store.open(small_world, read_only=True)
    try:
        tables = [store.scan(t) for t in ("transactions", "login_events", "lockouts")]
        local = operator_day_scores(
            *tables,
            store.scan("operators"),
            store.scan("merchants"),
            **{k: settings[k] for k in ("seed", "n_estimators", "max_samples", "fit_rows")},
        ).collect()
        export = export_buckets(store, tmp_path / "export", buckets=6)
    finally:
        store.close()
    job = BucketJob(
        str(export.root),
        "merchant",
        (SCORE_RULE,),
        table_schemas(export.root, store_tables([rule])),
        policy,
        export.window,
        pin_digester(),
        export.buckets,
    )
    kept, _ = staged_scores(spark, job, rule, policy)
    want = local.filter(
        (pl.col("anomaly_score") > settings["min_anomaly_score"])
        & (pl.col("anomaly_percentile") >= 1.0 - settings["top_fraction"])
    )
    keys = ["operator_id", "day"]
    assert kept.height == want.height > 0
    assert kept.select(keys).sort(keys).equals(want.select(keys).sort(keys))
    joined = want.join(kept, on=keys, how="inner", suffix="_spark")
    assert joined.height == want.height
    for column in ("anomaly_score", "anomaly_percentile"):
        gap = (joined.get_column(column) - joined.get_column(f"{column}_spark")).abs().max()
        assert gap is not None and gap <= SCORE_TOLERANCE, (column, gap)  # type: ignore[operator]
    # the staging folder goes with the run
    assert not [p for p in export.root.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_spark_run_respects_the_analysts_decisions(
    spark: SparkSession, small_world: Path, tmp_path: Path
) -> None:
    """A dismissed finding stays dismissed, grown evidence reopens it, and a decision queued
    while the store was held lands with the run: on Spark as on the local engine."""
    from datetime import timedelta

    from posaudit.review import checked_action, decide, record_action

    db = copy_store(small_world, tmp_path / "reviewed.duckdb")
    store = Store.open(db)
    try:
        run_pipeline(store, load_policy(), full=True)
        kept, grown, queued = (
            store.frame(
                "SELECT finding_id, window_start, evidence FROM findings WHERE rule = $rule "
                "ORDER BY finding_id LIMIT 1",
                {"rule": rule},
            ).row(0, named=True)
            for rule in ("refund_bursts", "pin_brute_force", "weak_pins")
        )
    finally:
        store.close()
    for finding in (kept, grown):
        decide(db, finding["finding_id"], decision="false_positive", analyst="ana")
    evidence = json.loads(grown["evidence"])
    con = duckdb.connect(str(db))
    try:
        con.execute(
            "INSERT INTO login_events VALUES ('LATE1', ?, ?, ?, ?, 'wrong_pin')",
            [
                grown["window_start"] + timedelta(seconds=1),
                evidence["terminal_id"],
                evidence["operator_no"],
                f"{evidence['terminal_id']}-{evidence['operator_no']}",
            ],
        )
    finally:
        con.close()
    with held_by_another_process(db):
        waiting = record_action(
            db,
            queued["finding_id"],
            checked_action("decide", decision="policy_breach", analyst="bo"),
            wait=0,
        )
    assert waiting.queued is not None
    store = Store.open(db)
    try:
        summary = run_spark(
            SparkRun(master="local[2]", buckets=3), load_policy(), store=store, session=spark
        )
        latest = dict(
            store.query(
                "SELECT finding_id, CAST(decision AS VARCHAR) FROM finding_reviews "
                "QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY review_id DESC) = 1"
            )
        )
    finally:
        store.close()
    assert summary.counts.dismissed == 1 and summary.counts.reopened_by_evidence == 1
    assert summary.queued_applied == [waiting.queued.request_id]
    assert latest == {
        kept["finding_id"]: "false_positive",
        grown["finding_id"]: None,
        queued["finding_id"]: "policy_breach",
    }
