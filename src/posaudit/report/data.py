"""What a report shows, read from the store: the run, its findings, and counts over them.

Nothing here detects anything: it reads what ``posaudit run`` wrote (``pipeline_runs`` and
``findings``), joins the names people know entities by, and counts. Every function returns
plain values or Polars frames keyed by machine names (rule, family, severity); the builder
translates and masks them.
"""

from __future__ import annotations

import contextlib
import copy
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import polars as pl

from posaudit.config import ConfigError, merge_settings
from posaudit.detect.findings import SEVERITIES, SEVERITY_RANK
from posaudit.detect.policy import (
    DEFAULT_DEADLINE_DAYS,
    Policy,
    default_policy_text,
    review_deadline_days,
)
from posaudit.detect.registry import Rule
from posaudit.review import (
    DISMISSED,
    UPHELD,
    TrailCheck,
    active_snoozes,
    snoozed_sql,
    verify_snoozes,
    verify_trail,
)
from posaudit.review.cases import case_sql
from posaudit.review.summary import (
    SNOOZE_SCHEMA,
    TRAIL_SCHEMA,
    case_statuses,
    every_review,
    every_snooze,
    latest_reviews,
)
from posaudit.rules import all_rules
from posaudit.store import Store

FAMILY_ORDER: Final = (
    "logins",
    "pins",
    "privileges",
    "refunds",
    "sales",
    "ledger",
    "merchants",
    "scores",
)
# Most severe first, as every table of the report lists them.
SEVERITY_ORDER: Final = tuple(reversed(SEVERITIES))
# One ingested file of the provenance section, as :func:`ingested_files` returns it.
INGESTED_FILE_SCHEMA: Final = pl.Schema(
    {
        "ingest_id": pl.String(),
        "file_name": pl.String(),
        "fingerprint": pl.String(),
        "mapping": pl.String(),
        "target_table": pl.String(),
        "rows_read": pl.Int64(),
        "rows_loaded": pl.Int64(),
        "rows_duplicate": pl.Int64(),
        "rows_quarantined": pl.Int64(),
        "cards_in_clear": pl.Int64(),
        "ingested_at": pl.Datetime("us"),
        "quarantined_by_reason": pl.List(pl.Struct({"reason": pl.String(), "rows": pl.Int64()})),
    }
)
# PIN age buckets of the hygiene section, in days (upper bounds inclusive).
AGE_BUCKETS: Final = (("91-180", 180), ("181-365", 365), ("1-2y", 730), ("2y+", None))


class ReportError(ValueError):
    """A report that cannot be made as asked; the message is one line for the user."""


@dataclass(frozen=True)
class RunRecord:
    """One ``pipeline_runs`` row and the run before it."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    data_from: datetime | None
    data_to: datetime | None
    rows_read: int | None
    policy_hash: str | None
    policy_toml: str | None
    code_version: str
    previous_run_id: str | None
    earlier_run_ids: tuple[str, ...]  # this run and every succeeded run before it
    is_latest: bool


@dataclass(frozen=True)
class Threshold:
    name: str
    value: Any
    origin: str


@dataclass(frozen=True)
class RuleMethod:
    """How a rule works and the thresholds it ran with."""

    name: str
    family: str
    description: str
    enabled: bool
    thresholds: tuple[Threshold, ...]


@dataclass(frozen=True)
class ReviewState:
    """The analysts' review as the report shows it, read when the report is made.

    ``as_of``: the moment the report ages findings and reads snoozes at, the end of the run
    it reports (a wall-clock time, as the runs' starts the ages are measured from).
    """

    as_of: datetime
    deadline_days: int
    trail: pl.DataFrame  # every review, oldest first (posaudit.review.summary.TRAIL_SCHEMA)
    snoozes: pl.DataFrame  # every snooze ever recorded, oldest first
    active_snoozes: pl.DataFrame  # the snoozes in force at ``as_of``
    trail_check: TrailCheck
    snooze_check: TrailCheck


def _no_review() -> ReviewState:
    """A review where nothing was reviewed (for data made without a store)."""
    return ReviewState(
        as_of=datetime(1970, 1, 1),
        deadline_days=DEFAULT_DEADLINE_DAYS,
        trail=pl.DataFrame(schema=TRAIL_SCHEMA),
        snoozes=pl.DataFrame(schema=SNOOZE_SCHEMA),
        active_snoozes=pl.DataFrame(schema=SNOOZE_SCHEMA).drop("previous_digest", "digest"),
        trail_check=TrailCheck(0, None, None, problem=None),
        snooze_check=TrailCheck(0, None, None, problem=None, noun="snooze"),
    )


@dataclass
class ReportData:
    store_name: str
    run: RunRecord
    findings: pl.DataFrame  # the run's findings, joined with names, most severe first
    resolved: pl.DataFrame  # findings of the previous run that this run no longer found
    population: dict[str, int]
    methods: dict[str, RuleMethod]
    policy_verified: bool
    policy_changes: list[tuple[str, str, Any, Any]]
    operator_roles: dict[str, str] = field(default_factory=dict)
    # the approved refunds findings name by id in a list (amounts of the others are in evidence)
    # the files an ingest loaded before the run (empty for a simulated world)
    ingested: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=INGESTED_FILE_SCHEMA)
    )
    refund_amounts: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"txn_id": pl.String, "amount_fen": pl.Int64})
    )
    review: ReviewState = field(default_factory=_no_review)


# -- the run -------------------------------------------------------------------------------


def succeeded_runs(store: Store) -> pl.DataFrame:
    """Succeeded runs, oldest first."""
    return store.frame(
        "SELECT run_id, started_at FROM pipeline_runs WHERE status = 'succeeded' "
        "ORDER BY started_at, run_id"
    )


def chosen_run(store: Store, run_id: str | None) -> RunRecord:
    """The run to report on (the latest succeeded one by default); raises ReportError."""
    runs = succeeded_runs(store).get_column("run_id").to_list()
    if not runs:
        msg = (
            f"{store.path} has no successful run to report on: "
            f"run `posaudit run --db {store.path}` first"
        )
        raise ReportError(msg)
    chosen = run_id or runs[-1]
    if chosen not in runs:
        msg = f"no successful run {chosen!r} in {store.path} (runs: {', '.join(runs[-5:])})"
        raise ReportError(msg)
    position = runs.index(chosen)
    rows = store.query(
        "SELECT run_id, started_at, finished_at, CAST(status AS VARCHAR), data_from, data_to, "
        "rows_read, "
        "policy_hash, policy_toml, code_version FROM pipeline_runs WHERE run_id = ?",
        [chosen],
    )
    (
        rid,
        started,
        finished,
        status,
        data_from,
        data_to,
        rows_read,
        policy_hash,
        policy_toml,
        code_version,
    ) = rows[0]
    return RunRecord(
        run_id=str(rid),
        started_at=started,  # type: ignore[arg-type]
        finished_at=finished,  # type: ignore[arg-type]
        status=str(status),
        data_from=data_from,  # type: ignore[arg-type]
        data_to=data_to,  # type: ignore[arg-type]
        rows_read=int(rows_read) if rows_read is not None else None,  # type: ignore[call-overload]
        policy_hash=str(policy_hash) if policy_hash is not None else None,
        policy_toml=str(policy_toml) if policy_toml is not None else None,
        code_version=str(code_version),
        previous_run_id=runs[position - 1] if position > 0 else None,
        earlier_run_ids=tuple(runs[: position + 1]),
        is_latest=position == len(runs) - 1,
    )


def _in_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


_FINDING_COLUMNS: Final = (
    "finding_id, run_id, first_run_id, rule, family, CAST(severity AS VARCHAR) AS severity, score, "
    "CAST(entity_type AS VARCHAR) AS entity_type, entity_id, merchant_id, window_start, "
    "window_end, summary, CAST(evidence AS VARCHAR) AS evidence, status, resolved_run_id"
)


def run_findings_sql(run: RunRecord) -> str:
    """The findings the run reported, as the store keeps them now.

    The store keeps each finding once, refreshed by every run that finds it again; the latest
    run's findings are those it touched. For an earlier run they are those first found by
    then and not resolved by then.
    """
    if run.is_latest:
        return f"SELECT {_FINDING_COLUMNS} FROM findings WHERE run_id = '{run.run_id}'"
    earlier = _in_list(run.earlier_run_ids)
    return (
        f"SELECT {_FINDING_COLUMNS} FROM findings WHERE first_run_id IN ({earlier}) "
        f"AND (resolved_run_id IS NULL OR resolved_run_id NOT IN ({earlier}))"
    )


def _severity_rank() -> pl.Expr:
    return (
        pl.col("severity")
        .replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8)
        .alias("severity_rank")
    )


def _attributed_operator() -> pl.Expr:
    """The operator a finding is about: the entity, or the operator who made the transaction."""
    return (
        pl.when(pl.col("entity_type") == "operator")
        .then(pl.col("entity_id"))
        .otherwise(pl.col("evidence").str.json_path_match("$.operator_id"))
        .alias("operator_id")
    )


def _terminal() -> pl.Expr:
    return (
        pl.when(pl.col("entity_type") == "terminal")
        .then(pl.col("entity_id"))
        .otherwise(
            pl.coalesce(
                pl.col("evidence").str.json_path_match("$.terminal_id"),
                pl.col("operator_terminal_id"),
            )
        )
        .alias("terminal_id")
    )


ANOMALY_RULE: Final = "operator_anomaly_scores"


def _rank_score() -> pl.Expr:
    """The score a finding is ranked and shown by: its anomaly score for an anomaly finding.

    An anomaly finding's ``score`` column is its percentile within its week, a rank the
    report does not compare across weeks; the anomaly score itself is what makes one
    operator-day more anomalous than another.
    """
    return (
        pl.when(pl.col("rule") == ANOMALY_RULE)
        .then(
            pl.coalesce(
                pl.col("evidence").str.json_path_match("$.anomaly_score").cast(pl.Float64),
                pl.col("score"),
            )
        )
        .otherwise(pl.col("score"))
        .alias("rank_score")
    )


def with_names(
    findings: pl.DataFrame, merchants: pl.DataFrame, operators: pl.DataFrame
) -> pl.DataFrame:
    """Findings with the names people know them by, severity ranks and rank scores.

    Most severe first; within a severity the highest rank score first, then the earliest.
    """
    return (
        findings.with_columns(_attributed_operator(), _severity_rank(), _rank_score())
        .join(
            merchants.select("merchant_id", pl.col("name").alias("merchant_name")),
            on="merchant_id",
            how="left",
        )
        .join(
            operators.select(
                "operator_id",
                pl.col("name").alias("operator_name"),
                pl.col("role").cast(pl.String).alias("operator_role"),
                pl.col("terminal_id").alias("operator_terminal_id"),
            ),
            on="operator_id",
            how="left",
        )
        .with_columns(_terminal())
        .drop("operator_terminal_id")
        .sort(
            ["severity_rank", "rank_score", "window_start", "finding_id"],
            descending=[True, True, False, False],
        )
    )


def _count(store: Store, sql: str, params: list[object] | None = None) -> int:
    return int(store.query(sql, params)[0][0])  # type: ignore[call-overload]


def population(store: Store, run: RunRecord) -> dict[str, int]:
    """Merchants, terminals and operators in the audit's scope (operators active in the window),
    and ``operators_at_end``: the operators still active at the end of the data."""
    if run.data_from is None or run.data_to is None:
        operators = at_end = _count(store, "SELECT count(*) FROM operators")
    else:
        operators = _count(
            store,
            "SELECT count(*) FROM operators "
            "WHERE created_at <= ? AND (disabled_at IS NULL OR disabled_at >= ?)",
            [run.data_to, run.data_from],
        )
        # as the PIN rules read it: an operator disabled by data_to holds no PIN then
        at_end = _count(
            store,
            "SELECT count(*) FROM operators "
            "WHERE created_at <= ? AND (disabled_at IS NULL OR disabled_at > ?)",
            [run.data_to, run.data_to],
        )
    return {
        "merchants": _count(store, "SELECT count(*) FROM merchants"),
        "terminals": _count(store, "SELECT count(*) FROM terminals"),
        "operators": operators,
        "operators_at_end": at_end,
    }


def ingested_files(store: Store, run: RunRecord) -> pl.DataFrame:
    """The files ``posaudit ingest`` loaded before the run started, oldest first: one row per
    file with its counts and ``quarantined_by_reason`` (a list of reason and rows, most first).

    Empty for a store that no ingest wrote into (a simulated world), which has no such tables.
    """
    if not store.has_table("ingested_files"):
        return pl.DataFrame(schema=INGESTED_FILE_SCHEMA)
    return store.frame(
        "WITH reasons AS ("
        "  SELECT ingest_id, fingerprint, target_table, reason, count(*) AS rows"
        "  FROM quarantine GROUP BY ALL),"
        " by_file AS ("
        "  SELECT ingest_id, fingerprint, target_table,"
        "   list(struct_pack(reason := reason, rows := rows) ORDER BY rows DESC, reason)"
        "   AS quarantined_by_reason"
        "  FROM reasons GROUP BY ALL)"
        " SELECT f.ingest_id, f.file_name, f.fingerprint, f.mapping, f.target_table,"
        "  f.rows_read, f.rows_loaded, f.rows_duplicate, f.rows_quarantined, f.cards_in_clear,"
        "  f.ingested_at, coalesce(b.quarantined_by_reason, []) AS quarantined_by_reason"
        " FROM ingested_files f LEFT JOIN by_file b USING (ingest_id, fingerprint, target_table)"
        " WHERE f.ingested_at <= $started"
        " ORDER BY f.ingested_at, f.ingest_id, f.file_name",
        {"started": run.started_at},
    ).cast(INGESTED_FILE_SCHEMA)


# -- method and thresholds -----------------------------------------------------------------

_SECTION: Final = re.compile(r"^\s*\[rules\.([A-Za-z0-9_]+)\]\s*$")
_SETTING: Final = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*[^#]*#\s*(.+?)\s*$")


def threshold_origins(policy_text: str) -> dict[str, dict[str, str]]:
    """The comment beside each threshold of a policy file: where its value comes from."""
    origins: dict[str, dict[str, str]] = {}
    section: str | None = None
    for line in policy_text.splitlines():
        if match := _SECTION.match(line):
            section = match.group(1)
        elif section and (match := _SETTING.match(line)):
            origins.setdefault(section, {})[match.group(1)] = match.group(2)
    return origins


def effective_policy(
    policy_toml: str | None, policy_hash: str | None
) -> tuple[dict[str, Any], bool]:
    """The settings a run used and whether they hash to the run's recorded policy hash.

    A run records the policy file it was given: the whole default policy, or a user's file
    naming only what it changes, which is laid over the default as ``posaudit run`` does.
    """
    default = tomllib.loads(default_policy_text())
    try:
        own = tomllib.loads(policy_toml or "")
    except tomllib.TOMLDecodeError:
        own = {}
    if own and Policy(settings=own, text="").hash == policy_hash:
        own.setdefault("rules", {})
        return own, True
    merged = copy.deepcopy(default)
    # A key the current default no longer knows cannot be shown; the hash check says so.
    with contextlib.suppress(ConfigError):
        merge_settings(merged, own, source="the run's policy")
    return merged, Policy(settings=merged, text="").hash == policy_hash


def _plain(docstring_text: str) -> str:
    return docstring_text.replace("``", "").replace("`", "")


def rule_methods(run: RunRecord, settings: dict[str, Any]) -> dict[str, RuleMethod]:
    """Each registered rule's description and the thresholds the run used, with origins."""
    origins = threshold_origins(default_policy_text())
    for rule_name, values in threshold_origins(run.policy_toml or "").items():
        origins.setdefault(rule_name, {}).update(values)
    methods = {}
    rules: dict[str, Rule] = all_rules()
    for name, rule in rules.items():
        configured = settings.get("rules", {}).get(name, {})
        values = rule.parameters | {k: v for k, v in configured.items() if k != "enabled"}
        methods[name] = RuleMethod(
            name=name,
            family=rule.family,
            description=_plain(rule.description),
            enabled=bool(configured.get("enabled", True)),
            thresholds=tuple(
                Threshold(k, v, origins.get(name, {}).get(k, "")) for k, v in values.items()
            ),
        )
    return methods


# -- loading -------------------------------------------------------------------------------


def load_report_data(store: Store, run_id: str | None = None) -> ReportData:
    """Everything a report shows about one run (the latest by default); raises ReportError."""
    run = chosen_run(store, run_id)
    merchants = store.frame("SELECT merchant_id, name FROM merchants")
    operators = store.frame("SELECT operator_id, name, role, terminal_id FROM operators")
    findings = with_names(store.frame(run_findings_sql(run)), merchants, operators).with_columns(
        (pl.col("first_run_id") == run.run_id).alias("is_new")
    )
    resolved = store.frame(
        f"SELECT {_FINDING_COLUMNS} FROM findings WHERE resolved_run_id = '{run.run_id}'"
    )
    settings, verified = effective_policy(run.policy_toml, run.policy_hash)
    as_of = run.finished_at or run.started_at
    findings = with_reviews(store, findings, as_of=as_of)
    return ReportData(
        store_name=store.path.name,
        run=run,
        findings=findings,
        resolved=resolved,
        population=population(store, run),
        methods=rule_methods(run, settings),
        policy_verified=verified,
        policy_changes=policy_changes(settings),
        operator_roles=dict(
            operators.select("operator_id", pl.col("role").cast(pl.String)).iter_rows()
        ),
        ingested=ingested_files(store, run),
        refund_amounts=store.frame(
            "SELECT txn_id, CAST(amount_fen AS BIGINT) AS amount_fen FROM transactions "
            "WHERE list_contains($ids, txn_id) AND kind = 'refund'",
            {"ids": refund_ids_named(findings)},
        ),
        review=ReviewState(
            as_of=as_of,
            deadline_days=review_deadline_days(settings),
            trail=every_review(store),
            snoozes=every_snooze(store),
            active_snoozes=active_snoozes(store, at=as_of),
            trail_check=verify_trail(store),
            snooze_check=verify_snoozes(store),
        ),
    )


def with_reviews(store: Store, findings: pl.DataFrame, *, as_of: datetime) -> pl.DataFrame:
    """The findings with their analysts' review: ``review_status``, ``decision``,
    ``assignee`` (current review; open and undecided when never reviewed), ``case_id`` and
    ``case_status`` (the case's own review; never reviewed as a whole, open while any of its
    findings is not closed), ``is_snoozed`` (at
    ``as_of``), ``is_dismissed`` (closed as not what its rule accused) and ``first_seen_at``
    (when the run that first found it started)."""
    flags = store.frame(
        f"SELECT finding_id, {case_sql('f')} AS case_id, "
        f"{snoozed_sql(store, 'f', at=as_of)} AS is_snoozed FROM findings f"
    )
    first_seen = store.frame(
        "SELECT run_id AS first_run_id, started_at AS first_seen_at FROM pipeline_runs"
    )
    return (
        findings.join(latest_reviews(store), on="finding_id", how="left")
        .join(flags, on="finding_id", how="left")
        .join(case_statuses(store), on="case_id", how="left")
        .join(first_seen, on="first_run_id", how="left")
        .with_columns(
            pl.col("review_status").fill_null("open"),
            pl.col("is_snoozed").fill_null(value=False),
        )
        .with_columns(
            # a case never reviewed as a whole is open while any of its findings is
            pl.col("case_status").fill_null(
                pl.when((pl.col("review_status") != "closed").any().over("case_id"))
                .then(pl.lit("open"))
                .otherwise(pl.lit("closed"))
            )
        )
        .with_columns(
            ((pl.col("review_status") == "closed") & pl.col("decision").is_in(DISMISSED)).alias(
                "is_dismissed"
            )
        )
    )


# -- counts ----------------------------------------------------------------------------------


def family_severity_counts(findings: pl.DataFrame) -> pl.DataFrame:
    """One row per family and severity present, with the count."""
    return findings.group_by("family", "severity").len("count").sort("family", "severity")


def change_counts(findings: pl.DataFrame, resolved: pl.DataFrame) -> pl.DataFrame:
    """Per family: findings, new ones, ones seen before, and ones resolved by this run."""
    now = findings.group_by("family").agg(
        pl.len().alias("total"),
        pl.col("is_new").sum().cast(pl.Int64).alias("new"),
    )
    gone = resolved.group_by("family").agg(pl.len().alias("resolved"))
    families = pl.DataFrame({"family": list(FAMILY_ORDER)})
    return (
        families.join(now, on="family", how="left")
        .join(gone, on="family", how="left")
        .fill_null(0)
        .with_columns((pl.col("total") - pl.col("new")).alias("seen"))
        .select("family", "total", "new", "seen", "resolved")
    )


def top_entities(findings: pl.DataFrame, *, limit: int = 10) -> pl.DataFrame:
    """The operators and terminals with the most findings.

    Findings on a transaction count toward the operator who made it.
    """
    keyed = findings.with_columns(
        pl.when(pl.col("operator_id").is_not_null())
        .then(pl.lit("operator"))
        .otherwise(pl.col("entity_type"))
        .alias("who_type"),
        pl.coalesce("operator_id", "entity_id").alias("who_id"),
    ).filter(pl.col("who_type").is_in(["operator", "terminal", "merchant", "card"]))
    return (
        keyed.group_by("who_type", "who_id")
        .agg(
            pl.len().alias("count"),
            pl.col("severity_rank").max().alias("worst_rank"),
            pl.col("family").unique().sort().alias("families"),
            pl.col("merchant_id").drop_nulls().first().alias("merchant_id"),
            pl.col("merchant_name").drop_nulls().first().alias("merchant_name"),
            pl.col("operator_name").drop_nulls().first().alias("operator_name"),
            pl.col("is_new").sum().alias("new"),
        )
        .sort(["count", "worst_rank", "who_id"], descending=[True, True, False])
        .head(limit)
        .with_columns(
            pl.col("worst_rank").replace_strict(dict(enumerate(SEVERITIES))).alias("worst")
        )
    )


def top_merchants(findings: pl.DataFrame, *, limit: int = 10) -> pl.DataFrame:
    """The merchants with the most findings."""
    return (
        findings.filter(pl.col("merchant_id").is_not_null())
        .group_by("merchant_id")
        .agg(
            pl.len().alias("count"),
            (pl.col("severity_rank") >= SEVERITY_RANK["high"]).sum().alias("critical_high"),
            pl.col("severity_rank").max().alias("worst_rank"),
            pl.col("family").unique().sort().alias("families"),
            pl.col("merchant_name").first().alias("merchant_name"),
        )
        .sort(["count", "worst_rank", "merchant_id"], descending=[True, True, False])
        .head(limit)
        .with_columns(
            pl.col("worst_rank").replace_strict(dict(enumerate(SEVERITIES))).alias("worst")
        )
    )


# -- the analysts' review ----------------------------------------------------------------

# The ageing buckets, by a finding's age against the review deadline.
AGEING_BUCKETS: Final = ("within", "over_1x", "over_2x")
# Findings the report lists by age, oldest first; the workbook lists every one.
OLDEST_LISTED: Final = 20


def headline_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """The findings the headline counts: neither dismissed by an analyst nor snoozed."""
    return findings.filter(~pl.col("is_dismissed") & ~pl.col("is_snoozed"))


def set_aside_counts(findings: pl.DataFrame) -> dict[str, int]:
    """How many findings the headline leaves out, by reason: ``dismissed`` (their current
    review closed as a false positive or benign and explained) and ``snoozed`` (snoozed and
    not dismissed: each finding is counted under one reason)."""
    dismissed = int(findings.get_column("is_dismissed").sum())
    snoozed = findings.filter(pl.col("is_snoozed") & ~pl.col("is_dismissed")).height
    return {"dismissed": dismissed, "snoozed": snoozed}


def review_counts(findings: pl.DataFrame) -> pl.DataFrame:
    """Per family: findings, decided true, decided false, undecided, open cases and snoozed.

    A case counts in a family when one of its findings is of that family, and is open while
    its own current review is not closed (a case never reviewed is open)."""
    counted = findings.group_by("family").agg(
        pl.len().alias("findings"),
        pl.col("decision").is_in(UPHELD).sum().alias("decided_true"),
        pl.col("decision").is_in(DISMISSED).sum().alias("decided_false"),
        pl.col("decision").is_null().sum().alias("undecided"),
        pl.col("case_id").filter(pl.col("case_status") != "closed").n_unique().alias("open_cases"),
        pl.col("is_snoozed").sum().alias("snoozed"),
    )
    return (
        pl.DataFrame({"family": list(FAMILY_ORDER)})
        .join(counted, on="family", how="left")
        .fill_null(0)
        .with_columns(pl.exclude("family").cast(pl.Int64))
    )


def undecided_ages(findings: pl.DataFrame, *, as_of: datetime, deadline_days: int) -> pl.DataFrame:
    """The findings without a decision, oldest first, with ``age_days`` (from when the run
    that first found them started to ``as_of``) and ``bucket``: ``within`` the deadline,
    ``over_1x`` (past it, up to twice it) or ``over_2x``."""
    age = (pl.lit(as_of) - pl.col("first_seen_at")).dt.total_seconds() / 86_400
    return (
        findings.filter(pl.col("decision").is_null())
        .with_columns(age.clip(lower_bound=0).alias("age_days"))
        .with_columns(
            pl.when(pl.col("age_days") <= deadline_days)
            .then(pl.lit("within"))
            .when(pl.col("age_days") <= 2 * deadline_days)
            .then(pl.lit("over_1x"))
            .otherwise(pl.lit("over_2x"))
            .alias("bucket")
        )
        .sort(["age_days", "severity_rank", "finding_id"], descending=[True, True, False])
    )


def ageing_counts(undecided: pl.DataFrame) -> pl.DataFrame:
    """Per family: the undecided findings in each ageing bucket, and in all."""
    wide = undecided.group_by("family", "bucket").len("count")
    rows = pl.DataFrame({"family": list(FAMILY_ORDER)})
    for bucket in AGEING_BUCKETS:
        rows = rows.join(
            wide.filter(pl.col("bucket") == bucket).select("family", pl.col("count").alias(bucket)),
            on="family",
            how="left",
        )
    return rows.fill_null(0).with_columns(pl.sum_horizontal(*AGEING_BUCKETS).alias("undecided"))


# -- PIN hygiene -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinHygiene:
    """Operator PINs as a password audit reports them; no PIN, no digest.

    One definition throughout: every figure counts the operators active at the end of the
    data by the PIN each held then (findings whose ``still_held`` is true). A PIN changed
    during the window is a finding of its rule, not a figure here.
    """

    operators_in_scope: int  # operators active at the end of the data
    weak_operators: int
    default_operators: int
    stale_operators: int
    shared_operators: int
    shared_groups: int
    reused_operators: int
    by_weakness: pl.DataFrame  # weakness_class, operators, administrators
    default_pins: pl.DataFrame  # operator_id, terminal_id, merchant_id, merchant_name, set_at,
    # held_days
    stale_by_age: pl.DataFrame  # bucket, operators
    groups: pl.DataFrame  # merchant_id, merchant_name, members (list), size, shared_from


def _json(column: str, path: str) -> pl.Expr:
    return pl.col(column).str.json_path_match(path)


def _held_at_end() -> pl.Expr:
    return _json("evidence", "$.still_held") == "true"


def _day_of(path: str) -> pl.Expr:
    return _json("evidence", path).str.slice(0, 10)


def pin_hygiene(
    findings: pl.DataFrame, *, operators_in_scope: int, data_to: datetime | None
) -> PinHygiene:
    """The PINs operators held at the end of the data: by weakness, default, age, sharing and
    reuse (``operators_in_scope``: the operators active then; ``data_to``: the end of the
    data, which a PIN still held is aged to: its finding, an open state, names no end)."""
    pins = findings.filter((pl.col("family") == "pins") & _held_at_end())
    set_at = _json("evidence", "$.set_at").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
    # whole days from the PIN's setting to the end of the data
    held_days = (
        (pl.lit(data_to, dtype=pl.Datetime("us")) - set_at).dt.total_seconds() // 86_400
    ).cast(pl.Int64)

    def operators_of(rule: str) -> pl.DataFrame:
        return pins.filter(pl.col("rule") == rule)

    # an operator holds one PIN at a time: one class each, so the classes add up
    weak = (
        operators_of("weak_pins")
        .with_columns(_json("evidence", "$.weakness_class").alias("weakness_class"))
        .unique(subset="entity_id", keep="first")
    )
    by_weakness = (
        weak.group_by("weakness_class")
        .agg(
            pl.len().alias("operators"),
            (pl.col("operator_role") == "admin").sum().alias("administrators"),
        )
        .sort(["operators", "weakness_class"], descending=[True, False])
    )
    default = (
        operators_of("default_pins")
        .select(
            pl.col("entity_id").alias("operator_id"),
            "terminal_id",
            "merchant_id",
            "merchant_name",
            _day_of("$.set_at").alias("set_at"),
            held_days.alias("held_days"),
        )
        .unique(subset="operator_id", keep="first")
        .sort(["held_days", "operator_id"], descending=[True, False], nulls_last=True)
    )
    stale = (
        operators_of("stale_pins")
        .with_columns(held_days.cast(pl.Float64).alias("age_days"))
        .group_by("entity_id")
        .agg(pl.col("age_days").max())
    )
    bucket = pl.lit("2y+")
    for name, upper in reversed(AGE_BUCKETS[:-1]):
        bucket = pl.when(pl.col("age_days") <= upper).then(pl.lit(name)).otherwise(bucket)
    stale_by_age = (
        pl.DataFrame({"bucket": [b for b, _ in AGE_BUCKETS]})
        .join(
            stale.with_columns(bucket.alias("bucket")).group_by("bucket").len("operators"),
            on="bucket",
            how="left",
        )
        .fill_null(0)
    )
    # Shared at the end: the operator's PIN still held and shared with another still held;
    # a group is the operators still sharing with one another.
    # (a run before open findings wrote no still_shared: its shares ran to the held PIN's end)
    still = _json("evidence", "$.still_shared")
    shared = operators_of("shared_pins").filter(
        (still == "true")
        | (
            still.is_null()
            & (_json("evidence", "$.shared_until") == _json("evidence", "$.held_until"))
        )
    )
    sharing = set(shared.get_column("entity_id").to_list())
    shared = shared.with_columns(
        pl.col("evidence")
        .str.json_path_match("$.other_operator_ids")
        .str.json_decode(pl.List(pl.String))
        .fill_null(pl.lit([], pl.List(pl.String)))
        .list.eval(pl.element().filter(pl.element().is_in(list(sharing))))
        .alias("others"),
        _day_of("$.shared_from").alias("shared_from"),
    ).filter(pl.col("others").list.len() > 0)
    groups = (
        shared.with_columns(
            pl.concat_list(pl.col("entity_id"), "others").list.unique().list.sort().alias("members")
        )
        .group_by("members")
        .agg(
            pl.col("merchant_id").first(),
            pl.col("merchant_name").first(),
            pl.col("shared_from").max(),
        )
        .with_columns(pl.col("members").list.len().alias("size"))
        .sort(["size", "merchant_id", "shared_from"], descending=[True, False, False])
    )
    shared_operators = (
        groups.select(pl.col("members").explode().n_unique()).item() if groups.height else 0
    )
    return PinHygiene(
        operators_in_scope=operators_in_scope,
        weak_operators=weak.height,
        default_operators=default.height,
        stale_operators=stale.height,
        shared_operators=int(shared_operators),
        shared_groups=groups.height,
        reused_operators=operators_of("reused_pins").get_column("entity_id").n_unique(),
        by_weakness=by_weakness,
        default_pins=default,
        stale_by_age=stale_by_age,
        groups=groups,
    )


# -- money at risk -----------------------------------------------------------------------------

# Refund findings name refunds that break a rule; an anomaly finding names an operator-day
# whose refunds are a lead, not money known to be at risk.
MONEY_FAMILIES: Final = ("refunds",)


@dataclass(frozen=True)
class FeeLeakage:
    """What the fee audit's findings (``fee_mismatches``) add up to: the fees the fee table
    gives and the merchants were not charged, and the fees charged over the table. The net
    (:attr:`total_fen`) is the sum of the findings' ``difference_fen``."""

    findings: int
    not_collected_fen: int
    over_charged_fen: int

    @property
    def total_fen(self) -> int:
        return self.not_collected_fen - self.over_charged_fen


def fee_leakage(findings: pl.DataFrame) -> FeeLeakage:
    """The fee leakage of ``findings`` (any rules; only ``fee_mismatches`` count)."""
    difference = (
        findings.filter(pl.col("rule") == "fee_mismatches")
        .select(_json("evidence", "$.difference_fen").cast(pl.Int64).alias("fen"))
        .get_column("fen")
    )
    return FeeLeakage(
        findings=difference.len(),
        not_collected_fen=int(difference.clip(lower_bound=0).sum()),
        over_charged_fen=int(-difference.clip(upper_bound=0).sum()),
    )


@dataclass(frozen=True)
class MoneyAtRisk:
    """The approved refunds findings name, in fen, each refund counted once.

    ``by_rule``: family, rule, findings, refunds and amount_fen per rule (a refund named by
    several findings of one rule counted once); ``total_fen`` and ``refunds``: over every
    rule, a refund named by several rules counted once. ``unlisted_fen``: refunds a
    finding counts but does not list by id (its list is capped), counted in its rule's row
    and the total as they are, as they cannot be matched.
    """

    total_fen: int
    refunds: int
    unlisted_fen: int
    by_rule: pl.DataFrame


def refund_ids_named(findings: pl.DataFrame) -> list[str]:
    """Every refund id that the refund findings name in a list."""
    ids = (
        findings.filter(pl.col("family").is_in(MONEY_FAMILIES))
        .select(
            pl.col("evidence")
            .str.json_path_match("$.refund_txn_ids")
            .str.json_decode(pl.List(pl.String))
            .alias("ids")
        )
        .explode("ids")
        .drop_nulls()
        .unique()
    )
    return ids.get_column("ids").sort().to_list()


def money_at_risk(findings: pl.DataFrame, refund_amounts: pl.DataFrame) -> MoneyAtRisk:
    """The refunded amount behind the findings: see :class:`MoneyAtRisk`."""
    relevant = findings.filter(pl.col("family").is_in(MONEY_FAMILIES))
    single = relevant.select(
        "finding_id",
        "family",
        "rule",
        _json("evidence", "$.refund_txn_id").alias("txn_id"),
        _json("evidence", "$.amount_fen").cast(pl.Int64, strict=False).alias("amount_fen"),
    ).filter(pl.col("txn_id").is_not_null() & pl.col("amount_fen").is_not_null())
    listed = (
        relevant.filter(~pl.col("finding_id").is_in(single.get_column("finding_id").implode()))
        .select(
            "finding_id",
            "family",
            "rule",
            pl.col("evidence")
            .str.json_path_match("$.refund_txn_ids")
            .str.json_decode(pl.List(pl.String))
            .alias("txn_id"),
            pl.coalesce(
                _json("evidence", "$.refunded_fen").cast(pl.Int64, strict=False),
                _json("evidence", "$.refund_amount_fen").cast(pl.Int64, strict=False),
            ).alias("counted_fen"),
        )
        .filter(pl.col("txn_id").list.len() > 0)
    )
    named = listed.explode("txn_id").join(refund_amounts, on="txn_id", how="left")
    unlisted = (
        named.group_by("finding_id", "family", "rule")
        .agg(
            pl.col("counted_fen").first(),
            pl.col("amount_fen").sum().alias("listed_fen"),
        )
        .with_columns(
            (pl.col("counted_fen").fill_null(0) - pl.col("listed_fen"))
            .clip(lower_bound=0)
            .alias("unlisted_fen")
        )
    )
    refunds = pl.concat(
        [
            single.select("family", "rule", "txn_id", "amount_fen"),
            named.select("family", "rule", "txn_id", pl.col("amount_fen").fill_null(0)),
        ]
    )
    per_rule = (
        refunds.unique(subset=["rule", "txn_id"])
        .group_by("family", "rule")
        .agg(pl.len().alias("refunds"), pl.col("amount_fen").sum())
        .join(
            unlisted.group_by("rule").agg(pl.col("unlisted_fen").sum()),
            on="rule",
            how="left",
        )
        .join(relevant.group_by("rule").len("findings"), on="rule", how="left")
        .with_columns(
            (pl.col("amount_fen") + pl.col("unlisted_fen").fill_null(0)).alias("amount_fen")
        )
        .with_columns(
            pl.col("family")
            .replace_strict({f: i for i, f in enumerate(FAMILY_ORDER)}, return_dtype=pl.Int8)
            .alias("family_rank")
        )
        .sort(["family_rank", "amount_fen", "rule"], descending=[False, True, False])
        .select("family", "rule", "findings", "refunds", "amount_fen")
    )
    distinct = refunds.unique(subset="txn_id")
    unlisted_fen = int(unlisted.get_column("unlisted_fen").sum())
    return MoneyAtRisk(
        total_fen=int(distinct.get_column("amount_fen").sum()) + unlisted_fen,
        refunds=distinct.height,
        unlisted_fen=unlisted_fen,
        by_rule=per_rule,
    )


def policy_changes(settings: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """(rule, key, value, default) for every setting that differs from the built-in policy."""
    default = tomllib.loads(default_policy_text()).get("rules", {})
    changes = []
    for rule_name, values in sorted(settings.get("rules", {}).items()):
        for key, value in values.items():
            base = default.get(rule_name, {}).get(key)
            if value != base:
                changes.append((rule_name, key, value, base))
    return changes
