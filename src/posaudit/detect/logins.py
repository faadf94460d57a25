"""Login attacks and lockout hygiene: who is guessing PINs, and which terminals let them.

A terminal's login (a 2-digit operator number and a 6-digit PIN) is all that stands between a
stranger and the refund and transfer menus. Six digits hold only a million PINs, and people
choose few of them (docs/domain.md), so the lockout after N consecutive wrong PINs is what makes
guessing hopeless: the policy locks after at most 6 for at least 30 minutes (PCI DSS v4.0
8.3.4 allows at most 10). An auditor wants to know which operators and terminals were under
attack, and which terminals would not have stopped an attack, without being sent after every
clerk who forgot a PIN or every terminal with a bad network. The rules here:

- ``pin_brute_force``: many wrong PINs on one operator in one burst, lockouts and all:
  someone guessing that operator's PIN (high when the burst ends in a success);
- ``operator_enumeration``: many operator numbers tried on one terminal in one burst, most of
  them not existing: someone looking for any login with a guessable PIN;
- ``lockout_storm``: several operators of one terminal locked out within the hour: the
  footprint of the same search where the terminal locks quickly;
- ``lockout_not_enforced``: terminals whose lockout setting is looser than policy (never
  locks, locks too late or too briefly), or on which an operator made more wrong PINs in a row
  than the policy allows without being locked;
- ``credential_sharing``: one operator's login active on two terminals in turn within minutes,
  back and forth: two people on one login, so nothing done with it is attributable;
- ``network_failure_burst``: a terminal that could not reach the host many times in a short
  time; a health note (severity info) that accuses nobody, kept apart so that network trouble
  is never read as failed credentials.

Natural behaviour these rules leave alone (docs/scenarios.md): typos (1-2 wrong PINs, then a
success), the odd mistyped operator number, forgotten PINs (3-8 wrong PINs, a lockout, an
unlock by the administrator or the service desk, a reset), bursts of network errors on flaky
terminals (which never count toward a lockout), and clerks working a whole shift on a sibling
terminal of their merchant. Attacks differ in their counts and their pace: 20-60 attempts a
few seconds apart, resumed as soon as each lockout times out.

Most rules cut the events of one entity into *bursts*: events in time order, a new burst
starting when the gap since the entity's previous event exceeds a maximum (time an operator
spent locked out does not count toward that gap). One finding per burst keeps a long attack
one finding, and the burst's first and last event are the finding's window.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import polars as pl

from posaudit.detect.findings import EntityType, Severity, to_findings
from posaudit.detect.registry import derived_query, rule
from posaudit.detect.sentences import (
    CLOCK,
    DAY,
    NUMBER,
    Clause,
    Count,
    Items,
    Operator,
    Phrase,
    Sentence,
    Value,
)

FAMILY: Final = "logins"
MAX_EVIDENCE_IDS: Final = 20
# Attempts that fail on the PIN of a known operator; `locked` attempts are guesses too, made
# while the terminal refused them.
PIN_FAILURES: Final = ("wrong_pin", "locked")
# Lockouts lifted by a person who knows the operator (the merchant's administrator on site, or
# the acquirer's service desk after checking who called), not by the clock: somebody vouched
# for the operator who asked to be let back in (docs/detection.md).
PERSON_UNLOCKS: Final = ("admin", "service_desk")
# Attempts that fail on the credentials (not the network): what someone guessing produces.
CREDENTIAL_FAILURES: Final = ("wrong_pin", "locked", "unknown_operator")


# --- shared steps -------------------------------------------------------------------------


def _logins(login_events: pl.LazyFrame) -> pl.LazyFrame:
    """Login events with plain types: categorical outcome as String, ts as Datetime("us")."""
    return login_events.select(
        pl.col("event_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us")),
        pl.col("terminal_id").cast(pl.String),
        pl.col("operator_no").cast(pl.String),
        pl.col("operator_id").cast(pl.String),
        pl.col("outcome").cast(pl.String),
    )


def _terminal_settings(terminals: pl.LazyFrame) -> pl.LazyFrame:
    """terminal_id, merchant_id and the terminal's own lockout setting."""
    return terminals.select(
        pl.col("terminal_id").cast(pl.String),
        pl.col("merchant_id").cast(pl.String),
        pl.col("lockout_threshold").cast(pl.Int64),
        pl.col("lockout_minutes").cast(pl.Int64),
    ).unique(subset="terminal_id", keep="any")


def _with_burst_ids(
    events: pl.LazyFrame,
    *,
    by: list[str],
    max_gap: timedelta,
    id_column: str = "event_id",
    paused: tuple[str, str] | None = None,
) -> pl.LazyFrame:
    """Add ``burst``: events of each ``by`` group in time order, numbered into bursts.

    A new burst starts with a group's first event and with every event more than
    ``max_gap`` after the group's previous one. ``paused`` names two columns on each event
    (from, to) of a span during which the clock stops, such as the lockout the event came
    after: the part of the gap inside that span does not count. ``id_column`` breaks ties
    of ``ts`` so the numbering does not depend on row order.
    """
    previous_ts = pl.col("ts").shift(1).over(by)
    gap = pl.col("ts") - previous_ts
    if paused is not None:
        paused_from, paused_to = paused
        # a lock not yet lifted (to is null) pauses the clock up to the event itself
        overlap = pl.when(pl.col(paused_from).is_not_null()).then(
            pl.min_horizontal(pl.col("ts"), pl.coalesce(paused_to, "ts"))
            - pl.max_horizontal(previous_ts, pl.col(paused_from))
        )
        gap = gap - overlap.clip(lower_bound=timedelta(0)).fill_null(timedelta(0))
    return events.sort(*by, "ts", id_column).with_columns(
        (gap > max_gap).fill_null(True).cast(pl.Int64).cum_sum().over(by).alias("burst")
    )


def _ids(column: str) -> pl.Expr:
    """Event ids for evidence, in time order, capped so evidence stays readable."""
    return pl.col(column).sort_by("ts").head(MAX_EVIDENCE_IDS)


def _day(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%d")


def _clock(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%H:%M")


def _span(start: str = "window_start", end: str = "window_end") -> pl.Expr:
    """Whole minutes from start to end, rounded up; 1 at least."""
    seconds = (pl.col(end) - pl.col(start)).dt.total_seconds()
    return (seconds / 60).ceil().cast(pl.Int64).clip(lower_bound=1)


def _key(*branches: tuple[pl.Expr, str], otherwise: str | None = None) -> pl.Expr:
    """A clause's branch key: the key of the first condition that holds."""
    (condition, key), *rest = branches
    chosen: Any = pl.when(condition).then(pl.lit(key))
    for condition, key in rest:
        chosen = chosen.when(condition).then(pl.lit(key))
    return chosen.otherwise(pl.lit(otherwise)) if otherwise is not None else chosen


def _findings(
    frame: pl.LazyFrame,
    *,
    rule_name: str,
    entity_type: EntityType,
    entity_id: str,
    severity: Severity | pl.Expr,
    score: float | pl.Expr,
    summary: pl.Expr,
    evidence: dict[str, pl.Expr],
) -> pl.LazyFrame:
    return frame.with_columns(pl.col(entity_id).alias("entity_id")).pipe(
        to_findings,
        rule=rule_name,
        family=FAMILY,
        entity_type=entity_type,
        severity=severity,
        score=score,
        summary=summary,
        evidence=evidence,
    )


# --- guessing -----------------------------------------------------------------------------

PIN_BRUTE_FORCE: Final = Sentence(
    en="{operator} at terminal {terminal_id} had {wrong_pins} in {span} on {day} from {start}"
    "{was_locked}{tried_locked} ({setting}){outcome}",
    zh="终端 {terminal_id} 的{operator}于 {day} {start} 起的 {span} 分钟内输错密码 {wrong_pins} 次"
    "{was_locked}{tried_locked}（{setting}）{outcome}",
    fields={
        "operator": Operator(terminal="terminal_id"),
        "terminal_id": Value(),
        "wrong_pins": Count("wrong PIN", "wrong PINs"),
        "span": Count("minute", "minutes"),
        "day": Value(DAY),
        "start": Value(CLOCK),
        "was_locked": Clause(
            {
                "locked": (", was locked out {lockouts}", "，被锁定 {lockouts} 次"),
                "never": (", was never locked out", "，一次也未被锁定"),
            }
        ),
        "lockouts": Count("time", "times"),
        "tried_locked": Clause(
            {
                "tried": (
                    " and tried {locked_attempts} while locked",
                    "，锁定期间又尝试 {locked_attempts} 次",
                ),
                "no": ("", ""),
            }
        ),
        "locked_attempts": Count("more time", "more times"),
        "setting": Clause(
            {
                "never": ("the terminal never locks", "该终端从不锁定"),
                "locks": (
                    "the terminal locks after {threshold} wrong PINs for {lock_minutes} minutes",
                    "该终端输错 {threshold} 次后锁定 {lock_minutes} 分钟",
                ),
                "unlimited": (
                    "the terminal locks after {threshold} wrong PINs for unlimited minutes",
                    "该终端输错 {threshold} 次后锁定，不限时长",
                ),
            }
        ),
        "threshold": Value(NUMBER),
        "lock_minutes": Value(NUMBER),
        "outcome": Clause(
            {
                "in": (", then logged in at {success}", "，随后于 {success} 登录成功"),
                "out": (", and did not get in", "，最终未能登录"),
            }
        ),
        "success": Value(CLOCK),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="terminal_id",
    # 60 guesses against a terminal that locks after 3 for 60 minutes take 20 hours
    lookback=timedelta(days=2),
    scenarios=("pin_brute_force",),
)
def pin_brute_force(
    login_events: pl.LazyFrame,
    lockouts: pl.LazyFrame,
    terminals: pl.LazyFrame,
    *,
    min_failures: int = 12,  # forgotten PINs make 3-8 wrong + up to 2 locked attempts, typos
    # 1-2 (docs/scenarios.md); 12 clears both together, attacks make 20-60
    max_gap_minutes: int = 60,  # attacks try every 4-20 s; shifts' logins are hours apart
    success_within_minutes: int = 5,  # an attacker's winning guess follows the last wrong one
) -> pl.LazyFrame:
    """Operators whose PIN was guessed at: many wrong PINs on one operator in one burst.

    Someone who does not know an operator's PIN but wants its login (for its refund menu, or
    to act in its name) types candidate PINs one after the other, and where the terminal
    locks, waits for each lockout to time out and goes on. Forgetful staff stop after a few
    tries and call the administrator; a typo costs one or two. A burst with one lockout,
    which a person lifted (:data:`PERSON_UNLOCKS`), is a forgotten PIN however many tries
    the terminal allowed before locking (and a few more wrong tries after it, the clerk still
    unsure): the guesser waits for the lock to time out and goes on to the next, the
    forgetful clerk asks to be let back in. Failed attempts of one
    operator on one terminal form a burst while each follows the previous within
    ``max_gap_minutes``, not counting the time the operator was locked out; a burst with
    ``min_failures`` or more wrong or locked attempts is a finding (medium), high when the
    operator's next attempt within ``success_within_minutes`` succeeded (the guess was
    right).

    Parameters
    ----------
    min_failures
        Wrong-PIN and locked attempts in one burst that make a finding.
    max_gap_minutes
        Longest pause between two failed attempts of one burst, not counting lockouts.
    success_within_minutes
        How soon after the burst's last failure a success means the guessing won.
    """
    logins = _logins(login_events).filter(pl.col("operator_id").is_not_null())
    locks = lockouts.select(
        pl.col("lockout_id").cast(pl.String),
        pl.col("terminal_id").cast(pl.String),
        pl.col("operator_id").cast(pl.String),
        pl.col("locked_at").cast(pl.Datetime("us")),
        pl.col("unlocked_at").cast(pl.Datetime("us")),
        pl.col("unlock_method").cast(pl.String).is_in(PERSON_UNLOCKS).alias("lifted_by_person"),
    ).sort("locked_at")
    successes = (
        logins.filter(pl.col("outcome") == "success")
        .select("terminal_id", "operator_id", pl.col("ts").alias("success_ts"))
        .sort("success_ts")
    )
    in_burst = pl.col("locked_at") >= pl.col("ts").min()
    # a forgotten PIN: one lockout, which a person lifted, and no guessing through a second
    forgotten = (pl.col("lockouts") == 1) & (pl.col("lockouts_lifted_by_person") == 1)
    # Asof joins with `by` cannot check sortedness per group: both sides are sorted on their
    # key explicitly here, hence check_sortedness=False.
    return (
        logins.filter(pl.col("outcome").is_in(PIN_FAILURES))
        .sort("ts")
        # the latest lockout of the operator on the terminal at or before each failure
        .join_asof(
            locks,
            left_on="ts",
            right_on="locked_at",
            by=["terminal_id", "operator_id"],
            strategy="backward",
            check_sortedness=False,
        )
        .pipe(
            _with_burst_ids,
            by=["terminal_id", "operator_id"],
            max_gap=timedelta(minutes=max_gap_minutes),
            paused=("locked_at", "unlocked_at"),
        )
        .group_by("terminal_id", "operator_id", "burst")
        .agg(
            pl.len().alias("failures"),
            (pl.col("outcome") == "wrong_pin").sum().alias("wrong_pins"),
            (pl.col("outcome") == "locked").sum().alias("locked_attempts"),
            pl.col("lockout_id").filter(in_burst).n_unique().alias("lockouts"),
            pl.col("lockout_id")
            .filter(in_burst & pl.col("lifted_by_person").fill_null(False))
            .n_unique()
            .alias("lockouts_lifted_by_person"),
            pl.col("operator_no").sort_by("ts").first(),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("last_failure_ts"),
            _ids("event_id").alias("event_ids"),
        )
        .filter((pl.col("failures") >= min_failures) & ~forgotten)
        .sort("last_failure_ts")
        .join_asof(
            successes,
            left_on="last_failure_ts",
            right_on="success_ts",
            by=["terminal_id", "operator_id"],
            strategy="forward",
            allow_exact_matches=False,
            tolerance=timedelta(minutes=success_within_minutes),
            check_sortedness=False,
        )
        .with_columns(
            pl.col("success_ts").is_not_null().alias("ended_in_success"),
            pl.coalesce("success_ts", "last_failure_ts").alias("window_end"),
        )
        .join(_terminal_settings(terminals), on="terminal_id", how="left")
        .pipe(
            _findings,
            rule_name="pin_brute_force",
            entity_type="operator",
            entity_id="operator_id",
            # High when the guessing worked (someone holds the PIN now); a failed burst is an
            # attack to review (docs/detection.md#severity).
            severity=pl.when(pl.col("ended_in_success"))
            .then(pl.lit("high"))
            .otherwise(pl.lit("medium")),
            score=(
                0.7
                + 0.2 * (pl.col("failures") - min_failures) / max(min_failures, 1)
                + pl.col("ended_in_success").cast(pl.Float64) * 0.1
            ).clip(0.7, 1.0),
            summary=PIN_BRUTE_FORCE.expr(
                operator="operator_no",
                terminal_id="terminal_id",
                wrong_pins="wrong_pins",
                span=_span(),
                day=_day("window_start"),
                start=_clock("window_start"),
                was_locked=_key((pl.col("lockouts") > 0, "locked"), otherwise="never"),
                lockouts="lockouts",
                tried_locked=_key((pl.col("locked_attempts") > 0, "tried"), otherwise="no"),
                locked_attempts="locked_attempts",
                setting=_key(
                    (pl.col("lockout_threshold").is_null(), "never"),
                    (pl.col("lockout_minutes").is_null(), "unlimited"),
                    otherwise="locks",
                ),
                threshold="lockout_threshold",
                lock_minutes="lockout_minutes",
                outcome=_key((pl.col("ended_in_success"), "in"), otherwise="out"),
                success=_clock("success_ts"),
            ),
            evidence={
                "terminal_id": pl.col("terminal_id"),
                "operator_no": pl.col("operator_no"),
                "failures": pl.col("failures"),
                "wrong_attempts": pl.col("wrong_pins"),
                "locked_attempts": pl.col("locked_attempts"),
                "lockouts": pl.col("lockouts"),
                "ended_in_success": pl.col("ended_in_success"),
                "lockout_threshold": pl.col("lockout_threshold"),
                "lockout_minutes": pl.col("lockout_minutes"),
                "login_event_ids": pl.col("event_ids"),
                "min_failures": pl.lit(min_failures),
                "max_gap_minutes": pl.lit(max_gap_minutes),
            },
        )
    )


OPERATOR_ENUMERATION: Final = Sentence(
    en="terminal {terminal_id} was tried with {operator_numbers} operator numbers "
    "({unknown_numbers} unknown) in {attempts} failed logins over {span} on {day} from {start}",
    zh="终端 {terminal_id} 于 {day} {start} 起的 {span} 分钟内被尝试了 {operator_numbers} 个"
    "操作员编号（其中 {unknown_numbers} 个不存在），登录失败共 {attempts} 次",
    fields={
        "terminal_id": Value(),
        "operator_numbers": Value(NUMBER),
        "unknown_numbers": Value(NUMBER),
        "attempts": Value(NUMBER),
        "span": Count("minute", "minutes"),
        "day": Value(DAY),
        "start": Value(CLOCK),
    },
)


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="terminal_id",
    lookback=timedelta(days=1),
    scenarios=("operator_enumeration",),
)
def operator_enumeration(
    login_events: pl.LazyFrame,
    terminals: pl.LazyFrame,
    *,
    min_operator_numbers: int = 8,  # a terminal has 2-6 operators; a mistyped number is one
    # more now and then; enumerations try 10 numbers or more (docs/scenarios.md)
    max_gap_minutes: int = 30,  # enumerations try every 3-12 s
) -> pl.LazyFrame:
    """Terminals on which many operator numbers were tried in one burst of failed logins.

    Someone who holds a terminal but no login walks through the operator numbers, most of
    which do not exist, trying a likely PIN on each, looking for any operator with a weak
    PIN; staff only ever type their own number, and mistype it now and then. Failed logins
    (wrong PIN, locked, unknown operator) of one terminal form a burst while each follows the
    previous within ``max_gap_minutes``; a burst with ``min_operator_numbers`` or more
    distinct typed numbers is a finding.

    Parameters
    ----------
    min_operator_numbers
        Distinct operator numbers with failed logins in one burst that make a finding.
    max_gap_minutes
        Longest pause between two failed logins of one burst.
    """
    unknown = pl.col("outcome") == "unknown_operator"
    return (
        _logins(login_events)
        .filter(pl.col("outcome").is_in(CREDENTIAL_FAILURES))
        .pipe(_with_burst_ids, by=["terminal_id"], max_gap=timedelta(minutes=max_gap_minutes))
        .group_by("terminal_id", "burst")
        .agg(
            pl.len().alias("attempts"),
            pl.col("operator_no").n_unique().alias("operator_numbers"),
            pl.col("operator_no").filter(unknown).n_unique().alias("unknown_numbers"),
            unknown.sum().alias("unknown_attempts"),
            pl.col("operator_id").drop_nulls().n_unique().alias("operators_tried"),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            _ids("event_id").alias("event_ids"),
        )
        .filter(pl.col("operator_numbers") >= min_operator_numbers)
        .join(_terminal_settings(terminals), on="terminal_id", how="left")
        .pipe(
            _findings,
            rule_name="operator_enumeration",
            entity_type="terminal",
            entity_id="terminal_id",
            severity="medium",
            score=(
                0.6
                + 0.2 * pl.col("unknown_numbers") / pl.col("operator_numbers")
                + 0.2 * (pl.col("operator_numbers") - min_operator_numbers) / 10
            ).clip(0.6, 1.0),
            summary=OPERATOR_ENUMERATION.expr(
                terminal_id="terminal_id",
                operator_numbers="operator_numbers",
                unknown_numbers="unknown_numbers",
                attempts="attempts",
                span=_span(),
                day=_day("window_start"),
                start=_clock("window_start"),
            ),
            evidence={
                "attempts": pl.col("attempts"),
                "operator_numbers": pl.col("operator_numbers"),
                "unknown_numbers": pl.col("unknown_numbers"),
                "unknown_attempts": pl.col("unknown_attempts"),
                "operators_tried": pl.col("operators_tried"),
                "login_event_ids": pl.col("event_ids"),
                "min_operator_numbers": pl.lit(min_operator_numbers),
                "max_gap_minutes": pl.lit(max_gap_minutes),
            },
        )
    )


LOCKOUT_STORM: Final = Sentence(
    en="terminal {terminal_id} locked out {operators} operators ({operator_nos}) {lockouts} in "
    "{span} on {day} from {start}",
    zh="终端 {terminal_id} 于 {day} {start} 起的 {span} 分钟内有 {operators} 名操作员"
    "（{operator_nos}）被锁定，共 {lockouts} 次",
    fields={
        "terminal_id": Value(),
        "operators": Value(NUMBER),
        "operator_nos": Items(Operator(terminal="terminal_id", bare=True)),
        "lockouts": Count("time", "times"),
        "span": Count("minute", "minutes"),
        "day": Value(DAY),
        "start": Value(CLOCK),
    },
)


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="terminal_id",
    lookback=timedelta(days=1),
    scenarios=("operator_enumeration",),
)
def lockout_storm(
    lockouts: pl.LazyFrame,
    terminals: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    min_operators: int = 2,  # one operator locked again and again is pin_brute_force's case
    max_gap_minutes: int = 60,  # a forgotten PIN locks one operator about once a year
    max_lockouts_per_operator: int = 2,  # enumerations lock each operator once; guessing one
    # operator's PIN locks it again after every timeout (docs/scenarios.md)
) -> pl.LazyFrame:
    """Terminals on which several operators were locked out within the hour.

    A lockout is one operator forgetting a PIN, or one operator's PIN being guessed. Two or
    more operators of one terminal locked out close together is neither: it is someone
    trying PINs on operator after operator, and the lockouts are where the terminal stopped
    them. Lockouts of one terminal form a burst while each follows the previous within
    ``max_gap_minutes``; a burst locking ``min_operators`` or more distinct operators is a
    finding. An operator locked more than ``max_lockouts_per_operator`` times in a row (its
    own lockouts no more than ``max_gap_minutes`` apart) is someone guessing that one
    operator's PIN, reported by ``pin_brute_force``; its lockouts are left out here, so two
    such attacks at once on one terminal do not make a storm. So are lockouts a person lifted
    (:data:`PERSON_UNLOCKS`): the operator asked to be let back in and somebody who knows
    them did, which is a clerk who forgot the PIN; a stranger trying operator numbers waits
    for no one.

    Parameters
    ----------
    min_operators
        Distinct operators locked out in one burst that make a finding.
    max_gap_minutes
        Longest pause between two lockouts of one burst.
    max_lockouts_per_operator
        Most lockouts of one operator in a row that still count toward a storm.
    """
    max_gap = timedelta(minutes=max_gap_minutes)
    numbers = operators.select(
        pl.col("operator_id").cast(pl.String), pl.col("operator_no").cast(pl.String)
    ).unique(subset="operator_id", keep="any")
    operator = ["terminal_id", "operator_id"]
    return (
        lockouts.filter(
            ~pl.col("unlock_method").cast(pl.String).is_in(PERSON_UNLOCKS).fill_null(False)
        )
        .select(
            pl.col("lockout_id").cast(pl.String),
            pl.col("terminal_id").cast(pl.String),
            pl.col("operator_id").cast(pl.String),
            pl.col("locked_at").cast(pl.Datetime("us")).alias("ts"),
            pl.col("unlocked_at").cast(pl.Datetime("us")),
        )
        # a guesser resumes when the lock lifts: an operator's lockouts are in a row when each
        # comes within max_gap of the previous one's unlock
        .sort(*operator, "ts", "lockout_id")
        .with_columns(
            pl.col("ts").shift(1).over(operator).alias("previous_locked_at"),
            pl.col("unlocked_at").shift(1).over(operator).alias("previous_unlocked_at"),
        )
        .pipe(
            _with_burst_ids,
            by=operator,
            max_gap=max_gap,
            id_column="lockout_id",
            paused=("previous_locked_at", "previous_unlocked_at"),
        )
        .filter(pl.len().over(*operator, "burst") <= max_lockouts_per_operator)
        .drop("burst")
        .join(numbers, on="operator_id", how="left")
        .with_columns(pl.coalesce("operator_no", "operator_id").alias("operator_no"))
        .pipe(_with_burst_ids, by=["terminal_id"], max_gap=max_gap, id_column="lockout_id")
        .group_by("terminal_id", "burst")
        .agg(
            pl.len().alias("lockouts"),
            pl.col("operator_id").n_unique().alias("operators"),
            pl.col("operator_no").unique().sort().alias("operator_nos"),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            _ids("lockout_id").alias("lockout_ids"),
        )
        .filter(pl.col("operators") >= min_operators)
        .join(_terminal_settings(terminals), on="terminal_id", how="left")
        .pipe(
            _findings,
            rule_name="lockout_storm",
            entity_type="terminal",
            entity_id="terminal_id",
            severity="medium",
            score=(0.5 + 0.1 * (pl.col("operators") - min_operators)).clip(0.5, 1.0),
            summary=LOCKOUT_STORM.expr(
                terminal_id="terminal_id",
                operators="operators",
                operator_nos="operator_nos",
                lockouts="lockouts",
                span=_span(),
                day=_day("window_start"),
                start=_clock("window_start"),
            ),
            evidence={
                "lockouts": pl.col("lockouts"),
                "operators": pl.col("operators"),
                "operator_nos": pl.col("operator_nos"),
                "lockout_ids": pl.col("lockout_ids"),
                "min_operators": pl.lit(min_operators),
                "max_gap_minutes": pl.lit(max_gap_minutes),
            },
        )
    )


# --- lockout policy -----------------------------------------------------------------------


LOCKOUT_NOT_ENFORCED: Final = Sentence(
    en="terminal {terminal_id} {breaches}; policy locks after at most {max_failures} wrong PINs "
    "for at least {min_lockout_minutes} minutes",
    zh="终端 {terminal_id} {breaches}；政策要求最多输错 {max_failures} 次即锁定，"
    "且锁定至少 {min_lockout_minutes} 分钟",
    fields={
        "terminal_id": Value(),
        "breaches": Clause(
            {
                "both": ("{setting}, and {run}", "{setting}，并且{run}"),
                "setting": ("{setting}", "{setting}"),
                "run": ("{run}", "{run}"),
            }
        ),
        "setting": Clause(
            {
                "never": ("never locks an operator", "从不锁定操作员"),
                "late_and_brief": (
                    "locks only after {threshold} wrong PINs and only for {lock_minutes} minutes",
                    "输错 {threshold} 次才锁定，且只锁定 {lock_minutes} 分钟",
                ),
                "late": ("locks only after {threshold} wrong PINs", "输错 {threshold} 次才锁定"),
                "brief": ("locks for only {lock_minutes} minutes", "只锁定 {lock_minutes} 分钟"),
            }
        ),
        "threshold": Value(NUMBER),
        "lock_minutes": Value(NUMBER),
        "run": Phrase(
            "{run_operator} made {longest_run} wrong PINs in a row there on {run_day} "
            "without a lockout",
            "{run_operator}于 {run_day} 在该终端连续输错 {longest_run} 次密码而未被锁定",
        ),
        "run_operator": Operator(terminal="terminal_id"),
        "longest_run": Value(NUMBER),
        "run_day": Value(DAY),
        "max_failures": Value(NUMBER),
        "min_lockout_minutes": Value(NUMBER),
    },
)


def _of_longest_run(column: str) -> pl.Expr:
    """``column`` of the first of the longest runs, whatever order the runs come in."""
    return (
        pl.col(column)
        .sort_by(["wrong_pins", "run_start", "operator_no"], descending=[True, False, False])
        .first()
    )


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="terminal_id",
    # runs of wrong PINs without a success rarely span more than a day; the setting has none
    lookback=timedelta(days=7),
    scenarios=("lockout_not_enforced",),
    # A terminal's finding counts its runs over its whole history. A run new or changed (by
    # a new wrong PIN, or a success or a lockout splitting one) holds more wrong PINs than the
    # policy allows, all by one operator, all within the look-back; a looser setting holds
    # until the terminal's row changes (a full run).
    states=True,
    state_events=(
        "SELECT terminal_id FROM login_events WHERE ts >= $since AND outcome = 'wrong_pin' "
        "AND operator_id IS NOT NULL GROUP BY terminal_id, operator_id "
        "HAVING count(*) > $max_failures"
    ),
)
def lockout_not_enforced(
    login_events: pl.LazyFrame,
    lockouts: pl.LazyFrame,
    terminals: pl.LazyFrame,
    data_window: pl.LazyFrame,
    *,
    max_failures: int = 6,  # policy N <= 6 (docs/domain.md); PCI DSS v4.0 8.3.4 allows at most 10
    min_lockout_minutes: int = 30,  # policy M >= 30 (docs/domain.md), as PCI DSS v4.0 8.3.4
    max_gap_minutes: int = 10,  # guessing and forgetting both try every few seconds; wrong
    # PINs further apart (an attack given up, someone else's attempt later) are not one run
) -> pl.LazyFrame:
    """Terminals that do not enforce the lockout policy, by their setting or by what happened.

    The lockout is what makes guessing a 6-digit PIN hopeless; a terminal that never locks,
    locks only after more than ``max_failures`` wrong PINs, or for fewer than
    ``min_lockout_minutes``, gives a guesser the time the policy denies. Two kinds of
    evidence make one finding per terminal: its setting (``lockout_threshold`` null or above
    ``max_failures``, ``lockout_minutes`` below ``min_lockout_minutes``), reported over the
    whole audited window; and its behaviour, an operator making more than ``max_failures``
    wrong PINs in a row there (no success, no lockout in between, none more than
    ``max_gap_minutes`` after the previous one) whatever the setting says, reported over
    those runs.

    Parameters
    ----------
    max_failures
        Most consecutive wrong PINs the policy allows before the lockout.
    min_lockout_minutes
        Shortest lockout the policy allows.
    max_gap_minutes
        Longest pause between two wrong PINs of one run.
    """
    pair = ["terminal_id", "operator_id"]
    logins = _logins(login_events).filter(pl.col("operator_id").is_not_null())
    # only operators with more wrong PINs on a terminal than the policy allows in a row can
    # have such a run; cutting to them first keeps the sort small
    candidates = (
        logins.filter(pl.col("outcome") == "wrong_pin")
        .group_by(pair)
        .agg(pl.len().alias("wrong_pins"))
        .filter(pl.col("wrong_pins") > max_failures)
        .select(pair)
    )
    # a success, a `locked` attempt and a lockout each end a run of wrong PINs; a lockout comes
    # with the wrong PIN that reached the threshold, so at one instant the wrong PIN sorts first
    resets = pl.concat(
        [
            logins.filter(pl.col("outcome").is_in(("wrong_pin", "success", "locked"))).select(
                *pair, "ts", "event_id", "operator_no", "outcome"
            ),
            lockouts.select(
                pl.col("terminal_id").cast(pl.String),
                pl.col("operator_id").cast(pl.String),
                pl.col("locked_at").cast(pl.Datetime("us")).alias("ts"),
                pl.col("lockout_id").cast(pl.String).alias("event_id"),
                pl.lit(None, pl.String).alias("operator_no"),
                pl.lit("lockout").alias("outcome"),
            ),
        ]
    ).join(candidates, on=pair, how="semi")
    is_reset = pl.col("outcome") != "wrong_pin"
    runs = (
        resets.with_columns(is_reset.alias("is_reset"))
        .sort(*pair, "ts", "is_reset", "event_id")
        .with_columns(pl.col("is_reset").cast(pl.Int64).cum_sum().over(pair).alias("run"))
        .filter(~pl.col("is_reset"))
        .pipe(_with_burst_ids, by=[*pair, "run"], max_gap=timedelta(minutes=max_gap_minutes))
        .group_by(*pair, "run", "burst")
        .agg(
            pl.len().alias("wrong_pins"),
            pl.col("operator_no").first(),
            pl.col("ts").min().alias("run_start"),
            pl.col("ts").max().alias("run_end"),
            _ids("event_id").alias("event_ids"),
        )
        .filter(pl.col("wrong_pins") > max_failures)
        .group_by("terminal_id")
        .agg(
            pl.len().alias("runs_without_lockout"),
            pl.col("wrong_pins").max().alias("longest_run"),
            _of_longest_run("operator_no"),
            _of_longest_run("run_start").alias("longest_at"),
            pl.col("operator_id").unique().sort().alias("operator_ids"),
            pl.col("run_start").min(),
            pl.col("run_end").max(),
            pl.col("event_ids").sort_by("run_start").list.explode().head(MAX_EVIDENCE_IDS),
        )
    )
    never_locks = pl.col("lockout_threshold").is_null()
    locks_late = pl.col("lockout_threshold") > max_failures
    locks_briefly = pl.col("lockout_minutes") < min_lockout_minutes
    setting_looser = (never_locks | locks_late | locks_briefly).fill_null(False)
    has_runs = pl.col("runs_without_lockout").is_not_null()
    window = data_window.select(
        pl.col("data_from").cast(pl.Datetime("us")), pl.col("data_to").cast(pl.Datetime("us"))
    )
    summary = LOCKOUT_NOT_ENFORCED.expr(
        terminal_id="terminal_id",
        breaches=_key(
            (setting_looser & has_runs, "both"), (setting_looser, "setting"), (has_runs, "run")
        ),
        setting=_key(
            (never_locks, "never"),
            (locks_late & locks_briefly.fill_null(False), "late_and_brief"),
            (locks_late, "late"),
            (locks_briefly.fill_null(False), "brief"),
        ),
        threshold="lockout_threshold",
        lock_minutes="lockout_minutes",
        run_operator="operator_no",
        longest_run="longest_run",
        run_day=_day("longest_at"),
        max_failures=pl.lit(max_failures),
        min_lockout_minutes=pl.lit(min_lockout_minutes),
    )
    return (
        _terminal_settings(terminals)
        .join(runs, on="terminal_id", how="left")
        .filter(setting_looser | has_runs)
        .join(window, how="cross")
        .with_columns(
            setting_looser.alias("setting_looser"),
            pl.when(setting_looser)
            .then(pl.min_horizontal("data_from", "run_start"))
            .otherwise(pl.col("run_start"))
            .alias("window_start"),
            pl.when(setting_looser)
            .then(pl.max_horizontal("data_to", "run_end"))
            .otherwise(pl.col("run_end"))
            .alias("window_end"),
            pl.concat_list(
                pl.when(never_locks).then(pl.lit("never_locks")),
                pl.when(locks_late).then(pl.lit("locks_after_too_many")),
                pl.when(locks_briefly).then(pl.lit("locks_too_briefly")),
                pl.when(has_runs).then(pl.lit("failures_without_lockout")),
            )
            .list.drop_nulls()
            .alias("reasons"),
        )
        .pipe(
            _findings,
            rule_name="lockout_not_enforced",
            entity_type="terminal",
            entity_id="terminal_id",
            severity="medium",
            score=pl.when(setting_looser & has_runs)
            .then(0.95)
            .when(setting_looser)
            .then(0.85)
            .otherwise(0.75),
            summary=summary,
            evidence={
                "reasons": pl.col("reasons"),
                "setting_looser": pl.col("setting_looser"),
                "lockout_threshold": pl.col("lockout_threshold"),
                "lockout_minutes": pl.col("lockout_minutes"),
                "runs_without_lockout": pl.col("runs_without_lockout").fill_null(0),
                "longest_run": pl.col("longest_run").fill_null(0),
                "operator_ids": pl.col("operator_ids").fill_null(pl.lit([], pl.List(pl.String))),
                "login_event_ids": pl.col("event_ids").fill_null(pl.lit([], pl.List(pl.String))),
                "max_failures": pl.lit(max_failures),
                "min_lockout_minutes": pl.lit(min_lockout_minutes),
            },
        )
    )


# --- sharing ------------------------------------------------------------------------------

# Nobody works a terminal without logging in on it, so an operator can only switch terminals
# on a day it logged in on two terminals, or on one other than its home terminal (the login
# on its own may be from the day before). Finding those few days in the logins first spares
# reading and sorting millions of transactions: a run has the store pick out the
# transactions of those days (a few per cent of them).
SWITCH_DAYS_SQL: Final = """
SELECT CAST(l.operator_id AS VARCHAR) AS operator_id, CAST(l.ts AS DATE) AS day
FROM login_events AS l
LEFT JOIN operators AS o ON l.operator_id = o.operator_id
WHERE l.outcome = 'success' AND l.operator_id IS NOT NULL
GROUP BY l.operator_id, CAST(l.ts AS DATE)
HAVING COUNT(DISTINCT l.terminal_id) > 1
    OR MAX(CASE WHEN o.terminal_id IS NULL OR o.terminal_id <> l.terminal_id THEN 1 ELSE 0 END)
        = 1
"""
switch_days = derived_query(
    "switch_days",
    sql=SWITCH_DAYS_SQL,
    source="login_events",
    joined=("operators",),
    time_column="day",
)
switch_days.__doc__ = """Operator-days with a successful login on two terminals, or on one
other than the operator's home terminal: the only days an operator can switch terminals."""

# Refunds are left out: a refund is made on the terminal that holds the sale and is booked to
# the operator trusted with refunds wherever that operator is.
NON_REFUNDS_SQL: Final = """
SELECT
    CAST(operator_id AS VARCHAR) AS operator_id,
    CAST(terminal_id AS VARCHAR) AS terminal_id,
    ts,
    CAST(txn_id AS VARCHAR) AS event_id,
    CAST(ts AS DATE) AS day
FROM transactions
WHERE kind <> 'refund'
"""
SWITCH_DAY_TRANSACTIONS_SQL: Final = f"""
SELECT t.operator_id, t.terminal_id, t.ts, t.event_id
FROM ({NON_REFUNDS_SQL}) AS t
INNER JOIN ({SWITCH_DAYS_SQL}) AS s ON t.operator_id = s.operator_id AND t.day = s.day
"""
switch_day_transactions = derived_query(
    "switch_day_transactions",
    sql=SWITCH_DAY_TRANSACTIONS_SQL,
    source="transactions",
    joined=("login_events", "operators"),
    # the switch days: of the transactions' own days only
    joined_by_day=("login_events",),
    time_column="ts",
)
switch_day_transactions.__doc__ = """The transactions other than refunds of each operator on
its :func:`switch_days`: ``operator_id``, ``terminal_id``, ``ts`` and ``event_id`` (the
transaction's id)."""

# A borrowed login used on a sibling till while the till's own clerk works it shows on the
# till: its sales and the clerk's in turn. Only the tills a switch-day operator signed on at
# that day are read, every operator's sales there.
TILL_DAY_TRANSACTIONS_SQL: Final = f"""
SELECT t.operator_id, t.terminal_id, t.ts, t.event_id
FROM ({NON_REFUNDS_SQL}) AS t
INNER JOIN (
    SELECT DISTINCT CAST(g.terminal_id AS VARCHAR) AS terminal_id, s.day AS day
    FROM login_events AS g
    INNER JOIN ({SWITCH_DAYS_SQL}) AS s
        ON CAST(g.operator_id AS VARCHAR) = s.operator_id AND CAST(g.ts AS DATE) = s.day
    WHERE g.outcome = 'success'
) AS d ON t.terminal_id = d.terminal_id AND t.day = d.day
"""
till_day_transactions = derived_query(
    "till_day_transactions",
    sql=TILL_DAY_TRANSACTIONS_SQL,
    source="transactions",
    joined=("login_events", "operators"),
    # the switch days: of the transactions' own days only
    joined_by_day=("login_events",),
    time_column="ts",
)
till_day_transactions.__doc__ = """The transactions other than refunds, of every operator, on
each terminal and day where an operator of a :func:`switch_days` day signed on:
``operator_id``, ``terminal_id``, ``ts`` and ``event_id``."""


def _episode_extent() -> list[pl.Expr]:
    """A sharing episode's first and last moment and its events (the first
    :data:`MAX_EVIDENCE_IDS`), aggregated over its switches (``previous_ts``, ``ts``,
    ``previous_event_id``, ``event_id``)."""
    return [
        pl.col("previous_ts").min().alias("window_start"),
        pl.col("ts").max().alias("window_end"),
        pl.concat_list("previous_event_id", "event_id")
        .list.explode()
        .unique(maintain_order=True)
        .head(MAX_EVIDENCE_IDS)
        .alias("event_ids"),
    ]


def _till_sharing(
    till_day_transactions: pl.LazyFrame,
    login_events: pl.LazyFrame,
    activity: pl.LazyFrame,
    paired_sign_ons: pl.LazyFrame,
    *,
    max_gap: timedelta,
    window: timedelta,
    min_switches: int,
) -> pl.LazyFrame:
    """:func:`credential_sharing`'s episodes seen on a till: two logins signed on at one till
    on a day, one of them on a :func:`switch_days` day, whose sales there went in turn."""
    till = ["terminal_id"]
    switches = (
        till_day_transactions.select(
            pl.col("operator_id").cast(pl.String),
            pl.col("terminal_id").cast(pl.String),
            pl.col("ts").cast(pl.Datetime("us")),
            pl.col("event_id").cast(pl.String),
        )
        .sort(*till, "ts", "event_id")
        .with_columns(
            pl.col(c).shift(1).over(till).alias(f"previous_{c}")
            for c in ("operator_id", "ts", "event_id")
        )
        .filter(
            (pl.col("operator_id") != pl.col("previous_operator_id"))
            & ((pl.col("ts") - pl.col("previous_ts")) <= max_gap)
        )
        .with_columns(pl.col("ts").dt.date().alias("day"))
    )
    # each switch once for each of its two logins: the till came to it, or left it
    kept = ("terminal_id", "day", "ts", "event_id", "previous_ts", "previous_event_id")
    per_login = pl.concat(
        [
            switches.select(
                "operator_id",
                pl.col("previous_operator_id").alias("other_operator_id"),
                *kept,
                pl.lit(True).alias("is_into"),
            ),
            switches.select(
                pl.col("previous_operator_id").alias("operator_id"),
                pl.col("operator_id").alias("other_operator_id"),
                *kept,
                pl.lit(False).alias("is_into"),
            ),
        ]
    )
    day_keys = ["operator_id", "terminal_id", "day"]
    # a login signed on at the till on a day it worked two tills (a roaming clerk works one)
    two_tills = (
        activity.group_by("operator_id", "day")
        .agg(pl.col("terminal_id").n_unique().alias("tills"))
        .filter(pl.col("tills") >= 2)
        .select("operator_id", "day")
    )
    switch_day_sign_ons = (
        activity.filter(pl.col("is_sign_on"))
        .select(day_keys)
        .unique()
        .join(two_tills, on=["operator_id", "day"], how="semi")
    )
    # every login signed on at a till that day, as the other of a switch
    others_signed_on = (
        _logins(login_events)
        .filter((pl.col("outcome") == "success") & pl.col("operator_id").is_not_null())
        .select(
            pl.col("operator_id").alias("other_operator_id"),
            "terminal_id",
            pl.col("ts").dt.date().alias("day"),
        )
        .unique()
    )
    by = ["operator_id", "terminal_id"]
    # back to the login the till had just left
    back = pl.col("is_into") != pl.col("is_into").shift(1).over(*by, "burst")
    episodes = (
        # both logins signed on at the till that day, one of them on a switch day
        per_login.join(switch_day_sign_ons, on=day_keys, how="semi")
        .join(others_signed_on, on=["other_operator_id", "terminal_id", "day"], how="semi")
        .pipe(_with_burst_ids, by=by, max_gap=window)
        .with_columns(back.fill_null(False).alias("is_back"))
        .group_by(*by, "burst")
        .agg(
            pl.len().alias("switches"),
            pl.col("is_back").sum().alias("switches_back"),
            *_episode_extent(),
            pl.col("other_operator_id").unique().alias("partners"),
        )
        .filter((pl.col("switches") >= min_switches) & (pl.col("switches_back") >= 1))
    )
    # a cover by either login of the turns: the operator, or the partner it took turns with
    # (the till's own clerk and a clerk covering it and its sibling share the till a while)
    cols = (*by, "burst", "window_start", "window_end")
    either_login = pl.concat(
        [
            episodes.select(*cols, pl.col("operator_id").alias("covering")),
            episodes.select(*cols, pl.col("partners").alias("covering")).explode("covering"),
        ]
    )
    covers = (
        either_login.join(paired_sign_ons.rename({"operator_id": "covering"}), on="covering")
        .filter(
            (pl.col("paired_at") >= pl.col("window_start") - window)
            & (pl.col("paired_at") <= pl.col("window_end"))
        )
        .select(*by, "burst")
        .unique()
    )
    return episodes.join(covers, on=[*by, "burst"], how="anti").select(
        "operator_id",
        "switches",
        "switches_back",
        pl.concat_list("terminal_id").alias("terminal_ids"),
        "window_start",
        "window_end",
        "event_ids",
        pl.lit("till").alias("seen"),
    )


CREDENTIAL_SHARING: Final = Sentence(
    en="{operator} of terminal {home_terminal_id} {seen}",
    zh="终端 {home_terminal_id} 的{operator}{seen}",
    fields={
        "operator": Operator(terminal="home_terminal_id"),
        "home_terminal_id": Value(),
        "seen": Clause(
            {
                "terminals": (
                    "was active on terminals {terminal_ids} in turn on {day} from {start} to "
                    "{end}, switching {switches} times with at most {max_gap_minutes} minutes "
                    "between terminals",
                    "于 {day} {start} 至 {end} 在终端 {terminal_ids} 之间交替登录使用，"
                    "切换 {switches} 次，每次间隔不超过 {max_gap_minutes} 分钟",
                ),
                "till": (
                    "signed on at terminal {terminal_ids} on {day} and sold there in turn with "
                    "another login from {start} to {end}, switching {switches} times with at "
                    "most {max_gap_minutes} minutes between logins",
                    "于 {day} 登录终端 {terminal_ids}，{start} 至 {end} 与该终端的另一登录"
                    "交替交易，切换 {switches} 次，每次间隔不超过 {max_gap_minutes} 分钟",
                ),
            }
        ),
        "terminal_ids": Items(Value(), separators=(" and ", "、")),
        "day": Value(DAY),
        "start": Value(CLOCK),
        "end": Value(CLOCK),
        "switches": Value(NUMBER),
        "max_gap_minutes": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=timedelta(days=1),
    scenarios=("credential_sharing",),
)
def credential_sharing(
    login_events: pl.LazyFrame,
    switch_days: pl.LazyFrame,
    switch_day_transactions: pl.LazyFrame,
    till_day_transactions: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    # A roaming clerk works a sibling terminal a whole shift (docs/scenarios.md): one switch at
    # most. Measured on simulated worlds (1,000 merchants x 30 days, with and without fraud):
    # 30 / 3 / 120 find 98.9 % of injected sharing and nothing in a natural world; 2 switches
    # find 99.5 %, but A->B->A is also a clerk stepping over to help for a minute.
    max_gap_minutes: int = 30,  # sharing alternates every few minutes
    min_switches: int = 3,  # A->B->A->B; a handover from one terminal to another is one switch
    window_minutes: int = 120,  # sharing goes on "within the same hour or two"
    # A clerk covering two tills signs on at one, walks over and signs on at the other: a couple
    # of minutes in one shop. Each minute more also takes a login borrowed by chance within
    # that time of its owner's own sign-on for a cover: under 1 % of simulated sharing at 3
    # minutes, 2 % at 5, 4 % at 10 (docs/detection.md#innocent-look-alikes-what-tells-them-apart).
    cover_sign_on_minutes: int = 3,
) -> pl.LazyFrame:
    """Operators whose login is active on two terminals in turn, back and forth within minutes.

    A login is one person. When one operator number logs in and sells on one terminal while
    its activity goes on at another terminal of the merchant, back and forth, two people are
    using it: a shared PIN, or a login taken over, and nothing done with it can be
    attributed. Activity is successful logins and sales, voids and transfers of any status;
    refunds are left out, since a refund is made on the terminal that holds the sale and is
    booked to the operator trusted with refunds wherever that operator is (the refunds
    family judges refunds). A *switch* is two consecutive activities of the operator on
    different terminals no more than ``max_gap_minutes`` apart; switches form an episode
    while each follows the previous within ``window_minutes``. An episode with
    ``min_switches`` or more switches, at least one of them back to a terminal the operator
    had just left, is a finding, unless it is a *shift cover*: within the episode the operator
    signed on at a terminal no more than ``cover_sign_on_minutes`` after signing on at
    another. A clerk asked to cover two tills signs on at both, one after the other; a
    borrowed login is signed on at the sibling only, while its owner's session on the home
    terminal has run since the shift began (docs/detection.md).

    The same sharing shows on a till, when the borrowed login is used there while its owner
    is away from it: the login signed on at the till on a day it worked two or more tills,
    another login signed on there that day too (the till's own clerk), and the till's sales
    went from one of the two logins to the other and back, each switch within
    ``max_gap_minutes`` of the sale before, ``min_switches`` or more in one episode as above.
    One till serves one person at a time; two logins taking turns on it within minutes are
    two people on one login, or one person on another's. A shift cover is left alone here too
    (two sign-ons within ``cover_sign_on_minutes`` of the operator, or of the login it took
    turns with, no more than ``window_minutes`` before the episode or in it: a cover clerk
    stays on both tills a while, and the till's own clerk shares the till with it), a clerk
    who works only that till all day (roaming) is that till's clerk for the day, and a clerk
    taking over a till at a shift change follows the leaving clerk's last sale once, not in
    turn.

    Parameters
    ----------
    max_gap_minutes
        Longest time between activities on two terminals, or between two logins' sales on
        one terminal, that counts as a switch.
    min_switches
        Switches in one episode that make a finding.
    window_minutes
        Longest time between two switches of one episode.
    cover_sign_on_minutes
        Longest time between the two sign-ons, on two terminals, that make a shift cover.
    """
    by = ["operator_id"]
    max_gap = timedelta(minutes=max_gap_minutes)
    window = timedelta(minutes=window_minutes)
    day = pl.col("ts").dt.date().alias("day")
    numbers = operators.select(
        pl.col("operator_id").cast(pl.String),
        pl.col("operator_no").cast(pl.String),
        pl.col("terminal_id").cast(pl.String).alias("home_terminal_id"),
        pl.col("merchant_id").cast(pl.String),
    ).unique(subset="operator_id", keep="any")
    days = switch_days.select(pl.col("operator_id").cast(pl.String), pl.col("day").cast(pl.Date))
    logins = (
        _logins(login_events)
        .filter((pl.col("outcome") == "success") & pl.col("operator_id").is_not_null())
        .select("operator_id", "terminal_id", "ts", "event_id", day)
        .join(days, on=["operator_id", "day"], how="semi")
        .with_columns(pl.lit(True).alias("is_sign_on"))
    )
    activity = pl.concat(
        [
            logins,
            switch_day_transactions.select(
                pl.col("operator_id").cast(pl.String),
                pl.col("terminal_id").cast(pl.String),
                pl.col("ts").cast(pl.Datetime("us")),
                pl.col("event_id").cast(pl.String),
                day,
                pl.lit(False).alias("is_sign_on"),
            ),
        ]
    )
    previous = [
        pl.col(c).shift(1).over(by).alias(f"previous_{c}")
        for c in ("terminal_id", "ts", "event_id")
    ]
    # the operator's sign-on before this event, wherever it was
    sign_on = [
        pl.when(pl.col("is_sign_on"))
        .then(pl.col(c))
        .shift(1)
        .forward_fill()
        .over(by)
        .alias(f"previous_sign_on_{c}")
        for c in ("terminal_id", "ts")
    ]
    # signed on here minutes after signing on at another terminal: both tills taken on
    paired_sign_on = (
        pl.col("is_sign_on")
        & (pl.col("previous_sign_on_terminal_id") != pl.col("terminal_id"))
        & (
            (pl.col("ts") - pl.col("previous_sign_on_ts"))
            <= timedelta(minutes=cover_sign_on_minutes)
        )
    ).fill_null(False)
    last_paired_sign_on = (
        pl.when(paired_sign_on).then(pl.col("ts")).forward_fill().over(by).alias("paired_at")
    )
    ordered = activity.sort(*by, "ts", "event_id").with_columns(*previous, *sign_on)
    back = pl.col("terminal_id") == pl.col("previous_terminal_id").shift(1).over(*by, "burst")
    between_terminals = (
        ordered.with_columns(last_paired_sign_on)
        .filter(
            (pl.col("terminal_id") != pl.col("previous_terminal_id"))
            & ((pl.col("ts") - pl.col("previous_ts")) <= max_gap)
        )
        .pipe(_with_burst_ids, by=by, max_gap=window)
        .with_columns(back.fill_null(False).alias("is_back"))
        .group_by(*by, "burst")
        .agg(
            pl.len().alias("switches"),
            pl.col("is_back").sum().alias("switches_back"),
            # a pair of sign-ons inside the episode
            (pl.col("paired_at").max() >= pl.col("previous_ts").min())
            .fill_null(False)
            .alias("is_shift_cover"),
            pl.concat_list("previous_terminal_id", "terminal_id")
            .list.explode()
            .unique()
            .sort()
            .alias("terminal_ids"),
            *_episode_extent(),
        )
        .filter(
            (pl.col("switches") >= min_switches)
            & (pl.col("switches_back") >= 1)
            & ~pl.col("is_shift_cover")
        )
        .select(
            "operator_id",
            "switches",
            "switches_back",
            "terminal_ids",
            "window_start",
            "window_end",
            "event_ids",
            pl.lit("terminals").alias("seen"),
        )
    )
    on_a_till = _till_sharing(
        till_day_transactions,
        login_events,
        activity,
        ordered.filter(paired_sign_on).select("operator_id", pl.col("ts").alias("paired_at")),
        max_gap=max_gap,
        window=window,
        min_switches=min_switches,
    )
    # an episode seen both ways is one finding, the terminals' one
    seen_already = (
        on_a_till.select("operator_id", "window_start", "window_end")
        .join(
            between_terminals.select(
                "operator_id",
                pl.col("window_start").alias("other_start"),
                pl.col("window_end").alias("other_end"),
            ),
            on="operator_id",
        )
        .filter(
            (pl.col("window_start") <= pl.col("other_end"))
            & (pl.col("other_start") <= pl.col("window_end"))
        )
        .select("operator_id", "window_start")
        .unique()
    )
    return (
        pl.concat(
            [
                between_terminals,
                on_a_till.join(seen_already, on=["operator_id", "window_start"], how="anti"),
            ]
        )
        .join(numbers, on="operator_id", how="left")
        .with_columns(pl.coalesce("operator_no", "operator_id").alias("operator_no"))
        .pipe(
            _findings,
            rule_name="credential_sharing",
            entity_type="operator",
            entity_id="operator_id",
            severity="medium",
            score=(0.7 + 0.05 * (pl.col("switches") - min_switches)).clip(0.7, 1.0),
            summary=CREDENTIAL_SHARING.expr(
                operator="operator_no",
                home_terminal_id=pl.col("home_terminal_id").fill_null("unknown"),
                seen="seen",
                terminal_ids="terminal_ids",
                day=_day("window_start"),
                start=_clock("window_start"),
                end=_clock("window_end"),
                switches="switches",
                max_gap_minutes=pl.lit(max_gap_minutes),
            ),
            evidence={
                "operator_no": pl.col("operator_no"),
                "home_terminal_id": pl.col("home_terminal_id"),
                "terminal_ids": pl.col("terminal_ids"),
                "switches": pl.col("switches"),
                "switches_back": pl.col("switches_back"),
                "seen_on": pl.col("seen"),
                "event_ids": pl.col("event_ids"),
                "max_gap_minutes": pl.lit(max_gap_minutes),
                "min_switches": pl.lit(min_switches),
                "window_minutes": pl.lit(window_minutes),
                "cover_sign_on_minutes": pl.lit(cover_sign_on_minutes),
            },
        )
    )


# --- terminal health ----------------------------------------------------------------------


NETWORK_FAILURE_BURST: Final = Sentence(
    en="terminal {terminal_id} could not reach the host {network_errors} times in {span} on {day} "
    "from {start}; check its network (these are not wrong PINs)",
    zh="终端 {terminal_id} 于 {day} {start} 起的 {span} 分钟内有 {network_errors} 次无法连接主机；"
    "请检查其网络（这些不是密码错误）",
    fields={
        "terminal_id": Value(),
        "network_errors": Value(NUMBER),
        "span": Count("minute", "minutes"),
        "day": Value(DAY),
        "start": Value(CLOCK),
    },
)


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="terminal_id",
    lookback=timedelta(days=1),
    scenarios=(),
)
def network_failure_burst(
    login_events: pl.LazyFrame,
    terminals: pl.LazyFrame,
    *,
    min_errors: int = 5,  # every terminal has the odd single network error; flaky ones 5-40
    # in a burst (docs/scenarios.md)
    max_gap_minutes: int = 30,  # bursts retry every 20-120 s
) -> pl.LazyFrame:
    """Terminals that could not reach the host many times in a short time (a health note).

    Failed logins for a network error are not failed credentials: they never count toward
    a lockout, and reading them as guessing would accuse staff of a bad line. Reported as
    'info' so the network can be fixed, and kept apart from the credential rules. Network
    errors of one terminal form a burst while each follows the previous within
    ``max_gap_minutes``; a burst of ``min_errors`` or more is a finding.

    Parameters
    ----------
    min_errors
        Network errors in one burst that make a finding.
    max_gap_minutes
        Longest pause between two network errors of one burst.
    """
    return (
        _logins(login_events)
        .filter(pl.col("outcome") == "network_error")
        .pipe(_with_burst_ids, by=["terminal_id"], max_gap=timedelta(minutes=max_gap_minutes))
        .group_by("terminal_id", "burst")
        .agg(
            pl.len().alias("network_errors"),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            _ids("event_id").alias("event_ids"),
        )
        .filter(pl.col("network_errors") >= min_errors)
        .join(_terminal_settings(terminals), on="terminal_id", how="left")
        .pipe(
            _findings,
            rule_name="network_failure_burst",
            entity_type="terminal",
            entity_id="terminal_id",
            severity="info",
            score=(0.3 + 0.02 * (pl.col("network_errors") - min_errors)).clip(0.3, 0.8),
            summary=NETWORK_FAILURE_BURST.expr(
                terminal_id="terminal_id",
                network_errors="network_errors",
                span=_span(),
                day=_day("window_start"),
                start=_clock("window_start"),
            ),
            evidence={
                "network_errors": pl.col("network_errors"),
                "login_event_ids": pl.col("event_ids"),
                "min_errors": pl.lit(min_errors),
                "max_gap_minutes": pl.lit(max_gap_minutes),
            },
        )
    )


# Each rule's sentence, by rule name: what the report writes each finding's sentence from.
SENTENCES: Final[dict[str, Sentence]] = {
    "pin_brute_force": PIN_BRUTE_FORCE,
    "operator_enumeration": OPERATOR_ENUMERATION,
    "lockout_storm": LOCKOUT_STORM,
    "lockout_not_enforced": LOCKOUT_NOT_ENFORCED,
    "credential_sharing": CREDENTIAL_SHARING,
    "network_failure_burst": NETWORK_FAILURE_BURST,
}
