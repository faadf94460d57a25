"""What a notebook can read of the PIN digests: nothing, through the session it is given."""

from __future__ import annotations

from typing import Any

import pytest

import posaudit.notebook as nb
from posaudit.notebook.session import AuditError


@pytest.fixture(scope="module")
def audit(audited_store: Any) -> nb.Audit:
    return nb.open_audit(audited_store.path)


def test_tables_come_without_digests(audit: nb.Audit) -> None:
    events = audit.table("pin_events")
    assert events.height > 0
    assert "pin_digest" not in events.columns
    assert "pin_digest" not in audit.sql("SELECT * FROM pin_events LIMIT 5").columns


@pytest.mark.parametrize(
    "query",
    [
        "SELECT pin_digest FROM pin_events",
        "select PIN_DIGEST as d from pin_events",
        "SELECT * FROM kept_pin_exclusion",
        "SELECT count(*) FROM main.kept_refunds",
    ],
)
def test_queries_for_digests_are_refused(audit: nb.Audit, query: str) -> None:
    with pytest.raises(AuditError, match=r"the notebooks do not read .*PIN digests stay"):
        audit.sql(query)
