"""`posaudit` paused (or failing) at a named point of a run: the kill tests' way in.

    python tests/pipeline/hooked_run.py POINT[:fail] run --db STORE ...

The points of a local run: ``locked`` (the writer lock held, nothing read), ``read`` (the
tables read), ``computed`` (the findings computed, inside the run's transaction),
``writing`` (the findings merged, not yet committed), ``committed`` (the run committed). At
its point the run prints ``posaudit: test hook: paused at POINT`` on stderr and sleeps until
killed, or with ``:fail`` raises there. The points are reached through the run's own
functions and events, wrapped here, so the product carries no test code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

HOOK_POINTS: Final = ("locked", "read", "computed", "writing", "committed")
# The run's events after which each point is reached.
EVENT_POINTS: Final = {"read": "read", "detect": "computed", "write": "committed"}


def reach(point: str, wanted: str, action: str) -> None:
    if point != wanted:
        return
    if action == "fail":
        msg = f"test hook: failing at {point}"
        raise RuntimeError(msg)
    sys.stderr.write(f"posaudit: test hook: paused at {point}\n")
    sys.stderr.flush()
    time.sleep(3600)


def install(wanted: str, action: str) -> None:
    """Wrap the run's functions so that it stops at ``wanted``."""
    from posaudit.run import local, record

    plan_run = local.plan_run
    merge_findings = record.merge_findings
    run_pipeline = local.run_pipeline

    def planning(*args: Any, **kwargs: Any) -> Any:
        reach("locked", wanted, action)
        return plan_run(*args, **kwargs)

    def merging(*args: Any, **kwargs: Any) -> Any:
        counts = merge_findings(*args, **kwargs)
        reach("writing", wanted, action)
        return counts

    def running(*args: Any, on_event: Callable[..., None] | None = None, **kwargs: Any) -> Any:
        sink = on_event or record.ignore_events

        def hooked(name: str, fields: Mapping[str, object]) -> None:
            sink(name, fields)
            if name in EVENT_POINTS:
                reach(EVENT_POINTS[name], wanted, action)

        return run_pipeline(*args, on_event=hooked, **kwargs)

    local.plan_run = planning  # type: ignore[assignment]
    record.merge_findings = merging  # type: ignore[assignment]
    local.run_pipeline = running  # type: ignore[assignment]


if __name__ == "__main__":
    point, _, action = sys.argv[1].partition(":")
    if point not in HOOK_POINTS or action not in ("", "fail"):
        sys.exit(
            f"unknown hook {sys.argv[1]!r}: one of {', '.join(HOOK_POINTS)}, then :fail or not"
        )
    install(point, action)
    from posaudit.cli import main

    sys.argv = ["posaudit", *sys.argv[2:]]
    main()
