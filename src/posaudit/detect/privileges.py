"""Privilege audit: who may do what on a terminal, and how those rights are given and used.

Every operator of a terminal has rights (query, sale, refund, transfer, manage) that its
administrator grants and revokes; ``operator_events`` logs each addition, deletion, grant and
revoke, and who made it (docs/domain.md, "Operator management"). The rules here find the
rights that are wrong in themselves and the rights that were given to be misused:

- ``permission_granted_then_used``: a refund right granted and used within hours: the
  administrator and the clerk making a refund possible just for it;
- ``refunds_after_admin_reset``: an administrator resets another operator's PIN and refunds
  follow under that operator's number soon after: the administrator now knows the PIN;
- ``manage_and_refund``: a clerk who holds both manage and refund rights can grant what it
  uses, with no second person (segregation of duties). Every administrator holds both by
  design, so administrators are left out;
- ``never_logged_in``: a clerk account that could sell or refund and has not logged in while
  its terminal's other operators logged in many times: a ghost account anyone who knows its
  PIN can use without a colleague noticing. Administrators, who log in only for transfers
  and unlocks, are left out;
- ``common_default_pins``: an operator whose PIN is still the common default for its number
  on its terminal family (the first clerk's, and the administrator's where the family takes
  8 digits; docs/domain.md): the first thing anyone tries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.detect.findings import to_findings
from posaudit.detect.pins import (
    _WHO_EN,
    _WHO_FIELDS,
    _WHO_ZH,
    PIN_HISTORY,
    _day,
    _held_days,
    _in_data_window,
    _pin_periods,
    _stamp,
    _who,
)
from posaudit.detect.registry import rule
from posaudit.detect.sentences import DAY, DECIMAL, MINUTE, NUMBER, Money, Sentence, Value, Words

FAMILY: Final = "privileges"
SECONDS_PER_HOUR: Final = 3_600
# How far back a clerk's logins are read to tell a ghost account: two months of shifts.
LOGIN_LOOKBACK: Final = timedelta(days=60)
FAMILY_WORDS: Final[dict[str, tuple[str, str]]] = {
    "esign": ("electronic-signature", "电子签名"),
    "smart": ("smart", "智能"),
}


def _operators(operators: pl.LazyFrame) -> pl.LazyFrame:
    return operators.select(
        pl.col("operator_id").cast(pl.String),
        pl.col("operator_no").cast(pl.String),
        pl.col("terminal_id").cast(pl.String).alias("home_terminal_id"),
        pl.col("merchant_id").cast(pl.String),
        pl.col("role").cast(pl.String),
        pl.col("can_sale").cast(pl.Boolean),
        pl.col("can_refund").cast(pl.Boolean),
        pl.col("can_manage").cast(pl.Boolean),
        pl.col("created_at").cast(pl.Datetime("us")),
        pl.col("disabled_at").cast(pl.Datetime("us")),
    ).unique(subset="operator_id", keep="any")


def _operator_findings(
    frame: pl.LazyFrame,
    *,
    rule_name: str,
    score: float | pl.Expr,
    summary: pl.Expr,
    evidence: dict[str, pl.Expr],
) -> pl.LazyFrame:
    # Each is a control to correct or an incident to look into, not yet money proven lost:
    # medium, inside the paging budget by construction (docs/detection.md#severity).
    return to_findings(
        frame.with_columns(pl.col("home_terminal_id").alias("terminal_id")),
        entity_id="operator_id",
        rule=rule_name,
        family=FAMILY,
        entity_type="operator",
        severity="medium",
        score=score,
        summary=summary,
        evidence=evidence,
    )


def _refunds_after(
    starts: pl.LazyFrame, approved_refunds: pl.LazyFrame, hours: int
) -> pl.LazyFrame:
    """Per row of ``starts`` (operator_id, start_at): the operator's approved refunds in the
    ``hours`` after it: count, amount, first and last time, ids."""
    refunds = approved_refunds.select(
        pl.col("operator_id").cast(pl.String),
        pl.col("txn_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us")),
        pl.col("amount_fen").cast(pl.Int64),
    )
    return (
        starts.join(refunds, on="operator_id", how="inner")
        .filter(
            (pl.col("ts") >= pl.col("start_at"))
            & (pl.col("ts") <= pl.col("start_at") + pl.duration(hours=hours))
        )
        .sort("ts", "txn_id")
        .group_by("operator_id", "start_at")
        .agg(
            pl.len().alias("refund_count"),
            pl.col("amount_fen").sum().alias("refund_amount_fen"),
            pl.col("ts").min().alias("first_refund_at"),
            pl.col("ts").max().alias("window_end"),
            pl.col("txn_id").alias("refund_txn_ids"),
        )
    )


GRANTED_THEN_USED: Final = Sentence(
    en=_WHO_EN + " was granted the refund right on {granted_at} and made {refund_count} "
    "refund(s) of {refund_amount} within {hours_to_use} hours, the first at {first_refund_at}",
    zh=_WHO_ZH + "于 {granted_at} 获得退款权限，{hours_to_use} 小时内即退款 {refund_count} 笔，"
    "共 {refund_amount}，首笔在 {first_refund_at}",
    fields={
        **_WHO_FIELDS,
        "granted_at": Value(MINUTE),
        "refund_count": Value(NUMBER),
        "refund_amount": Money(),
        "hours_to_use": Value(DECIMAL),
        "first_refund_at": Value(MINUTE),
    },
)


def _minute(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%d %H:%M")


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=timedelta(days=2),
    scenarios=("privilege_grant_abuse",),
)
def permission_granted_then_used(
    operator_events: pl.LazyFrame,
    approved_refunds: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    max_hours: int = 24,  # a right given for a shift's need is used the same day or not at all
) -> pl.LazyFrame:
    """A refund right granted to an operator and used for refunds within ``max_hours``.

    A promotion is used when a customer next returns something, days later as a rule; a
    right given for the afternoon and used at once is a refund made possible just for
    itself, with the administrator's help. Rights granted when the operator was added (the
    same minute) are its ordinary rights and are left out. One finding per grant, from the
    grant to its last refund in the window.

    Parameters
    ----------
    max_hours
        Longest time from the grant to the first refund that still counts as at once.
    """
    events = operator_events.select(
        pl.col("operator_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us")),
        pl.col("kind").cast(pl.String),
        pl.col("permission").cast(pl.String),
        pl.col("actor").cast(pl.String),
        pl.col("actor_operator_id").cast(pl.String),
        pl.col("event_id").cast(pl.String),
    )
    added = (
        events.filter(pl.col("kind") == "added")
        .group_by("operator_id")
        .agg(pl.col("ts").min().alias("added_at"))
    )
    grants = (
        events.filter((pl.col("kind") == "granted") & (pl.col("permission") == "refund"))
        .join(added, on="operator_id", how="left")
        .filter(
            pl.col("added_at").is_null()
            | (pl.col("ts") - pl.col("added_at") > pl.duration(minutes=1))
        )
        .select(
            "operator_id",
            pl.col("ts").alias("start_at"),
            pl.col("event_id").alias("grant_event_id"),
            "actor",
            "actor_operator_id",
        )
    )
    hours_to_use = (
        (pl.col("first_refund_at") - pl.col("start_at")).dt.total_seconds() / SECONDS_PER_HOUR
    ).round(1)
    return (
        _refunds_after(grants.select("operator_id", "start_at"), approved_refunds, max_hours)
        .join(grants, on=["operator_id", "start_at"], how="inner")
        .join(_operators(operators), on="operator_id", how="inner")
        .with_columns(pl.col("start_at").alias("window_start"), hours_to_use.alias("hours"))
        .pipe(
            _operator_findings,
            rule_name="permission_granted_then_used",
            score=(0.95 - 0.2 * pl.col("hours") / max(max_hours, 1)).clip(0.7, 0.95),
            summary=GRANTED_THEN_USED.expr(
                **_who_here(),
                granted_at=_minute("start_at"),
                refund_count="refund_count",
                refund_amount="refund_amount_fen",
                hours_to_use="hours",
                first_refund_at=_minute("first_refund_at"),
            ),
            evidence={
                "grant_event_id": pl.col("grant_event_id"),
                "granted_by": pl.col("actor"),
                "granted_by_operator_id": pl.col("actor_operator_id"),
                "granted_at": _stamp("start_at"),
                "first_refund_at": _stamp("first_refund_at"),
                "hours_to_use": pl.col("hours"),
                "refund_count": pl.col("refund_count"),
                "refund_amount_fen": pl.col("refund_amount_fen"),
                "refund_txn_ids": pl.col("refund_txn_ids"),
                "max_hours": pl.lit(max_hours),
            },
        )
    )


def _who_here() -> dict[str, pl.Expr | str]:
    who = _who()
    who["terminal_id"] = "home_terminal_id"
    return who


RESET_THEN_REFUND: Final = Sentence(
    en=_WHO_EN + " had its PIN reset by the administrator on {reset_at} with no failed login "
    "before it, and {refund_count} "
    "refund(s) of {refund_amount} followed under its number within {max_hours} hours",
    zh=_WHO_ZH
    + "于 {reset_at} 被管理员重置密码（此前本人无失败登录），随后 {max_hours} 小时内以其编号退款 "
    "{refund_count} 笔，共 {refund_amount}",
    fields={
        **_WHO_FIELDS,
        "reset_at": Value(MINUTE),
        "refund_count": Value(NUMBER),
        "refund_amount": Money(),
        "max_hours": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=timedelta(days=1),
    scenarios=("reset_then_refund",),
)
def refunds_after_admin_reset(
    pin_events: pl.LazyFrame,
    approved_refunds: pl.LazyFrame,
    operators: pl.LazyFrame,
    login_events: pl.LazyFrame,
    *,
    asked_within_minutes: int = 60,  # a forgotten PIN's wrong tries come minutes before its reset
    max_hours: int = 4,  # half a shift: the reset PIN has not yet reached its owner's hands
    min_refunds: int = 2,  # one refund after a reset is an ordinary return; two are a pattern
) -> pl.LazyFrame:
    """At least ``min_refunds`` refunds under an operator's number within ``max_hours`` of an
    administrator resetting its PIN.

    Whoever resets a PIN knows the new one until its owner changes it. An operator who
    forgot its PIN has tried it and failed first, and asks for the reset; a reset with no
    failed login of the operator's in the ``asked_within_minutes`` before it is one nobody
    asked for, and refunds one after the other straight after it are the administrator using
    the operator's number, so the refunds carry someone else's name. One finding per such
    reset, from the reset to the last refund in the window.

    Parameters
    ----------
    max_hours
        How long after the reset refunds count.
    min_refunds
        Fewest refunds in that time that make a finding.
    asked_within_minutes
        A failed login of the operator's this long before the reset means it asked for it.
    """
    failed = login_events.filter(
        pl.col("outcome").cast(pl.String).is_in(["wrong_pin", "locked"])
    ).select(pl.col("operator_id").cast(pl.String), pl.col("ts").cast(pl.Datetime("us")))
    resets = pin_events.filter(
        (pl.col("kind").cast(pl.String) == "reset") & (pl.col("actor").cast(pl.String) == "admin")
    ).select(
        pl.col("operator_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us")).alias("start_at"),
        pl.col("event_id").cast(pl.String).alias("pin_event_id"),
    )
    asked = (
        resets.join(failed, on="operator_id", how="inner")
        .filter(
            (pl.col("ts") <= pl.col("start_at"))
            & (pl.col("ts") >= pl.col("start_at") - pl.duration(minutes=asked_within_minutes))
        )
        .select("operator_id", "start_at")
        .unique()
    )
    resets = resets.join(asked, on=["operator_id", "start_at"], how="anti")
    return (
        _refunds_after(resets.select("operator_id", "start_at"), approved_refunds, max_hours)
        .filter(pl.col("refund_count") >= min_refunds)
        .join(resets, on=["operator_id", "start_at"], how="inner")
        .unique(subset=["operator_id", "start_at"], keep="any")
        .join(_operators(operators), on="operator_id", how="inner")
        .with_columns(pl.col("start_at").alias("window_start"))
        .pipe(
            _operator_findings,
            rule_name="refunds_after_admin_reset",
            score=(0.7 + 0.05 * pl.col("refund_count")).clip(0.7, 0.95),
            summary=RESET_THEN_REFUND.expr(
                **_who_here(),
                reset_at=_minute("start_at"),
                refund_count="refund_count",
                refund_amount="refund_amount_fen",
                max_hours=pl.lit(max_hours),
            ),
            evidence={
                "pin_event_id": pl.col("pin_event_id"),
                "reset_at": _stamp("start_at"),
                "first_refund_at": _stamp("first_refund_at"),
                "refund_count": pl.col("refund_count"),
                "refund_amount_fen": pl.col("refund_amount_fen"),
                "refund_txn_ids": pl.col("refund_txn_ids"),
                "max_hours": pl.lit(max_hours),
                "min_refunds": pl.lit(min_refunds),
                "asked_within_minutes": pl.lit(asked_within_minutes),
            },
        )
    )


MANAGE_AND_REFUND: Final = Sentence(
    en=_WHO_EN + " is a clerk holding both the manage and the refund right on {data_end}: it "
    "can grant itself what it uses; take one of them away",
    zh=_WHO_ZH + "截至 {data_end} 作为普通操作员同时拥有管理和退款权限，可自行授权并使用；"
    "应收回其中一项",
    fields={**_WHO_FIELDS, "data_end": Value(DAY)},
)


def _window(data_window: pl.LazyFrame) -> pl.LazyFrame:
    return data_window.select(
        pl.col("data_from").cast(pl.Datetime("us")),
        pl.col("data_to").cast(pl.Datetime("us")),
    ).head(1)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=timedelta(days=1),
    scenarios=("manage_and_refund",),
)
def manage_and_refund(operators: pl.LazyFrame, data_window: pl.LazyFrame) -> pl.LazyFrame:
    """Clerks who hold both the manage and the refund right (segregation of duties).

    The manage right adds operators and grants rights; the refund right pays money back.
    In one clerk's hands nobody else takes part in a refund the clerk made possible. Every
    administrator holds both by design (the acquirer's terminal model), so only clerks are
    found; a deleted clerk is left out. One finding per clerk over the audited window.
    """
    return (
        _operators(operators)
        .join(_window(data_window), how="cross")
        .filter(
            (pl.col("role") != "admin")
            & pl.col("can_manage")
            & pl.col("can_refund")
            & (pl.col("disabled_at").is_null() | (pl.col("disabled_at") > pl.col("data_to")))
        )
        .with_columns(
            pl.max_horizontal("data_from", "created_at").alias("window_start"),
            pl.col("data_to").alias("window_end"),
        )
        .pipe(
            _operator_findings,
            rule_name="manage_and_refund",
            score=0.8,
            summary=MANAGE_AND_REFUND.expr(**_who_here(), data_end=_day("data_to")),
            evidence={
                "operator_no": pl.col("operator_no"),
                "terminal_id": pl.col("home_terminal_id"),
                "can_manage": pl.col("can_manage"),
                "can_refund": pl.col("can_refund"),
            },
        )
    )


NEVER_LOGGED_IN: Final = Sentence(
    en=_WHO_EN + " has not logged in once since {idle_since} ({idle_days} days), while its "
    "terminal's other operators logged in {terminal_logins} times; it can {rights}: delete "
    "the account or find out who uses its PIN",
    zh=_WHO_ZH + "自 {idle_since} 起（{idle_days} 天）从未登录，而同一终端的其他操作员登录了 "
    "{terminal_logins} 次；该账户可{rights}：应删除账户或查明谁在使用其密码",
    fields={
        **_WHO_FIELDS,
        "idle_since": Value(DAY),
        "idle_days": Value(NUMBER),
        "terminal_logins": Value(NUMBER),
        "rights": Words(
            {
                "sell": ("sell", "收款"),
                "sell_and_refund": ("sell and refund", "收款和退款"),
            }
        ),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="terminal_id",
    lookback=LOGIN_LOOKBACK,
    scenarios=("ghost_operator",),
    # it counts the logins since the account was added, at most the look-back before the end
    reads_last={"login_events": LOGIN_LOOKBACK},
)
def never_logged_in(
    operators: pl.LazyFrame,
    login_events: pl.LazyFrame,
    data_window: pl.LazyFrame,
    *,
    min_expected_logins: int = 8,  # a fair share of 8 shifts missed by chance: < 1 in 10,000
) -> pl.LazyFrame:
    """Clerk accounts that can sell or refund and never logged in while their terminal's
    other operators did, at least ``min_expected_logins`` times each on average.

    A clerk who works logs in every shift it works; how many shifts that is depends on the
    terminal, so the rule measures it there: the successful logins on the clerk's home
    terminal since the account was added (or the data began, at most two months back)
    divided among the operators who made them and the clerk. An account that should have
    had that many logins and had none is not used by its owner: a leaver never deleted, or
    an account made for someone to use later. Administrators log in only for transfers and
    unlocks and are left out, as are deleted accounts.

    Parameters
    ----------
    min_expected_logins
        Fewest logins the clerk's fair share of the terminal's logins must reach.
    """
    window = _window(data_window)
    clerks = (
        _operators(operators)
        .join(window, how="cross")
        .filter(
            (pl.col("role") != "admin")
            & (pl.col("can_sale") | pl.col("can_refund"))
            & (pl.col("disabled_at").is_null() | (pl.col("disabled_at") > pl.col("data_to")))
        )
        .with_columns(
            # the finding's start stays put as the data grows; the logins are counted over
            # at most the look-back before the end
            pl.max_horizontal("created_at", "data_from").alias("added_or_first"),
            pl.max_horizontal("created_at", "data_from", pl.col("data_to") - LOGIN_LOOKBACK).alias(
                "idle_since"
            ),
        )
        .filter(pl.col("idle_since") < pl.col("data_to"))
    )
    logins = login_events.filter(pl.col("outcome").cast(pl.String) == "success").select(
        pl.col("terminal_id").cast(pl.String).alias("home_terminal_id"),
        pl.col("operator_id").cast(pl.String).alias("login_operator_id"),
        pl.col("ts").cast(pl.Datetime("us")),
    )
    own = (
        clerks.select("operator_id", "idle_since")
        .join(
            login_events.filter(pl.col("outcome").cast(pl.String) == "success").select(
                pl.col("operator_id").cast(pl.String), pl.col("ts").cast(pl.Datetime("us"))
            ),
            on="operator_id",
            how="inner",
        )
        .filter(pl.col("ts") >= pl.col("idle_since"))
        .select("operator_id")
        .unique()
    )
    at_terminal = (
        clerks.join(own, on="operator_id", how="anti")
        .join(logins, on="home_terminal_id", how="inner")
        .filter(
            (pl.col("ts") >= pl.col("idle_since"))
            & (pl.col("ts") <= pl.col("data_to"))
            & (pl.col("login_operator_id") != pl.col("operator_id"))
        )
        .group_by("operator_id")
        .agg(
            pl.len().alias("terminal_logins"),
            pl.col("login_operator_id").drop_nulls().n_unique().alias("terminal_operators"),
        )
    )
    expected = pl.col("terminal_logins") / (pl.col("terminal_operators") + 1)
    return (
        clerks.join(at_terminal, on="operator_id", how="inner")
        .with_columns(expected.alias("expected_logins"))
        .filter(pl.col("expected_logins") >= min_expected_logins)
        .with_columns(
            pl.col("added_or_first").alias("window_start"),
            pl.col("data_to").alias("window_end"),
            _held_days("idle_since", "data_to").alias("idle_days"),
        )
        .pipe(
            _operator_findings,
            rule_name="never_logged_in",
            score=(0.6 + 0.01 * pl.col("expected_logins")).clip(0.6, 0.9),
            summary=NEVER_LOGGED_IN.expr(
                **_who_here(),
                idle_since=_day("idle_since"),
                idle_days="idle_days",
                terminal_logins="terminal_logins",
                rights=pl.when(pl.col("can_refund"))
                .then(pl.lit("sell_and_refund"))
                .otherwise(pl.lit("sell")),
            ),
            evidence={
                "operator_no": pl.col("operator_no"),
                "terminal_id": pl.col("home_terminal_id"),
                "added_at": _stamp("created_at"),
                "idle_since": _stamp("idle_since"),
                "idle_days": pl.col("idle_days"),
                "terminal_logins": pl.col("terminal_logins"),
                "terminal_operators": pl.col("terminal_operators"),
                "expected_logins": pl.col("expected_logins").round(1),
                "can_refund": pl.col("can_refund"),
                "min_expected_logins": pl.lit(min_expected_logins),
            },
        )
    )


COMMON_DEFAULT_PINS: Final = Sentence(
    en=_WHO_EN + " has held the common default PIN for its number on {family} terminals since "
    "{since}, unchanged; have it changed now",
    zh=_WHO_ZH + "自 {since} 起使用{family}终端上该编号的常见默认密码，至今未更改；应立即更换",
    fields={
        **_WHO_FIELDS,
        "family": Words(FAMILY_WORDS, other=r"[a-z_]+"),
        "since": Value(DAY),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=PIN_HISTORY,
    # a state, as the PIN rules' (posaudit.detect.pins): open while the PIN is held
    states=True,
    scenarios=("common_default_pin",),
)
def common_default_pins(
    pin_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    terminals: pl.LazyFrame,
    common_default_pin_digests: pl.LazyFrame,
    data_window: pl.LazyFrame,
) -> pl.LazyFrame:
    """Operators whose current PIN is the common default for their operator number on their
    terminal family (docs/domain.md lists them: the first clerk's, and on smart terminals,
    which take 8 digits, the administrator's).

    Installers and administrators type these when they add an operator, and operators keep
    them; every guide to the terminal lists them. ``common_default_pin_digests`` holds their
    digests under the deployment key with the operator number and family each applies to
    (null: every family); the runner makes it, so no PIN is written anywhere. One finding
    per operator, open from the day the PIN was set (no ``window_end``: the PIN's change
    resolves it).
    """
    families = terminals.select(
        pl.col("terminal_id").cast(pl.String), pl.col("family").cast(pl.String)
    ).unique(subset="terminal_id", keep="any")
    defaults = common_default_pin_digests.select(
        pl.col("pin_digest").cast(pl.String),
        pl.col("operator_no").cast(pl.String).alias("default_operator_no"),
        pl.col("family").cast(pl.String).alias("default_family"),
    )
    applies = (pl.col("default_operator_no") == pl.col("operator_no")) & (
        pl.col("default_family").is_null() | (pl.col("default_family") == pl.col("family"))
    )
    periods = _pin_periods(pin_events, operators, data_window).filter(
        pl.col("is_current") & _in_data_window()
    )
    # A run finds the columns a rule reads by running it over empty tables, and Polars reads
    # neither side of a join it knows will be empty: so the family comes by concatenation and
    # the defaults by a left join, both of which read every part.
    return (
        pl.concat([families, periods], how="diagonal_relaxed")
        .with_columns(pl.col("family").drop_nulls().first().over("terminal_id"))
        .filter(pl.col("operator_id").is_not_null())
        .join(defaults, on="pin_digest", how="left")
        .filter(applies.fill_null(False))
        .unique(subset=["operator_id", "pin_event_id"], keep="any")
        .with_columns(
            pl.col("terminal_id").alias("home_terminal_id"),
            pl.col("period_start").alias("window_start"),
            pl.lit(None, dtype=pl.Datetime("us")).alias("window_end"),
        )
        .pipe(
            _operator_findings,
            rule_name="common_default_pins",
            score=pl.when(pl.col("role") == "admin").then(0.95).otherwise(0.9),
            summary=COMMON_DEFAULT_PINS.expr(
                **_who(),
                family="family",
                since=_day("period_start"),
            ),
            evidence={
                "pin_event_id": pl.col("pin_event_id"),
                "operator_no": pl.col("operator_no"),
                "terminal_id": pl.col("terminal_id"),
                "family": pl.col("family"),
                "set_kind": pl.col("kind"),
                "set_by": pl.col("actor"),
                "set_at": _stamp("period_start"),
            },
        )
    )


# Each rule's sentence, by rule name: what the report writes each finding's sentence from.
SENTENCES: Final[dict[str, Sentence]] = {
    "permission_granted_then_used": GRANTED_THEN_USED,
    "refunds_after_admin_reset": RESET_THEN_REFUND,
    "manage_and_refund": MANAGE_AND_REFUND,
    "never_logged_in": NEVER_LOGGED_IN,
    "common_default_pins": COMMON_DEFAULT_PINS,
}
