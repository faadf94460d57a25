"""01-logins-and-lockouts: failed logins by cause, lockouts, attacks, and the lockout policy.

A failed login is either the credentials (a wrong PIN, an operator number that does not
exist, an attempt while locked) or the network (the terminal could not reach the host). Only
the first kind is guessing, forgetting or typing; the second is a terminal's health. Keeping
them apart is what lets an analyst tell an attack from a bad line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.notebook.session import Audit

CAUSES: Final[dict[str, str]] = {
    "wrong_pin": "credentials",
    "unknown_operator": "credentials",
    "locked": "credentials",
    "network_error": "network",
}
OUTCOME_LABELS: Final[dict[str, str]] = {
    "wrong_pin": "wrong PIN",
    "unknown_operator": "unknown operator number",
    "locked": "attempt while locked",
    "network_error": "network error",
}
# Bucket widths for time charts, finest first: the finest that keeps the chart readable.
BUCKETS: Final[tuple[tuple[str, timedelta], ...]] = (
    ("1h", timedelta(hours=1)),
    ("3h", timedelta(hours=3)),
    ("6h", timedelta(hours=6)),
    ("12h", timedelta(hours=12)),
    ("1d", timedelta(days=1)),
    ("1w", timedelta(weeks=1)),
)
ATTACK_RULES: Final = (
    "pin_brute_force",
    "operator_enumeration",
    "lockout_storm",
    "credential_sharing",
)


def time_bucket(span: timedelta, *, max_buckets: int = 800) -> str:
    """The finest bucket (``'1h'`` ... ``'1w'``) that cuts ``span`` into at most ``max_buckets``.

    >>> time_bucket(timedelta(days=21)), time_bucket(timedelta(days=90))
    ('1h', '3h')
    """
    for every, width in BUCKETS:
        if span / width <= max_buckets:
            return every
    return BUCKETS[-1][0]


def chart_bucket(audit: Audit) -> str:
    """The time bucket for the store's data window (see :func:`time_bucket`)."""
    data_from, data_to = audit.data_window
    return time_bucket(data_to - data_from)


def _bucket(audit: Audit, every: str | None) -> str:
    return every or chart_bucket(audit)


def _failures(audit: Audit) -> pl.DataFrame:
    return audit.sql(
        "SELECT event_id, ts, terminal_id, operator_no, operator_id, outcome FROM login_events "
        "WHERE outcome <> 'success'"
    ).with_columns(
        pl.col("outcome").replace_strict(CAUSES).alias("cause"),
        pl.col("outcome").replace_strict(OUTCOME_LABELS).alias("outcome_label"),
    )


def failures_over_time(audit: Audit, *, every: str | None = None) -> pl.DataFrame:
    """Failed logins per time bucket and outcome: time, outcome, outcome_label, cause, attempts."""
    return (
        _failures(audit)
        .group_by(
            pl.col("ts").dt.truncate(_bucket(audit, every)).alias("time"),
            "outcome",
            "outcome_label",
            "cause",
        )
        .agg(pl.len().alias("attempts"))
        .sort("time", "outcome")
    )


def failures_by_terminal(audit: Audit, *, every: str | None = None, top: int = 20) -> pl.DataFrame:
    """Failed logins per terminal, bucket and cause, for the ``top`` terminals.

    Columns: terminal_id, merchant_id, time, cause, attempts (buckets with none are left out).
    """
    failures = _failures(audit)
    worst = (
        failures.filter(pl.col("cause") == "credentials")
        .group_by("terminal_id")
        .agg(pl.len().alias("total"))
        .sort(["total", "terminal_id"], descending=[True, False])
        .head(top)
    )
    return (
        failures.join(worst.select("terminal_id"), on="terminal_id", how="semi")
        .group_by(
            "terminal_id", pl.col("ts").dt.truncate(_bucket(audit, every)).alias("time"), "cause"
        )
        .agg(pl.len().alias("attempts"))
        .join(
            audit.table("terminals").select("terminal_id", "merchant_id"),
            on="terminal_id",
            how="left",
        )
        .sort("terminal_id", "time", "cause")
    )


def failure_summary(audit: Audit) -> pl.DataFrame:
    """Failed logins by outcome, with their share of all login attempts."""
    return (
        audit.sql("SELECT outcome, count(*) AS attempts FROM login_events GROUP BY ALL")
        .with_columns((pl.col("attempts") / pl.col("attempts").sum()).alias("share"))
        .filter(pl.col("outcome") != "success")
        .with_columns(
            pl.col("outcome").replace_strict(OUTCOME_LABELS).alias("outcome_label"),
            pl.col("outcome").replace_strict(CAUSES).alias("cause"),
        )
        .select("cause", "outcome_label", "attempts", "share")
        .sort("cause", "attempts", descending=[False, True])
    )


def lockouts_over_time(audit: Audit, *, every: str = "1d") -> pl.DataFrame:
    """Lockouts per time bucket and how they ended: time, unlock_method, lockouts."""
    return (
        audit.table("lockouts")
        .group_by(
            pl.col("locked_at").dt.truncate(every).alias("time"),
            pl.col("unlock_method").fill_null("still locked"),
        )
        .agg(pl.len().alias("lockouts"))
        .sort("time", "unlock_method")
    )


def _evidence_int(*keys: str) -> pl.Expr:
    return pl.coalesce(
        pl.col("evidence").str.json_path_match(f"$.{k}").cast(pl.Int64, strict=False) for k in keys
    )


def login_findings(audit: Audit, *, rules: tuple[str, ...] | None = None) -> pl.DataFrame:
    """The run's login findings, with the terminal and the attempts each one is about.

    Columns: finding_id, rule, severity, score, entity_type, entity_id, terminal_id,
    window_start, window_end, minutes, attempts (failures, attempts, network errors or
    switches, whichever the rule counts), summary, is_new.
    """
    operators = audit.table("operators").select(
        "operator_id", pl.col("terminal_id").alias("home_terminal_id")
    )
    findings = audit.findings().filter(pl.col("family") == "logins")
    if rules is not None:
        findings = findings.filter(pl.col("rule").is_in(rules))
    return (
        findings.join(operators, left_on="entity_id", right_on="operator_id", how="left")
        .with_columns(
            pl.when(pl.col("entity_type") == "terminal")
            .then(pl.col("entity_id"))
            .otherwise(
                pl.coalesce(
                    pl.col("evidence").str.json_path_match("$.terminal_id"),
                    pl.col("evidence").str.json_path_match("$.home_terminal_id"),
                    pl.col("home_terminal_id"),
                )
            )
            .alias("terminal_id"),
            ((pl.col("window_end") - pl.col("window_start")).dt.total_seconds() / 60)
            .round(1)
            .alias("minutes"),
            _evidence_int("failures", "attempts", "network_errors", "switches", "lockouts").alias(
                "attempts"
            ),
        )
        .select(
            "finding_id",
            "rule",
            "severity",
            "score",
            "entity_type",
            "entity_id",
            "terminal_id",
            "window_start",
            "window_end",
            "minutes",
            "attempts",
            "summary",
            "is_new",
        )
    )


def lockout_policy(audit: Audit) -> dict[str, int]:
    """The run's lockout policy: lock after at most ``max_failures`` for ``min_lockout_minutes``."""
    return {
        "max_failures": int(audit.setting("lockout_not_enforced", "max_failures") or 6),
        "min_lockout_minutes": int(
            audit.setting("lockout_not_enforced", "min_lockout_minutes") or 30
        ),
    }


def lockout_settings(audit: Audit) -> pl.DataFrame:
    """Every terminal's lockout setting against the run's policy, and its finding if any.

    Columns: terminal_id, merchant_id, model, lockout_threshold, lockout_minutes, locks_after
    ('5 wrong PINs' or 'never'), locks_for ('30 min'), within_policy, why_not, finding.
    """
    policy = lockout_policy(audit)
    findings = (
        audit.findings()
        .filter(pl.col("rule") == "lockout_not_enforced")
        .group_by("entity_id")
        .agg(pl.col("summary").first().alias("finding"))
    )
    never = pl.col("lockout_threshold").is_null()
    too_many = pl.col("lockout_threshold") > policy["max_failures"]
    too_short = pl.col("lockout_minutes").is_null() | (
        pl.col("lockout_minutes") < policy["min_lockout_minutes"]
    )
    return (
        audit.table("terminals")
        .select("terminal_id", "merchant_id", "model", "lockout_threshold", "lockout_minutes")
        .join(findings, left_on="terminal_id", right_on="entity_id", how="left")
        .with_columns(
            pl.when(never)
            .then(pl.lit("never"))
            .otherwise(pl.format("{} wrong PINs", "lockout_threshold"))
            .alias("locks_after"),
            pl.when(never)
            .then(pl.lit("-"))
            .otherwise(pl.format("{} min", "lockout_minutes"))
            .alias("locks_for"),
            pl.when(never)
            .then(pl.lit("never locks"))
            .when(too_many)
            .then(pl.format("locks only after {} wrong PINs", "lockout_threshold"))
            .when(too_short)
            .then(pl.format("locks for only {} minutes", "lockout_minutes"))
            .alias("why_not"),
        )
        .with_columns(pl.col("why_not").is_null().alias("within_policy"))
        .select(
            "terminal_id",
            "merchant_id",
            "model",
            "lockout_threshold",
            "lockout_minutes",
            "locks_after",
            "locks_for",
            "within_policy",
            "why_not",
            "finding",
        )
        .sort(["within_policy", "terminal_id"])
    )


def outside_policy(settings: pl.DataFrame) -> pl.DataFrame:
    """The terminals of :func:`lockout_settings` whose setting is looser than the policy."""
    return settings.filter(~pl.col("within_policy"))


def lockout_setting_counts(settings: pl.DataFrame) -> pl.DataFrame:
    """Terminals per lockout setting.

    Columns: locks_after, locks_for, within_policy, terminals, threshold_order, minutes_order.
    """
    return (
        settings.group_by("locks_after", "locks_for", "within_policy")
        .agg(
            pl.len().alias("terminals"),
            pl.col("lockout_threshold").first().fill_null(999).alias("threshold_order"),
            pl.col("lockout_minutes").first().fill_null(0).alias("minutes_order"),
        )
        .sort("threshold_order", "minutes_order")
    )
