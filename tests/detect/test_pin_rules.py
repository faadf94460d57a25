"""Tests of the pins rule family on small literal frames.

Every PIN below is digested under a test key with :func:`posaudit.pins.pin_digest`, exactly as
the terminal management system would; the rules only ever see the digests.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from posaudit.detect import pins as pin_rules
from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.registry import RULES
from posaudit.pins import LocalPinKey, exclusion_list, pin_digest
from tests.sentences import assert_summaries_read_back

KEY = b"posaudit-test-key/pin-rules"
DATA_FROM = datetime(2026, 3, 1, 0, 0)
DATA_TO = datetime(2026, 3, 31, 23, 59, 59)
MERCHANT = "M1"
OTHER_MERCHANT = "M2"
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
KINDS = pl.Enum(["initial", "change", "reset"])
ACTORS = pl.Enum(["self", "admin", "service_desk", "acquirer"])
ROLES = pl.Enum(["admin", "clerk"])

# PINs used below, by what they are. STRONG ones fall in no weakness class.
DEFAULT_ESIGN, DEFAULT_SMART = "000000", "123456"
REPEATED_DIGIT, REPEATED_PAIR, DATE = "777777", "474747", "880417"
STRONG = ("739204", "480371", "205739", "318572", "964031", "572839", "803716")
# operator id -> (operator number, terminal, merchant, role)
OPERATORS: dict[str, tuple[str, str, str, str]] = {
    "A1": ("00", "T1", MERCHANT, "admin"),
    "C3": ("03", "T1", MERCHANT, "clerk"),
    "C5": ("05", "T2", MERCHANT, "clerk"),
    "C7": ("07", "T2", MERCHANT, "clerk"),
    "X3": ("03", "T9", OTHER_MERCHANT, "clerk"),
    "X7": ("07", "T9", OTHER_MERCHANT, "clerk"),
}
PINS_USED: set[str] = set()


# --- literal-frame builders ---------------------------------------------------------------


def digest(pin: str) -> str:
    PINS_USED.add(pin)
    return pin_digest(pin, key=KEY)


def day(text: str) -> datetime:
    return datetime.fromisoformat(text)


def pin_events(*rows: tuple[Any, ...], enums: bool = False) -> pl.LazyFrame:
    """PIN events from (operator_id, ts, kind, pin[, actor]) rows; ts as 'YYYY-MM-DD...'."""
    records = []
    for i, row in enumerate(rows):
        operator_id, ts, kind, pin, *rest = row
        actor = rest[0] if rest else ("acquirer" if kind == "initial" else "self")
        records.append(
            {
                "event_id": f"P{i:04d}",
                "ts": ts if isinstance(ts, datetime) else day(ts),
                "operator_id": operator_id,
                "kind": kind,
                "pin_digest": digest(pin),
                "actor": actor,
            }
        )
    schema: dict[str, Any] = {
        "event_id": pl.String,
        "ts": pl.Datetime("us"),
        "operator_id": pl.String,
        "kind": KINDS if enums else pl.String,
        "pin_digest": pl.String,
        "actor": ACTORS if enums else pl.String,
    }
    return pl.LazyFrame(records, schema=schema)


def operators(*, disabled: dict[str, datetime] | None = None, enums: bool = False) -> pl.LazyFrame:
    disabled = disabled or {}
    return pl.LazyFrame(
        {
            "operator_id": list(OPERATORS),
            "operator_no": [o[0] for o in OPERATORS.values()],
            "terminal_id": [o[1] for o in OPERATORS.values()],
            "merchant_id": [o[2] for o in OPERATORS.values()],
            "role": pl.Series(
                [o[3] for o in OPERATORS.values()], dtype=ROLES if enums else pl.String
            ),
            "disabled_at": pl.Series([disabled.get(o) for o in OPERATORS], dtype=pl.Datetime("us")),
            # the administrators hold every right; clerks 03 may refund, the others only sell
            "can_refund": [o[3] == "admin" or o[0] == "03" for o in OPERATORS.values()],
            "can_transfer": [o[3] == "admin" for o in OPERATORS.values()],
            "can_manage": [o[3] == "admin" for o in OPERATORS.values()],
        }
    )


def data_window(data_from: datetime = DATA_FROM, data_to: datetime = DATA_TO) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"data_from": [data_from], "data_to": [data_to]},
        schema={"data_from": pl.Datetime("us"), "data_to": pl.Datetime("us")},
    )


def weak_pin_digests() -> pl.LazyFrame:
    numbers = sorted({o[0] for o in OPERATORS.values()})
    return exclusion_list(digester=LocalPinKey(KEY), operator_nos=numbers).lazy()


def default_pin_digests() -> pl.LazyFrame:
    return pl.LazyFrame({"pin_digest": [digest(DEFAULT_ESIGN), digest(DEFAULT_SMART)]})


# Each rule's severities (docs/detection.md#severity): a breach of the PIN rules is medium, a
# PIN less than twice past its change date low; none is high or critical.
SEVERITIES_OF: dict[str, set[str]] = {
    "weak_pins": {"low", "medium"},
    "default_pins": {"medium"},
    "stale_pins": {"low", "medium"},
    "shared_pins": {"medium"},
    "reused_pins": {"medium"},
}


def collect(findings: pl.LazyFrame) -> pl.DataFrame:
    assert isinstance(findings, pl.LazyFrame)
    frame = findings.collect()
    assert frame.schema == FINDINGS_SCHEMA
    assert frame.get_column("finding_id").is_unique().all()
    assert frame.get_column("merchant_id").is_not_null().all()
    assert (frame.get_column("window_start") <= frame.get_column("window_end")).all()
    assert frame.get_column("score").is_between(0.0, 1.0).all()
    for rule_name, severity in frame.select("rule", "severity").iter_rows():
        assert severity in SEVERITIES_OF[rule_name], (rule_name, severity)
    assert set(frame.get_column("family")) <= {"pins"}
    assert set(frame.get_column("entity_type")) <= {"operator"}
    for evidence in frame.get_column("evidence"):
        json.loads(evidence)
    assert_summaries_read_back(frame)
    return frame.sort("entity_id", "window_start")


def evidence(frame: pl.DataFrame, row: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(frame.get_column("evidence")[row])
    return result


def weak_findings(events: pl.LazyFrame, **kw: Any) -> pl.DataFrame:
    return collect(
        pin_rules.weak_pins(events, operators(), weak_pin_digests(), data_window(), **kw)
    )


def default_findings(events: pl.LazyFrame, ops: pl.LazyFrame | None = None) -> pl.DataFrame:
    return collect(
        pin_rules.default_pins(
            events, operators() if ops is None else ops, default_pin_digests(), data_window()
        )
    )


def stale_findings(
    events: pl.LazyFrame, window: pl.LazyFrame | None = None, **kw: Any
) -> pl.DataFrame:
    return collect(
        pin_rules.stale_pins(events, operators(), data_window() if window is None else window, **kw)
    )


def shared_findings(events: pl.LazyFrame) -> pl.DataFrame:
    return collect(pin_rules.shared_pins(events, operators(), data_window()))


def reused_findings(events: pl.LazyFrame, **kw: Any) -> pl.DataFrame:
    return collect(pin_rules.reused_pins(events, operators(), data_window(), **kw))


# --- registration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "inputs", "scenario"),
    [
        ("weak_pins", ("pin_events", "operators", "weak_pin_digests", "data_window"), "weak_pin"),
        (
            "default_pins",
            ("pin_events", "operators", "default_pin_digests", "data_window"),
            "default_pin",
        ),
        ("stale_pins", ("pin_events", "operators", "data_window"), "stale_pin"),
        ("shared_pins", ("pin_events", "operators", "data_window"), "shared_pin"),
        ("reused_pins", ("pin_events", "operators", "data_window"), "reused_pin"),
    ],
)
def test_rules_are_registered(name: str, inputs: tuple[str, ...], scenario: str) -> None:
    registered = RULES[name]
    assert registered.family == "pins"
    assert registered.entity_type == "operator"
    assert registered.inputs == inputs
    assert registered.scenarios == (scenario,)
    assert registered.lookback >= timedelta(days=3650)
    assert registered.description


def test_thresholds_default_to_pci_dss() -> None:
    assert RULES["stale_pins"].parameters == {"max_age_days": 90}
    assert RULES["reused_pins"].parameters == {"history_size": 4}


# --- weak_pins ----------------------------------------------------------------------------


def test_weak_pin_held_in_the_window_is_found() -> None:
    events = pin_events(
        ("C3", "2025-12-01 10:00", "initial", STRONG[0], "admin"),
        ("C3", "2026-02-10 09:00", "change", REPEATED_DIGIT),
        ("C3", "2026-03-12 09:30", "change", STRONG[1]),
    )
    found = weak_findings(events)
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["entity_id"] == "C3"
    assert row["merchant_id"] == MERCHANT
    assert row["window_start"] == day("2026-02-10 09:00")
    assert row["window_end"] == day("2026-03-12 09:30")
    # clerk 03 may refund: medium whatever the class; the class sets the score
    assert (row["severity"], row["score"]) == ("medium", 0.95)
    assert "operator 03" in row["summary"]
    assert "terminal T1" in row["summary"]
    assert "repeated digit" in row["summary"]
    assert "2026-02-10" in row["summary"]
    assert evidence(found)["weakness_class"] == "repeated_digit"


def test_a_weak_pin_is_one_severity_higher_on_an_operator_who_can_move_money() -> None:
    events = pin_events(
        ("C3", "2025-10-01 10:00", "initial", DATE, "admin"),
        ("C5", "2025-10-01 10:00", "initial", DATE, "admin"),
        ("C7", "2025-10-01 10:00", "initial", DATE, "admin"),
    )
    ops = operators().with_columns(
        pl.when(pl.col("operator_id") == "C7")
        .then(True)
        .otherwise("can_transfer")
        .alias("can_transfer")
    )
    found = collect(pin_rules.weak_pins(events, ops, weak_pin_digests(), data_window()))
    severity = dict(found.select("entity_id", "severity").iter_rows())
    # refund (C3) and transfer (C7) open the money: medium; sale only (C5): low
    assert severity == {"C3": "medium", "C5": "low", "C7": "medium"}
    assert {e["is_privileged"] for e in map(json.loads, found.get_column("evidence"))} == {
        True,
        False,
    }


def test_a_weak_pin_still_held_is_an_open_state() -> None:
    found = weak_findings(pin_events(("C5", "2025-10-01 10:00", "initial", DATE, "admin")))
    # no end: the finding names neither the data's end nor the days held so far
    assert found.get_column("window_end").to_list() == [None]
    assert "since 2025-10-01, still held" in found.get_column("summary")[0]
    assert evidence(found)["held_until"] is None
    assert evidence(found)["held_days"] is None
    # clerk 05 can only sell: its weak PIN is low
    assert found.select("severity", "score").rows() == [("low", 0.6)]
    assert evidence(found)["weakness_class"] == "date"
    assert evidence(found)["still_held"] is True


def test_weak_pins_before_the_window_and_strong_pins_are_not_found() -> None:
    events = pin_events(
        ("C3", "2025-06-01 10:00", "initial", REPEATED_DIGIT, "admin"),
        ("C3", "2026-01-15 10:00", "change", STRONG[0]),  # weak one ended before the window
        ("C5", "2025-06-01 10:00", "initial", STRONG[1], "admin"),
        ("C7", "2026-04-02 10:00", "initial", REPEATED_PAIR, "admin"),  # after the data
    )
    assert weak_findings(events).height == 0


def test_a_disabled_operator_held_its_pin_until_it_was_disabled() -> None:
    events = pin_events(
        ("C3", "2025-12-01 10:00", "initial", REPEATED_DIGIT, "admin"),
        ("C5", "2025-12-01 10:00", "initial", REPEATED_DIGIT, "admin"),
    )
    ops = operators(disabled={"C3": day("2026-03-10 18:00"), "C5": day("2026-02-01 18:00")})
    found = collect(pin_rules.weak_pins(events, ops, weak_pin_digests(), data_window()))
    assert found.get_column("entity_id").to_list() == ["C3"]
    assert found.get_column("window_end").to_list() == [day("2026-03-10 18:00")]
    assert evidence(found)["still_held"] is False


def test_operator_number_pins_count_only_for_that_operator() -> None:
    events = pin_events(
        ("C7", "2026-01-01 10:00", "initial", "070000", "admin"),  # its own number
        ("C5", "2026-01-01 10:00", "initial", "070000", "admin"),  # another operator's number
        ("X7", "2026-01-01 10:00", "initial", "000700", "admin"),  # its own number too
    )
    found = weak_findings(events)
    assert found.get_column("entity_id").to_list() == ["C7", "X7"]
    assert {evidence(found, i)["weakness_class"] for i in range(2)} == {"operator_number"}
    assert "operator number" in found.get_column("summary")[0]


def test_a_pin_listed_under_two_classes_gives_one_finding_of_the_first() -> None:
    listed = pl.LazyFrame(
        {
            "pin_digest": [digest(STRONG[2]), digest(STRONG[2]), digest(STRONG[2])],
            # the class that wins comes last: the rule must not take the first row it sees
            "weakness_class": ["operator_number", "common_pin", "date"],
            "operator_no": ["03", None, None],
        }
    )
    events = pin_events(("C3", "2026-01-01 10:00", "initial", STRONG[2], "admin"))
    found = collect(pin_rules.weak_pins(events, operators(), listed, data_window()))
    assert found.height == 1
    assert evidence(found)["weakness_class"] == "date"


def test_weak_pins_read_enum_columns() -> None:
    events = pin_events(("C3", "2026-01-01 10:00", "initial", REPEATED_PAIR, "admin"), enums=True)
    found = collect(
        pin_rules.weak_pins(events, operators(enums=True), weak_pin_digests(), data_window())
    )
    assert found.height == 1
    assert evidence(found)["weakness_class"] == "repeated_pair"


# --- default_pins -------------------------------------------------------------------------


def test_an_administrator_on_the_default_pin_is_medium_and_scored_first() -> None:
    events = pin_events(("A1", "2024-05-06 11:00", "initial", DEFAULT_ESIGN, "acquirer"))
    found = default_findings(events)
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["entity_id"], row["severity"], row["score"]) == ("A1", "medium", 0.95)
    assert (row["window_start"], row["window_end"]) == (day("2024-05-06 11:00"), None)
    assert "administrator 00 at terminal T1 of merchant M1" in row["summary"]
    assert "since 2024-05-06, never changed" in row["summary"]
    assert "default PIN" in row["summary"]


def test_a_clerk_on_the_default_pin_is_medium_and_scored_below_an_administrator() -> None:
    events = pin_events(("C5", "2025-05-06 11:00", "initial", DEFAULT_SMART, "acquirer"))
    assert default_findings(events).select("severity", "score").rows() == [("medium", 0.9)]


@pytest.mark.parametrize(
    "rows",
    [
        # changed since installation
        [
            ("A1", "2024-05-06 11:00", "initial", DEFAULT_ESIGN, "acquirer"),
            ("A1", "2024-05-09 11:00", "change", STRONG[0], "self"),
        ],
        # changed during the window: no longer the default at the end
        [
            ("A1", "2024-05-06 11:00", "initial", DEFAULT_ESIGN, "acquirer"),
            ("A1", "2026-03-20 11:00", "change", STRONG[0], "self"),
        ],
        # the acquirer issued a PIN that is not a default
        [("A1", "2024-05-06 11:00", "initial", STRONG[1], "acquirer")],
        # the administrator chose it, not the acquirer (a weak PIN, not a default one)
        [("C3", "2024-05-06 11:00", "initial", DEFAULT_SMART, "admin")],
        # a reset to it is not the installation default
        [
            ("A1", "2024-05-06 11:00", "initial", STRONG[2], "acquirer"),
            ("A1", "2025-05-06 11:00", "reset", DEFAULT_ESIGN, "service_desk"),
        ],
    ],
)
def test_no_default_pin_finding(rows: list[tuple[str, ...]]) -> None:
    assert default_findings(pin_events(*rows)).height == 0


def test_a_disabled_operator_holds_no_default_pin() -> None:
    events = pin_events(("A1", "2024-05-06 11:00", "initial", DEFAULT_ESIGN, "acquirer"))
    ops = operators(disabled={"A1": day("2025-01-01 00:00")})
    assert default_findings(events, ops).height == 0


# --- stale_pins ---------------------------------------------------------------------------


def test_a_pin_older_than_90_days_is_stale_from_day_91() -> None:
    events = pin_events(("C3", "2025-12-01 10:00", "initial", STRONG[0], "admin"))
    found = stale_findings(events)
    assert found.height == 1
    row = found.row(0, named=True)
    assert row["window_start"] == day("2025-12-01 10:00") + timedelta(days=90)
    assert row["window_end"] is None  # still held: an open state
    assert row["severity"] == "low"
    assert "90-day limit since 2026-03-01" in row["summary"]
    assert "90 days old on 2026-03-01, still held" in row["summary"]
    assert evidence(found)["max_age_days"] == 90
    assert evidence(found)["passed_days"] == 90


def test_a_stale_pin_still_held_changes_only_when_it_passes_a_multiple_of_the_limit() -> None:
    """The same finding every night between the marks; a new one the night a mark passes."""
    events = pin_events(("C3", "2025-10-01 10:00", "initial", STRONG[0], "admin"))

    def on(end: str) -> dict[str, Any]:
        window = data_window(data_to=day(end))
        return stale_findings(events, window).drop("evidence").row(0, named=True)

    # 180 days are passed on 2026-03-30 10:00: the day before and the day of differ
    before, day_of, week_after = on("2026-03-30 09:00"), on("2026-03-30 11:00"), on("2026-04-06")
    assert on("2026-03-01 12:00") == before  # every night since the first mark, the same
    assert (before["severity"], day_of["severity"]) == ("low", "medium")
    assert before["score"] < day_of["score"]
    assert "180 days old on 2026-03-30" in day_of["summary"]
    assert day_of == week_after


def test_a_stale_pin_changed_is_judged_by_the_age_it_reached() -> None:
    events = pin_events(
        ("C3", "2025-10-01 10:00", "initial", STRONG[0], "admin"),
        ("C3", "2026-03-10 10:00", "change", STRONG[1]),
    )
    row = stale_findings(events).row(0, named=True)
    assert row["window_end"] == day("2026-03-10 10:00")
    assert "kept one PIN for 160 days from 2025-10-01 to 2026-03-10" in row["summary"]
    assert evidence(stale_findings(events))["passed_days"] is None


def test_older_pins_score_higher_and_turn_medium() -> None:
    events = pin_events(
        ("C3", "2025-12-01 10:00", "initial", STRONG[0], "admin"),
        ("C5", "2024-12-01 10:00", "initial", STRONG[1], "admin"),
    )
    found = stale_findings(events)
    scores = dict(zip(found["entity_id"], found["score"], strict=True))
    severities = dict(zip(found["entity_id"], found["severity"], strict=True))
    assert scores["C5"] > scores["C3"]
    assert severities == {"C3": "low", "C5": "medium"}


def test_pins_changed_in_time_or_stale_only_before_the_window_are_not_found() -> None:
    events = pin_events(
        ("C3", "2026-01-01 10:00", "initial", STRONG[0], "admin"),  # 89 days at the end
        ("C5", "2025-01-01 10:00", "initial", STRONG[1], "admin"),
        ("C5", "2026-02-01 10:00", "change", STRONG[2]),  # stale, but changed before March
        ("C7", "2025-12-01 10:00", "initial", STRONG[3], "admin"),
        ("C7", "2026-01-20 10:00", "change", STRONG[4]),
        ("C7", "2026-03-15 10:00", "change", STRONG[5]),  # every PIN under 90 days
    )
    assert stale_findings(events).height == 0


def test_the_age_limit_is_a_parameter() -> None:
    events = pin_events(("C3", "2026-01-01 10:00", "initial", STRONG[0], "admin"))
    assert stale_findings(events, max_age_days=60).height == 1
    assert stale_findings(events, max_age_days=90).height == 0


US_PER_DAY = 86_400_000_000


@settings(max_examples=60, deadline=None)
@given(
    max_age_days=st.integers(30, 365),
    age_offset_us=st.integers(-2 * US_PER_DAY, 2 * US_PER_DAY),
    window_offset_us=st.integers(-2 * US_PER_DAY, 2 * US_PER_DAY),
)
@example(max_age_days=90, age_offset_us=0, window_offset_us=0)
@example(max_age_days=90, age_offset_us=1, window_offset_us=0)
@example(max_age_days=90, age_offset_us=1, window_offset_us=1)
def test_stale_exactly_when_older_than_the_limit_and_in_the_window(
    max_age_days: int, age_offset_us: int, window_offset_us: int
) -> None:
    # A PIN set at `start` and changed after max_age_days (+ offset); the audited window
    # starts at that change (+ offset). Stale iff held strictly longer than the limit, and
    # reported iff its end reaches the window (inclusive).
    start = datetime(2025, 1, 6, 9, 30)
    changed = start + timedelta(days=max_age_days, microseconds=age_offset_us)
    data_from = changed + timedelta(microseconds=window_offset_us)
    data_to = max(changed, data_from) + timedelta(days=20)
    events = pin_events(
        ("C3", start, "initial", STRONG[0], "admin"),
        ("C3", changed, "change", STRONG[1]),
    )
    found = stale_findings(events, data_window(data_from, data_to), max_age_days=max_age_days)
    expected = age_offset_us > 0 and window_offset_us <= 0
    assert found.height == int(expected)
    if expected:
        assert found.row(0, named=True)["window_start"] == start + timedelta(days=max_age_days)
        assert found.row(0, named=True)["window_end"] == changed


# --- shared_pins --------------------------------------------------------------------------


def test_two_operators_of_a_merchant_on_one_pin() -> None:
    events = pin_events(
        ("C3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
        ("C5", "2026-02-01 10:00", "initial", STRONG[1], "admin"),
        ("C5", "2026-03-05 10:00", "change", STRONG[0]),  # now the same as C3's
        ("C5", "2026-03-20 10:00", "change", STRONG[2]),
    )
    found = shared_findings(events)
    assert found.get_column("entity_id").to_list() == ["C3", "C5"]
    assert found.get_column("window_start").to_list() == [day("2026-03-05 10:00")] * 2
    assert found.get_column("window_end").to_list() == [day("2026-03-20 10:00")] * 2
    assert found.select("severity", "score").rows() == [("medium", 0.8)] * 2
    c3 = evidence(found, 0)
    assert c3["other_operator_ids"] == ["C5"]
    assert c3["group_size"] == 2
    assert "05 at T2" in found.get_column("summary")[0]


def test_three_sharing_operators_are_scored_higher() -> None:
    events = pin_events(
        ("C3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
        ("C5", "2026-01-11 10:00", "initial", STRONG[0], "admin"),
        ("C7", "2026-01-12 10:00", "initial", STRONG[0], "admin"),
    )
    found = shared_findings(events)
    assert found.get_column("entity_id").to_list() == ["C3", "C5", "C7"]
    assert set(found.select("severity", "score").rows()) == {("medium", 0.9)}
    assert evidence(found, 0)["other_operator_ids"] == ["C5", "C7"]
    assert evidence(found, 0)["group_size"] == 3


def test_overlaps_are_merged_per_operator_and_pin_period() -> None:
    events = pin_events(
        ("C3", "2026-01-01 10:00", "initial", STRONG[0], "admin"),
        ("C5", "2026-03-02 10:00", "initial", STRONG[0], "admin"),
        ("C5", "2026-03-05 10:00", "change", STRONG[1]),
        ("C5", "2026-03-10 10:00", "change", STRONG[0]),
        ("C5", "2026-03-15 10:00", "change", STRONG[2]),
    )
    found = shared_findings(events)
    c3 = found.filter(pl.col("entity_id") == "C3")
    assert c3.height == 1
    assert c3.row(0, named=True)["window_start"] == day("2026-03-02 10:00")
    assert c3.row(0, named=True)["window_end"] == day("2026-03-15 10:00")
    assert "from 2026-03-02 to 2026-03-15" in c3.get_column("summary")[0]
    assert found.filter(pl.col("entity_id") == "C5").height == 2


def test_a_pin_still_shared_is_an_open_state() -> None:
    events = pin_events(
        ("C3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
        ("C5", "2026-01-20 10:00", "initial", STRONG[0], "admin"),
    )
    found = shared_findings(events)
    assert found.get_column("window_end").to_list() == [None, None]
    assert "since 2026-01-20, still shared" in found.get_column("summary")[0]
    assert evidence(found)["still_shared"] is True


@pytest.mark.parametrize(
    "rows",
    [
        # same PIN at two merchants
        [
            ("C3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
            ("X3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
        ],
        # same PIN at one merchant, one after the other (C3 changed as C5 set it)
        [
            ("C3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
            ("C3", "2026-03-05 10:00", "change", STRONG[1]),
            ("C5", "2026-03-05 10:00", "initial", STRONG[0], "admin"),
        ],
        # shared, but only before the audited window
        [
            ("C3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
            ("C5", "2026-01-11 10:00", "initial", STRONG[0], "admin"),
            ("C5", "2026-02-11 10:00", "change", STRONG[1]),
            ("C3", "2026-02-12 10:00", "change", STRONG[2]),
        ],
        # one operator keeping its own PIN across periods is not sharing
        [
            ("C3", "2026-01-10 10:00", "initial", STRONG[0], "admin"),
            ("C3", "2026-03-05 10:00", "reset", STRONG[0], "service_desk"),
        ],
    ],
)
def test_no_shared_pin_finding(rows: list[tuple[str, ...]]) -> None:
    assert shared_findings(pin_events(*rows)).height == 0


# --- reused_pins --------------------------------------------------------------------------


def test_a_change_back_to_a_recent_pin() -> None:
    events = pin_events(
        ("C3", "2025-06-01 10:00", "initial", STRONG[0], "admin"),
        ("C3", "2025-08-01 10:00", "change", STRONG[1]),
        ("C3", "2025-10-01 10:00", "change", STRONG[2]),
        ("C3", "2026-03-03 10:00", "change", STRONG[0]),
    )
    found = reused_findings(events)
    assert found.height == 1
    row = found.row(0, named=True)
    assert (row["window_start"], row["window_end"]) == (day("2026-03-03 10:00"), None)
    assert row["severity"] == "medium"
    assert "2025-06-01" in row["summary"]
    assert evidence(found)["pins_back"] == 3
    assert evidence(found)["history_size"] == 4


def test_a_reset_to_the_pin_it_replaced() -> None:
    events = pin_events(
        ("C5", "2025-06-01 10:00", "initial", STRONG[0], "admin"),
        ("C5", "2026-02-01 10:00", "reset", STRONG[0], "service_desk"),
        ("C5", "2026-03-10 10:00", "change", STRONG[1]),
    )
    found = reused_findings(events)
    assert found.height == 1
    assert found.row(0, named=True)["window_end"] == day("2026-03-10 10:00")
    assert evidence(found)["pins_back"] == 1
    assert "service desk" in found.get_column("summary")[0]


def test_a_pin_five_back_is_reuse_only_with_a_longer_history() -> None:
    events = pin_events(
        ("C3", "2024-06-01 10:00", "initial", STRONG[0], "admin"),
        ("C3", "2024-09-01 10:00", "change", STRONG[1]),
        ("C3", "2024-12-01 10:00", "change", STRONG[2]),
        ("C3", "2025-03-01 10:00", "change", STRONG[3]),
        ("C3", "2025-06-01 10:00", "change", STRONG[4]),
        ("C3", "2026-03-03 10:00", "change", STRONG[0]),
    )
    assert reused_findings(events).height == 0
    assert reused_findings(events, history_size=5).height == 1


def test_reuse_only_before_the_window_and_other_operators_pins_are_not_found() -> None:
    events = pin_events(
        ("C3", "2025-06-01 10:00", "initial", STRONG[0], "admin"),
        ("C3", "2025-08-01 10:00", "change", STRONG[1]),
        ("C3", "2025-10-01 10:00", "change", STRONG[0]),  # reused, but...
        ("C3", "2026-01-01 10:00", "change", STRONG[2]),  # ...changed before the window
        ("C5", "2025-06-01 10:00", "initial", STRONG[3], "admin"),
        ("C5", "2026-03-02 10:00", "change", STRONG[1]),  # C3's old PIN, not its own
    )
    assert reused_findings(events).height == 0


def test_history_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="history_size"):
        pin_rules.reused_pins(pin_events(), operators(), data_window(), history_size=0)


# --- secrets ------------------------------------------------------------------------------


def everything() -> pl.DataFrame:
    """Every rule on one world that triggers each of them."""
    events = pin_events(
        ("A1", "2024-05-06 11:00", "initial", DEFAULT_ESIGN, "acquirer"),
        ("C3", "2025-06-01 10:00", "initial", REPEATED_DIGIT, "admin"),
        ("C3", "2025-08-01 10:00", "change", DATE),
        ("C3", "2026-03-03 10:00", "change", REPEATED_DIGIT),
        ("C5", "2025-09-01 10:00", "initial", REPEATED_PAIR, "admin"),
        ("C7", "2025-10-01 10:00", "initial", REPEATED_PAIR, "admin"),
        ("C7", "2026-03-05 10:00", "change", "070000"),
    )
    ops, window = operators(), data_window()
    frames = [
        pin_rules.weak_pins(events, ops, weak_pin_digests(), window),
        pin_rules.default_pins(events, ops, default_pin_digests(), window),
        pin_rules.stale_pins(events, ops, window),
        pin_rules.shared_pins(events, ops, window),
        pin_rules.reused_pins(events, ops, window),
    ]
    return pl.concat([collect(frame) for frame in frames])


def test_every_rule_fires_on_the_secrets_world() -> None:
    assert set(everything().get_column("rule")) == {
        "weak_pins",
        "default_pins",
        "stale_pins",
        "shared_pins",
        "reused_pins",
    }


@pytest.mark.parametrize("column", ["summary", "evidence"])
def test_no_pin_or_digest_in_summary_or_evidence(column: str) -> None:
    texts = everything().get_column(column).to_list()
    pins = PINS_USED | {DEFAULT_ESIGN, DEFAULT_SMART, REPEATED_DIGIT, REPEATED_PAIR, DATE, *STRONG}
    digests = {pin_digest(pin, key=KEY) for pin in pins}
    for text in texts:
        assert not HEX_DIGEST.search(text), text
        for secret in pins | digests:
            assert secret not in text, text
        # not even a prefix of a digest, as a short 'fingerprint' of the PIN
        for value in digests:
            assert value[:12] not in text, text
