"""Tests of the logins rule family on small literal frames."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posaudit.detect import logins
from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.registry import DERIVED_TABLES, RULES
from tests.sentences import assert_summaries_read_back

T0 = datetime(2026, 3, 4, 10, 0)
MERCHANT = "M000001"
TERMINAL = "T000001"
SIBLING = "T000002"
CLERK = "T000001-03"
OTHER_CLERK = "T000001-04"
ADMIN = "T000001-00"
SIBLING_CLERK = "T000002-05"
NUMBERS = {CLERK: "03", OTHER_CLERK: "04", ADMIN: "00", SIBLING_CLERK: "05"}
DATA_FROM = datetime(2026, 3, 1)
DATA_TO = datetime(2026, 3, 31, 23, 59)

OUTCOMES = pl.Enum(["success", "wrong_pin", "unknown_operator", "locked", "network_error"])
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
LOGIN_SCHEMA: dict[str, Any] = {
    "event_id": pl.String,
    "ts": pl.Datetime("us"),
    "terminal_id": pl.String,
    "operator_no": pl.String,
    "operator_id": pl.String,
    "outcome": pl.String,
}
LOCKOUT_SCHEMA: dict[str, Any] = {
    "lockout_id": pl.String,
    "terminal_id": pl.String,
    "operator_id": pl.String,
    "locked_at": pl.Datetime("us"),
    "unlocked_at": pl.Datetime("us"),
    "unlock_method": pl.String,
}
TXN_SCHEMA: dict[str, Any] = {
    "txn_id": pl.String,
    "ts": pl.Datetime("us"),
    "terminal_id": pl.String,
    "merchant_id": pl.String,
    "operator_id": pl.String,
    "kind": pl.String,
    "status": pl.String,
}


# --- literal-frame builders ---------------------------------------------------------------


def attempt(
    ts: datetime,
    outcome: str,
    *,
    operator_id: str | None = CLERK,
    operator_no: str | None = None,
    terminal_id: str = TERMINAL,
) -> dict[str, Any]:
    """One login attempt; ``operator_no`` defaults to the operator's own number."""
    number = operator_no if operator_no is not None else NUMBERS.get(operator_id or "", "77")
    return {
        "ts": ts,
        "terminal_id": terminal_id,
        "operator_no": number,
        "operator_id": operator_id,
        "outcome": outcome,
    }


def login_events(*rows: dict[str, Any], enum: bool = False) -> pl.LazyFrame:
    data = [{"event_id": f"L{i}", **row} for i, row in enumerate(rows)]
    frame = pl.LazyFrame(data, schema=LOGIN_SCHEMA)
    if enum:  # as the store delivers them
        frame = frame.with_columns(pl.col("outcome").cast(OUTCOMES))
    return frame


def lockout(
    locked_at: datetime,
    minutes: int | None = 30,
    *,
    operator_id: str = CLERK,
    terminal_id: str = TERMINAL,
    method: str = "timeout",
) -> dict[str, Any]:
    return {
        "terminal_id": terminal_id,
        "operator_id": operator_id,
        "locked_at": locked_at,
        "unlocked_at": None if minutes is None else locked_at + timedelta(minutes=minutes),
        "unlock_method": None if minutes is None else method,
    }


def lockouts(*rows: dict[str, Any]) -> pl.LazyFrame:
    data = [{"lockout_id": f"K{i}", **row} for i, row in enumerate(rows)]
    return pl.LazyFrame(data, schema=LOCKOUT_SCHEMA)


def terminals(
    threshold: int | None = 5,
    minutes: int | None = 30,
    *,
    sibling_threshold: int | None = 5,
    sibling_minutes: int | None = 30,
) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "terminal_id": [TERMINAL, SIBLING],
            "merchant_id": [MERCHANT, MERCHANT],
            "lockout_threshold": [threshold, sibling_threshold],
            "lockout_minutes": [minutes, sibling_minutes],
        },
        schema={
            "terminal_id": pl.String,
            "merchant_id": pl.String,
            "lockout_threshold": pl.Int32,
            "lockout_minutes": pl.Int32,
        },
    )


def operators() -> pl.LazyFrame:
    ids = [ADMIN, CLERK, OTHER_CLERK, SIBLING_CLERK]
    return pl.LazyFrame(
        {
            "operator_id": ids,
            "terminal_id": [TERMINAL, TERMINAL, TERMINAL, SIBLING],
            "merchant_id": [MERCHANT] * 4,
            "operator_no": [NUMBERS[i] for i in ids],
            "role": ["admin", "clerk", "clerk", "clerk"],
        }
    )


def sale(txn_id: str, ts: datetime, *, terminal_id: str = TERMINAL, operator_id: str = CLERK):
    return {
        "txn_id": txn_id,
        "ts": ts,
        "terminal_id": terminal_id,
        "merchant_id": MERCHANT,
        "operator_id": operator_id,
        "kind": "sale",
        "status": "approved",
    }


def transactions(*rows: dict[str, Any]) -> pl.LazyFrame:
    return pl.LazyFrame(list(rows), schema=TXN_SCHEMA)


def data_window() -> pl.LazyFrame:
    return pl.LazyFrame(
        {"data_from": [DATA_FROM], "data_to": [DATA_TO]},
        schema={"data_from": pl.Datetime("us"), "data_to": pl.Datetime("us")},
    )


def every(start: datetime, n: int, seconds: float) -> list[datetime]:
    return [start + timedelta(seconds=seconds * i) for i in range(n)]


# Each rule's severities (docs/detection.md#severity): only a guess that got in is high.
SEVERITIES_OF: dict[str, tuple[str, ...]] = {
    "pin_brute_force": ("medium", "high"),
    "operator_enumeration": ("medium",),
    "lockout_storm": ("medium",),
    "lockout_not_enforced": ("medium",),
    "credential_sharing": ("medium",),
    "network_failure_burst": ("info",),
}


def check(found: pl.LazyFrame, *, severities: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Collect a rule's output and check what every finding must satisfy: among others, its
    rule's severity (and one of ``severities`` when given)."""
    frame = found.collect()
    assert frame.schema == FINDINGS_SCHEMA
    for row in frame.iter_rows(named=True):
        assert row["finding_id"] and row["entity_id"] and row["merchant_id"] == MERCHANT
        assert row["family"] == "logins"
        assert row["window_start"] <= row["window_end"]
        assert row["severity"] in SEVERITIES_OF[row["rule"]], (row["rule"], row["severity"])
        assert severities is None or row["severity"] in severities
        assert 0.0 <= row["score"] <= 1.0
        evidence = json.loads(row["evidence"])
        # PINs are secrets: no PIN or digest field, no digest-shaped value, ever
        assert not any("pin" in key or "digest" in key for key in evidence), evidence
        for text in (row["summary"], row["evidence"]):
            assert not HEX_DIGEST.search(text), text
            assert "pin_digest" not in text
    assert_summaries_read_back(frame)
    return frame


# --- registry -----------------------------------------------------------------------------

RULE_NAMES = (
    "pin_brute_force",
    "operator_enumeration",
    "lockout_storm",
    "lockout_not_enforced",
    "credential_sharing",
    "network_failure_burst",
)


def all_tables() -> dict[str, pl.LazyFrame]:
    return {
        "login_events": login_events(),
        "lockouts": lockouts(),
        "terminals": terminals(),
        "operators": operators(),
        "transactions": transactions(),
        "data_window": data_window(),
    }


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_is_registered_with_table_inputs_and_typed_thresholds(name: str) -> None:
    registered = RULES[name]
    assert registered.family == "logins"
    assert registered.function is getattr(logins, name)
    # store tables, or shared frames computed from them
    stored = {
        s
        for n in registered.inputs
        for s in (DERIVED_TABLES[n].sources if n in DERIVED_TABLES else (n,))
    }
    assert stored <= set(all_tables())
    assert registered.entity_type in ("operator", "terminal")
    assert registered.lookback >= timedelta(days=1)
    assert all(isinstance(v, int | float | bool | str) for v in registered.parameters.values())
    assert registered.description
    # every rule that accuses someone names the scenario it is measured against
    assert registered.scenarios or name == "network_failure_burst"


@pytest.mark.parametrize("name", RULE_NAMES)
def test_empty_tables_give_empty_findings_of_the_schema(name: str) -> None:
    tables = all_tables()
    # with no terminal there is no setting to judge either
    tables["terminals"] = terminals().filter(pl.lit(False))
    frame = RULES[name](tables).collect()
    assert frame.schema == FINDINGS_SCHEMA
    assert frame.height == 0


def test_takeover_refund_is_left_to_the_refunds_family() -> None:
    assert "takeover_refund" not in {n for n, r in RULES.items() if r.family == "logins"}


# --- pin_brute_force ----------------------------------------------------------------------


@pytest.mark.parametrize("enum", [False, True])
def test_pin_brute_force_fires_on_a_fast_run_of_wrong_pins(enum: bool) -> None:
    times = every(T0, 14, 10)
    events = login_events(*(attempt(ts, "wrong_pin") for ts in times), enum=enum)
    found = check(logins.pin_brute_force(events, lockouts(), terminals(threshold=None)))
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["entity_type"], row["entity_id"], row["rule"]) == (
        "operator",
        CLERK,
        "pin_brute_force",
    )
    assert row["severity"] == "medium"  # guessing that did not get in
    assert (row["window_start"], row["window_end"]) == (times[0], times[-1])
    assert row["summary"] == (
        "operator 03 at terminal T000001 had 14 wrong PINs in 3 minutes on 2026-03-04 from "
        "10:00, was never locked out (the terminal never locks), and did not get in"
    )
    evidence = json.loads(row["evidence"])
    assert evidence["failures"] == 14
    assert evidence["login_event_ids"][:2] == ["L0", "L1"]
    assert evidence["min_failures"] == 12


def test_pin_brute_force_follows_the_attack_across_lockouts() -> None:
    # 5 wrong PINs, a lock for 60 minutes, 1 attempt while locked, resume after the timeout
    rows: list[dict[str, Any]] = []
    locks: list[dict[str, Any]] = []
    start = T0
    for _ in range(4):
        times = every(start, 5, 15)
        rows += [attempt(ts, "wrong_pin") for ts in times]
        locks.append(lockout(times[-1], 60))
        rows.append(attempt(times[-1] + timedelta(seconds=10), "locked"))
        start = times[-1] + timedelta(minutes=61)
    events = login_events(*rows)
    found = check(logins.pin_brute_force(events, lockouts(*locks), terminals(5, 60)))
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["summary"].startswith(
        "operator 03 at terminal T000001 had 20 wrong PINs in 188 minutes on 2026-03-04 from "
        "10:00, was locked out 4 times and tried 4 more times while locked (the terminal locks "
        "after 5 wrong PINs for 60 minutes), and did not get in"
    )
    assert json.loads(row["evidence"])["lockouts"] == 4
    # without the lockouts the hour-long pauses split the attack into small bursts
    assert check(logins.pin_brute_force(events, lockouts(), terminals(5, 60))).height == 0


def test_pin_brute_force_is_not_confused_by_an_old_lockout() -> None:
    # the operator forgot its PIN yesterday; today's attack comes without a lockout (admin
    # unlocked, the terminal's lockout was switched off): only today's gaps count
    yesterday = T0 - timedelta(days=1)
    rows = [attempt(ts, "wrong_pin") for ts in every(yesterday, 5, 20)]
    rows += [attempt(ts, "wrong_pin") for ts in every(T0, 12, 240)]
    locks = lockouts(lockout(yesterday + timedelta(seconds=80), 30, method="admin"))
    found = check(logins.pin_brute_force(login_events(*rows), locks, terminals()))
    assert found.height == 1
    assert found["window_start"][0] == T0
    assert json.loads(found["evidence"][0])["lockouts"] == 0


def test_pin_brute_force_is_high_when_the_burst_ends_in_a_success() -> None:
    times = every(T0, 13, 8)
    success = times[-1] + timedelta(seconds=8)
    events = login_events(*(attempt(ts, "wrong_pin") for ts in times), attempt(success, "success"))
    row = check(logins.pin_brute_force(events, lockouts(), terminals())).row(0, named=True)
    assert row["severity"] == "high"
    assert row["window_end"] == success
    assert "then logged in at 10:01" in row["summary"]
    # a success long after is the operator's own next shift
    later = login_events(
        *(attempt(ts, "wrong_pin") for ts in times),
        attempt(times[-1] + timedelta(hours=3), "success"),
    )
    row = check(logins.pin_brute_force(later, lockouts(), terminals())).row(0, named=True)
    assert row["severity"] == "medium"
    assert row["window_end"] == times[-1]


def test_pin_brute_force_leaves_forgetful_staff_typos_and_network_alone() -> None:
    forgot = every(T0, 5, 30)
    rows = [attempt(ts, "wrong_pin") for ts in forgot]
    rows += [attempt(forgot[-1] + timedelta(seconds=s), "locked") for s in (20, 40)]
    rows.append(attempt(T0 + timedelta(minutes=12), "success"))  # after the admin's reset
    # a typo at every later login of the day, hours apart
    for hours in (3, 6, 9):
        rows += [
            attempt(T0 + timedelta(hours=hours), "wrong_pin"),
            attempt(T0 + timedelta(hours=hours, seconds=10), "wrong_pin"),
            attempt(T0 + timedelta(hours=hours, seconds=20), "success"),
        ]
    rows += [attempt(ts, "network_error") for ts in every(T0 + timedelta(hours=1), 30, 40)]
    rows += [
        attempt(ts, "unknown_operator", operator_id=None, operator_no="55")
        for ts in every(T0 + timedelta(hours=2), 20, 10)
    ]
    events = login_events(*rows)
    locks = lockouts(lockout(forgot[-1], 10, method="admin"))
    assert check(logins.pin_brute_force(events, locks, terminals())).height == 0


def test_pin_brute_force_counts_per_operator_and_terminal() -> None:
    # 8 wrong PINs on each of two operators, and 8 more on the first at the sibling terminal
    times = every(T0, 8, 10)
    events = login_events(
        *(attempt(ts, "wrong_pin") for ts in times),
        *(attempt(ts, "wrong_pin", operator_id=OTHER_CLERK) for ts in times),
        *(attempt(ts, "wrong_pin", terminal_id=SIBLING) for ts in times),
    )
    assert check(logins.pin_brute_force(events, lockouts(), terminals())).height == 0
    assert (
        check(logins.pin_brute_force(events, lockouts(), terminals(), min_failures=8)).height == 3
    )


def test_pin_brute_force_does_not_depend_on_row_order() -> None:
    times = every(T0, 15, 10)
    events = login_events(*(attempt(ts, "wrong_pin") for ts in times))
    shuffled = events.collect().sample(fraction=1.0, shuffle=True, seed=3).lazy()
    a = check(logins.pin_brute_force(events, lockouts(), terminals()))
    b = check(logins.pin_brute_force(shuffled, lockouts(), terminals()))
    assert a.equals(b)


@settings(max_examples=60, deadline=None)
@given(
    gaps_seconds=st.lists(st.integers(min_value=1, max_value=3_600), min_size=0, max_size=29),
    min_failures=st.integers(min_value=2, max_value=25),
)
def test_pin_brute_force_fires_iff_a_burst_reaches_min_failures(
    gaps_seconds: list[int], min_failures: int
) -> None:
    # every gap is within max_gap_minutes (60): one burst of len(gaps) + 1 failures
    times = [T0]
    for gap in gaps_seconds:
        times.append(times[-1] + timedelta(seconds=gap))
    events = login_events(*(attempt(ts, "wrong_pin") for ts in times))
    found = check(
        logins.pin_brute_force(events, lockouts(), terminals(), min_failures=min_failures)
    )
    assert found.height == (1 if len(times) >= min_failures else 0)
    if found.height:
        assert (found["window_start"][0], found["window_end"][0]) == (times[0], times[-1])


@settings(max_examples=40, deadline=None)
@given(
    first=st.integers(min_value=1, max_value=20),
    second=st.integers(min_value=1, max_value=20),
    pause_seconds=st.integers(min_value=3_601, max_value=86_400),
)
def test_pin_brute_force_splits_bursts_at_a_long_pause(
    first: int, second: int, pause_seconds: int
) -> None:
    a = every(T0, first, 10)
    b = every(a[-1] + timedelta(seconds=pause_seconds), second, 10)
    events = login_events(*(attempt(ts, "wrong_pin") for ts in a + b))
    found = check(logins.pin_brute_force(events, lockouts(), terminals(), min_failures=10))
    assert found.height == (first >= 10) + (second >= 10)


# --- operator_enumeration -----------------------------------------------------------------


def enumeration(
    numbers: list[str], start: datetime = T0, seconds: float = 7
) -> list[dict[str, Any]]:
    """Attempts on ``numbers`` in turn: known numbers get a wrong PIN, others are unknown."""
    known = {no: op for op, no in NUMBERS.items() if op != SIBLING_CLERK}
    return [
        attempt(ts, "wrong_pin", operator_id=known[no])
        if no in known
        else attempt(ts, "unknown_operator", operator_id=None, operator_no=no)
        for ts, no in zip(every(start, len(numbers), seconds), numbers, strict=True)
    ]


@pytest.mark.parametrize("enum", [False, True])
def test_operator_enumeration_fires_on_many_numbers_in_one_burst(enum: bool) -> None:
    numbers = [f"{i:02d}" for i in range(30)]
    rows = enumeration(numbers)
    found = check(logins.operator_enumeration(login_events(*rows, enum=enum), terminals()))
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["entity_type"], row["entity_id"]) == ("terminal", TERMINAL)
    assert (row["window_start"], row["window_end"]) == (rows[0]["ts"], rows[-1]["ts"])
    assert row["summary"].startswith(
        "terminal T000001 was tried with 30 operator numbers (27 unknown) in 30 failed logins"
    )
    evidence = json.loads(row["evidence"])
    assert evidence["operators_tried"] == 3
    assert len(evidence["login_event_ids"]) == 20


def test_operator_enumeration_leaves_mistyped_numbers_and_one_operator_alone() -> None:
    rows: list[dict[str, Any]] = []
    for hours, wrong in zip(
        range(0, 14, 2), ("51", "62", "73", "84", "58", "69", "70"), strict=True
    ):
        ts = T0 + timedelta(hours=hours)
        rows.append(attempt(ts, "unknown_operator", operator_id=None, operator_no=wrong))
        rows.append(attempt(ts + timedelta(seconds=15), "success"))
    # a brute-force run tries one number only
    rows += [attempt(ts, "wrong_pin") for ts in every(T0 + timedelta(hours=1), 40, 10)]
    assert check(logins.operator_enumeration(login_events(*rows), terminals())).height == 0


@settings(max_examples=50, deadline=None)
@given(
    distinct=st.integers(min_value=1, max_value=20),
    repeats=st.integers(min_value=1, max_value=3),
    threshold=st.integers(min_value=2, max_value=15),
)
def test_operator_enumeration_fires_iff_distinct_numbers_reach_the_threshold(
    distinct: int, repeats: int, threshold: int
) -> None:
    numbers = [f"{50 + i:02d}" for i in range(distinct)] * repeats
    events = login_events(*enumeration(numbers))
    found = check(logins.operator_enumeration(events, terminals(), min_operator_numbers=threshold))
    assert found.height == (1 if distinct >= threshold else 0)


# --- lockout_storm ------------------------------------------------------------------------


def test_lockout_storm_fires_on_several_operators_locked_within_the_hour() -> None:
    locks = lockouts(
        lockout(T0, operator_id=CLERK),
        lockout(T0 + timedelta(minutes=4), operator_id=OTHER_CLERK),
        lockout(T0 + timedelta(minutes=9), operator_id=ADMIN),
    )
    found = check(logins.lockout_storm(locks, terminals(), operators()), severities=("medium",))
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["entity_type"], row["entity_id"]) == ("terminal", TERMINAL)
    assert (row["window_start"], row["window_end"]) == (T0, T0 + timedelta(minutes=9))
    assert (
        "terminal T000001 locked out 3 operators (00, 03, 04) 3 times in 9 minutes"
        in row["summary"]
    )


def test_lockout_storm_leaves_guessing_of_single_operators_and_spread_lockouts_alone() -> None:
    # two operators each locked again after every 60-minute timeout: two brute-force attacks
    attacks = [
        lockout(T0 + timedelta(minutes=61 * i + offset), 60, operator_id=op)
        for i in range(6)
        for op, offset in ((CLERK, 0), (OTHER_CLERK, 20))
    ]
    # and forgotten PINs of two operators hours apart
    forgotten = [
        lockout(T0 + timedelta(days=2), operator_id=CLERK, method="admin"),
        lockout(T0 + timedelta(days=2, hours=3), operator_id=OTHER_CLERK, method="admin"),
    ]
    for rows in (attacks, forgotten):
        found = logins.lockout_storm(lockouts(*rows), terminals(), operators())
        assert check(found, severities=("medium",)).height == 0


def test_lockout_storm_counts_operators_of_one_terminal_only() -> None:
    locks = lockouts(
        lockout(T0, operator_id=CLERK), lockout(T0, operator_id=SIBLING_CLERK, terminal_id=SIBLING)
    )
    assert check(logins.lockout_storm(locks, terminals(), operators())).height == 0


# --- lockout_not_enforced -----------------------------------------------------------------


def settings_frame(*rows: tuple[str, int | None, int | None]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "terminal_id": [r[0] for r in rows],
            "merchant_id": [MERCHANT] * len(rows),
            "lockout_threshold": [r[1] for r in rows],
            "lockout_minutes": [r[2] for r in rows],
        },
        schema={
            "terminal_id": pl.String,
            "merchant_id": pl.String,
            "lockout_threshold": pl.Int32,
            "lockout_minutes": pl.Int32,
        },
    )


def test_lockout_not_enforced_fires_on_settings_looser_than_policy() -> None:
    settings_ = settings_frame(
        ("T1", None, None),
        ("T2", 10, 30),
        ("T3", 5, 10),
        ("T4", 5, 30),
        ("T5", 6, 60),
        ("T6", 20, 10),
    )
    found = check(logins.lockout_not_enforced(login_events(), lockouts(), settings_, data_window()))
    by_id = {r["entity_id"]: r for r in found.iter_rows(named=True)}
    assert sorted(by_id) == ["T1", "T2", "T3", "T6"]
    assert all((r["window_start"], r["window_end"]) == (DATA_FROM, DATA_TO) for r in by_id.values())
    assert by_id["T1"]["summary"] == (
        "terminal T1 never locks an operator; policy locks after at most 6 wrong PINs "
        "for at least 30 minutes"
    )
    evidence = json.loads(by_id["T1"]["evidence"])
    assert evidence["reasons"] == ["never_locks"]
    assert (evidence["operator_ids"], evidence["login_event_ids"]) == ([], [])
    assert "locks only after 10 wrong PINs;" in by_id["T2"]["summary"]
    assert "locks for only 10 minutes;" in by_id["T3"]["summary"]
    assert "locks only after 20 wrong PINs and only for 10 minutes" in by_id["T6"]["summary"]
    assert json.loads(by_id["T6"]["evidence"])["reasons"] == [
        "locks_after_too_many",
        "locks_too_briefly",
    ]


@pytest.mark.parametrize(
    ("threshold", "minutes", "fires"),
    [(6, 30, False), (7, 30, True), (6, 29, True), (3, 60, False), (None, None, True)],
)
def test_lockout_not_enforced_policy_boundaries(
    threshold: int | None, minutes: int | None, fires: bool
) -> None:
    found = logins.lockout_not_enforced(
        login_events(), lockouts(), settings_frame((TERMINAL, threshold, minutes)), data_window()
    )
    assert check(found).height == int(fires)


@pytest.mark.parametrize("enum", [False, True])
def test_lockout_not_enforced_fires_on_wrong_pins_in_a_row_without_a_lockout(enum: bool) -> None:
    times = every(T0, 8, 20)
    rows = [attempt(ts, "wrong_pin") for ts in times]
    rows.append(attempt(times[-1] + timedelta(seconds=20), "success"))
    events = login_events(*rows, enum=enum)
    found = check(logins.lockout_not_enforced(events, lockouts(), terminals(5, 30), data_window()))
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["entity_id"] == TERMINAL
    assert (row["window_start"], row["window_end"]) == (times[0], times[-1])
    assert (
        "operator 03 made 8 wrong PINs in a row there on 2026-03-04 without a lockout"
        in row["summary"]
    )
    evidence = json.loads(row["evidence"])
    assert evidence["reasons"] == ["failures_without_lockout"]
    assert evidence["setting_looser"] is False
    assert evidence["longest_run"] == 8
    assert evidence["login_event_ids"] == [f"L{i}" for i in range(8)]


def test_lockout_not_enforced_combines_setting_and_behaviour_into_one_finding() -> None:
    events = login_events(*(attempt(ts, "wrong_pin") for ts in every(T0, 12, 10)))
    found = check(
        logins.lockout_not_enforced(events, lockouts(), terminals(None, None), data_window())
    )
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["score"] == pytest.approx(0.95)
    assert (row["window_start"], row["window_end"]) == (DATA_FROM, DATA_TO)
    assert "never locks an operator, and operator 03 made 12 wrong PINs in a row" in row["summary"]
    assert json.loads(row["evidence"])["reasons"] == ["never_locks", "failures_without_lockout"]


def test_lockout_not_enforced_leaves_terminals_that_lock_alone() -> None:
    rows: list[dict[str, Any]] = []
    locks: list[dict[str, Any]] = []
    start = T0
    for _ in range(4):  # a brute-force attack on a terminal that locks after 5
        times = every(start, 5, 10)
        rows += [attempt(ts, "wrong_pin") for ts in times]
        locks.append(lockout(times[-1], 30))  # the lock comes with the 5th wrong PIN, same instant
        start = times[-1] + timedelta(minutes=30, seconds=10)
    # wrong PINs broken by successes, and runs days apart, are not in a row
    for day in (2, 3, 4):
        ts = T0 + timedelta(days=day)
        rows += [attempt(ts, "wrong_pin"), attempt(ts + timedelta(seconds=9), "wrong_pin")]
        rows += [attempt(ts + timedelta(seconds=19), "success")]
    rows += [attempt(T0 + timedelta(days=10, minutes=m), "wrong_pin") for m in range(4)]
    rows += [attempt(T0 + timedelta(days=20, minutes=m), "wrong_pin") for m in range(4)]
    found = logins.lockout_not_enforced(
        login_events(*rows), lockouts(*locks), terminals(5, 30), data_window()
    )
    assert check(found).height == 0


def test_lockout_not_enforced_counts_the_wrong_pin_that_locks_into_its_run() -> None:
    # the terminal locks after 6; the lockout comes at the instant of the 6th wrong PIN, and
    # its id sorts before the attempt's: the run is still 6 long, above a stricter policy of 5
    times = every(T0, 6, 10)
    rows = [attempt(ts, "wrong_pin") for ts in times]
    rows.append(attempt(times[-1] + timedelta(minutes=31), "success"))
    locks = lockouts(lockout(times[-1], 30))
    found = logins.lockout_not_enforced(
        login_events(*rows), locks, terminals(6, 30), data_window(), max_failures=5
    )
    row = check(found).filter(pl.col("entity_id") == TERMINAL).row(0, named=True)
    assert json.loads(row["evidence"])["longest_run"] == 6
    found = logins.lockout_not_enforced(login_events(*rows), locks, terminals(6, 30), data_window())
    assert check(found).height == 0


@settings(max_examples=50, deadline=None)
@given(
    run=st.integers(min_value=1, max_value=20), max_failures=st.integers(min_value=3, max_value=10)
)
def test_lockout_not_enforced_fires_iff_a_run_exceeds_max_failures(
    run: int, max_failures: int
) -> None:
    rows = [attempt(ts, "wrong_pin") for ts in every(T0, run, 12)]
    found = logins.lockout_not_enforced(
        login_events(*rows),
        lockouts(),
        terminals(3, 30, sibling_threshold=3),
        data_window(),
        max_failures=max_failures,
    )
    assert check(found).height == (1 if run > max_failures else 0)


# --- credential_sharing -------------------------------------------------------------------


def credential_sharing(
    events: pl.LazyFrame, txns: pl.LazyFrame, ops: pl.LazyFrame, **thresholds: Any
) -> pl.LazyFrame:
    """The rule over store tables, its shared frames computed from them as a run does."""
    tables = {"login_events": events, "transactions": txns, "operators": ops}
    return RULES["credential_sharing"](tables, **thresholds)


def shared_shift() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The clerk sells on its own terminal all morning; its login is used on the sibling too."""
    logins_ = [attempt(T0 - timedelta(minutes=5), "success")]
    logins_.append(attempt(T0 + timedelta(minutes=12), "success", terminal_id=SIBLING))
    sales = [sale(f"A{i}", ts) for i, ts in enumerate(every(T0, 12, 600))]
    sales += [
        sale(f"B{i}", T0 + timedelta(minutes=m), terminal_id=SIBLING)
        for i, m in enumerate((18, 33, 47, 61))
    ]
    return logins_, sales


def test_credential_sharing_fires_on_alternating_terminals() -> None:
    logins_, sales = shared_shift()
    found = check(credential_sharing(login_events(*logins_), transactions(*sales), operators()))
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["entity_type"], row["entity_id"]) == ("operator", CLERK)
    assert row["summary"].startswith(
        "operator 03 of terminal T000001 was active on terminals T000001 and T000002 in turn "
        "on 2026-03-04 from 10:10 to 11:10"
    )
    evidence = json.loads(row["evidence"])
    assert evidence["terminal_ids"] == [TERMINAL, SIBLING]
    assert evidence["switches"] >= 3
    assert "L1" in evidence["event_ids"]
    # the window covers the overlap: from the last activity at home before the first switch
    assert row["window_start"] == T0 + timedelta(minutes=10)
    assert row["window_end"] == T0 + timedelta(minutes=70)


def test_credential_sharing_leaves_roaming_and_handovers_alone() -> None:
    # day 1: a whole shift on the sibling; day 2: home in the morning, sibling after a handover
    day2 = T0 + timedelta(days=1)
    logins_ = [
        attempt(T0 - timedelta(minutes=5), "success", terminal_id=SIBLING),
        attempt(day2 - timedelta(minutes=5), "success"),
        attempt(day2 + timedelta(hours=4, minutes=5), "success", terminal_id=SIBLING),
    ]
    sales = [sale(f"A{i}", ts, terminal_id=SIBLING) for i, ts in enumerate(every(T0, 30, 600))]
    sales += [sale(f"B{i}", ts) for i, ts in enumerate(every(day2, 24, 600))]
    sales += [
        sale(f"C{i}", ts, terminal_id=SIBLING)
        for i, ts in enumerate(every(day2 + timedelta(hours=4, minutes=10), 20, 600))
    ]
    found = credential_sharing(login_events(*logins_), transactions(*sales), operators())
    assert check(found).height == 0


def test_credential_sharing_leaves_refunds_at_the_home_terminal_alone() -> None:
    # the clerk roams to the sibling for the shift; refunds of its home terminal's sales are
    # still booked to it there
    logins_ = [attempt(T0 - timedelta(minutes=5), "success", terminal_id=SIBLING)]
    sales = [sale(f"A{i}", ts, terminal_id=SIBLING) for i, ts in enumerate(every(T0, 30, 240))]
    refunds = [
        {**sale(f"R{i}", T0 + timedelta(minutes=m)), "kind": "refund"}
        for i, m in enumerate((10, 19, 31, 44))
    ]
    events = login_events(*logins_)
    found = credential_sharing(events, transactions(*sales, *refunds), operators())
    assert check(found).height == 0
    as_sales = [{**r, "kind": "sale"} for r in refunds]
    found = credential_sharing(events, transactions(*sales, *as_sales), operators())
    assert check(found).height == 1


def test_credential_sharing_needs_a_return_to_a_terminal() -> None:
    # one pass along four terminals of the merchant: three switches, never back
    hops = ["T000001", "T000002", "T000003", "T000004"]
    sales = [
        sale(f"H{i}{j}", T0 + timedelta(minutes=10 * i + j), terminal_id=terminal)
        for i, terminal in enumerate(hops)
        for j in range(3)
    ]
    logins_ = [
        attempt(T0 + timedelta(minutes=10 * i - 1), "success", terminal_id=terminal)
        for i, terminal in enumerate(hops)
    ]
    found = credential_sharing(login_events(*logins_), transactions(*sales), operators())
    assert check(found).height == 0


def shift_cover(
    *, second_sign_on_after_minutes: int = 2
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The clerk works its own terminal all morning; at the shift change at 14:00 it signs on
    again at home and then at the sibling, and sells on both for 40 minutes."""
    change = T0 + timedelta(hours=4)
    logins_ = [
        attempt(T0 - timedelta(minutes=5), "success"),
        attempt(change, "success"),
        attempt(
            change + timedelta(minutes=second_sign_on_after_minutes),
            "success",
            terminal_id=SIBLING,
        ),
    ]
    sales = [sale(f"A{i}", ts) for i, ts in enumerate(every(T0, 24, 600))]
    sales += [
        sale(f"C{i}", change + timedelta(minutes=m), terminal_id=SIBLING if i % 2 else TERMINAL)
        for i, m in enumerate((5, 11, 16, 22, 29, 35, 42))
    ]
    return logins_, sales


def test_credential_sharing_leaves_a_shift_cover_alone() -> None:
    # signed on at both tills two minutes apart, with a home sale between: a cover
    logins_, sales = shift_cover()
    sales.append(sale("H", T0 + timedelta(hours=4, minutes=1)))
    found = credential_sharing(login_events(*logins_), transactions(*sales), operators())
    assert check(found).height == 0


def test_credential_sharing_leaves_a_cover_signed_on_at_the_sibling_first_alone() -> None:
    # the clerk signs on at the sibling, serves a customer at home, and signs on there too
    logins_, sales = shift_cover()
    logins_[1], logins_[2] = (
        {**logins_[1], "terminal_id": SIBLING},
        {**logins_[2], "terminal_id": TERMINAL},
    )
    sales.append(sale("H", T0 + timedelta(hours=4, minutes=1)))
    found = credential_sharing(login_events(*logins_), transactions(*sales), operators())
    assert check(found).height == 0


def test_credential_sharing_still_finds_a_cover_like_episode_without_both_sign_ons() -> None:
    # the same back and forth, but the sibling's sign-on comes 20 minutes after the home one:
    # not a clerk taking on two tills at once
    logins_, sales = shift_cover(second_sign_on_after_minutes=20)
    found = check(credential_sharing(login_events(*logins_), transactions(*sales), operators()))
    assert found.height == 1
    assert found.row(0, named=True)["severity"] == "medium"
    assert json.loads(found.row(0, named=True)["evidence"])["cover_sign_on_minutes"] == 3
    # and with the home sign-on taken away, the login was signed on at the sibling only
    found = check(
        credential_sharing(login_events(logins_[0], logins_[2]), transactions(*sales), operators())
    )
    assert found.height == 1


def test_credential_sharing_of_a_login_signed_on_at_the_sibling_only_stays_medium() -> None:
    # a borrowed login: one sign-on, on the sibling, the owner's session running since morning
    logins_, sales = shared_shift()
    found = check(
        credential_sharing(login_events(*logins_), transactions(*sales), operators()),
        severities=("medium",),
    )
    assert found.height == 1


def test_credential_sharing_needs_switches_within_max_gap() -> None:
    logins_, sales = shared_shift()
    found = credential_sharing(
        login_events(*logins_), transactions(*sales), operators(), max_gap_minutes=1
    )
    assert check(found).height == 0


def borrowed_while_away(
    *, sibling_sign_on: timedelta = timedelta(hours=5)
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The clerk works its own terminal all morning and stops; an hour later its login signs
    on at the sibling, whose own clerk has sold there since the morning, and the two logins'
    sales there go in turn. The clerk's login never switches terminals within 30 minutes."""
    away = T0 + sibling_sign_on
    logins_ = [
        attempt(T0 - timedelta(minutes=5), "success"),
        attempt(
            T0 - timedelta(minutes=4), "success", operator_id=SIBLING_CLERK, terminal_id=SIBLING
        ),
        attempt(away, "success", terminal_id=SIBLING),
    ]
    sales = [sale(f"A{i}", ts) for i, ts in enumerate(every(T0, 10, 24 * 60))]
    sales += [
        sale(f"S{i}", ts, terminal_id=SIBLING, operator_id=SIBLING_CLERK)
        for i, ts in enumerate(every(T0, 48, 10 * 60))
    ]
    sales += [
        sale(f"B{i}", away + timedelta(minutes=m), terminal_id=SIBLING)
        for i, m in enumerate((3, 14, 26, 43))
    ]
    return logins_, sales


def test_credential_sharing_finds_a_login_used_in_turn_with_another_on_one_till() -> None:
    logins_, sales = borrowed_while_away()
    found = check(credential_sharing(login_events(*logins_), transactions(*sales), operators()))
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["entity_type"], row["entity_id"]) == ("operator", CLERK)
    assert row["summary"].startswith(
        "operator 03 of terminal T000001 signed on at terminal T000002 on 2026-03-04 and sold "
        "there in turn with another login from 15:00 to 15:50, switching 8 times"
    )
    evidence = json.loads(row["evidence"])
    assert evidence["seen_on"] == "till"
    assert evidence["terminal_ids"] == [SIBLING]
    assert {"B0", "S30"} <= set(evidence["event_ids"])


def test_credential_sharing_on_a_till_leaves_a_cover_and_a_handover_alone() -> None:
    # a cover: the clerk signs on at home again and, two minutes later, at the sibling
    logins_, sales = borrowed_while_away()
    away = T0 + timedelta(hours=5)
    cover = [*logins_, attempt(away - timedelta(minutes=2), "success")]
    found = credential_sharing(login_events(*cover), transactions(*sales), operators())
    assert check(found).height == 0
    # a handover: the sibling's clerk stops as the clerk takes the till over (one switch)
    handover = [s for s in sales if not (s["txn_id"].startswith("S") and s["ts"] > away)]
    found = credential_sharing(login_events(*logins_), transactions(*handover), operators())
    assert check(found).height == 0


def test_credential_sharing_on_a_till_leaves_turns_with_a_clerk_covering_it_alone() -> None:
    # the till's own clerk covers it and another till at once (signed on at both within two
    # minutes, as the clerk comes): the clerk taking turns with it on the till is no sharer
    logins_, sales = borrowed_while_away()
    away = T0 + timedelta(hours=5)
    covering = [
        *logins_,
        attempt(away - timedelta(minutes=3), "success", operator_id=SIBLING_CLERK),
        attempt(
            away - timedelta(minutes=1),
            "success",
            operator_id=SIBLING_CLERK,
            terminal_id=SIBLING,
        ),
    ]
    found = credential_sharing(login_events(*covering), transactions(*sales), operators())
    assert check(found).height == 0


def test_credential_sharing_on_a_till_needs_both_logins_signed_on_and_two_tills() -> None:
    logins_, sales = borrowed_while_away()
    # the sibling's clerk never signed on there that day: its sales are no session to share
    found = credential_sharing(
        login_events(logins_[0], logins_[2]), transactions(*sales), operators()
    )
    assert check(found).height == 0
    # a clerk who works only the sibling that day (roaming) is that till's clerk for the day
    roaming = [s for s in sales if not s["txn_id"].startswith("A")]
    found = credential_sharing(
        login_events(logins_[1], logins_[2]), transactions(*roaming), operators()
    )
    assert check(found).height == 0


# --- network_failure_burst ----------------------------------------------------------------


def test_network_failure_burst_is_an_info_note_on_the_terminal() -> None:
    times = every(T0, 6, 60)
    rows = [attempt(ts, "network_error") for ts in times]
    rows.append(attempt(times[-1] + timedelta(seconds=30), "success"))
    found = check(
        logins.network_failure_burst(login_events(*rows, enum=True), terminals()),
        severities=("info",),
    )
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["entity_type"], row["entity_id"]) == ("terminal", TERMINAL)
    assert (row["window_start"], row["window_end"]) == (times[0], times[-1])
    assert row["summary"].startswith(
        "terminal T000001 could not reach the host 6 times in 5 minutes"
    )


def test_network_failure_burst_ignores_stray_errors_and_credential_failures() -> None:
    rows = [attempt(ts, "network_error") for ts in every(T0, 6, 3_600)]
    rows += [attempt(ts, "wrong_pin") for ts in every(T0 + timedelta(minutes=5), 20, 10)]
    rows += [attempt(ts, "network_error") for ts in every(T0 + timedelta(days=1), 4, 30)]
    found = logins.network_failure_burst(login_events(*rows), terminals())
    assert check(found, severities=("info",)).height == 0


# --- innocent look-alikes -----------------------------------------------------------------


def test_pin_brute_force_leaves_a_forgotten_pin_on_a_loose_terminal_alone() -> None:
    # a terminal that locks only after 20 wrong PINs: the clerk keys 20, is locked, the
    # administrator lets the clerk back in, two more wrong tries, then the right PIN
    times = every(T0, 20, 30)
    unlocked = times[-1] + timedelta(minutes=8)
    after = every(unlocked + timedelta(seconds=30), 2, 30)
    rows = [attempt(ts, "wrong_pin") for ts in (*times, *after)]
    rows.append(attempt(after[-1] + timedelta(seconds=30), "success"))
    forgot = lockouts(lockout(times[-1], 8, method="admin"))
    found = logins.pin_brute_force(login_events(*rows), forgot, terminals(20, 30))
    assert check(found).height == 0
    # the same tries with the lock timing out: a guesser waits for no one, and is found
    timed_out = lockouts(lockout(times[-1], 8, method="timeout"))
    found = logins.pin_brute_force(login_events(*rows), timed_out, terminals(20, 30))
    assert check(found).height == 1
    # and a guesser who goes on through a second lockout is found whoever lifted the first
    second = every(after[-1] + timedelta(seconds=30), 20, 10)
    guessing = [*rows[:-1], *(attempt(ts, "wrong_pin") for ts in second)]
    locks = lockouts(lockout(times[-1], 8, method="admin"), lockout(second[-1], 30))
    found = logins.pin_brute_force(login_events(*guessing), locks, terminals(20, 30))
    assert check(found).height == 1


def test_lockout_storm_leaves_two_forgetful_clerks_let_back_in_alone() -> None:
    # two clerks forgot their PINs 41 minutes apart; the administrator unlocked each
    forgotten = lockouts(
        lockout(T0, operator_id=CLERK, method="admin"),
        lockout(T0 + timedelta(minutes=41), operator_id=OTHER_CLERK, method="service_desk"),
    )
    found = logins.lockout_storm(forgotten, terminals(), operators())
    assert check(found, severities=("medium",)).height == 0
    # the same two lockouts timing out, as when a stranger tries operator after operator
    tried = lockouts(
        lockout(T0, operator_id=CLERK),
        lockout(T0 + timedelta(minutes=41), operator_id=OTHER_CLERK),
    )
    found = logins.lockout_storm(tried, terminals(), operators())
    assert check(found, severities=("medium",)).height == 1
