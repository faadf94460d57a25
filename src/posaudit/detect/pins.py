"""PIN hygiene: operators whose PIN is weak, the acquirer's default, stale, shared or reused.

An operator's 6-digit PIN is the only thing between a passer-by and the terminal's refund and
transfer menus. The acquirer tells operators to avoid runs and repeats, to change the PIN
every 90 days (PCI DSS v4.0 8.3.9) to none of their last 4 (8.3.7), and never to share it;
what people do is another matter (docs/domain.md). Each rule here finds one break of those rules:

- ``weak_pins``: a PIN held during the audited window is in a weakness class (repeated digit,
  run, a repeated block of digits, near-run, counting sequence, keypad shape, famous or lucky
  number, date, a PIN common in leaked password lists, or built from the operator's own
  number): a guesser's first tries;
- ``default_pins``: an operator still holds the acquirer's default PIN, issued at installation
  and never changed: public knowledge, and on an administrator it opens every setting;
- ``stale_pins``: a PIN kept longer than 90 days: every day widens the circle that has seen it;
- ``shared_pins``: operators of one merchant holding the same PIN at the same time: nothing
  any of them does can be attributed to a person, and any of them can act as the others;
- ``reused_pins``: a change or reset back to one of the operator's last 4 PINs: a change in
  name only.

The rules never see a PIN. The store keeps ``pin_digest``, a keyed HMAC-SHA256 under the
deployment's key, and the audit works the way a payment HSM's PIN exclusion list does: the
runner digests every weak candidate PIN (and the acquirer's default PINs) under the same key
(:func:`posaudit.pins.exclusion_list`) and the rules compare digests. Equal digests under one key
also reveal two operators on one PIN and a change back to an old one. Findings name the
weakness class, never the PIN nor its digest.

A PIN *period* is the time an operator held one PIN: from a PIN event to the operator's next
PIN event, or to the operator's ``disabled_at``, or, still held, to no end yet. PIN events go
back to each operator's creation, so the rules read the whole history (their look-back is
unbounded in practice) and report the periods that reach into the audited window
``[data_from, data_to]``.

The findings describe a state: a condition from when it began until a PIN event (or the
operator's removal) ends it. A state still held at the end of the data is an open finding,
without a ``window_end``, and nothing in it names the end of the data: the same finding
tomorrow, until a PIN event changes it or a stale PIN passes its next whole multiple of the
age limit (:data:`STATE_AGE_PARAMETER`). A nightly run re-decides only those operators.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.detect.findings import Severity, to_findings
from posaudit.detect.registry import rule
from posaudit.detect.sentences import (
    DAY,
    NUMBER,
    OPERATOR_ROLES,
    Clause,
    Items,
    Kind,
    Operator,
    Sentence,
    Value,
    Words,
)
from posaudit.pins import WEAKNESS_CLASSES, WEAKNESS_LABELS

FAMILY: Final = "pins"
# The whole PIN history: a PIN may be held for years (operators who never change), and reuse
# looks 4 PINs back. PIN events are few (a handful per operator-year), so this costs little.
PIN_HISTORY: Final = timedelta(days=100 * 365)
SECONDS_PER_DAY: Final = 86_400
# The parameter whose whole multiples of an unchanged PIN's age change a finding: the night
# a PIN passes one re-decides its operator (posaudit.run.plan).
STATE_AGE_PARAMETER: Final = "max_age_days"

# Strength of the finding: how early a guesser reaches the class (smaller classes, higher).
SCORE_BY_CLASS: Final[dict[str, float]] = {
    "repeated_digit": 0.95,
    "ascending_run": 0.95,
    "descending_run": 0.9,
    "common_pin": 0.85,
    "operator_number": 0.85,
    "repeated_pair": 0.8,
    "repeated_triple": 0.8,
    "tripled_digits": 0.8,
    "famous_number": 0.8,
    "mirrored": 0.75,
    "doubled_digits": 0.75,
    "keypad_shape": 0.75,
    "counting": 0.75,
    "near_run": 0.7,
    "lucky_number": 0.7,
    "date": 0.6,
}
# A PIN matching several rows of the exclusion list is reported under its first class.
CLASS_PRIORITY: Final[dict[str, int]] = {name: i for i, name in enumerate(WEAKNESS_CLASSES)}
# Who set a PIN, as a sentence names them.
ACTOR_WORDS: Final[dict[str, tuple[str, str]]] = {
    "self": ("the operator", "操作员本人"),
    "admin": ("the administrator", "管理员"),
    "service_desk": ("the service desk", "服务台"),
    "acquirer": ("the acquirer", "收单机构"),
}
_WEAKNESS_ZH: Final[dict[str, str]] = {
    "repeated_digit": "重复数字",
    "ascending_run": "升序连续数字",
    "descending_run": "降序连续数字",
    "repeated_pair": "两位重复",
    "repeated_triple": "三位重复",
    "tripled_digits": "两组三连",
    "mirrored": "前后对称",
    "doubled_digits": "成对数字",
    "near_run": "近似连续数字",
    "counting": "等差计数",
    "keypad_shape": "键盘图形",
    "famous_number": "著名数字",
    "lucky_number": "吉利数字",
    "date": "日期",
    "common_pin": "常见密码",
    "operator_number": "包含操作员编号",
}
# Each weakness class in words, English and Chinese.
WEAKNESS_WORDS: Final[dict[str, tuple[str, str]]] = {
    name: (WEAKNESS_LABELS[name], _WEAKNESS_ZH[name]) for name in WEAKNESS_CLASSES
}
# Sharing among this many operators or more is a habit of the shop, not a slip of two people.
SHARED_GROUP_HABIT: Final = 3


# --- shared steps -------------------------------------------------------------------------


def _pin_periods(
    pin_events: pl.LazyFrame, operators: pl.LazyFrame, data_window: pl.LazyFrame
) -> pl.LazyFrame:
    """One row per PIN held: the event that set it and the operator who held it.

    Columns: pin_event_id, operator_id, operator_no, terminal_id, merchant_id, role, kind,
    actor, pin_digest, period_start, period_end (the operator's next PIN event, its
    ``disabled_at`` or ``data_to``, whichever comes first), is_current (still held at
    ``data_to``: the state has no end yet), data_from, data_to. Events after ``data_to`` are
    not yet history and are left out; operators missing from ``operators`` are left out (no
    merchant to name).
    """
    window = data_window.select(
        pl.col("data_from").cast(pl.Datetime("us")),
        pl.col("data_to").cast(pl.Datetime("us")),
    ).head(1)
    people = operators.select(
        pl.col("operator_id").cast(pl.String),
        pl.col("operator_no").cast(pl.String),
        pl.col("terminal_id").cast(pl.String),
        pl.col("merchant_id").cast(pl.String),
        pl.col("role").cast(pl.String),
        pl.col("disabled_at").cast(pl.Datetime("us")),
    ).unique(subset="operator_id", keep="any")
    disabled = pl.col("disabled_at").is_not_null() & (pl.col("disabled_at") <= pl.col("data_to"))
    return (
        pin_events.select(
            pl.col("event_id").cast(pl.String).alias("pin_event_id"),
            pl.col("ts").cast(pl.Datetime("us")).alias("period_start"),
            pl.col("operator_id").cast(pl.String),
            pl.col("kind").cast(pl.String),
            pl.col("actor").cast(pl.String),
            pl.col("pin_digest").cast(pl.String),
        )
        .join(people, on="operator_id", how="inner")
        .join(window, how="cross")
        .filter(pl.col("period_start") <= pl.col("data_to"))
        # a PIN set after the operator was disabled was never usable
        .filter(pl.col("disabled_at").is_null() | (pl.col("period_start") < pl.col("disabled_at")))
        .sort("operator_id", "period_start", "pin_event_id")
        .with_columns(pl.col("period_start").shift(-1).over("operator_id").alias("next_set_at"))
        .with_columns(
            pl.min_horizontal("next_set_at", "disabled_at", "data_to").alias("period_end"),
            (pl.col("next_set_at").is_null() & ~disabled).alias("is_current"),
        )
        .drop("next_set_at", "disabled_at")
    )


def _state_end(column: str = "period_end") -> pl.Expr:
    """A finding's end: the period's, or none for a PIN still held (an open state)."""
    return pl.when(pl.col("is_current")).then(None).otherwise(pl.col(column))


def _in_data_window() -> pl.Expr:
    """The period reaches into the audited window (every period starts before its end)."""
    return (pl.col("period_end") >= pl.col("data_from")) & (
        pl.col("period_start") <= pl.col("data_to")
    )


def _day(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%d")


def _stamp(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%S")


def _held_days(start: str = "period_start", end: str = "period_end") -> pl.Expr:
    """Whole days between two timestamps."""
    return ((pl.col(end) - pl.col(start)).dt.total_seconds() // SECONDS_PER_DAY).cast(pl.Int64)


def _role() -> pl.Expr:
    """The operator's role as :data:`OPERATOR_ROLES` keys it: administrators, everyone else."""
    return pl.when(pl.col("role") == "admin").then(pl.lit("admin")).otherwise(pl.lit("operator"))


# Every PIN sentence opens with the operator: 'operator 03 at terminal T000123 of merchant
# M00042' ('administrator 00' for administrators).
_WHO_EN: Final = "{operator} at terminal {terminal_id} of merchant {merchant_id}"
_WHO_ZH: Final = "商户 {merchant_id} 终端 {terminal_id} 的{operator}"
_WHO_FIELDS: Final[dict[str, Kind]] = {
    "operator": Operator(terminal="terminal_id", role="role"),
    "role": Words(OPERATOR_ROLES),
    "terminal_id": Value(),
    "merchant_id": Value(),
}


def _who() -> dict[str, pl.Expr | str]:
    """The values of the fields every PIN sentence opens with."""
    return {
        "operator": "operator_no",
        "role": _role(),
        "terminal_id": "terminal_id",
        "merchant_id": "merchant_id",
    }


def _held() -> pl.Expr:
    """Whether the sentence speaks of a PIN still held ('still') or one changed ('past')."""
    return pl.when(pl.col("is_current")).then(pl.lit("still")).otherwise(pl.lit("past"))


def _period_evidence() -> dict[str, pl.Expr]:
    """What every finding on one PIN period reports: the event that set it, never the PIN."""
    return {
        "pin_event_id": pl.col("pin_event_id"),
        "operator_no": pl.col("operator_no"),
        "terminal_id": pl.col("terminal_id"),
        "set_kind": pl.col("kind"),
        "set_by": pl.col("actor"),
        "set_at": _stamp("period_start"),
        # none while still held: an open state names no end
        "held_until": pl.when(pl.col("is_current")).then(None).otherwise(_stamp("period_end")),
        "still_held": pl.col("is_current"),
    }


def _closed_held_days() -> pl.Expr:
    """Whole days a changed PIN was held; none for one still held (its age grows daily)."""
    return pl.when(pl.col("is_current")).then(None).otherwise(_held_days())


def _operator_findings(
    frame: pl.LazyFrame,
    *,
    rule_name: str,
    severity: Severity | pl.Expr,
    score: float | pl.Expr,
    summary: pl.Expr,
    evidence: dict[str, pl.Expr],
) -> pl.LazyFrame:
    return to_findings(
        frame,
        entity_id="operator_id",
        rule=rule_name,
        family=FAMILY,
        entity_type="operator",
        severity=severity,
        score=score,
        summary=summary,
        evidence=evidence,
    )


# --- rules --------------------------------------------------------------------------------

WEAK_PINS: Final = Sentence(
    en=_WHO_EN + " {held}",
    zh=_WHO_ZH + "{held}",
    fields={
        **_WHO_FIELDS,
        "held": Clause(
            {
                "still": (
                    "has held a weak PIN ({weakness}) since {since}, still held; have it changed",
                    "自 {since} 起使用弱密码（{weakness}），至今仍在使用；应立即更换",
                ),
                "past": (
                    "held a weak PIN ({weakness}) from {since} to {until}",
                    "在 {since} 至 {until} 期间使用弱密码（{weakness}）",
                ),
            }
        ),
        "weakness": Words(WEAKNESS_WORDS, other=r"[a-z_]+"),
        "since": Value(DAY),
        "until": Value(DAY),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=PIN_HISTORY,
    states=True,
    scenarios=("weak_pin",),
)
def weak_pins(
    pin_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    weak_pin_digests: pl.LazyFrame,
    data_window: pl.LazyFrame,
) -> pl.LazyFrame:
    """PINs in a weakness class, held by an operator during the audited window.

    A weak PIN is among a guesser's first tries: ten candidates cover repeated digits, ten
    more the runs, and a lockout after 6 attempts only slows a patient attacker down. Each
    period the operator held such a PIN is one finding, with the weakness class as the
    exclusion list names it. Rows of the list with an ``operator_no`` (PINs built from an
    operator number) apply only to operators with that number. Low on an operator who can
    only sell; medium on one who can refund, transfer or manage, whose PIN opens the money.
    """
    exclusion = weak_pin_digests.select(
        pl.col("pin_digest").cast(pl.String),
        pl.col("weakness_class").cast(pl.String),
        pl.col("operator_no").cast(pl.String).alias("class_operator_no"),
    )
    applies = pl.col("class_operator_no").is_null() | (
        pl.col("class_operator_no") == pl.col("operator_no")
    )
    priority = pl.col("weakness_class").replace_strict(
        CLASS_PRIORITY, default=len(CLASS_PRIORITY), return_dtype=pl.Int64
    )
    period = ["operator_id", "pin_event_id"]
    rights = operators.select(
        pl.col("operator_id").cast(pl.String),
        (
            pl.col("can_refund").cast(pl.Boolean).fill_null(False)
            | pl.col("can_transfer").cast(pl.Boolean).fill_null(False)
            | pl.col("can_manage").cast(pl.Boolean).fill_null(False)
        ).alias("is_privileged"),
    ).unique(subset="operator_id", keep="any")
    return (
        _pin_periods(pin_events, operators, data_window)
        .filter(_in_data_window())
        .join(rights, on="operator_id", how="left")
        .join(exclusion, on="pin_digest", how="inner")
        .filter(applies)
        .with_columns(priority.alias("class_priority"))
        .filter(pl.col("class_priority") == pl.col("class_priority").min().over(period))
        .unique(subset=period, keep="any")
        .with_columns(
            pl.col("period_start").alias("window_start"),
            _state_end().alias("window_end"),
        )
        .pipe(
            _operator_findings,
            rule_name="weak_pins",
            # A breach of the PIN rules, whatever the class: low on an operator who can only
            # sell, one step up (medium) on one who can refund, transfer or manage, whose PIN
            # opens the money; the score ranks how early a guesser reaches the class
            # (docs/detection.md#severity).
            severity=pl.when(pl.col("is_privileged").fill_null(False))
            .then(pl.lit("medium"))
            .otherwise(pl.lit("low")),
            score=pl.col("weakness_class").replace_strict(
                SCORE_BY_CLASS, default=0.6, return_dtype=pl.Float64
            ),
            summary=WEAK_PINS.expr(
                **_who(),
                held=_held(),
                weakness="weakness_class",
                since=_day("period_start"),
                until=_day("period_end"),
            ),
            evidence={
                **_period_evidence(),
                "weakness_class": pl.col("weakness_class"),
                "held_days": _closed_held_days(),
                "is_privileged": pl.col("is_privileged").fill_null(False),
            },
        )
    )


DEFAULT_PINS: Final = Sentence(
    en=_WHO_EN + " has held the acquirer's default PIN since {since}, never changed; have it "
    "changed now",
    zh=_WHO_ZH + "自 {since} 起使用收单机构的默认密码，从未更改；应立即更换",
    fields={**_WHO_FIELDS, "since": Value(DAY)},
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=PIN_HISTORY,
    states=True,
    scenarios=("default_pin",),
)
def default_pins(
    pin_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    default_pin_digests: pl.LazyFrame,
    data_window: pl.LazyFrame,
) -> pl.LazyFrame:
    """Operators who still hold the acquirer's default PIN, issued at installation and never
    changed.

    The acquirer sets every new terminal's administrator to a default PIN that is the same on
    every terminal of the family and printed in the manual; whoever read it can open the
    terminal's settings, add operators and reset their PINs. ``default_pin_digests`` holds
    the digests of the default PINs under the deployment key (column ``pin_digest``): the
    runner computes them, so no PIN is written in a policy file. A finding needs the
    operator's current PIN to be the one set by the acquirer's ``initial`` event and to be a
    default; it is open from installation on (the PIN's change resolves it). Medium, an
    administrator's scored first.
    """
    defaults = default_pin_digests.select(pl.col("pin_digest").cast(pl.String)).unique()
    is_admin = pl.col("role") == "admin"
    return (
        _pin_periods(pin_events, operators, data_window)
        .filter(
            pl.col("is_current")
            & (pl.col("kind") == "initial")
            & (pl.col("actor") == "acquirer")
            & _in_data_window()
        )
        .join(defaults, on="pin_digest", how="semi")
        .with_columns(
            pl.col("period_start").alias("window_start"),
            _state_end().alias("window_end"),
        )
        .pipe(
            _operator_findings,
            rule_name="default_pins",
            # A known credential to change, not yet a use of it; an administrator's ranks first
            # by score (docs/detection.md#severity).
            severity="medium",
            score=pl.when(is_admin).then(0.95).otherwise(0.9),
            summary=DEFAULT_PINS.expr(**_who(), since=_day("period_start")),
            evidence=_period_evidence(),
        )
    )


STALE_PINS: Final = Sentence(
    en=_WHO_EN + " {held}",
    zh=_WHO_ZH + "{held}",
    fields={
        **_WHO_FIELDS,
        "held": Clause(
            {
                "still": (
                    "has kept one PIN since {since}, over the {max_age_days}-day limit since "
                    "{stale_since}; {passed_days} days old on {passed_on}, still held",
                    "自 {since} 起未更换密码，自 {stale_since} 起超出 {max_age_days} 天的期限；"
                    "至 {passed_on} 已使用 {passed_days} 天，至今仍在使用",
                ),
                "past": (
                    "kept one PIN for {held_days} days from {since} to {until}, over the "
                    "{max_age_days}-day limit since {stale_since}",
                    "于 {since} 设置的密码一直用到 {until}，共 {held_days} 天，"
                    "自 {stale_since} 起超出 {max_age_days} 天的期限",
                ),
            }
        ),
        "since": Value(DAY),
        "until": Value(DAY),
        "held_days": Value(NUMBER),
        "max_age_days": Value(NUMBER),
        "stale_since": Value(DAY),
        "passed_days": Value(NUMBER),
        "passed_on": Value(DAY),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=PIN_HISTORY,
    states=True,
    scenarios=("stale_pin",),
    state_age=STATE_AGE_PARAMETER,
)
def stale_pins(
    pin_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    data_window: pl.LazyFrame,
    *,
    max_age_days: int = 90,  # PCI DSS v4.0 8.3.9: change at least every 90 days (docs/domain.md)
) -> pl.LazyFrame:
    """PINs kept longer than ``max_age_days``, for the time they were over age.

    The longer a PIN lives, the more colleagues, former staff and shoulder-surfers know it;
    the acquirer's policy is a change at least every three months. One finding per PIN
    period longer than that, from the day it went stale to its change, or open while the PIN
    is still held, when that span reaches into the audited window. Low up to twice the
    limit, medium beyond; the score grows with the age. A PIN changed is judged by the age
    it reached; one still held by the last whole multiple of the limit it passed (90, 180,
    270 days...), so its finding changes on the day it passes the next, not every day.

    Parameters
    ----------
    max_age_days
        Longest a PIN may be kept; a PIN held longer (strictly) is stale.
    """
    max_age = timedelta(days=max_age_days)
    limit_us = max(max_age_days, 1) * SECONDS_PER_DAY * 1_000_000
    age_us = (pl.col("period_end") - pl.col("period_start")).dt.total_microseconds()
    # whole multiples of the limit an open PIN's age has passed (strictly: age > k * limit)
    passed = ((pl.col("age_us") - 1) // limit_us).clip(lower_bound=0)
    # a changed PIN by its age; a PIN still held by the last multiple of the limit it passed
    age_days = (
        pl.when(pl.col("is_current"))
        .then(pl.col("passed") * max_age_days)
        .otherwise(pl.col("age_us") / (SECONDS_PER_DAY * 1_000_000))
    )
    over = (pl.col("age_days") - max_age_days) / (3 * max(max_age_days, 1))
    still = pl.col("is_current")
    return (
        _pin_periods(pin_events, operators, data_window)
        .filter(((pl.col("period_end") - pl.col("period_start")) > max_age) & _in_data_window())
        .with_columns(age_us.alias("age_us"))
        .with_columns(passed.alias("passed"))
        .with_columns(
            (pl.col("period_start") + max_age).alias("window_start"),
            _state_end().alias("window_end"),
            age_days.alias("age_days"),
            (pl.col("period_start") + pl.duration(days=pl.col("passed") * max_age_days)).alias(
                "passed_at"
            ),
        )
        .pipe(
            _operator_findings,
            rule_name="stale_pins",
            severity=pl.when(
                pl.when(still)
                .then(pl.col("passed") >= 2)
                .otherwise(pl.col("age_days") > 2 * max_age_days)
            )
            .then(pl.lit("medium"))
            .otherwise(pl.lit("low")),
            # rounded: Polars may fuse the multiply-add, or not, by the plan, and the last
            # bit would differ between a night's run and a full one
            score=(0.5 + 0.4 * over).clip(0.5, 0.9).round(6),
            summary=STALE_PINS.expr(
                **_who(),
                held=_held(),
                since=_day("period_start"),
                until=_day("period_end"),
                held_days=_held_days(),
                max_age_days=pl.lit(max_age_days),
                stale_since=_day("window_start"),
                passed_days=pl.col("passed") * max_age_days,
                passed_on=_day("passed_at"),
            ),
            evidence={
                **_period_evidence(),
                # a changed PIN: the whole days the summary states, and the age with its
                # fraction; a PIN still held: the multiple of the limit it passed, and when
                "held_days": _closed_held_days(),
                "age_days": pl.when(still).then(None).otherwise(pl.col("age_days").round(1)),
                "passed_days": pl.when(still).then(pl.col("passed") * max_age_days),
                "passed_on": pl.when(still).then(_stamp("passed_at")),
                "max_age_days": pl.lit(max_age_days),
            },
        )
    )


# One of the other operators a shared PIN is named with: 'operator 05 at T000124'.
OTHER_OPERATOR: Final = Sentence(
    en="{operator} at {terminal_id}",
    zh="终端 {terminal_id} 的{operator}",
    fields={
        "operator": Operator(terminal="terminal_id", role="role"),
        "role": Words(OPERATOR_ROLES),
        "terminal_id": Value(),
    },
)
SHARED_PINS: Final = Sentence(
    en=_WHO_EN + " {held}; their actions cannot be told apart",
    zh=_WHO_ZH + "{held}，无法分清各笔操作由谁完成",
    fields={
        **_WHO_FIELDS,
        "held": Clause(
            {
                "still": (
                    "has held the same PIN as {others_count} of the merchant ({others}) since "
                    "{since}, still shared",
                    "自 {since} 起与本商户{others_count}（{others}）使用相同的密码，至今仍在共用",
                ),
                "past": (
                    "held the same PIN as {others_count} of the merchant ({others}) from "
                    "{since} to {until}",
                    "在 {since} 至 {until} 期间与本商户{others_count}（{others}）使用相同的密码",
                ),
            }
        ),
        "others_count": Clause(
            {
                "one": ("another operator", "另一名操作员"),
                "many": ("{other_count} other operators", "另外 {other_count} 名操作员"),
            }
        ),
        "other_count": Value(NUMBER),
        "others": Items(OTHER_OPERATOR),
        "since": Value(DAY),
        "until": Value(DAY),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    # the operators who share a PIN are compared with each other: a merchant's are together
    partition_key="merchant_id",
    lookback=PIN_HISTORY,
    states=True,
    scenarios=("shared_pin",),
)
def shared_pins(
    pin_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    data_window: pl.LazyFrame,
) -> pl.LazyFrame:
    """Operators of one merchant who held the same PIN at the same time.

    Operator numbers exist so that every sale, refund and transfer names the person who made
    it; a PIN two people share makes that record worthless, and lets each act as the other.
    Equal digests under one key mean equal PINs, so the rule pairs the PIN periods of a
    merchant's operators on their digest and keeps the pairs that overlap in time. One
    finding per operator and PIN period, over the time it was shared, naming the other
    operators (never the PIN); scored higher when three or more shared it.
    """
    periods = _pin_periods(pin_events, operators, data_window).filter(_in_data_window())
    others = periods.select(
        "merchant_id",
        "pin_digest",
        pl.col("operator_id").alias("other_operator_id"),
        OTHER_OPERATOR.expr(operator="operator_no", role=_role(), terminal_id="terminal_id").alias(
            "other_operator"
        ),
        pl.col("period_start").alias("other_start"),
        pl.col("period_end").alias("other_end"),
        pl.col("is_current").alias("other_current"),
    )
    kept = (
        *("operator_no", "terminal_id", "merchant_id", "role", "kind", "actor"),
        *("period_start", "period_end", "is_current", "data_from", "data_to"),
    )
    return (
        periods.join(others, on=["merchant_id", "pin_digest"], how="inner")
        .filter(
            (pl.col("operator_id") != pl.col("other_operator_id"))
            & (pl.col("period_start") < pl.col("other_end"))
            & (pl.col("other_start") < pl.col("period_end"))
        )
        .group_by("operator_id", "pin_event_id")
        .agg(
            *(pl.col(c).first() for c in kept),
            pl.max_horizontal("period_start", "other_start").min().alias("window_start"),
            pl.min_horizontal("period_end", "other_end").max().alias("shared_to"),
            # still shared: this operator and one of the others hold the PIN yet
            (pl.col("is_current") & pl.col("other_current")).any().alias("still_shared"),
            pl.col("other_operator_id").unique().sort().alias("other_operator_ids"),
            pl.col("other_operator").unique().sort().alias("other_operators"),
        )
        .with_columns(
            (pl.col("other_operator_ids").list.len() + 1).alias("group_size"),
            pl.when(pl.col("still_shared")).then(None).otherwise("shared_to").alias("window_end"),
        )
        .pipe(
            _operator_findings,
            rule_name="shared_pins",
            severity="medium",
            score=pl.when(pl.col("group_size") >= SHARED_GROUP_HABIT).then(0.9).otherwise(0.8),
            summary=SHARED_PINS.expr(
                **_who(),
                held=pl.when(pl.col("still_shared"))
                .then(pl.lit("still"))
                .otherwise(pl.lit("past")),
                others_count=pl.when(pl.col("group_size") == 2)
                .then(pl.lit("one"))
                .otherwise(pl.lit("many")),
                other_count=pl.col("group_size") - 1,
                others="other_operators",
                since=_day("window_start"),
                until=_day("shared_to"),
            ),
            evidence={
                **_period_evidence(),
                "other_operator_ids": pl.col("other_operator_ids"),
                "other_operators": pl.col("other_operators"),
                "group_size": pl.col("group_size"),
                "shared_from": _stamp("window_start"),
                "shared_until": _stamp("window_end"),
                "still_shared": pl.col("still_shared"),
            },
        )
    )


REUSED_PINS: Final = Sentence(
    en=_WHO_EN + " went back, by {how} on {set_on}, to a PIN it already held from {earlier} "
    "({back} back; policy: none of the last {history_size})",
    zh=_WHO_ZH + "于 {set_on} {how}后，又改回了自 {earlier} 起用过的旧密码"
    "（{back}；政策要求新密码不得与最近 {history_size} 个相同）",
    fields={
        **_WHO_FIELDS,
        "how": Clause(
            {
                "reset": ("a reset by {actor}", "经{actor}重置密码"),
                "change": ("a change", "修改密码"),
            }
        ),
        "actor": Words(ACTOR_WORDS, other=r"[a-z_]+"),
        "set_on": Value(DAY),
        "earlier": Value(DAY),
        "back": Clause(
            {
                "replaced": ("the PIN it replaced", "即刚被替换的密码"),
                "older": ("{pins_back} PINs", "往前数第 {pins_back} 个"),
            }
        ),
        "pins_back": Value(NUMBER),
        "history_size": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=PIN_HISTORY,
    states=True,
    scenarios=("reused_pin",),
)
def reused_pins(
    pin_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    data_window: pl.LazyFrame,
    *,
    history_size: int = 4,  # PCI DSS v4.0 8.3.7: a new PIN differs from the last 4 (docs/domain.md)
) -> pl.LazyFrame:
    """PIN changes and resets back to one of the operator's last ``history_size`` PINs.

    A change to a PIN the operator already had is a change in name only: whoever learnt the
    old PIN knows the new one. The digests of one operator's PIN events, in time order, are
    compared with the ``history_size`` before each change or reset; the finding covers the
    time the reused PIN was held, when that reaches into the audited window.

    Parameters
    ----------
    history_size
        How many earlier PINs a new one must differ from.
    """
    if history_size < 1:
        msg = f"history_size must be at least 1; got {history_size}"
        raise ValueError(msg)
    back = range(1, history_size + 1)

    def earlier(column: str, k: int) -> pl.Expr:
        return pl.col(column).shift(k).over("operator_id")

    same_as = {k: pl.col("pin_digest") == earlier("pin_digest", k) for k in back}
    pins_back = pl.min_horizontal(*(pl.when(same_as[k]).then(pl.lit(k)) for k in back))
    earlier_set_at = pl.coalesce(
        *(pl.when(same_as[k]).then(earlier("period_start", k)) for k in back)
    )
    return (
        _pin_periods(pin_events, operators, data_window)
        .sort("operator_id", "period_start", "pin_event_id")
        .with_columns(
            pins_back.cast(pl.Int64).alias("pins_back"),
            earlier_set_at.alias("earlier_set_at"),
        )
        .filter(
            pl.col("kind").is_in(["change", "reset"])
            & pl.col("pins_back").is_not_null()
            & _in_data_window()
        )
        .with_columns(
            pl.col("period_start").alias("window_start"),
            _state_end().alias("window_end"),
        )
        .pipe(
            _operator_findings,
            rule_name="reused_pins",
            severity="medium",
            score=pl.when(pl.col("pins_back") == 1).then(0.85).otherwise(0.8),
            summary=REUSED_PINS.expr(
                **_who(),
                how=pl.when(pl.col("kind") == "reset")
                .then(pl.lit("reset"))
                .otherwise(pl.lit("change")),
                actor="actor",
                set_on=_day("period_start"),
                earlier=_day("earlier_set_at"),
                back=pl.when(pl.col("pins_back") == 1)
                .then(pl.lit("replaced"))
                .otherwise(pl.lit("older")),
                pins_back="pins_back",
                history_size=pl.lit(history_size),
            ),
            evidence={
                **_period_evidence(),
                "pins_back": pl.col("pins_back"),
                "earlier_set_at": _stamp("earlier_set_at"),
                "history_size": pl.lit(history_size),
            },
        )
    )


# Each rule's sentence, by rule name: what the report writes each finding's sentence from.
SENTENCES: Final[dict[str, Sentence]] = {
    "weak_pins": WEAK_PINS,
    "default_pins": DEFAULT_PINS,
    "stale_pins": STALE_PINS,
    "shared_pins": SHARED_PINS,
    "reused_pins": REUSED_PINS,
}
