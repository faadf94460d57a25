"""What a simulation will cost, from the scenario alone: events, store size and time.

A world of a million merchants over ten years is a valid scenario and some 10^12 events: the
command line says what it will take before it starts, and asks to be told twice past
:data:`EVENTS_LIMIT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from posaudit.simulate.scenario import Scenario

# Measured on the default behaviour (100 merchants x 10 days, and docs/benchmarks.md): about
# 245 transactions per merchant-day at sales_scale 1 (refunds are about 2 % of them), 8 logins
# and lockouts, and 45 PIN events per merchant, most of them the PIN history before day one.
SALES_PER_MERCHANT_DAY: Final = 240.0
REFUND_SHARE: Final = 0.02
LOGINS_PER_MERCHANT_DAY: Final = 8.0
PIN_EVENTS_PER_MERCHANT: Final = 45.0
# docs/benchmarks.md: 30 bytes per event in the store (2,888 MiB for 102 M events), plus the
# schema and a first block of each table.
BYTES_PER_EVENT: Final = 30
FIXED_BYTES: Final = 4 * 2**20
# docs/benchmarks.md: 120,000-330,000 events/s on 2 shared cores; the slower figure, so the
# estimate is one a user is not surprised by; and a few seconds to start and commit.
EVENTS_PER_SECOND: Final = 120_000
FIXED_SECONDS: Final = 3.0
# The largest world measured (docs/benchmarks.md: 102 M events, 2.9 GB, 14 minutes): past
# it the command line asks for --yes.
EVENTS_LIMIT: Final = 100_000_000


@dataclass(frozen=True)
class SimulationEstimate:
    """About how many events a simulation writes, how large its store grows, how long it takes."""

    events: int
    store_bytes: int
    seconds: float

    @property
    def over_limit(self) -> bool:
        return self.events > EVENTS_LIMIT

    def describe(self) -> str:
        """One line: 'about 1.5 million events, 47 MB, 15 s'."""
        size, time = _bytes(self.store_bytes), _duration(self.seconds)
        return f"about {_count(self.events)} events, {size}, {time}"


def simulation_estimate(scenario: Scenario, *, new_store: bool = True) -> SimulationEstimate:
    """The events, store bytes and seconds a simulation of ``scenario`` is expected to take.

    ``new_store``: the world's PIN histories are written too (not when appending days).
    """
    behaviour = scenario.behaviour
    merchant_days = scenario.merchants * scenario.days
    sales = SALES_PER_MERCHANT_DAY * behaviour["sales_scale"]
    per_merchant_day = (
        sales * (1 + REFUND_SHARE * behaviour["refund_scale"]) + LOGINS_PER_MERCHANT_DAY
    )
    events = merchant_days * per_merchant_day + (
        PIN_EVENTS_PER_MERCHANT * scenario.merchants if new_store else 0
    )
    return SimulationEstimate(
        events=round(events),
        store_bytes=round(events * BYTES_PER_EVENT + FIXED_BYTES),
        seconds=events / EVENTS_PER_SECOND + FIXED_SECONDS,
    )


def _count(events: int) -> str:
    for size, word in ((10**12, "trillion"), (10**9, "billion"), (10**6, "million")):
        if events >= size:
            return f"{events / size:,.1f} {word}"
    return f"{events:,}"


def _bytes(byte_count: int) -> str:
    for size, unit in ((10**12, "TB"), (10**9, "GB"), (10**6, "MB")):
        if byte_count >= size:
            return f"{byte_count / size:,.1f} {unit}"
    return f"{byte_count / 10**3:,.0f} kB"


def _duration(seconds: float) -> str:
    for size, unit in ((86_400, "days"), (3_600, "hours"), (60, "minutes")):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.0f} s"
