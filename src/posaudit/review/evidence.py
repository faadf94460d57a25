"""How much a finding's evidence holds: the events inside it, counted the same way when an
analyst decides and when a later run reports the finding again.

The events are what a finding's evidence counts by name (:data:`EVENT_COUNTS`: ``attempts``,
``failures``, ``refunds``, ``lockouts``... and any ``*_count``: an operator's day), summed; a
finding whose evidence counts none counts the ids it lists (``*_ids``; a rule lists at most
a few dozen, so a count, where the rule gives one, is the truer measure). A finding of one
event, or of a state (a PIN held), counts nothing: it has no events to gain, and None stands
for that.
"""

from __future__ import annotations

import json
from typing import Final

# Evidence fields that count events inside a finding (never a policy's threshold: those are
# named min_*/max_*).
EVENT_COUNTS: Final = frozenset(
    {
        "attempts",
        "failures",
        "refunds",
        "lockouts",
        "network_errors",
        "switches",
        "unknown_attempts",
    }
)


def evidence_events(evidence: str | dict[str, object] | None) -> int | None:
    """The events inside a finding's evidence (JSON text or parsed), or None when it lists none."""
    if evidence is None:
        return None
    fields = json.loads(evidence) if isinstance(evidence, str) else evidence
    if not isinstance(fields, dict):
        return None
    counts = [
        v
        for k, v in fields.items()
        if (k in EVENT_COUNTS or k.endswith("_count"))
        and isinstance(v, int)
        and not isinstance(v, bool)
    ]
    if counts:
        return sum(counts)
    lists = [v for k, v in fields.items() if k.endswith("_ids") and isinstance(v, list)]
    return sum(len(v) for v in lists) if lists else None
