"""What a review may say: its statuses and decisions, and the text an analyst gives it.

Every value is checked before the store is opened for writing, so bad input writes nothing.
"""

from __future__ import annotations

import getpass
import os
import re
import unicodedata
from typing import Final, Literal

ReviewStatus = Literal["open", "in_review", "closed"]
Decision = Literal["confirmed_fraud", "policy_breach", "false_positive", "benign_explained"]

# In the order of schema.sql's ENUMs (review_status_t, review_decision_t).
STATUSES: Final[tuple[ReviewStatus, ...]] = ("open", "in_review", "closed")
DECISIONS: Final[tuple[Decision, ...]] = (
    "confirmed_fraud",
    "policy_breach",
    "false_positive",
    "benign_explained",
)
# Decisions that say a finding was what its rule accused (a rule's precision counts them) and
# those that say it was not (a run does not bring such a finding back unless its evidence grows).
UPHELD: Final[tuple[Decision, ...]] = ("confirmed_fraud", "policy_breach")
DISMISSED: Final[tuple[Decision, ...]] = ("false_positive", "benign_explained")
ANALYST_ENV: Final = "POSAUDIT_ANALYST"
# A note is a paragraph or a few, not a document: the trail is read line by line.
NOTE_MAX_CHARACTERS: Final = 10_000
NAME_MAX_CHARACTERS: Final = 100
# Controls other than tab and line feed (ESC rewrites a terminal, NUL ends a C string) and the
# bidirectional controls that reorder what follows them on a line.
_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]"
)


class ReviewError(ValueError):
    """A review that cannot be recorded as asked. The message is one line meant for the user."""


def checked_status(value: str) -> ReviewStatus:
    """``value`` when it is a review status, else ReviewError naming the allowed ones."""
    if value not in STATUSES:
        msg = f"unknown status {value!r}: a review status is one of {', '.join(STATUSES)}"
        raise ReviewError(msg)
    return value  # type: ignore[return-value]


def checked_decision(value: str) -> Decision:
    """``value`` when it is a decision, else ReviewError naming the allowed ones."""
    if value not in DECISIONS:
        msg = f"unknown decision {value!r}: a decision is one of {', '.join(DECISIONS)}"
        raise ReviewError(msg)
    return value  # type: ignore[return-value]


def _text_problem(value: object, *, limit: int, lines: bool) -> str | None:
    """Why ``value`` is not text a review can hold, or None when it is."""
    if not isinstance(value, str):
        return f"is not text (got {type(value).__name__})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not text: it holds bytes that are not UTF-8"
    found = _UNSAFE.search(value) if lines else re.search(r"[\n\t]", value) or _UNSAFE.search(value)
    if found is not None:
        return f"holds the control character U+{ord(found.group(0)):04X}"
    if len(value) > limit:
        return f"is {len(value):,} characters long, past the limit of {limit:,}"
    if not value.strip():
        return "is empty"
    return None


def checked_note(value: object) -> str | None:
    """A note as stored (None for no note), or ReviewError saying why it is not text.

    A note may run over several lines (a Windows line end is stored as a line feed); it may
    not hold other control characters than tab and line feed, nor bidirectional controls,
    and is stored in Unicode's NFC form.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.replace("\r\n", "\n")
    problem = _text_problem(value, limit=NOTE_MAX_CHARACTERS, lines=True)
    if problem is not None:
        msg = f"the note {problem}"
        raise ReviewError(msg)
    return unicodedata.normalize("NFC", str(value))


def checked_name(value: object, *, what: str) -> str:
    """A person's name as stored (one line, trimmed), or ReviewError naming ``what`` it is."""
    problem = _text_problem(value, limit=NAME_MAX_CHARACTERS, lines=False)
    if problem is not None:
        msg = f"{what} {problem}"
        raise ReviewError(msg)
    return unicodedata.normalize("NFC", str(value).strip())


def current_analyst() -> str:
    """Who is reviewing: ``$POSAUDIT_ANALYST`` when set (and not empty), else the OS user."""
    given = os.environ.get(ANALYST_ENV, "")
    if given.strip():
        return checked_name(given, what=f"${ANALYST_ENV}")
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        msg = f"cannot tell who is reviewing: set ${ANALYST_ENV} to your name"
        raise ReviewError(msg) from None
    return checked_name(user, what="the OS user name")
