"""Events small simulated worlds lack, added to a store so that every rule has findings to
compare in the tests that hold two engines or two kinds of run equal."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import duckdb

# Lockout storms come from enumerations on the few terminals that lock after 3 failures:
# small worlds have none.
STORM_MINUTES = (0, 20)  # two operators of one terminal locked out 20 minutes apart


def add_lockout_storm(path: Path) -> None:
    """A lockout storm at noon of the store's last day, with the next lockout ids (as the
    simulator numbers them, so later appends continue after them)."""
    con = duckdb.connect(str(path))
    try:
        (last_day,) = con.execute("SELECT max(ts)::DATE FROM transactions").fetchone()  # type: ignore[misc]
        (next_id,) = con.execute(
            "SELECT coalesce(max(CAST(substr(lockout_id, 2) AS BIGINT)), -1) + 1 FROM lockouts"
        ).fetchone()  # type: ignore[misc]
        first_terminal = "(SELECT min(terminal_id) FROM operators)"
        operators = con.execute(
            "SELECT terminal_id, operator_id FROM operators "
            f"WHERE terminal_id = {first_terminal} ORDER BY operator_id LIMIT 2"
        ).fetchall()
        noon = datetime.combine(last_day, time(12))
        rows = []
        for i, ((terminal, operator), minutes) in enumerate(
            zip(operators, STORM_MINUTES, strict=True)
        ):
            locked_at = noon + timedelta(minutes=minutes)
            unlocked_at = locked_at + timedelta(minutes=30)
            rows.append((f"K{next_id + i}", terminal, operator, locked_at, unlocked_at))
        con.executemany("INSERT INTO lockouts VALUES (?, ?, ?, ?, ?, 'timeout')", rows)
    finally:
        con.close()
