"""The operator anomaly score on Spark: features and scores per bucket, the models on the driver.

Each calendar week is scored by a model of a whole week's operator-days, across merchants, so
no bucket can decide its findings alone. It runs in the stages of
:mod:`posaudit.score.operators`, each where it belongs:

1. **activity** (executors, one task per merchant bucket): :func:`operator_day_activity`
   over the bucket's tables; one row per operator-day, written to the run's staging folder.
   It runs inside the bucket stage's tasks (:class:`StageActivity`), on the tables they read
   for the rules, so each event is read once. The driver then makes the week plan
   (:func:`week_plan`) from the days staged.
2. **category medians** (executors, one group per merchant category):
   :func:`category_medians` per week over every bucket's activity rows of the category.
3. **fit sample** (executors, per bucket): :func:`merchant_medians` and :func:`model_frame`
   with those medians, cut to :func:`fit_sample` per week, a sample fixed by operator and day,
   so every split of the data yields its own share of each sample the local engine fits on.
4. **fit** (driver): :func:`fit_week_model` per week on its sample (at most ``fit_rows``
   operator-days), which also scores the sample for the week's percentiles.
5. **score** (executors, per bucket): :func:`score_weeks` with the week models and the
   bucket's own merchant medians; only the operator-days in the top ``top_fraction`` of their
   week and above ``min_anomaly_score`` are kept.
6. **findings** (driver): :func:`anomaly_findings` over the kept days.

Every stage is the local engine's own function, so the scores are the same numbers and the
findings the same ids (``tests/spark``). Stages exchange rows through Parquet files in a
staging folder beside the export (the shard strategy already needs a path every executor
can read); Spark itself carries only a row count per task.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.policy import Policy
from posaudit.detect.registry import Rule, with_derived_tables
from posaudit.score.models import WeekModel
from posaudit.score.operators import (
    FEATURES,
    FINDING_PARAMETERS,
    MODEL_FEATURES,
    SCORE_RULE,
    anomaly_findings,
    category_medians,
    fit_sample,
    fit_week_model,
    in_quota,
    merchant_medians,
    model_frame,
    operator_day_activity,
    reference_rows,
    score_weeks,
    week_of,
    week_plan,
)
from posaudit.spark.buckets import BucketJob

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

STAGING_PREFIX: Final = ".score-"
_COUNT_DDL: Final = "bucket long, rows long"
# the forest's settings, as the rule's keyword parameters name them
_FOREST: Final = ("seed", "n_estimators", "max_samples")


def _stage_folder(staging: str, stage: str, bucket: int | None = None) -> Path:
    root = Path(staging) / stage
    return root if bucket is None else root / f"bucket={bucket}"


def _write_stage(staging: str, stage: str, bucket: int, frame: pl.DataFrame) -> int:
    """Stage ``frame`` as bucket ``bucket``'s rows of ``stage``; its number of rows."""
    folder = _stage_folder(staging, stage, bucket)
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / "part-0.parquet")
    return frame.height


@dataclass(frozen=True)
class ScoreJob:
    """What a score task needs; pickled and shipped to the executors with each stage."""

    job: BucketJob
    staging: str
    thresholds: dict[str, Any]
    plan: pl.DataFrame | None = None
    week_rows: dict[date, int] = field(default_factory=dict)
    categories: pl.DataFrame | None = None
    models: dict[date, WeekModel] = field(default_factory=dict, repr=False)

    def folder(self, stage: str, bucket: int | None = None) -> Path:
        return _stage_folder(self.staging, stage, bucket)

    def _write(self, stage: str, bucket: int, frame: pl.DataFrame) -> int:
        return _write_stage(self.staging, stage, bucket, frame)

    def _read(self, stage: str, bucket: int) -> pl.DataFrame:
        return pl.read_parquet(self.folder(stage, bucket) / "part-0.parquet")

    def activity(self, bucket: int) -> int:
        """Stage 1: the bucket's operator-days, staged; their number."""
        tables = {table: self.job.read(table, bucket) for table in self.job.schemas}
        return StageActivity(self.staging)(bucket, tables)

    def _reference(self, bucket: int) -> tuple[pl.LazyFrame, pl.DataFrame]:
        """The bucket's operator-days of the weeks models are made from, and the bucket's
        merchants' medians of those weeks."""
        assert self.plan is not None
        weeks = self.plan.get_column("model_week").unique().to_list()
        reference = reference_rows(self._read("activity", bucket).lazy()).filter(
            pl.col("model_week").is_in(weeks)
        )
        return reference, merchant_medians(reference).collect()

    def sample(self, bucket: int) -> int:
        """Stage 3: the bucket's share of each week's fit sample, staged; its number of rows."""
        assert self.categories is not None
        reference, merchants = self._reference(bucket)
        # one row order for every engine: the forest's sub-sampling follows it
        inputs = model_frame(reference, merchants.lazy(), self.categories.lazy()).collect()
        inputs = inputs.sort("model_week", "operator_id", "day")
        samples = [
            fit_sample(
                inputs.filter(pl.col("model_week") == week),
                total=total,
                fit_rows=self.thresholds["fit_rows"],
            )
            for week, total in self.week_rows.items()
        ]
        model = [f"{f}_model" for f in MODEL_FEATURES]
        frame = pl.concat(samples) if samples else inputs.clear()
        frame = frame.select("operator_id", "day", "model_week", *model)
        return self._write("sample", bucket, frame)

    def score(self, bucket: int) -> int:
        """Stage 5: the bucket's operator-days in the top of their week, staged."""
        assert self.plan is not None
        _, merchants = self._reference(bucket)
        models = {
            week: replace(model, merchant_medians=merchants.filter(pl.col("model_week") == week))
            for week, model in self.models.items()
        }
        scored = score_weeks(self._read("activity", bucket), self.plan, models)
        kept = scored.filter(
            in_quota(
                top_fraction=self.thresholds["top_fraction"],
                min_anomaly_score=self.thresholds["min_anomaly_score"],
            )
        )
        return self._write("scored", bucket, kept)

    def read_stage(self, stage: str) -> pl.DataFrame:
        """Every bucket's staged rows of ``stage``, in bucket order."""
        frames = [
            self._read(stage, b)
            for b in range(self.job.buckets)
            if (self.folder(stage, b) / "part-0.parquet").exists()
        ]
        return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


@dataclass(frozen=True)
class StageActivity:
    """Stage 1 on tables already read: a bucket's operator-days written to ``staging``.

    Handed to the bucket stage's job (``BucketJob.also``), so that the score's first stage
    runs on the tables each bucket task has read for the rules, not on a second read.
    """

    staging: str

    def __call__(self, bucket: int, tables: Mapping[str, pl.LazyFrame]) -> int:
        inputs = _rule(SCORE_RULE).inputs
        frames = with_derived_tables(inputs, dict(tables))
        with pl.Config(engine_affinity="in-memory"):
            frame = operator_day_activity(*(frames[name] for name in inputs)).collect()
        return _write_stage(self.staging, "activity", bucket, frame)


def staging_folder(root: str | Path) -> Path:
    """A new staging folder's path inside the export at ``root`` (not yet made)."""
    return Path(root) / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"


def score_tables() -> list[str]:
    """The export tables the score's first stage reads."""
    from posaudit.spark.buckets import store_tables

    return store_tables([_rule(SCORE_RULE)])


def _rule(name: str) -> Rule:
    from posaudit.rules import all_rules

    return all_rules()[name]


def _per_bucket(spark: SparkSession, job: ScoreJob, stage: str) -> int:
    """Run ``stage`` (a method of :class:`ScoreJob`) once per bucket; rows it staged in all."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        with pl.Config(engine_affinity="in-memory"):
            for batch in batches:
                for bucket in batch.column(0).to_pylist():
                    rows = getattr(job, stage)(int(bucket))
                    yield pa.RecordBatch.from_pydict({"bucket": [bucket], "rows": [rows]})

    buckets = job.job.buckets
    ids = spark.range(0, buckets, 1, numPartitions=buckets)
    counts = ids.mapInArrow(run, _COUNT_DDL).toArrow()
    return int(sum(counts.column("rows").to_pylist()))


def _category_medians(spark: SparkSession, job: ScoreJob) -> pl.DataFrame:
    """Stage 2: each category's medians per week, one group per category on the executors."""
    assert job.plan is not None
    weeks = job.plan.get_column("model_week").unique().to_list()
    empty = pl.LazyFrame(
        schema={"day": pl.Date, "category": pl.String, **dict.fromkeys(FEATURES, pl.Float64)}
    )
    schema = category_medians(reference_rows(empty)).collect_schema()

    def spark_type(dtype: pl.DataType) -> str:
        return "string" if dtype == pl.String else "date" if dtype == pl.Date else "double"

    def arrow_type(dtype: pl.DataType) -> pa.DataType:
        import pyarrow as pa

        if dtype == pl.String:
            return pa.string()
        return pa.date32() if dtype == pl.Date else pa.float64()

    ddl = ", ".join(f"`{name}` {spark_type(dtype)}" for name, dtype in schema.items())

    def medians(group: pa.Table) -> pa.Table:
        import pyarrow as pa

        frame = pl.from_arrow(group)
        assert isinstance(frame, pl.DataFrame)
        with pl.Config(engine_affinity="in-memory"):
            reference = reference_rows(frame.lazy()).filter(pl.col("model_week").is_in(weeks))
            out = category_medians(reference).collect().cast(dict(schema))  # type: ignore[arg-type]
        arrow = pa.schema([(n, arrow_type(t)) for n, t in schema.items()])
        return out.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(arrow)

    rows = spark.read.parquet(str(job.folder("activity"))).select("day", "category", *FEATURES)
    table = rows.groupBy("category").applyInArrow(medians, ddl).toArrow()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.cast(dict(schema)).sort("model_week", "category", nulls_last=True)  # type: ignore[arg-type]


def staged_scores(
    spark: SparkSession,
    job: BucketJob,
    rule: Rule,
    policy: Policy,
    *,
    staging: Path | None = None,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Stages 1-5 over the export of ``job`` (a merchant-bucket job of the score rule).

    ``staging``: a folder where the bucket stage has already written stage 1
    (:class:`StageActivity`); a new one, with stage 1 run here, when not given. Returns the
    operator-days in the top of their week above ``min_anomaly_score`` (the candidates the
    local engine makes findings of) and each stage's seconds. The staging folder is removed on the
    way out.
    """
    import time

    thresholds = rule.parameters | policy.parameters(rule.name)
    staged = staging is not None
    staging = staging or staging_folder(job.root)
    score = ScoreJob(job, str(staging), thresholds)
    seconds: dict[str, float] = {}
    try:
        mark = time.perf_counter()
        if not staged:
            _per_bucket(spark, score, "activity")
        files = str(score.folder("activity") / "**" / "*.parquet")
        per_day = (
            pl.scan_parquet(files).group_by("day").len().collect()
            if any(score.folder("activity").glob("**/*.parquet"))
            else pl.DataFrame(schema={"day": pl.Date, "len": pl.UInt32})
        )
        seconds["score_activity"] = time.perf_counter() - mark
        if per_day.is_empty():
            return pl.DataFrame(), seconds
        mark = time.perf_counter()
        plan = week_plan(per_day.get_column("day").to_list())
        weeks = sorted(set(plan.get_column("model_week").to_list()))
        by_week = per_day.group_by(week_of().alias("week")).agg(pl.col("len").sum())
        week_rows = {w: int(n) for w, n in by_week.iter_rows() if w in weeks}
        score = replace(score, plan=plan, week_rows=week_rows)
        categories = _category_medians(spark, score)
        score = replace(score, categories=categories)
        _per_bucket(spark, score, "sample")
        sample = score.read_stage("sample")
        seconds["score_sample"] = time.perf_counter() - mark
        mark = time.perf_counter()
        models = {
            week: fit_week_model(
                sample.filter(pl.col("model_week") == week),
                week=week,
                reference_from=week,
                depends_until=week + timedelta(days=7),
                merchants=pl.DataFrame(),
                categories=categories.filter(pl.col("model_week") == week),
                **{k: thresholds[k] for k in _FOREST},
            )
            for week in weeks
        }
        seconds["score_fit"] = time.perf_counter() - mark
        mark = time.perf_counter()
        _per_bucket(spark, replace(score, models=models), "score")
        kept = score.read_stage("scored")
        seconds["score_buckets"] = time.perf_counter() - mark
        return kept, seconds
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def score_findings(
    spark: SparkSession,
    job: BucketJob,
    rule: Rule,
    policy: Policy,
    *,
    staging: Path | None = None,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """The score's findings over the export of ``job``, and each stage's seconds
    (``staging``: see :func:`staged_scores`)."""
    import time

    kept, seconds = staged_scores(spark, job, rule, policy, staging=staging)
    if kept.is_empty():
        return pl.DataFrame(schema=FINDINGS_SCHEMA), seconds
    mark = time.perf_counter()
    thresholds = rule.parameters | policy.parameters(rule.name)
    with pl.Config(engine_affinity="in-memory"):
        finding = {k: thresholds[k] for k in FINDING_PARAMETERS}
        findings = anomaly_findings(kept.lazy(), **finding).collect()
    seconds["score_findings"] = time.perf_counter() - mark
    return findings.select(FINDINGS_SCHEMA.names()), seconds
