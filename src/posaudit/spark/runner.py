"""The Spark engine: every rule per bucket on the executors, findings back to the store.

A run reads a bucketed export (:mod:`posaudit.spark.export`; made from the store first when
there is none), runs each bucket's rules through Arrow on the executors with
:func:`posaudit.run.detect.findings_for_tables` (the local engine's own detection step), runs
the anomaly score in stages (:mod:`posaudit.spark.score`: features and scores per bucket, the
model fitted on the driver) and any other rule that cannot be bucketed on the driver, and
merges the findings into the store in
one transaction with a ``pipeline_runs`` row whose engine is ``spark`` — or writes them as
Parquet for data that only exists as an export.

Two ways to give each bucket to a task, chosen with ``strategy``:

``shards`` (the default)
    one task per bucket; the task reads its bucket's folders of the export itself (Polars),
    so nothing is shuffled. Every executor must be able to read the export's path.
``groupby``
    Spark reads the event tables, shuffles them by bucket and hands each bucket to
    ``groupBy(bucket).applyInArrow``; the small dimension tables travel with the task.

A run into a store is planned as a local run is (:func:`posaudit.run.plan.plan_run`): full,
or incremental when the store's previous run was made with the same policy and code and the
data it saw is unchanged. An incremental run first brings the export up to date with the
store (:func:`posaudit.spark.export.bring_up_to_date`: the new events appended per bucket),
and each bucket's task then runs every rule over what its scope reads and keeps the findings
it re-decides, as the local engine does over the store; the findings are merged with the
plan's scopes, so they equal a full run's. The anomaly score ranks every operator-day again
on every Spark run (the Spark engine keeps no operator-days between runs). A run whose
findings go to Parquet (no store: nothing to carry findings over from) is always full.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import polars as pl

from posaudit.atomic import written_file
from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.policy import Policy
from posaudit.detect.registry import Rule
from posaudit.pins import PinDigester, pin_digester
from posaudit.rules import all_rules
from posaudit.run.detect import one_per_finding_id, outside_lookback
from posaudit.run.kept import forget_all_kept
from posaudit.run.plan import (
    RuleScope,
    RunPlan,
    check_runnable,
    full_scopes,
    over_all_data,
    plan_run,
    previous_run,
)
from posaudit.run.record import (
    EventSink,
    MergeCounts,
    RunSummary,
    WrittenRun,
    ignore_events,
    in_severity_order,
    next_run_id,
    pivot_by_severity,
    record_failed_run,
    run_summary,
    write_run,
)
from posaudit.spark.buckets import (
    BucketJob,
    Placement,
    place_rules,
    scan_table,
    store_tables,
    table_schemas,
)
from posaudit.spark.export import (
    DEFAULT_BUCKETS,
    BucketedExport,
    ExportError,
    bring_up_to_date,
    check_pin_key,
    check_whole,
    export_buckets,
    read_export,
)
from posaudit.spark.score import (
    SCORE_RULE,
    StageActivity,
    score_findings,
    score_tables,
    staging_folder,
)
from posaudit.spark.session import SparkSetupError, is_local, start_session
from posaudit.store import Store, StoreError
from posaudit.store.catalogue import DIMENSION_TABLES

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

Strategy = Literal["shards", "groupby"]
STRATEGIES: Final = ("shards", "groupby")
BUCKETS_PER_CORE: Final = 4
MIN_BUCKETS: Final = 8

FINDINGS_DDL: Final = (
    "finding_id string, rule string, family string, severity string, score double, "
    "entity_type string, entity_id string, merchant_id string, window_start timestamp_ntz, "
    "window_end timestamp_ntz, summary string, evidence string"
)


def _arrow_schema() -> pa.Schema:
    import pyarrow as pa

    types = {
        pl.String: pa.string(),
        pl.Float64: pa.float64(),
        pl.Datetime("us"): pa.timestamp("us"),
    }
    return pa.schema([(name, types[dtype]) for name, dtype in FINDINGS_SCHEMA.items()])


def _to_arrow(findings: pl.DataFrame) -> pa.Table:
    """Findings as Arrow in the types the Spark schema declares (no string views)."""
    return findings.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(_arrow_schema())


def _from_arrow(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(FINDINGS_SCHEMA.names()).cast(dict(FINDINGS_SCHEMA))  # type: ignore[arg-type]


# -- the Spark jobs ------------------------------------------------------------------------


def shard_job(spark: SparkSession, job: BucketJob) -> DataFrame:
    """One task per bucket, each reading its own bucket of the export."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for bucket in batch.column(0).to_pylist():
                yield from _to_arrow(job.shard_findings(int(bucket))).to_batches()

    ids = spark.range(0, job.buckets, 1, numPartitions=job.buckets)
    return ids.mapInArrow(run, FINDINGS_DDL)


def groupby_job(spark: SparkSession, job: BucketJob) -> DataFrame:
    """Spark reads the event tables and groups them by bucket for ``applyInArrow``."""
    from pyspark.sql import functions as F

    root = Path(job.root)
    events = [t for t in job.schemas if t not in DIMENSION_TABLES and job.bucketed(t)]
    whole = [t for t in job.schemas if t not in events]
    parts = [
        spark.read.parquet(str(root / table)).select(
            F.col(job.bucket_column).cast("int").alias("_bucket"),
            F.lit(table).alias("_table"),
            *[F.col(c).alias(f"{table}__{c}") for c in job.schemas[table].names()],
        )
        for table in events
    ]
    # every bucket gets a group, also one whose merchants have no events at all
    parts.append(
        spark.range(job.buckets).select(
            F.col("id").cast("int").alias("_bucket"), F.lit("").alias("_table")
        )
    )
    union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    # the dimension tables are small: they travel with the task, each group takes its bucket
    dimensions = {t: scan_table(root, t).collect() for t in whole}

    def run(group: pa.Table) -> pa.Table:
        rows = pl.from_arrow(group)
        assert isinstance(rows, pl.DataFrame)
        bucket = int(rows.get_column("_bucket")[0])
        tables = {
            t: job.shaped(
                t,
                rows.filter(pl.col("_table") == t).select(
                    [pl.col(f"{t}__{c}").alias(c) for c in job.schemas[t].names()]
                ),
            )
            for t in events
        }
        for t, frame in dimensions.items():
            if job.bucketed(t):
                frame = frame.filter(pl.col(job.bucket_column) == bucket)
            tables[t] = job.shaped(t, frame)
        return _to_arrow(job.bucket_findings(bucket, tables))

    return union.groupBy("_bucket").applyInArrow(run, FINDINGS_DDL)


def driver_findings(
    export: BucketedExport,
    rules: list[Rule],
    policy: Policy,
    *,
    digester: PinDigester,
    scopes: Mapping[str, RuleScope] | None = None,
) -> pl.DataFrame:
    """Findings of the rules that cannot be bucketed, over all the data, on the driver.

    A rule that ranks the whole population and has no staged form runs here. The operator
    anomaly score has one (:mod:`posaudit.spark.score`): features and scores per bucket on
    the executors, only the model fitted here.
    """
    if not rules:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    tables = store_tables(rules)
    schemas = table_schemas(export.root, tables)
    job = BucketJob(
        str(export.root),
        "merchant",
        tuple(r.name for r in rules),
        schemas,
        policy,
        export.window,
        digester,
        1,
        scopes=scopes,
    )
    frames = {t: job.shaped(t, scan_table(export.root, t).collect()) for t in tables}
    # Polars 2.1's streaming engine can panic in the score's string expressions while other
    # threads (Spark's JVM) compete for the cores; the in-memory engine gives the same rows.
    with pl.Config(engine_affinity="in-memory"):
        return job.findings(frames)


@dataclass
class DetectResult:
    findings: pl.DataFrame
    rows_read: int
    rules: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    # what each rule read and re-decided (None: every rule over all the data)
    scopes: dict[str, RuleScope] | None = None


def detect(
    spark: SparkSession,
    export: BucketedExport,
    rules: list[Rule],
    policy: Policy,
    *,
    digester: PinDigester,
    strategy: Strategy = "shards",
    scopes: Mapping[str, RuleScope] | None = None,
) -> DetectResult:
    """All findings of ``rules`` over the export: bucketed rules on Spark, the rest here.

    ``scopes``: an incremental run's plan (the score's scope must be a full one: it is
    always computed over all the data here). A windowed rule that finds a finding longer
    than its look-back is then run again over all the data, on the driver, and the result's
    scopes say so.
    """
    placement = place_rules(rules)
    scopes = dict(scopes) if scopes is not None else None
    by_name = {r.name: r for r in rules}
    seconds: dict[str, float] = {}
    frames = []
    staged = [n for n in placement.driver if n == SCORE_RULE]
    # The score's first stage runs inside the merchant buckets' tasks, on the tables they read
    # for the rules, when there are such tasks; on its own otherwise.
    staging = staging_folder(export.root) if staged and placement.merchant else None
    mark = time.perf_counter()
    try:
        for scheme, names in placement.by_scheme().items():
            if not names:
                continue
            tables = store_tables(by_name[n] for n in names)
            also = None
            if scheme == "merchant" and staging is not None:
                tables = sorted({*tables, *score_tables()})
                also = StageActivity(str(staging))
            job = BucketJob(
                str(export.root),
                scheme,
                names,
                table_schemas(export.root, tables),
                policy,
                export.window,
                digester,
                export.buckets,
                also,
                scopes,
            )
            frame = (shard_job if strategy == "shards" else groupby_job)(spark, job)
            frames.append(_from_arrow(frame.toArrow()))
        seconds["buckets"] = time.perf_counter() - mark
        mark = time.perf_counter()
        for name in staged:
            job = BucketJob(
                str(export.root),
                "merchant",
                (name,),
                table_schemas(export.root, score_tables()),
                policy,
                export.window,
                digester,
                export.buckets,
            )
            findings, stage_seconds = score_findings(
                spark, job, by_name[name], policy, staging=staging
            )
            frames.append(findings)
            seconds |= stage_seconds
        seconds["score"] = time.perf_counter() - mark
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    mark = time.perf_counter()
    rest = [by_name[n] for n in placement.driver if n not in staged]
    frames.append(driver_findings(export, rest, policy, digester=digester, scopes=scopes))
    findings = pl.concat(frames)
    if scopes is not None:
        findings = _redone_overlong(findings, export, by_name, policy, digester, scopes)
    seconds["driver"] = time.perf_counter() - mark
    rows_read = sum(export.rows.get(t, 0) for t in store_tables(rules))
    return DetectResult(one_per_finding_id(findings), rows_read, sorted(by_name), seconds, scopes)


def _redone_overlong(
    findings: pl.DataFrame,
    export: BucketedExport,
    by_name: Mapping[str, Rule],
    policy: Policy,
    digester: PinDigester,
    scopes: dict[str, RuleScope],
) -> pl.DataFrame:
    """``findings`` with each windowed rule that found a finding longer than its look-back
    run again over all the data (on the driver), its scope in ``scopes`` made full."""
    redo = [
        r
        for name, r in by_name.items()
        if outside_lookback(r, scopes[name], findings.filter(pl.col("rule") == name))
    ]
    if not redo:
        return findings
    for r in redo:
        scopes[r.name] = RuleScope(r.name, None, None, "a finding spans more than its look-back")
    names = [r.name for r in redo]
    again = driver_findings(export, redo, policy, digester=digester, scopes=scopes)
    return pl.concat([findings.filter(~pl.col("rule").is_in(names)), again])


# -- a run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkRun:
    """What ``posaudit run --engine spark`` was asked to do."""

    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)
    strategy: Strategy = "shards"
    parquet: Path | None = None  # the bucketed export to read, or an empty folder to make it in
    buckets: int | None = None  # buckets of an export made by this run (None: bucket_count)
    findings_out: Path | None = None  # write findings here as Parquet instead of into the store
    full: bool = False  # every rule over all the data, even where a night could do less


def bucket_count(spark: SparkSession) -> int:
    """Buckets for a new export: four per core the session has (at least 8), so tasks balance.

    Measured on 2 cores (docs/benchmarks.md): each bucket adds a fixed cost, so more buckets
    than the cores can balance only slow a run down.
    """
    try:
        cores = int(spark.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect has no SparkContext on the client
        return DEFAULT_BUCKETS
    return max(MIN_BUCKETS, BUCKETS_PER_CORE * cores)


def _reason(placement: Placement) -> str:
    on_driver = [n for n in placement.driver if n != SCORE_RULE]
    if on_driver:
        return f"Spark engine, every rule over all the data ({len(on_driver)} on the driver)"
    return "Spark engine, every rule over all the data"


def spark_plan(store: Store | None, policy: Policy, rules: list[Rule], *, full: bool) -> RunPlan:
    """The run's plan: as a local run's over ``store`` (:func:`plan_run`), the anomaly score
    always over all the data; a full run when there is no store to carry findings over from.
    """
    if store is None:
        return RunPlan(
            "full",
            "the findings go to Parquet",
            None,
            None,
            datetime.min,
            datetime.min,
            full_scopes(rules),
        )
    plan = plan_run(store, policy, rules, full=full)
    if plan.mode == "full" or SCORE_RULE not in plan.scopes:
        return plan
    scopes = dict(plan.scopes)
    scopes[SCORE_RULE] = RuleScope(
        SCORE_RULE, None, None, "the Spark engine ranks every operator-day again"
    )
    return replace(plan, scopes=scopes)


def _previous_run_id(store: Store | None) -> str | None:
    previous = previous_run(store) if store is not None else None
    return previous.run_id if previous is not None else None


def resolve_export(
    settings: SparkRun, store: Store | None, *, digester: PinDigester
) -> tuple[BucketedExport | None, Path | None]:
    """The export to read, or (None, folder) when this run must make one in that folder.

    Raises ExportError (one line) for a folder that is neither an export nor empty, an export
    of other data than the store's, or one the merchant buckets cannot split.
    """
    folder = settings.parquet
    if folder is not None and folder.exists() and folder.is_dir() and not any(folder.iterdir()):
        export = None
    elif folder is not None and folder.exists():
        export = read_export(folder)
    else:
        export = None
    if export is None:
        if store is None:
            msg = f"no bucketed export at {folder} and no store to make one from"
            raise ExportError(msg)
        if folder is None and not is_local(settings.master):
            msg = (
                f"--master {settings.master} runs on other machines: give --parquet DIR on "
                "storage every executor can read"
            )
            raise ExportError(msg)
        if folder is not None and not folder.parent.is_dir():
            msg = f"cannot export to {folder}: folder {folder.parent} does not exist"
            raise ExportError(msg)
        return None, folder
    if store is not None:
        check_pin_key(export, store)
        export = bring_up_to_date(export, store)
    else:
        check_whole(export)
    if store is None and export.pin_key_fingerprint != digester.fingerprint:
        msg = f"the export in {export.root} was made under another PIN key than $POSAUDIT_PIN_KEY"
        raise ExportError(msg)
    if export.cross_merchant_rows:
        msg = (
            f"{export.cross_merchant_rows:,} events in {export.root} name an operator of another "
            "merchant than their terminal's: merchant buckets cannot split such data"
        )
        raise ExportError(msg)
    return export, None


def run_spark(
    settings: SparkRun,
    policy: Policy,
    *,
    store: Store | None,
    session: SparkSession | None = None,
    on_event: EventSink | None = None,
    digester: PinDigester | None = None,
) -> RunSummary:
    """Run every enabled rule on Spark; findings into ``store`` or ``settings.findings_out``.

    ``store`` must be open for writing when the findings go into it (the run holds its
    lock throughout), and may be read-only or None when they go to Parquet. Bad input
    raises StoreError / ExportError / SparkSetupError with one line before anything is
    written; a failure later is recorded as a ``failed`` run (store) and re-raised.
    ``session``: an existing Spark session to use (left running); else one is started on
    ``settings.master`` and stopped at the end. ``digester``: the PIN key's, else
    :func:`pin_digester`'s; it goes to the executors with each task.
    """
    emit = on_event or ignore_events
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    placement = place_rules(rules)
    started_at = datetime.now().replace(microsecond=0)
    started = time.perf_counter()
    digester = pin_digester() if digester is None else digester
    into_store = settings.findings_out is None
    if into_store and store is None:
        msg = "the findings go into the store unless --findings-out is given: name it with --db"
        raise StoreError(msg)
    if (
        settings.findings_out is not None
        and settings.findings_out.exists()
        and not settings.findings_out.is_dir()
    ):
        msg = f"--findings-out {settings.findings_out} is a file, not a folder"
        raise StoreError(msg)
    if store is not None:
        check_runnable(store, digester)
    mark = time.perf_counter()
    export, export_into = resolve_export(settings, store, digester=digester)
    updated = time.perf_counter() - mark  # bringing an existing export up to date
    plan = spark_plan(store if into_store else None, policy, rules, full=settings.full)
    scopes = plan.scopes if plan.mode == "incremental" else None
    reason = plan.reason if scopes is not None else f"{plan.reason}; {_reason(placement)}"
    temporary: Path | None = None
    own_session = session is None
    spark = session if session is not None else start_session(settings.master, settings.conf)
    run_id = (
        next_run_id(store)
        if into_store and store is not None
        else _parquet_run_id(settings.findings_out)
    )
    try:
        stages: dict[str, float] = {"start": time.perf_counter() - started - updated}
        mark = time.perf_counter()
        if export is None:
            assert store is not None
            if export_into is None:
                temporary = Path(tempfile.mkdtemp(prefix="posaudit-spark-")) / "export"
                export_into = temporary
            export = export_buckets(
                store, export_into, buckets=settings.buckets or bucket_count(spark)
            )
        stages["export"] = time.perf_counter() - mark + updated
        emit(
            "plan",
            {
                "run_id": run_id,
                "mode": plan.mode,
                "reason": reason,
                "previous_run_id": _previous_run_id(store),
                "rules": len(rules),
                "rules_over_all_data": len(over_all_data(plan.scopes)),
                "engine": "spark",
                "master": settings.master,
                "strategy": settings.strategy,
                "buckets": export.buckets,
            },
        )
        emit(
            "read",
            {
                "rows": sum(export.rows.values()),
                "seconds": round(stages["export"], 3),
                "export": str(export.root),
            },
        )
        try:
            result = detect(
                spark,
                export,
                rules,
                policy,
                digester=digester,
                strategy=settings.strategy,
                scopes=scopes,
            )
        except Exception as exc:
            if into_store and store is not None:
                record_failed_run(
                    store,
                    policy,
                    run_id=run_id,
                    mode=plan.mode,
                    engine="spark",
                    started_at=started_at,
                    seconds=time.perf_counter() - started,
                    exc=exc,
                )
            raise
        detect_seconds = sum(result.seconds[k] for k in ("buckets", "score", "driver"))
        stages |= {"detect": detect_seconds, **result.seconds}
        emit(
            "detect",
            {
                "rules": len(rules),
                "rules_over_all_data": len(over_all_data(result.scopes or plan.scopes)),
                "findings": result.findings.height,
                "seconds": round(stages["detect"], 3),
                "driver_rules": len([n for n in placement.driver if n != SCORE_RULE]),
            },
        )
        if into_store:
            assert store is not None
            summary = write_to_store(
                store,
                result,
                rules,
                policy,
                export,
                run_id=run_id,
                started_at=started_at,
                started=started,
                stages=stages,
                plan=plan,
                reason=reason,
                emit=emit,
            )
        else:
            assert settings.findings_out is not None
            summary = write_to_parquet(
                settings.findings_out,
                result,
                policy,
                export,
                run_id=run_id,
                started_at=started_at,
                started=started,
                stages=stages,
                reason=reason,
                emit=emit,
            )
    finally:
        if own_session:
            spark.stop()
        if temporary is not None:
            shutil.rmtree(temporary.parent, ignore_errors=True)
    return summary


# -- writing -------------------------------------------------------------------------------


def write_to_store(
    store: Store,
    result: DetectResult,
    rules: list[Rule],
    policy: Policy,
    export: BucketedExport,
    *,
    run_id: str,
    started_at: datetime,
    started: float,
    stages: dict[str, float],
    plan: RunPlan,
    reason: str,
    emit: EventSink,
) -> RunSummary:
    """Merge the findings and record the run, in one transaction (as the local engine does):
    with the plan's scopes in an incremental run, so that the findings it did not re-decide
    are carried over."""
    mark = time.perf_counter()
    previous = _previous_run_id(store)
    incremental = result.scopes is not None and plan.changed_from is not None
    written = write_run(
        store,
        result.findings,
        run_id=run_id,
        scopes=result.scopes if result.scopes is not None else full_scopes(rules),
        policy=policy,
        mode=plan.mode,
        engine="spark",
        started_at=started_at,
        started=started,
        data_from=export.data_from,
        data_to=export.data_to,
        rows_read=result.rows_read,
        # the Spark engine keeps nothing: the next local run computes the score and the
        # refunds frame over all the data again
        keep_state=lambda: forget_all_kept(store),
        counted=(
            (plan.counted, plan.changed_from.date())
            if incremental and plan.counted is not None and plan.changed_from is not None
            else None
        ),
        settled=plan.settled if incremental else None,
    )
    stages["write"] = time.perf_counter() - mark
    emit("write", written.counts.event_fields(stages["write"]))
    return _summary(
        run_id,
        written,
        previous,
        reason,
        started_at,
        started,
        result,
        export,
        policy,
        stages,
        mode=plan.mode,
    )


def _summary(
    run_id: str,
    written: WrittenRun,
    previous: str | None,
    reason: str,
    started_at: datetime,
    started: float,
    result: DetectResult,
    export: BucketedExport,
    policy: Policy,
    stages: dict[str, float],
    *,
    mode: Literal["full", "incremental"] = "full",
) -> RunSummary:
    """A Spark run's summary."""
    return run_summary(
        written,
        run_id=run_id,
        mode=mode,
        reason=reason,
        previous_run_id=previous,
        started_at=started_at,
        started=started,
        rows_read=result.rows_read,
        data_from=export.data_from,
        data_to=export.data_to,
        rules_over_all_data=(
            sorted(result.rules) if result.scopes is None else over_all_data(result.scopes)
        ),
        policy=policy,
        stage_seconds=stages,
    )


def _parquet_run_id(folder: Path | None) -> str:
    """The next run id in a findings folder: run-00001, run-00002, ..."""
    done = sorted(folder.glob("run-*.json")) if folder is not None and folder.is_dir() else []
    return f"run-{len(done) + 1:05d}"


def write_to_parquet(
    folder: Path,
    result: DetectResult,
    policy: Policy,
    export: BucketedExport,
    *,
    run_id: str,
    started_at: datetime,
    started: float,
    stages: dict[str, float],
    reason: str,
    emit: EventSink,
) -> RunSummary:
    """``findings-<run>.parquet`` and ``run-<run>.json`` in ``folder``, each written whole."""
    mark = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    findings = result.findings.with_columns(pl.lit(run_id).alias("run_id"))
    target = folder / f"findings-{run_id}.parquet"
    with written_file(target) as part:
        findings.write_parquet(part)
    by_severity = {str(s): int(n) for s, n in findings.group_by("severity").len().iter_rows()}
    written = WrittenRun(
        counts=MergeCounts(new=findings.height),
        new_by_severity=in_severity_order(by_severity),
        open_by_family_and_severity=pivot_by_severity(
            findings.group_by("family", "severity").len("n")
        ),
    )
    stages["write"] = time.perf_counter() - mark
    emit("write", written.counts.event_fields(stages["write"]))
    summary = _summary(
        run_id, written, None, reason, started_at, started, result, export, policy, stages
    )
    record = summary.to_record() | {
        "engine": "spark",
        "findings_file": target.name,
        "policy_toml": policy.text,
    }
    (folder / f"run-{run_id.removeprefix('run-')}.json").write_text(
        json.dumps(record, indent=2, default=str), encoding="utf-8"
    )
    return summary


__all__ = [
    "STRATEGIES",
    "ExportError",
    "SparkRun",
    "SparkSetupError",
    "Strategy",
    "detect",
    "run_spark",
]
