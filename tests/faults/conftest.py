"""The fault-injection suite's tally: what it tried and what it found, printed after the tests.

Each test records every fault it injected (a kill at some moment of some command, two writers
at once, a full disk) and what the store or the outputs looked like after it. The summary at
the end of the run says, per kind of fault, how many were tried and how many left everything
intact; a test fails on the first fault that lost or half-wrote anything.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

_tried: Counter[str] = Counter()
_outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)


class FaultTally:
    def record(self, fault: str, outcome: str) -> None:
        """One injected fault of kind ``fault`` and what was found after it (``outcome``)."""
        _tried[fault] += 1
        _outcomes[fault][outcome] += 1


@pytest.fixture(scope="session")
def tally() -> FaultTally:
    return FaultTally()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _tried:
        return
    terminalreporter.section("fault injection: what was tried, and what it left")
    for fault, count in sorted(_tried.items()):
        outcomes = ", ".join(f"{n} {what}" for what, n in sorted(_outcomes[fault].items()))
        terminalreporter.write_line(f"{fault}: {count} tried; {outcomes}")
    terminalreporter.write_line(
        f"{sum(_tried.values())} faults injected; every one left the store and the outputs whole "
        "(a fault that did not fails its test)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.slow)
