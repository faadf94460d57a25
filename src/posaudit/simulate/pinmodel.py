"""How people choose and change 6-digit PINs, and each operator's PIN timeline.

Plaintext PINs exist only inside this module's return values, in memory, to derive digests
and ground truth; nothing here writes them anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import polars as pl

from posaudit.pins import WEAKNESS_CLASSES, _class_codes
from posaudit.simulate import catalog as cat
from posaudit.simulate.rng import exact_mask, stream
from posaudit.simulate.world import US_PER_DAY, US_PER_MINUTE, World

REFERENCE_WEAK_SHARE: Final = 0.6
# Shares of all PINs at the reference weak share (published 6-digit PIN studies: 123456 alone
# about 4 %, then 111111, 123123, 000000, 123321, 666666, 888888, 654321, 112233, 520520).
HEAD_PINS: Final = {
    "123456": 0.040,
    "111111": 0.015,
    "123123": 0.010,
    "000000": 0.010,
    "123321": 0.008,
    "666666": 0.007,
    "888888": 0.007,
    "654321": 0.006,
    "112233": 0.005,
    "520520": 0.005,
    "147258": 0.004,
    "121212": 0.004,
    "159357": 0.003,
    "168168": 0.003,
    "888999": 0.003,
    "789456": 0.003,
    "111222": 0.003,
    "520131": 0.003,
    "201314": 0.003,
    "666888": 0.003,
}
DATE_SHARE: Final = 0.22
ZIPF_EXPONENT: Final = 1.1
STRONG_POPULAR: Final = 0.7
HISTORY_SIZE: Final = 4  # PCI DSS 8.3.7: a new PIN differs from the last four
GOLDEN_RATIO_STEP: Final = 0.6180339887498949  # successive multiples spread evenly over [0, 1)
KINDS: Final = ("initial", "change", "reset")
# A PIN of other than six digits is coded as LENGTH_CODE * its length + its value, so that a
# timeline keeps every PIN in one integer array: 4 * 10**9 + 0 is "0000".
LENGTH_CODE: Final = 1_000_000_000


def pin_code(text: str) -> int:
    """The integer a timeline keeps for the PIN ``text``.

    >>> pin_code("004321"), pin_code("0000"), pin_text(pin_code("12345678"))
    (4321, 4000000000, '12345678')
    """
    return int(text) if len(text) == 6 else len(text) * LENGTH_CODE + int(text)


def pin_text(code: int) -> str:
    """The PIN a timeline's integer stands for, with its leading zeros."""
    length, value = divmod(int(code), LENGTH_CODE)
    return f"{value:0{length or 6}d}"


ACTORS: Final = ("self", "admin", "service_desk", "acquirer")


@lru_cache(maxsize=8)
def pin_probabilities(weak_share: float) -> np.ndarray:
    """Probability of each of the 10^6 PINs being chosen by a person."""
    codes = _class_codes()
    probabilities = np.zeros(1_000_000)
    scale = weak_share / REFERENCE_WEAK_SHARE
    head = np.array([int(pin) for pin in HEAD_PINS])
    probabilities[head] += np.array(list(HEAD_PINS.values())) * scale
    # birthdays: years mostly 1960-2005, in the three orders people write them
    years = np.arange(1960, 2006)
    year_w = np.exp(-0.5 * ((years - 1988) / 9.0) ** 2)
    month_days = [
        (month, day)
        for month in range(1, 13)
        for day in range(1, 32)
        if day <= (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
    ]
    yy = (years % 100)[:, None]
    mm = np.array([md[0] for md in month_days])[None, :]
    dd = np.array([md[1] for md in month_days])[None, :]
    date_weights = (year_w[:, None] * np.ones_like(mm)).astype(float)
    date_weights = date_weights / date_weights.sum()
    for fmt_share, value in (
        (0.5, yy * 10_000 + mm * 100 + dd),
        (0.25, mm * 10_000 + dd * 100 + yy),
        (0.25, dd * 10_000 + mm * 100 + yy),
    ):
        np.add.at(
            probabilities, value.ravel(), (date_weights * fmt_share * DATE_SHARE * scale).ravel()
        )
    # the rest of the weak mass: a Zipf popularity over the other weak PINs
    other = np.flatnonzero((codes > 0) & (probabilities == 0))
    other = np.random.default_rng(20240601).permutation(other)
    ranks = np.arange(other.size)
    zipf = 1.0 / (ranks + 10.0) ** ZIPF_EXPONENT
    rest = max(weak_share - probabilities.sum(), 0.0)
    probabilities[other] += zipf / zipf.sum() * rest
    # PINs no rule calls weak still repeat (phone and plate fragments, house numbers): half of
    # their mass follows a popularity curve, the other half is spread evenly
    strong = np.random.default_rng(20240602).permutation(np.flatnonzero(codes == 0))
    strong_zipf = 1.0 / (np.arange(strong.size) + 10.0) ** ZIPF_EXPONENT
    probabilities[strong] = (1.0 - weak_share) * (
        STRONG_POPULAR * strong_zipf / strong_zipf.sum() + (1 - STRONG_POPULAR) / strong.size
    )
    return probabilities / probabilities.sum()


@dataclass
class PinTimeline:
    """Every PIN event of every operator up to a horizon, plaintext kept in memory only."""

    operator: np.ndarray
    ts_us: np.ndarray
    kind: np.ndarray  # index into KINDS
    actor: np.ndarray  # index into ACTORS
    pin: np.ndarray  # int 0..999999
    horizon_us: int


def _working_minute(world: World, op: int, share_of_day: float) -> int:
    merchant = world.o_merchant[op]
    span = max(int(world.m_close[merchant] - world.m_open[merchant]) - 60, 60)
    return int(world.m_open[merchant] + 30 + share_of_day * span)


def build_pin_timeline(
    world: World,
    seed: int,
    horizon_us: int,
    *,
    weak_share: float,
    default_share: float,
    shared_share: float,
    reused_share: float,
    stale_share: float,
    forgotten_per_year: float,
) -> PinTimeline:
    """PIN events from each operator's creation until ``horizon_us``.

    Each operator's events come from its own random stream, so a longer horizon only adds
    events after the shorter one's: appending days never rewrites history.
    """
    rng = stream(seed, "pins")
    operator_count = world.n_operators
    probabilities = pin_probabilities(weak_share)
    cdf = np.cumsum(probabilities)
    # habits, assigned in exact proportions: 0 compliant, 1 lax, 2 never
    habit = np.zeros(operator_count, dtype=np.int64)
    non_compliant = exact_mask(rng, operator_count, stale_share)
    habit[non_compliant] = np.where(rng.random(int(non_compliant.sum())) < 0.6, 1, 2)
    admins = np.flatnonzero(world.o_is_admin)
    keeps_default = np.zeros(operator_count, dtype=bool)
    keeps_default[admins[exact_mask(rng, admins.size, default_share)]] = True
    # shared PINs: in chosen merchants with 2+ clerks, 2-4 clerks hold the shop's one PIN
    clerks_by_m = pl.DataFrame(
        {"op": np.flatnonzero(~world.o_is_admin), "m": world.o_merchant[~world.o_is_admin]}
    )
    groups = clerks_by_m.group_by("m").agg("op").filter(pl.col("op").list.len() >= 2).sort("m")
    chosen = exact_mask(rng, groups.height, shared_share)
    shared_pin = np.full(operator_count, -1, dtype=np.int64)
    for ops in groups.filter(pl.Series(chosen)).get_column("op").to_list():
        holder_count = min(len(ops), int(rng.integers(2, 5)))
        members = rng.choice(ops, size=holder_count, replace=False)
        shared_pin[members] = int(np.searchsorted(cdf, rng.random() * 0.999, side="right"))
        habit[members] = 2
    reuse_phase = float(rng.random())

    ops_out: list[int] = []
    ts_out: list[int] = []
    kind_out: list[int] = []
    actor_out: list[int] = []
    pin_out: list[int] = []
    forget_rate = forgotten_per_year / 365.0
    for op in range(operator_count):
        operator_rng = stream(seed, "pins", op)
        history: list[int] = []
        # Each operator's own reuse accumulator: one shared across operators made the later
        # operators' PINs depend on how many changes the earlier ones had before the horizon.
        # Phases a golden-ratio step apart keep the world's share of reuses close to exact.
        reuse_acc = (reuse_phase + op * GOLDEN_RATIO_STEP) % 1.0

        # fresh and emit serve this operator only: called within this pass of the loop
        def fresh() -> int:
            while True:
                draw = operator_rng.random() * 0.999999  # noqa: B023
                value = int(np.searchsorted(cdf, draw, side="right"))
                if value not in history[-HISTORY_SIZE:]:  # noqa: B023
                    return value

        def emit(ts: int, kind: int, actor: int, value: int) -> None:
            ops_out.append(op)  # noqa: B023
            ts_out.append(ts)
            kind_out.append(kind)
            actor_out.append(actor)
            pin_out.append(value)
            history.append(value)  # noqa: B023

        event_us = int(world.o_created_us[op])
        day0 = event_us - event_us % US_PER_DAY
        if world.o_is_admin[op]:
            family = "esign" if world.t_family[world.o_terminal[op]] == 0 else "smart"
            emit(event_us, 0, 3, int(cat.DEFAULT_ADMIN_PIN[family]))
            if keeps_default[op]:
                continue
            day0 += int(operator_rng.integers(0, 10)) * US_PER_DAY
            event_us = day0 + _working_minute(world, op, operator_rng.random()) * US_PER_MINUTE
            emit(max(event_us, int(world.o_created_us[op]) + US_PER_MINUTE), 1, 0, fresh())
        else:
            first = shared_pin[op] if shared_pin[op] >= 0 else fresh()
            emit(event_us, 0, 1, first)
        if shared_pin[op] >= 0:
            continue
        operator_habit = habit[op]
        while True:
            period = (
                operator_rng.uniform(45, 88)
                if operator_habit == 0
                else operator_rng.uniform(100, 240)
                if operator_habit == 1
                else np.inf
            )
            forget = operator_rng.exponential(1.0 / forget_rate) if forget_rate > 0 else np.inf
            gap = min(period, forget)
            if not np.isfinite(gap):
                break
            day = event_us - event_us % US_PER_DAY + int(max(gap, 1.0)) * US_PER_DAY
            ts = day + _working_minute(world, op, operator_rng.random()) * US_PER_MINUTE
            if ts >= horizon_us:
                break
            is_reset = forget < period
            previous = [earlier for earlier in history[-HISTORY_SIZE:] if earlier != history[-1]]
            reuse_acc += reused_share
            if reuse_acc >= 1.0 and previous:
                reuse_acc -= 1.0
                value = int(previous[int(operator_rng.integers(0, len(previous)))])
            else:
                value = fresh()
            if is_reset:
                actor = 2 if world.o_is_admin[op] or operator_rng.random() < 0.3 else 1
                emit(ts, 2, actor, value)
            else:
                emit(ts, 1, 0, value)
            event_us = ts
    order = np.lexsort((np.array(ts_out), np.array(ops_out)))
    return PinTimeline(
        operator=np.array(ops_out, dtype=np.int64)[order],
        ts_us=np.array(ts_out, dtype=np.int64)[order],
        kind=np.array(kind_out, dtype=np.int64)[order],
        actor=np.array(actor_out, dtype=np.int64)[order],
        pin=np.array(pin_out, dtype=np.int64)[order],
        horizon_us=horizon_us,
    )


def pin_periods(world: World, timeline: PinTimeline, end_us: int) -> pl.DataFrame:
    """One row per operator and PIN held: start, end (next event or ``end_us``), plaintext."""
    frame = pl.DataFrame(
        {
            "op": timeline.operator,
            "merchant": world.o_merchant[timeline.operator],
            "start": timeline.ts_us,
            "kind": timeline.kind,
            "actor": timeline.actor,
            "pin": timeline.pin,
        }
    ).filter(pl.col("start") < end_us)
    return frame.sort("op", "start").with_columns(
        pl.col("start").shift(-1).over("op").fill_null(end_us).alias("end"),
    )


def weak_classes(world: World, ops: np.ndarray, pins: np.ndarray) -> np.ndarray:
    """Weakness class of each PIN under its operator's own number ('-' where none)."""
    names = np.array(["-", *WEAKNESS_CLASSES])
    six = pins < 1_000_000  # the exclusion list holds 6-digit PINs: others are in no class
    classes = np.where(six, names[_class_codes()[np.where(six, pins, 0)]], "-")
    numbers = world.o_no[ops]
    own = np.zeros(ops.size, dtype=bool)
    for candidate in (
        np.char.multiply(numbers, 3),
        np.char.add("0000", numbers),
        np.char.add(numbers, "0000"),
        np.char.add(np.char.add("00", numbers), "00"),
    ):
        own |= candidate.astype(np.int64) == pins
    return np.where((classes == "-") & own & six, "operator_number", classes)
