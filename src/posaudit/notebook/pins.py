"""02-pin-hygiene: operators' PINs as a password audit sees them, never a PIN.

The detection rules judge every PIN period against the policy and the exclusion list; this
module turns the run's findings on the PINs operators *still hold* into a roster (one row per
operator) and the summary a password audit opens with. The PIN digests are never read here:
the PIN events come without their digest column, and a PIN appears only as its weakness class
(and only because a finding named it). No PIN key is needed, so an analyst's notebook never
holds the deployment's key.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from posaudit.notebook.session import Audit
from posaudit.pins import WEAKNESS_LABELS

# Age bands of a PIN for the age chart, in days, and where the open last band starts.
AGE_BAND_DAYS: Final = 30
AGE_BAND_CAP_DAYS: Final = 720
SECONDS_PER_DAY: Final = 86_400
ISSUES: Final[dict[str, str]] = {
    "is_weak": "weak PIN (in a weakness class)",
    "is_default": "the acquirer's default PIN",
    "is_stale": "PIN older than the policy allows",
    "is_shared": "PIN shared with another operator",
    "is_reused": "went back to an old PIN",
    "never_changed": "PIN never changed since it was issued",
}


def _still_held(rule: str) -> pl.Expr:
    return (pl.col("rule") == rule) & (
        pl.col("evidence").str.json_path_match("$.still_held") == "true"
    )


def _still_shared() -> pl.Expr:
    """A shared-PIN finding whose PIN the operator and one of the others both hold yet (a
    run before open findings wrote no ``still_shared``: its shares ran to the held PIN's end)."""
    evidence = pl.col("evidence").str.json_path_match
    still = evidence("$.still_shared")
    return (pl.col("rule") == "shared_pins") & (
        (still == "true")
        | (still.is_null() & (evidence("$.shared_until") == evidence("$.held_until")))
    )


def held(start: str = "window_start", end: str = "window_end") -> pl.Expr:
    """A finding's time as the page says it: 'since D, still held' for an open state, 'from D
    to E' for one a PIN event ended."""
    return (
        pl.when(pl.col(end).is_null())
        .then(pl.format("since {}, still held", pl.col(start).dt.strftime("%Y-%m-%d")))
        .otherwise(
            pl.format(
                "from {} to {}",
                pl.col(start).dt.strftime("%Y-%m-%d"),
                pl.col(end).dt.strftime("%Y-%m-%d"),
            )
        )
    )


def pin_roster(audit: Audit) -> pl.DataFrame:
    """One row per operator active at the end of the data, with what is wrong with its PIN.

    Columns: operator_id, merchant_id, terminal_id, operator_no, role, pin_set_at,
    pin_age_days, set_kind, set_by, changes_in_window (changes and resets inside the data
    window), never_changed, weakness (the class, in words), is_weak, is_default, is_stale,
    is_shared, shared_with (other operators on the same PIN), is_reused, issues (how many of
    these apply). The flags come from the run's findings on the PIN the operator still holds.
    """
    data_from, data_to = audit.data_window
    events = audit.sql(
        "SELECT operator_id, ts, kind, actor FROM pin_events WHERE ts <= TIMESTAMP "
        f"'{data_to:%Y-%m-%d %H:%M:%S.%f}'"
    )
    latest = (
        events.sort("operator_id", "ts")
        .group_by("operator_id")
        .agg(
            pl.col("ts").last().alias("pin_set_at"),
            pl.col("kind").last().alias("set_kind"),
            pl.col("actor").last().alias("set_by"),
            (pl.col("kind").is_in(["change", "reset"]) & (pl.col("ts") >= data_from))
            .sum()
            .alias("changes_in_window"),
            (pl.col("kind") == "initial").all().alias("never_changed"),
        )
    )
    held = audit.findings().filter(pl.col("family") == "pins")
    flags = held.group_by(pl.col("entity_id").alias("operator_id")).agg(
        pl.col("evidence")
        .filter(_still_held("weak_pins"))
        .str.json_path_match("$.weakness_class")
        .first()
        .alias("weakness_class"),
        _still_held("default_pins").any().alias("is_default"),
        _still_held("stale_pins").any().alias("is_stale"),
        pl.col("evidence")
        .filter(_still_shared())
        .str.json_path_match("$.group_size")
        .cast(pl.Int64)
        .max()
        .alias("group_size"),
        _still_held("reused_pins").any().alias("is_reused"),
    )
    operators = audit.table("operators").filter(
        pl.col("disabled_at").is_null() | (pl.col("disabled_at") > data_to)
    )
    roster = (
        operators.select("operator_id", "merchant_id", "terminal_id", "operator_no", "role")
        .join(latest, on="operator_id", how="left")
        .join(flags, on="operator_id", how="left")
        .with_columns(
            ((pl.lit(data_to) - pl.col("pin_set_at")).dt.total_seconds() // SECONDS_PER_DAY)
            .cast(pl.Int64)
            .alias("pin_age_days"),
            pl.col("weakness_class")
            .replace_strict(WEAKNESS_LABELS, default=None)
            .alias("weakness"),
            pl.col("weakness_class").is_not_null().alias("is_weak"),
            pl.col("is_default", "is_stale", "is_reused").fill_null(False),
            pl.col("group_size").fill_null(1).sub(1).alias("shared_with"),
            pl.col("changes_in_window").fill_null(0),
            pl.col("never_changed").fill_null(False),
        )
        .with_columns((pl.col("shared_with") > 0).alias("is_shared"))
    )
    return (
        roster.with_columns(pl.sum_horizontal(*ISSUES).alias("issues"))
        .select(
            "operator_id",
            "merchant_id",
            "terminal_id",
            "operator_no",
            "role",
            "pin_set_at",
            "pin_age_days",
            "set_kind",
            "set_by",
            "changes_in_window",
            "never_changed",
            "weakness",
            "is_weak",
            "is_default",
            "is_stale",
            "is_shared",
            "shared_with",
            "is_reused",
            "issues",
        )
        .sort(["issues", "pin_age_days", "operator_id"], descending=[True, True, False])
    )


def stale_operators(roster: pl.DataFrame) -> pl.DataFrame:
    """Operators whose current PIN a still-held ``stale_pins`` finding names, oldest PIN first.

    Examples
    --------
    >>> roster = pl.DataFrame({"operator_id": ["T1-01", "T1-02", "T2-01"],
    ...     "is_stale": [True, False, True], "pin_age_days": [400, 900, 700]})
    >>> stale_operators(roster).get_column("operator_id").to_list()
    ['T2-01', 'T1-01']
    """
    return roster.filter(pl.col("is_stale")).sort(
        ["pin_age_days", "operator_id"], descending=[True, False]
    )


def operators_with_problems(roster: pl.DataFrame) -> pl.DataFrame:
    """Operators with at least one PIN problem, most problems first."""
    return roster.filter(pl.col("issues") > 0)


def pin_audit_summary(roster: pl.DataFrame) -> pl.DataFrame:
    """The password audit's opening table: how many operators have each PIN problem.

    One row per problem (and 'operators audited', 'at least one problem'), with counts and
    shares for all operators, administrators and clerks.
    """
    any_issue = pl.col("issues") > 0
    rows = [
        ("operators audited", pl.col("operator_id").is_not_null()),
        *((label, pl.col(flag)) for flag, label in ISSUES.items()),
        ("at least one of these", any_issue),
    ]
    admin = pl.col("role") == "admin"
    return pl.concat(
        [
            roster.select(
                pl.lit(label).alias("problem"),
                condition.sum().cast(pl.Int64).alias("operators"),
                condition.mean().alias("share"),
                condition.filter(admin).sum().cast(pl.Int64).alias("administrators"),
                condition.filter(~admin).sum().cast(pl.Int64).alias("clerks"),
            )
            for label, condition in rows
        ]
    )


def weakness_classes(roster: pl.DataFrame) -> pl.DataFrame:
    """Operators holding a weak PIN, per weakness class and role: weakness, role, operators."""
    return (
        roster.filter(pl.col("is_weak"))
        .group_by("weakness", "role")
        .agg(pl.len().alias("operators"))
        .with_columns(pl.col("operators").sum().over("weakness").alias("class_total"))
        .sort(["class_total", "weakness", "role"], descending=[True, False, False])
    )


def pin_ages(
    roster: pl.DataFrame, *, band_days: int = AGE_BAND_DAYS, cap_days: int = AGE_BAND_CAP_DAYS
) -> pl.DataFrame:
    """Operators per PIN-age band and role: age_from_days, age_to_days, band, role, operators.

    Ages at or over ``cap_days`` share the last band.

    Examples
    --------
    >>> roster = pl.DataFrame({"pin_age_days": [3, 29, 45, 900, None],
    ...     "role": ["clerk", "clerk", "admin", "clerk", "clerk"]})
    >>> pin_ages(roster).select("band", "role", "operators").rows()
    [('0-30 days', 'clerk', 2), ('30-60 days', 'admin', 1), ('720+ days', 'clerk', 1)]
    """
    start = (pl.col("pin_age_days").clip(upper_bound=cap_days) // band_days) * band_days
    return (
        roster.filter(pl.col("pin_age_days").is_not_null())
        .group_by(start.alias("age_from_days"), "role")
        .agg(pl.len().alias("operators"))
        .with_columns(
            (pl.col("age_from_days") + band_days).alias("age_to_days"),
            pl.when(pl.col("age_from_days") >= cap_days)
            .then(pl.format("{}+ days", "age_from_days"))
            .otherwise(
                pl.format("{}-{} days", "age_from_days", pl.col("age_from_days") + band_days)
            )
            .alias("band"),
        )
        .sort("age_from_days", "role")
    )


def shared_pin_groups(audit: Audit) -> pl.DataFrame:
    """Groups of operators of one merchant on one PIN today.

    Columns: merchant_id, group, size, operators, since.

    A group is the operator of a still-held ``shared_pins`` finding and the others it names;
    each group is listed once, labelled by merchant ('M000005 group 1').
    """
    operators = audit.table("operators").select(
        "operator_id",
        pl.format(
            "{} {} at {}",
            pl.col("role").replace({"admin": "administrator", "clerk": "operator"}),
            "operator_no",
            "terminal_id",
        ).alias("who"),
    )
    shared = audit.findings().filter(_still_shared())
    schema = pl.Schema(
        [
            ("merchant_id", pl.String()),
            ("group", pl.String()),
            ("size", pl.Int64()),
            ("operators", pl.String()),
            ("since", pl.Datetime("us")),
        ]
    )
    if shared.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        shared.select(
            "merchant_id",
            pl.concat_list(
                pl.col("entity_id"),
                pl.col("evidence")
                .str.json_path_match("$.other_operator_ids")
                .str.json_decode(pl.List(pl.String)),
            )
            .list.sort()
            .alias("members"),
            pl.col("evidence")
            .str.json_path_match("$.shared_from")
            .str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
            .alias("since"),
        )
        .group_by("merchant_id", "members")
        .agg(pl.col("since").min())
        .sort("merchant_id", "members")
        .with_columns(
            pl.format(
                "{} group {}", "merchant_id", pl.int_range(1, pl.len() + 1).over("merchant_id")
            ).alias("group"),
            pl.col("members").list.len().cast(pl.Int64).alias("size"),
        )
        .explode("members")
        .join(operators, left_on="members", right_on="operator_id", how="left")
        .group_by("merchant_id", "group", "size", "since")
        .agg(pl.col("who").sort().str.join(", ").alias("operators"))
        .select(schema.names())
        .sort(["size", "merchant_id", "group"], descending=[True, False, False])
    )


def pin_findings(audit: Audit, rule: str) -> pl.DataFrame:
    """The run's findings of one PIN rule: operator, terminal, set when and by whom, still held,
    and the time held in words ('since D, still held' or 'from D to E')."""
    return (
        audit.findings()
        .filter(pl.col("rule") == rule)
        .select(
            "finding_id",
            "severity",
            "entity_id",
            pl.col("evidence").str.json_path_match("$.terminal_id").alias("terminal_id"),
            pl.col("evidence").str.json_path_match("$.set_by").alias("set_by"),
            pl.col("evidence")
            .str.json_path_match("$.set_at")
            .str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
            .alias("set_at"),
            (pl.col("evidence").str.json_path_match("$.still_held") == "true").alias("still_held"),
            held().alias("held"),
            "summary",
            "is_new",
        )
    )
