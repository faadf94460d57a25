"""Backtesting a policy: which findings another policy would gain or lose, and their decisions.

Before a threshold changes, an analyst asks what the change would do to the findings and to
what was already decided about them. A backtest replays detection over all the stored data
twice, in memory, with the store's current policy (the latest successful run's) and with the
new one, and compares the two sets of findings by finding id (rule, entity, window start).
Both replays are made by the same code over the same data, so the difference is the policy's
alone, not that of code or data that changed since an older run.

It reads the store as a run does (:mod:`posaudit.run.read`: each table once, only the
columns the rules use) and writes nothing: the store is opened read-only, with no writer
lock. A rule whose thresholds are the same in both policies is run once, its findings shared
by both replays. Each finding's decision is its latest review's (:mod:`posaudit.review`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from posaudit.detect.findings import FINDINGS_SCHEMA, SEVERITY_RANK
from posaudit.detect.policy import Policy, load_policy, policy_from_text
from posaudit.detect.registry import Rule
from posaudit.pins import PinDigester, pin_digester
from posaudit.review.trail import TABLE as REVIEWS_TABLE
from posaudit.review.trail import current_reviews_sql
from posaudit.review.values import DISMISSED, UPHELD
from posaudit.rules import all_rules
from posaudit.run.detect import findings_by_rule, one_per_finding_id
from posaudit.run.inputs import derived_inputs, kept_exclusion
from posaudit.run.plan import check_runnable, data_window, full_scopes
from posaudit.run.read import ColumnsUsed, TableReader, columns_to_read, read_inputs
from posaudit.run.score import score_outcome
from posaudit.score.operators import SCORE_RULE, preload_model
from posaudit.store import Store

# The groups of findings compared, and what is counted of each.
GROUPS: Final = ("current", "new", "gained", "lost")
COUNTS: Final = ("findings", "decided_true", "decided_false", "undecided")
TOTAL: Final = "total"


@dataclass(frozen=True)
class CurrentPolicy:
    """The store's current policy: the latest successful run's (``run_id``), else the
    default (``run_id`` None); ``as_recorded``: whether it hashes as the run recorded it
    (not when the default it was laid over changed since)."""

    policy: Policy
    run_id: str | None
    as_recorded: bool


def current_policy(store: Store) -> CurrentPolicy:
    """The policy of the store's latest successful run, read as ``posaudit run`` reads a
    policy file; the default when no run succeeded. Raises PolicyError when this posaudit
    cannot read the run's policy (a rule or key it no longer knows)."""
    rows = store.query(
        "SELECT run_id, policy_toml, policy_hash FROM pipeline_runs WHERE status = 'succeeded' "
        "ORDER BY finished_at DESC, run_id DESC LIMIT 1"
    )
    if not rows:
        return CurrentPolicy(load_policy(), None, as_recorded=True)
    run_id, text, recorded_hash = (str(v) if v is not None else None for v in rows[0])
    if text is None:
        policy = load_policy()
    else:
        policy = policy_from_text(text, source=f"the policy of {run_id} (pipeline_runs)")
    return CurrentPolicy(policy, run_id, as_recorded=policy.hash == recorded_hash)


def _merged_columns(found: Sequence[ColumnsUsed]) -> ColumnsUsed:
    """The columns that every one of ``found`` reads (None: the whole table)."""

    def union(parts: list[Mapping[str, list[str] | None]]) -> dict[str, list[str] | None]:
        merged: dict[str, list[str] | None] = {}
        for part in parts:
            for name, columns in part.items():
                held = merged.get(name, [])
                merged[name] = (
                    None
                    if columns is None or held is None
                    else held + [c for c in columns if c not in held]
                )
        return merged

    return ColumnsUsed(
        tables=union([f.tables for f in found]), derived=union([f.derived for f in found])
    )


def _thresholds_key(rule: Rule, policy: Policy) -> str:
    return json.dumps(rule.parameters | policy.parameters(rule.name), sort_keys=True)


def replayed_findings(
    store: Store,
    policies: Sequence[Policy],
    *,
    rules: Collection[str] | None = None,
    digester: PinDigester | None = None,
) -> list[pl.DataFrame]:
    """Each policy's findings over all the store's data, as a full run would record them.

    The store is only read: each table once, for all the policies (``rules``: only these
    rules; None: every rule). A rule with the same thresholds in two policies runs once.
    Raises StoreError for a store that cannot be audited (no transactions, another PIN key).
    """
    digester = pin_digester() if digester is None else digester
    check_runnable(store, digester)
    chosen = [r for r in all_rules().values() if rules is None or r.name in rules]
    enabled = [[r for r in chosen if p.enabled(r.name)] for p in policies]
    union = [r for r in chosen if any(r in e for e in enabled)]
    if not union:
        return [pl.DataFrame(schema=FINDINGS_SCHEMA) for _ in policies]
    scopes = full_scopes(union, "backtest")
    window = data_window(store)
    columns = _merged_columns(
        [columns_to_read(store, e, p).columns for p, e in zip(policies, enabled, strict=True) if e]
    )
    operators = store.read("operators")
    exclusion = kept_exclusion(store, union, operators, digester=digester)
    derived = derived_inputs(
        union, operators, window=window, digester=digester, exclusion=exclusion.rows
    )
    inputs = read_inputs(TableReader(store, columns), union, scopes)

    by_thresholds: dict[tuple[str, str], pl.DataFrame] = {}
    scoring: dict[tuple[str, str], Future[pl.DataFrame]] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="posaudit-score") as pool:
        for policy, rules_on in zip(policies, enabled, strict=True):
            done = set(by_thresholds) | set(scoring)
            todo = [r for r in rules_on if (r.name, _thresholds_key(r, policy)) not in done]
            score = next((r for r in todo if r.name == SCORE_RULE), None)
            if score is not None:
                preload_model()
                # the longest rule runs on its own thread while the others collect, as in a run
                scoring[(score.name, _thresholds_key(score, policy))] = pool.submit(
                    _score_findings, store, score, inputs[score.name], policy
                )
            others = [r for r in todo if r is not score]
            found = findings_by_rule(others, inputs, derived, policy, scopes)
            by_thresholds |= {(r.name, _thresholds_key(r, policy)): found[r.name] for r in others}
        by_thresholds |= {key: running.result() for key, running in scoring.items()}
    return [
        one_per_finding_id(
            pl.concat([by_thresholds[(r.name, _thresholds_key(r, p))] for r in rules_on])
        )
        if rules_on
        else pl.DataFrame(schema=FINDINGS_SCHEMA)
        for p, rules_on in zip(policies, enabled, strict=True)
    ]


def _score_findings(
    store: Store, rule: Rule, tables: Mapping[str, pl.LazyFrame], policy: Policy
) -> pl.DataFrame:
    """The anomaly score's findings over all the data (nothing kept, nothing written)."""
    scope = full_scopes([rule], "backtest")[rule.name]
    return score_outcome(store, rule, tables, policy, scope).findings


def latest_decisions(store: Store) -> pl.DataFrame:
    """Each reviewed finding's decision in its latest review (None: undecided); none for a
    store made before the review trail."""
    if not store.has_table(REVIEWS_TABLE):
        return pl.DataFrame(schema={"finding_id": pl.String, "decision": pl.String})
    return store.frame(
        "SELECT finding_id, CAST(decision AS VARCHAR) AS decision "
        f"FROM ({current_reviews_sql(store, columns='finding_id, decision')})"
    )


def _counts(group: str, member: pl.Expr) -> list[pl.Expr]:
    """The findings of ``group`` (rows where ``member``) and their decisions, per rule."""
    return [
        member.sum().alias(f"{group}_findings"),
        (member & pl.col("decision").is_in(UPHELD)).sum().alias(f"{group}_decided_true"),
        (member & pl.col("decision").is_in(DISMISSED)).sum().alias(f"{group}_decided_false"),
        (member & pl.col("decision").is_null()).sum().alias(f"{group}_undecided"),
    ]


def _precision(group: str) -> pl.Expr:
    decided = pl.col(f"{group}_decided_true") + pl.col(f"{group}_decided_false")
    return (
        pl.when(decided > 0)
        .then(pl.col(f"{group}_decided_true") / decided)
        .alias(f"{group}_precision")
    )


def policy_comparison(
    current: pl.DataFrame,
    new: pl.DataFrame,
    decisions: pl.DataFrame,
    *,
    rules: Sequence[str],
) -> pl.DataFrame:
    """Per rule of ``rules`` (and a total row): the findings under each policy, kept, gained
    (new only) and lost (current only), each with its decisions, the kept findings whose
    severity rose or fell, and the precision from decisions under each policy.

    ``current`` and ``new``: findings (finding_id, rule, severity); ``decisions``: the
    latest decision of each reviewed finding (finding_id, decision).
    """
    rank = pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8)
    both = (
        current.select("finding_id", "rule", current_rank=rank)
        .join(
            new.select("finding_id", "rule", new_rank=rank),
            on="finding_id",
            how="full",
            coalesce=True,
            suffix="_new",
        )
        .with_columns(pl.coalesce("rule", "rule_new").alias("rule"))
        .join(decisions.select("finding_id", "decision"), on="finding_id", how="left")
    )
    in_current, in_new = pl.col("current_rank").is_not_null(), pl.col("new_rank").is_not_null()
    kept = in_current & in_new
    measures = [
        *_counts("current", in_current),
        *_counts("new", in_new),
        *_counts("gained", in_new & ~in_current),
        *_counts("lost", in_current & ~in_new),
        kept.sum().alias("kept"),
        (kept & (pl.col("new_rank") > pl.col("current_rank"))).sum().alias("severity_raised"),
        (kept & (pl.col("new_rank") < pl.col("current_rank"))).sum().alias("severity_lowered"),
    ]
    names = [e.meta.output_name() for e in measures]
    per_rule = (
        pl.DataFrame({"rule": list(rules)}, schema={"rule": pl.String})
        .join(both.group_by("rule").agg(measures), on="rule", how="left")
        .with_columns(pl.col(names).fill_null(0).cast(pl.Int64))
    )
    total = per_rule.select(pl.lit(TOTAL).alias("rule"), pl.col(names).sum().cast(pl.Int64))
    return pl.concat([per_rule, total]).with_columns(_precision("current"), _precision("new"))


@dataclass(frozen=True)
class Backtest:
    """A backtest's outcome: the comparison per rule (:func:`policy_comparison`) and the
    two policies compared."""

    comparison: pl.DataFrame
    current: CurrentPolicy
    new: Policy
    new_source: str

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready document: the policies, then each rule and the total."""
        rows = []
        for row in self.comparison.iter_rows(named=True):
            record: dict[str, Any] = {"rule": row["rule"]}
            for group in GROUPS:
                record[group] = {c: row[f"{group}_{c}"] for c in COUNTS}
                if group in ("current", "new"):
                    record[group]["precision"] = row[f"{group}_precision"]
            record["kept"] = row["kept"]
            record["severity_raised"] = row["severity_raised"]
            record["severity_lowered"] = row["severity_lowered"]
            rows.append(record)
        return {
            "current_policy": {
                "run_id": self.current.run_id,
                "policy_hash": self.current.policy.hash,
                "as_recorded": self.current.as_recorded,
            },
            "new_policy": {"file": self.new_source, "policy_hash": self.new.hash},
            "rules": rows[:-1],
            "total": rows[-1],
        }


def backtest(
    store: Store,
    new_policy: Policy,
    *,
    new_source: str,
    rules: Sequence[str] | None = None,
    digester: PinDigester | None = None,
) -> Backtest:
    """Replay the store's current policy and ``new_policy`` over all its data and compare
    their findings with the analysts' decisions (``rules``: only these). Reads only."""
    current = current_policy(store)
    policies = [current.policy, new_policy]
    current_findings, new_findings = replayed_findings(
        store, policies, rules=rules, digester=digester
    )
    shown = [
        name
        for name in all_rules()
        if (rules is None or name in rules)
        and (rules is not None or any(p.enabled(name) for p in policies))
    ]
    comparison = policy_comparison(
        current_findings, new_findings, latest_decisions(store), rules=shown
    )
    return Backtest(comparison, current, new_policy, new_source)
