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
from posaudit.detect.findings import SEVERITIES
from posaudit.detect.policy import Policy, default_policy_text
from posaudit.detect.registry import Rule, all_rules
from posaudit.store import Store

FAMILY_ORDER: Final = ("logins", "pins", "refunds", "scores")
# Most severe first, as every table of the report lists them.
SEVERITY_ORDER: Final = tuple(reversed(SEVERITIES))
SEVERITY_RANK: Final = {s: i for i, s in enumerate(SEVERITIES)}
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


def with_names(
    findings: pl.DataFrame, merchants: pl.DataFrame, operators: pl.DataFrame
) -> pl.DataFrame:
    """Findings with the names people know them by, and severity ranks, most severe first."""
    return (
        findings.with_columns(_attributed_operator(), _severity_rank())
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
            ["severity_rank", "score", "window_start", "finding_id"],
            descending=[True, True, False, False],
        )
    )


def _count(store: Store, sql: str, params: list[object] | None = None) -> int:
    return int(store.query(sql, params)[0][0])  # type: ignore[call-overload]


def population(store: Store, run: RunRecord) -> dict[str, int]:
    """Merchants, terminals and operators in the audit's scope (operators active in the window)."""
    operators = (
        _count(store, "SELECT count(*) FROM operators")
        if run.data_from is None or run.data_to is None
        else _count(
            store,
            "SELECT count(*) FROM operators "
            "WHERE created_at <= ? AND (disabled_at IS NULL OR disabled_at >= ?)",
            [run.data_to, run.data_from],
        )
    )
    return {
        "merchants": _count(store, "SELECT count(*) FROM merchants"),
        "terminals": _count(store, "SELECT count(*) FROM terminals"),
        "operators": operators,
    }


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


# -- PIN hygiene -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinHygiene:
    """Operator PINs in the way a password audit reports them; no PIN, no digest."""

    operators_in_scope: int
    weak_operators: int
    default_operators: int
    stale_operators: int
    shared_operators: int
    shared_groups: int
    reused_operators: int
    by_weakness: pl.DataFrame  # weakness_class, operators, administrators
    default_pins: (
        pl.DataFrame
    )  # operator_id, terminal_id, merchant_id, merchant_name, set_at, held_days, still_held
    stale_by_age: pl.DataFrame  # bucket, operators
    groups: (
        pl.DataFrame
    )  # merchant_id, merchant_name, members (list), size, shared_from, shared_until


def _json(column: str, path: str) -> pl.Expr:
    return pl.col(column).str.json_path_match(path)


def pin_hygiene(findings: pl.DataFrame, *, operators_in_scope: int) -> PinHygiene:
    """Counts of the PIN findings by weakness, default, age, sharing and reuse."""
    pins = findings.filter(pl.col("family") == "pins")

    def operators_of(rule: str) -> pl.DataFrame:
        return pins.filter(pl.col("rule") == rule)

    weak = operators_of("weak_pins").with_columns(
        _json("evidence", "$.weakness_class").alias("weakness_class")
    )
    by_weakness = (
        weak.group_by("weakness_class")
        .agg(
            pl.col("entity_id").n_unique().alias("operators"),
            pl.col("entity_id")
            .filter(pl.col("operator_role") == "admin")
            .n_unique()
            .alias("administrators"),
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
            _json("evidence", "$.set_at").str.slice(0, 10).alias("set_at"),
            _json("evidence", "$.held_days").cast(pl.Int64, strict=False).alias("held_days"),
            (_json("evidence", "$.still_held") == "true").alias("still_held"),
        )
        .sort("held_days", descending=True, nulls_last=True)
    )
    stale = operators_of("stale_pins").with_columns(
        _json("evidence", "$.age_days").cast(pl.Float64, strict=False).alias("age_days")
    )
    oldest = stale.group_by("entity_id").agg(pl.col("age_days").max())
    bucket = pl.lit("2y+")
    for name, upper in reversed(AGE_BUCKETS[:-1]):
        bucket = pl.when(pl.col("age_days") <= upper).then(pl.lit(name)).otherwise(bucket)
    stale_by_age = (
        pl.DataFrame({"bucket": [b for b, _ in AGE_BUCKETS]})
        .join(
            oldest.with_columns(bucket.alias("bucket")).group_by("bucket").len("operators"),
            on="bucket",
            how="left",
        )
        .fill_null(0)
    )
    shared = operators_of("shared_pins").with_columns(
        pl.col("evidence")
        .str.json_path_match("$.other_operator_ids")
        .str.json_decode(pl.List(pl.String))
        .fill_null(pl.lit([], pl.List(pl.String)))
        .alias("others"),
        _json("evidence", "$.shared_from").alias("shared_from"),
        _json("evidence", "$.shared_until").alias("shared_until"),
    )
    groups = (
        shared.with_columns(
            pl.concat_list(pl.col("entity_id"), "others").list.unique().list.sort().alias("members")
        )
        .group_by("members")
        .agg(
            pl.col("merchant_id").first(),
            pl.col("merchant_name").first(),
            pl.col("shared_from").min().str.slice(0, 10),
            pl.col("shared_until").max().str.slice(0, 10),
        )
        .with_columns(pl.col("members").list.len().alias("size"))
        .sort(["size", "merchant_id", "shared_from"], descending=[True, False, False])
    )
    shared_operators = (
        groups.select(pl.col("members").explode().n_unique()).item() if groups.height else 0
    )
    return PinHygiene(
        operators_in_scope=operators_in_scope,
        weak_operators=weak.get_column("entity_id").n_unique(),
        default_operators=default.get_column("operator_id").n_unique(),
        stale_operators=oldest.height,
        shared_operators=int(shared_operators),
        shared_groups=groups.height,
        reused_operators=operators_of("reused_pins").get_column("entity_id").n_unique(),
        by_weakness=by_weakness,
        default_pins=default,
        stale_by_age=stale_by_age,
        groups=groups,
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
