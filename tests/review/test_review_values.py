"""What a review may hold: its statuses and decisions, notes and names."""

from __future__ import annotations

import pytest

from posaudit.review.values import (
    DECISIONS,
    STATUSES,
    ReviewError,
    checked_decision,
    checked_name,
    checked_note,
    checked_status,
    current_analyst,
)


def test_the_values_are_the_schemas_enums() -> None:
    from importlib.resources import files

    schema = files("posaudit.store").joinpath("schema.sql").read_text(encoding="utf-8")
    for values in (STATUSES, DECISIONS):
        assert ", ".join(f"'{v}'" for v in values) in " ".join(schema.split())
    assert checked_status("in_review") == "in_review"
    assert checked_decision("benign_explained") == "benign_explained"


def test_a_note_keeps_its_lines_in_one_form() -> None:
    assert checked_note(None) is None
    assert checked_note("line one\r\nline two\tend") == "line one\nline two\tend"
    # the same words typed as a letter and an accent, or as one character: the same note
    assert checked_note("cafe\u0301") == "caf\u00e9"


@pytest.mark.parametrize(
    ("note", "problem"),
    [
        (b"bytes", "is not text (got bytes)"),
        (42, "is not text (got int)"),
        ("caf\udce9", "not UTF-8"),
        ("a\rb", "U+000D"),
        ("name\u202e", "U+202E"),
        ("\x00", "U+0000"),
        ("", "is empty"),
    ],
)
def test_a_note_that_is_not_text_is_named(note: object, problem: str) -> None:
    with pytest.raises(ReviewError, match="the note") as raised:
        checked_note(note)
    assert problem in str(raised.value)


def test_a_name_is_one_trimmed_line() -> None:
    assert checked_name("  wang.li ", what="the assignee") == "wang.li"
    with pytest.raises(ReviewError, match="the assignee holds the control character U\\+0009"):
        checked_name("a\tb", what="the assignee")
    with pytest.raises(ReviewError, match="past the limit of 100"):
        checked_name("x" * 101, what="the assignee")


def test_the_analyst_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSAUDIT_ANALYST", " li.na ")
    assert current_analyst() == "li.na"
    monkeypatch.setenv("POSAUDIT_ANALYST", "")
    monkeypatch.setenv("LOGNAME", "os-user")
    assert current_analyst() == "os-user"
