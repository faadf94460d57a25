"""Tests of the privilege audit rules on small literal frames."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import polars as pl
import pytest

from posaudit.detect import privileges as rules
from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.registry import RULES
from posaudit.pins import COMMON_DEFAULT_PINS, LocalPinKey, pin_digest
from posaudit.run.inputs import derived_inputs
from tests.sentences import assert_summaries_read_back

KEY = b"posaudit-test-key/privileges"
DATA_FROM = datetime(2026, 3, 1)
DATA_TO = datetime(2026, 3, 31, 23, 59, 59)
# operator id -> (number, terminal, role, can_sale, can_refund, can_manage, created)
OPERATORS: dict[str, tuple[str, str, str, bool, bool, bool, str]] = {
    "T1-99": ("99", "T1", "admin", True, True, True, "2025-01-05 10:00"),
    "T1-01": ("01", "T1", "clerk", True, False, False, "2025-01-05 10:00"),
    "T1-02": ("02", "T1", "clerk", True, True, False, "2025-02-01 10:00"),
    "T1-03": ("03", "T1", "clerk", True, True, True, "2025-02-01 10:00"),
    "T2-00": ("00", "T2", "admin", True, True, True, "2025-01-05 10:00"),
    "T2-01": ("01", "T2", "clerk", True, False, False, "2025-01-05 10:00"),
    "T2-04": ("04", "T2", "clerk", True, False, False, "2026-03-02 10:00"),
}
FAMILIES = {"T1": "smart", "T2": "esign"}
# the rules under test and the severities docs/detection.md#severity gives them
SEVERITY_OF = {
    "permission_granted_then_used": "medium",
    "refunds_after_admin_reset": "medium",
    "manage_and_refund": "medium",
    "never_logged_in": "medium",
    "common_default_pins": "medium",
}
RULE_NAMES = tuple(SEVERITY_OF)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def operators(**changes: dict[str, Any]) -> pl.LazyFrame:
    rows = []
    for operator_id, (no, terminal, role, sale, refund, manage, created) in OPERATORS.items():
        row = {
            "operator_id": operator_id,
            "terminal_id": terminal,
            "merchant_id": "M1",
            "operator_no": no,
            "name": "Wang Wei",
            "role": role,
            "can_query": True,
            "can_sale": sale,
            "can_refund": refund,
            "can_transfer": False,
            "can_manage": manage,
            "created_at": ts(created),
            "disabled_at": None,
        }
        rows.append(row | changes.get(operator_id, {}))
    return pl.LazyFrame(rows, schema_overrides={"disabled_at": pl.Datetime("us")})


def terminals() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "terminal_id": list(FAMILIES),
            "merchant_id": ["M1", "M1"],
            "family": list(FAMILIES.values()),
        }
    )


def window() -> pl.LazyFrame:
    return pl.LazyFrame(
        {"data_from": [DATA_FROM], "data_to": [DATA_TO]},
        schema={"data_from": pl.Datetime("us"), "data_to": pl.Datetime("us")},
    )


def operator_events(*rows: tuple[str, str, str, str | None]) -> pl.LazyFrame:
    """(operator, ts, kind, permission) rows, made by the terminal's administrator."""
    return pl.LazyFrame(
        {
            "event_id": [f"O{i}" for i in range(len(rows))],
            "ts": [ts(r[1]) for r in rows],
            "operator_id": [r[0] for r in rows],
            "kind": [r[2] for r in rows],
            "permission": [r[3] for r in rows],
            "actor": ["admin"] * len(rows),
            "actor_operator_id": ["T1-99"] * len(rows),
        },
        schema_overrides={"permission": pl.String, "ts": pl.Datetime("us")},
    )


def refunds(*rows: tuple[str, str, int]) -> pl.LazyFrame:
    """(operator, ts, amount_fen) approved refunds."""
    return pl.LazyFrame(
        {
            "txn_id": [f"X{i}" for i in range(len(rows))],
            "ts": [ts(r[1]) for r in rows],
            "operator_id": [r[0] for r in rows],
            "terminal_id": [r[0].split("-")[0] for r in rows],
            "merchant_id": ["M1"] * len(rows),
            "amount_fen": [r[2] for r in rows],
        },
        schema_overrides={"ts": pl.Datetime("us"), "amount_fen": pl.Int64},
    )


def pin_events(*rows: tuple[str, str, str, str, str]) -> pl.LazyFrame:
    """(operator, ts, kind, actor, PIN) rows; the PIN is digested at once."""
    return pl.LazyFrame(
        {
            "event_id": [f"P{i}" for i in range(len(rows))],
            "ts": [ts(r[1]) for r in rows],
            "operator_id": [r[0] for r in rows],
            "kind": [r[2] for r in rows],
            "pin_digest": [pin_digest(r[4], key=KEY) for r in rows],
            "actor": [r[3] for r in rows],
        },
        schema_overrides={"ts": pl.Datetime("us")},
    )


def logins(*rows: tuple[str, str]) -> pl.LazyFrame:
    """(operator, ts) successful logins at the operator's home terminal."""
    return pl.LazyFrame(
        {
            "event_id": [f"L{i}" for i in range(len(rows))],
            "ts": [ts(r[1]) for r in rows],
            "terminal_id": [r[0].split("-")[0] for r in rows],
            "operator_no": [r[0].split("-")[1] for r in rows],
            "operator_id": [r[0] for r in rows],
            "outcome": ["success"] * len(rows),
        },
        schema_overrides={"ts": pl.Datetime("us")},
    )


def failed_logins(*rows: tuple[str, str]) -> pl.LazyFrame:
    """(operator, ts) wrong PINs at the operator's home terminal."""
    return logins(*rows).with_columns(pl.lit("wrong_pin").alias("outcome"))


def collect(findings: pl.LazyFrame) -> pl.DataFrame:
    frame = findings.collect()
    assert frame.schema == FINDINGS_SCHEMA
    assert frame.get_column("finding_id").is_unique().all()
    assert (frame.get_column("window_start") <= frame.get_column("window_end")).all()
    for rule, severity in frame.select("rule", "severity").iter_rows():
        assert severity == SEVERITY_OF[rule]
    assert_summaries_read_back(frame)
    return frame


def evidence(frame: pl.DataFrame, row: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(frame.get_column("evidence")[row])
    return result


@pytest.mark.parametrize("name", RULE_NAMES)
def test_the_rules_are_registered_in_the_privileges_family(name: str) -> None:
    assert RULES[name].family == "privileges"
    assert RULES[name].entity_type == "operator"


# --- permission_granted_then_used ----------------------------------------------------------


def test_a_refund_right_used_within_hours_of_its_grant_is_found() -> None:
    events = operator_events(
        ("T1-01", "2026-03-10 09:00", "granted", "refund"),
        ("T1-02", "2026-03-10 09:00", "granted", "refund"),  # a promotion, used days later
    )
    found = collect(
        rules.permission_granted_then_used(
            events,
            refunds(
                ("T1-01", "2026-03-10 11:30", 12_000),
                ("T1-01", "2026-03-10 11:40", 8_000),
                ("T1-02", "2026-03-14 15:00", 5_000),
            ),
            operators(),
        )
    )
    assert found.get_column("entity_id").to_list() == ["T1-01"]
    row = found.row(0, named=True)
    assert (row["window_start"], row["window_end"]) == (
        ts("2026-03-10 09:00"),
        ts("2026-03-10 11:40"),
    )
    facts = evidence(found)
    assert facts["refund_count"] == 2
    assert facts["refund_amount_fen"] == 20_000
    assert facts["hours_to_use"] == 2.5
    assert facts["granted_by_operator_id"] == "T1-99"
    assert "2.5 hours" in row["summary"]


def test_rights_given_with_a_new_account_and_slow_first_use_are_not_found() -> None:
    events = operator_events(
        ("T2-04", "2026-03-02 10:00", "added", None),
        ("T2-04", "2026-03-02 10:00:01", "granted", "refund"),
        ("T2-01", "2026-03-05 10:00", "granted", "refund"),
    )
    found = collect(
        rules.permission_granted_then_used(
            events,
            refunds(("T2-04", "2026-03-02 12:00", 1_000), ("T2-01", "2026-03-06 11:00", 1_000)),
            operators(),
            max_hours=24,
        )
    )
    assert found.is_empty()
    # the limit is the policy's: 26 hours later counts under a 48-hour limit
    found = collect(
        rules.permission_granted_then_used(
            events,
            refunds(("T2-01", "2026-03-06 12:00", 1_000)),
            operators(),
            max_hours=48,
        )
    )
    assert found.get_column("entity_id").to_list() == ["T2-01"]


# --- refunds_after_admin_reset -------------------------------------------------------------


def test_refunds_straight_after_an_administrators_reset_are_found() -> None:
    pins = pin_events(
        ("T1-02", "2026-03-12 14:00", "reset", "admin", "739204"),
        ("T1-03", "2026-03-12 14:00", "reset", "service_desk", "480371"),
    )
    found = collect(
        rules.refunds_after_admin_reset(
            pins,
            refunds(
                ("T1-02", "2026-03-12 14:20", 30_000),
                ("T1-02", "2026-03-12 14:31", 25_000),
                ("T1-03", "2026-03-12 14:20", 30_000),
                ("T1-03", "2026-03-12 14:31", 25_000),
            ),
            operators(),
            failed_logins(),
        )
    )
    # the service desk's reset is the owner's forgotten PIN: only the administrator's counts
    assert found.get_column("entity_id").to_list() == ["T1-02"]
    assert evidence(found)["refund_count"] == 2
    assert evidence(found)["pin_event_id"] == "P0"


def test_one_refund_or_refunds_hours_later_after_a_reset_are_not_found() -> None:
    pins = pin_events(
        ("T1-02", "2026-03-12 14:00", "reset", "admin", "739204"),
        ("T1-03", "2026-03-12 14:00", "reset", "admin", "480371"),
    )
    found = collect(
        rules.refunds_after_admin_reset(
            pins,
            refunds(
                ("T1-02", "2026-03-12 14:20", 30_000),
                ("T1-03", "2026-03-12 19:00", 30_000),
                ("T1-03", "2026-03-12 19:10", 30_000),
            ),
            operators(),
            failed_logins(),
            max_hours=4,
            min_refunds=2,
        )
    )
    assert found.is_empty()


def test_refunds_after_a_reset_the_operator_asked_for_are_not_found() -> None:
    pins = pin_events(("T1-02", "2026-03-12 14:00", "reset", "admin", "739204"))
    made = refunds(("T1-02", "2026-03-12 14:20", 30_000), ("T1-02", "2026-03-12 14:31", 25_000))
    # wrong PINs 12 minutes before the reset: the operator forgot its PIN and asked
    forgot = failed_logins(("T1-02", "2026-03-12 13:48"))
    found = collect(rules.refunds_after_admin_reset(pins, made, operators(), forgot))
    assert found.is_empty()
    # the same wrong PINs two hours before are another matter
    found = collect(
        rules.refunds_after_admin_reset(pins, made, operators(), forgot, asked_within_minutes=10)
    )
    assert found.get_column("entity_id").to_list() == ["T1-02"]


# --- manage_and_refund --------------------------------------------------------------------


def test_a_clerk_with_manage_and_refund_is_found_and_administrators_are_not() -> None:
    found = collect(rules.manage_and_refund(operators(), window()))
    # every administrator holds both by design; clerk 03 should not
    assert found.get_column("entity_id").to_list() == ["T1-03"]
    assert found.row(0, named=True)["window_end"] == DATA_TO


def test_a_deleted_clerk_with_both_rights_is_not_found() -> None:
    deleted = {"T1-03": {"disabled_at": ts("2026-03-20 10:00")}}
    assert collect(rules.manage_and_refund(operators(**deleted), window())).is_empty()


# --- never_logged_in ----------------------------------------------------------------------


def _shifts(*operator_ids: str, days: int = 30) -> list[tuple[str, str]]:
    """A login a day for each operator, from the first of March."""
    return [(o, f"2026-03-{d:02d} 09:00") for d in range(1, days + 1) for o in operator_ids]


def test_a_clerk_who_never_logs_in_while_its_colleagues_do_is_found() -> None:
    found = collect(
        rules.never_logged_in(operators(), logins(*_shifts("T1-02", "T1-03")), window())
    )
    # T1-01 never logged in while T1-02 and T1-03 did 60 times; the administrator is left out,
    # and on T2 nobody logged in, so nothing there says its clerks should have
    assert found.get_column("entity_id").to_list() == ["T1-01"]
    facts = evidence(found)
    assert facts["terminal_logins"] == 60
    assert facts["expected_logins"] == 20.0
    assert found.row(0, named=True)["window_start"] == DATA_FROM


def test_a_clerk_who_logs_in_or_a_quiet_terminal_is_not_found() -> None:
    # T1-01 logs in once; on T2 a new account has had fewer logins due than the policy asks
    few = _shifts("T1-01", days=1) + _shifts("T1-02", "T1-03") + _shifts("T2-01", days=10)
    found = collect(rules.never_logged_in(operators(), logins(*few), window()))
    assert "T1-01" not in found.get_column("entity_id").to_list()
    # T2-04 was added on 2 March: T2-01's 9 logins since, shared by two, is 4.5 < 8
    assert "T2-04" not in found.get_column("entity_id").to_list()
    found = collect(
        rules.never_logged_in(operators(), logins(*few), window(), min_expected_logins=4)
    )
    assert "T2-04" in found.get_column("entity_id").to_list()


# --- common_default_pins ------------------------------------------------------------------


def common_defaults() -> pl.LazyFrame:
    inputs = derived_inputs(
        [RULES["common_default_pins"]],
        operators().collect(),
        window=(DATA_FROM, DATA_TO),
        digester=LocalPinKey(KEY),
    )
    return inputs["common_default_pin_digests"]


def test_common_default_pins_are_found_for_their_number_and_family() -> None:
    pins = pin_events(
        ("T1-01", "2025-01-05 10:00", "initial", "admin", "0000"),
        ("T1-99", "2025-01-05 10:00", "initial", "acquirer", "123456"),
        ("T1-99", "2025-01-06 10:00", "change", "self", "12345678"),
        ("T2-01", "2025-01-05 10:00", "initial", "admin", "0000"),
    )
    found = collect(
        rules.common_default_pins(pins, operators(), terminals(), common_defaults(), window())
    )
    assert sorted(found.get_column("entity_id").to_list()) == ["T1-01", "T1-99", "T2-01"]
    families = {e["family"] for e in map(json.loads, found.get_column("evidence"))}
    assert families == {"smart", "esign"}
    # never the PIN, nor its digest
    assert "0000" not in " ".join(found.get_column("evidence"))


def test_a_default_on_the_wrong_number_or_family_or_changed_is_not_found() -> None:
    pins = pin_events(
        ("T1-02", "2025-02-01 10:00", "initial", "admin", "0000"),  # clerk 02: not its default
        ("T2-00", "2025-01-05 10:00", "change", "self", "12345678"),  # esign: no 8 digits
        ("T2-01", "2025-01-05 10:00", "initial", "admin", "0000"),
        ("T2-01", "2026-02-01 10:00", "change", "self", "739204"),  # changed before the window
    )
    found = collect(
        rules.common_default_pins(pins, operators(), terminals(), common_defaults(), window())
    )
    assert found.is_empty()


def test_the_default_list_holds_digests_only() -> None:
    digests = common_defaults().collect()
    assert digests.height == len(COMMON_DEFAULT_PINS)
    texts = {pin for _, _, pin in COMMON_DEFAULT_PINS}
    assert not texts & set(digests.get_column("pin_digest"))
    assert digests.get_column("pin_digest").str.contains("^[0-9a-f]{64}$").all()


def test_a_ghost_keeps_its_finding_as_the_data_grows() -> None:
    # three months of data: the logins are counted over the last 60 days, but the finding
    # starts where the data does, so the next day's run names the same finding
    long = pl.LazyFrame(
        {"data_from": [datetime(2026, 1, 1)], "data_to": [DATA_TO]},
        schema={"data_from": pl.Datetime("us"), "data_to": pl.Datetime("us")},
    )
    found = collect(rules.never_logged_in(operators(), logins(*_shifts("T1-02", "T1-03")), long))
    row = found.filter(pl.col("entity_id") == "T1-01").row(0, named=True)
    assert row["window_start"] == datetime(2026, 1, 1)
    assert evidence(found.filter(pl.col("entity_id") == "T1-01"))["idle_since"] == (
        "2026-01-30T23:59:59"
    )
