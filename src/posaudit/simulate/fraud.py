"""Injected attacks and abuse, each labelled in ground truth (see docs/scenarios.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

import numpy as np
import polars as pl

from posaudit.simulate.attempts import LoginLog, guessing_run
from posaudit.simulate.day import (
    FAILURE_T,
    KIND_T,
    REFUND_WINDOW_DAYS,
    STATUS_T,
    TXN_SCHEMA,
    DayActivity,
    Shifts,
    SimState,
    snap_to_opening,
)
from posaudit.simulate.world import US_PER_DAY, US_PER_MINUTE, World, day_start_us

US_PER_SECOND: Final = 1_000_000
ATTACKER_CARD_BASE: Final = 900_000_000_000


@cache
def _limit(rule: str, parameter: str) -> int:
    """The default policy's threshold an evading attacker stays under (docs/scenarios.md)."""
    from posaudit.detect.policy import load_policy

    return int(load_policy().parameters(rule)[parameter])


def _towards(value: int, target: int, level: float) -> int:
    """``value`` moved ``level`` (0..1) of the way to ``target``: itself at 0, ``target`` at 1."""
    return round(value + level * (target - value))


class Rows:
    """Injected rows as plain arrays, read like a DataFrame's columns."""

    def __init__(self, data: dict[str, np.ndarray]):
        self._data = data

    @property
    def height(self) -> int:
        return int(self._data["ts"].size)

    def get_column(self, name: str) -> pl.Series:
        return pl.Series(name, self._data[name])


@dataclass
class DayContext:
    world: World
    day: int
    rng: np.random.Generator
    state: SimState
    shifts: Shifts
    sales: pl.DataFrame  # today's approved, unvoided sales
    activity: DayActivity
    _by_terminal: tuple[pl.DataFrame, np.ndarray] | None = None
    _used: set[int] | None = None
    _buffer: list[dict[str, np.ndarray]] = field(default_factory=list)
    evasion: dict[str, float] = field(default_factory=dict)

    def level(self, scenario: str) -> float:
        """The scenario's evasion level, 0 (today's attack) .. 1 (just under the policy)."""
        return self.evasion.get(scenario, 0.0)

    @property
    def base(self) -> int:
        return day_start_us(self.world, self.day)

    def txn(self, rows: dict[str, Any]) -> Rows:
        """Buffer injected transactions; returns their numeric columns.

        They are approved unless ``rows`` gives a ``failure`` (a failure reason's name, or ""
        for approved, per row): a failed card sale is declined, any other failed record failed.
        """
        row_count = len(rows["ts"])
        data = {"seq": self.state.take_seqs(row_count)}
        for column in ("ts", "terminal", "operator", "channel", "amount", "card", "original"):
            data[column] = np.broadcast_to(np.asarray(rows[column], dtype=np.int64), row_count)
        data["kind"] = np.broadcast_to(np.asarray(rows["kind"]), row_count)
        data["failure"] = np.broadcast_to(
            np.asarray(rows.get("failure", ""), dtype=object), row_count
        )
        self._buffer.append(data)
        return Rows(data)

    def flush(self) -> None:
        """The day's injected transactions, as one frame."""
        if not self._buffer:
            return
        columns = {
            column: np.concatenate([batch[column] for batch in self._buffer])
            for column in self._buffer[0]
        }
        self._buffer.clear()
        frame = pl.DataFrame(
            {
                **{c: values for c, values in columns.items() if c not in ("kind", "failure")},
                "kind": pl.Series(columns["kind"].astype(str)).cast(KIND_T),
                "failure": pl.Series(columns["failure"].astype(str)).replace("", None),
            }
        ).with_columns(
            pl.when(pl.col("failure").is_null())
            .then(pl.lit("approved"))
            .when(pl.col("kind") == "sale")
            .then(pl.lit("declined"))
            .otherwise(pl.lit("failed"))
            .cast(STATUS_T)
            .alias("status"),
            pl.col("failure").cast(FAILURE_T),
        )
        self.activity.txns.append(frame.select(list(TXN_SCHEMA)))

    def label(self, scenario: str, entity_type: str, entity: int, start: int, end: int) -> None:
        self.activity.labels.append((scenario, entity_type, int(entity), int(start), int(end)))

    def use(self, sales: pl.DataFrame | Rows) -> None:
        """Mark sales as refunded by an injection, so no other refunds them again."""
        if self._used is None:
            self._used = set()
        self._used.update(sales.get_column("seq").to_list())

    def unused(self, sales: pl.DataFrame) -> pl.DataFrame:
        if not self._used:
            return sales
        used = np.fromiter(self._used, dtype=np.int64, count=len(self._used))
        return sales.filter(pl.Series(~np.isin(sales.get_column("seq").to_numpy(), used)))

    def sales_at(self, terminal: int) -> pl.DataFrame:
        return self.unused(self._sales_at(terminal))

    def _sales_at(self, terminal: int) -> pl.DataFrame:
        if self._by_terminal is None:
            ordered = self.sales.sort("terminal", "ts")
            bounds = np.searchsorted(
                ordered.get_column("terminal").to_numpy(), np.arange(self.world.n_terminals + 1)
            )
            self._by_terminal = (ordered, bounds)
        ordered, bounds = self._by_terminal
        return ordered.slice(int(bounds[terminal]), int(bounds[terminal + 1] - bounds[terminal]))

    def busy_terminals(self, min_sales: int) -> np.ndarray:
        counts = np.bincount(
            self.sales.get_column("terminal").to_numpy(), minlength=self.world.n_terminals
        )
        return np.flatnonzero(counts >= min_sales)

    def refund_operator(self, terminal: int) -> int:
        refunder_count = int(self.world.t_refund_n[terminal])
        return int(self.world.t_refund_ops[terminal, int(self.rng.integers(0, refunder_count))])


def _refund_rows(
    ctx: DayContext,
    sales: pl.DataFrame | Rows,
    ts: np.ndarray,
    operator: int | np.ndarray,
    *,
    amount: np.ndarray | None = None,
    card: np.ndarray | None = None,
    original: np.ndarray | None = None,
) -> pl.DataFrame:
    ctx.use(sales)
    return ctx.txn(
        {
            "ts": ts,
            "terminal": sales.get_column("terminal").to_numpy(),
            "operator": operator,
            "kind": "refund",
            "channel": sales.get_column("channel").to_numpy(),
            "amount": sales.get_column("amount").to_numpy() if amount is None else amount,
            "card": sales.get_column("card").to_numpy() if card is None else card,
            "original": sales.get_column("seq").to_numpy() if original is None else original,
        }
    )


def pin_brute_force(ctx: DayContext, count: int) -> None:
    world, rng = ctx.world, ctx.rng
    level = ctx.level("pin_brute_force")
    for op in rng.choice(world.n_operators, size=count, replace=False):
        terminal = int(world.o_terminal[op])
        # an evading attacker guesses in busy hours, when a few wrong PINs are unremarkable
        night = rng.random() < 0.5 * (1 - level)
        minute = (
            rng.integers(0, 300)
            if night
            else world.m_open[world.t_merchant[terminal]] + rng.integers(30, 300)
        )
        start = ctx.base + int(minute) * US_PER_MINUTE + int(rng.integers(0, 60)) * US_PER_SECOND
        gaps = (rng.integers(4, 21, 16) * US_PER_SECOND).tolist()
        failures = int(rng.integers(20, 61))
        succeed = bool(rng.random() < 1 / 3)
        locked_tries = int(rng.integers(1, 3))
        if level > 0:
            # wrong and locked attempts in one burst stay under the policy's count
            locked_tries = _towards(locked_tries, 0, level)
            below = _limit("pin_brute_force", "min_failures") - 1 - locked_tries
            failures = max(1, _towards(failures, below, level))
        end = guessing_run(
            ctx.activity.logins,
            start_us=start,
            terminal=terminal,
            operator=int(op),
            operator_no=str(world.o_no[op]),
            threshold=int(world.t_threshold[terminal]),
            lockout_minutes=int(world.t_minutes[terminal]),
            failures=failures,
            gaps_us=gaps,
            succeed=succeed,
            locked_tries=locked_tries,
        )
        ctx.label("pin_brute_force", "operator", op, start, end)


def operator_enumeration(ctx: DayContext, count: int) -> None:
    world, rng, log = ctx.world, ctx.rng, ctx.activity.logins
    for terminal in rng.choice(world.n_terminals, size=count, replace=False):
        merchant = world.t_merchant[terminal]
        directory = {
            str(world.o_no[operator]): int(operator)
            for operator in np.flatnonzero((world.o_merchant == merchant) & ~world.o_is_admin)
        }
        directory[str(world.o_no[world.t_admin[terminal]])] = int(world.t_admin[terminal])
        numbers = [f"{number:02d}" for number in range(0, 60)]
        tried = rng.choice(numbers, size=int(rng.integers(10, 21)), replace=False).tolist()
        tried = sorted(set(tried) | set(directory))
        level = ctx.level("operator_enumeration")
        if level > 0:  # fewer distinct operator numbers than the policy counts
            below = _limit("operator_enumeration", "min_operator_numbers") - 1
            tried = tried[: max(1, _towards(len(tried), below, level))]
        passes = int(rng.integers(2, 4))
        attempts = (tried * passes)[: int(rng.integers(20, 61))]
        threshold, minutes = int(world.t_threshold[terminal]), int(world.t_minutes[terminal])
        start = ctx.base + int(rng.integers(0, 1440 - 90)) * US_PER_MINUTE
        ts = start
        counts: dict[int, int] = {}
        locked_until: dict[int, int] = {}
        for no in attempts:
            ts += int(rng.integers(3, 13)) * US_PER_SECOND
            op = directory.get(no, -1)
            if op < 0:
                log.event(ts, int(terminal), no, -1, "unknown_operator")
                continue
            if locked_until.get(op, 0) > ts:
                log.event(ts, int(terminal), no, op, "locked")
                continue
            log.event(ts, int(terminal), no, op, "wrong_pin")
            counts[op] = counts.get(op, 0) + 1
            if threshold > 0 and counts[op] == threshold:
                locked_until[op] = ts + minutes * US_PER_MINUTE
                log.lockout(int(terminal), op, ts, locked_until[op], "timeout")
                counts[op] = 0
        ctx.label("operator_enumeration", "terminal", terminal, start, ts)


def _quiet_spell(ctx: DayContext, op: int, span: int) -> tuple[int, int] | None:
    """The start and length (at most ``span``) of the longest time in today's opening hours,
    after the policy's switch gap and a margin, in which ``op`` neither logs in nor works
    (None when too short)."""
    log = ctx.activity.logins
    logins = np.asarray(log.ts, dtype=np.int64)[np.asarray(log.operator, dtype=np.int64) == op]
    busy = [logins]
    for frame in ctx.activity.txns:
        mine = frame.filter((pl.col("operator") == op) & (pl.col("kind") != "refund"))
        busy.append(mine.get_column("ts").to_numpy())
    merchant = ctx.world.o_merchant[op]
    opens = ctx.base + int(ctx.world.m_open[merchant]) * US_PER_MINUTE
    closes = min(ctx.base + int(ctx.world.m_close[merchant]) * US_PER_MINUTE, ctx.base + US_PER_DAY)
    inside = np.concatenate(busy)
    inside = inside[(inside > opens) & (inside < closes)]
    points = np.sort(np.concatenate([[opens, closes - 1], inside]))
    gaps = np.diff(points)
    longest = int(np.argmax(gaps))
    margin = (_limit("credential_sharing", "max_gap_minutes") + 5) * US_PER_MINUTE
    room = int(gaps[longest]) - 2 * margin - US_PER_MINUTE
    if room < 20 * US_PER_MINUTE:
        return None
    return int(points[longest]) + margin, min(span, room)


def credential_sharing(ctx: DayContext, count: int) -> None:
    world, rng = ctx.world, ctx.rng
    multi = np.bincount(world.t_merchant)[world.t_merchant] > 1
    candidates = np.flatnonzero(multi & (ctx.shifts.operator[:, 0] >= 0))
    candidates = candidates[~world.o_is_admin[ctx.shifts.operator[candidates, 0]]]
    if candidates.size == 0:
        return
    for terminal in rng.choice(candidates, size=min(count, candidates.size), replace=False):
        op = int(ctx.shifts.operator[terminal, 0])
        siblings = np.flatnonzero(
            (world.t_merchant == world.t_merchant[terminal])
            & (np.arange(world.n_terminals) != terminal)
        )
        sibling = int(rng.choice(siblings))
        s0, s1 = int(ctx.shifts.start_us[terminal, 0]), int(ctx.shifts.end_us[terminal, 0])
        span = int(rng.integers(60, 121)) * US_PER_MINUTE
        w0 = s0 + int(rng.random() * max(s1 - s0 - span, 1))
        sibling_sales, home_sales = int(rng.integers(3, 9)), int(rng.integers(3, 7))
        level = ctx.level("credential_sharing")
        if level > 0 and rng.random() < level:
            # the borrowed login is used on the sibling only in a quiet spell of its owner's,
            # further from the owner's activity than the policy's switch gap: no switches
            quiet = _quiet_spell(ctx, op, span)
            if quiet is not None:
                w0, span = quiet
                sibling_sales, home_sales = sibling_sales + home_sales, 0
        ctx.activity.logins.event(w0, sibling, str(world.o_no[op]), op, "success")
        times = np.sort(
            w0
            + 60 * US_PER_SECOND
            + (rng.random(sibling_sales + home_sales) * span).astype(np.int64)
        )
        where = rng.permutation(np.array([sibling] * sibling_sales + [int(terminal)] * home_sales))
        ctx.txn(
            {
                "ts": times,
                "terminal": where,
                "operator": np.full(times.size, op),
                "kind": "sale",
                "channel": rng.integers(0, 5, times.size),
                "amount": rng.integers(1_000, 30_000, times.size),
                "card": rng.integers(0, 10**9, times.size),
                "original": np.full(times.size, -1),
            }
        )
        ctx.label("credential_sharing", "operator", op, w0, int(times[-1]))


def takeover_refund(ctx: DayContext, count: int) -> None:
    world, rng = ctx.world, ctx.rng
    busy = ctx.busy_terminals(8)
    if busy.size == 0:
        return
    for terminal in rng.choice(busy, size=min(count, busy.size), replace=False):
        sales = ctx.sales_at(int(terminal))
        if sales.height < 8:
            continue
        op = ctx.refund_operator(int(terminal))
        start = int(sales.get_column("ts")[5]) + int(rng.integers(1, 30)) * US_PER_MINUTE
        threshold = int(world.t_threshold[terminal])
        failures = threshold if threshold > 0 else 8
        level = ctx.level("takeover_refund")
        if level > 0:
            # fewer wrong PINs before the login than the policy counts, and no lockout
            below = _limit("refunds_after_suspicious_login", "min_failures") - 1
            if threshold > 0:
                below = min(below, threshold - 1)
            failures = max(1, _towards(failures, below, level))
        gaps = (rng.integers(5, 15, 8) * US_PER_SECOND).tolist()
        method = str(rng.choice(["service_desk", "admin", "timeout"], p=[0.6, 0.2, 0.2]))
        login = guessing_run(
            ctx.activity.logins,
            start_us=start,
            terminal=int(terminal),
            operator=op,
            operator_no=str(world.o_no[op]),
            threshold=threshold,
            lockout_minutes=int(world.t_minutes[terminal]),
            failures=failures,
            gaps_us=gaps,
            succeed=True,
            unlock_method=method,
            unlock_delay_us=int(rng.integers(5, 20)) * US_PER_MINUTE,
            locked_tries=0,
        )
        earlier = sales.filter(pl.col("ts") < start)
        refund_count = min(int(rng.integers(3, 7)), earlier.height)
        picked = earlier.sample(refund_count, seed=int(rng.integers(0, 2**31)))
        ts = np.sort(login + (rng.integers(2, 40, refund_count) * US_PER_MINUTE))
        attacker = ATTACKER_CARD_BASE + int(rng.integers(0, 10**9))
        rows = _refund_rows(ctx, picked, ts, op, card=np.full(refund_count, attacker))
        for seq, when in zip(rows.get_column("seq").to_list(), ts.tolist(), strict=True):
            ctx.label("refund_other_card", "transaction", seq, when, when)
        ctx.label("takeover_refund", "operator", op, start, int(ts[-1]))


def _single_refunds(ctx: DayContext, count: int, scenario: str) -> None:
    world, rng = ctx.world, ctx.rng
    sales = ctx.sales
    if scenario == "refund_without_permission":
        no_refund = (
            np.bincount(
                world.o_terminal[~world.o_can_refund & ~world.o_is_admin],
                minlength=world.n_terminals,
            )
            > 0
        )
        sales = sales.filter(pl.Series(no_refund[sales.get_column("terminal").to_numpy()]))
    if scenario == "late_refund":
        sales = ctx.state.sale_pool.filter(
            pl.col("ts") < ctx.base - (REFUND_WINDOW_DAYS + 1) * US_PER_DAY
        )
    sales = ctx.unused(sales)
    if sales.height == 0 or count == 0:
        return
    picked = sales.sample(min(count, sales.height), seed=int(rng.integers(0, 2**31)))
    if scenario == "late_refund":
        ctx.state.sale_pool = ctx.state.sale_pool.filter(
            ~pl.col("seq").is_in(picked.get_column("seq").implode())
        )
    refund_count = picked.height
    term = picked.get_column("terminal").to_numpy()
    if scenario == "late_refund":
        ts = (
            ctx.base
            + (world.m_open[world.t_merchant[term]] + 30) * US_PER_MINUTE
            + rng.integers(0, 240, refund_count) * US_PER_MINUTE
        )
    else:
        ts = (
            picked.get_column("ts").to_numpy() + rng.integers(10, 240, refund_count) * US_PER_MINUTE
        )
    ts = np.minimum(
        snap_to_opening(world, world.t_merchant[term], ts, rng), ctx.base + US_PER_DAY - 1
    )
    ops = np.array([ctx.refund_operator(int(terminal)) for terminal in term])
    amount = picked.get_column("amount").to_numpy()
    card = picked.get_column("card").to_numpy()
    if scenario == "refund_without_permission":
        no_refund_right = ~world.o_can_refund & ~world.o_is_admin
        ops = np.array(
            [
                int(rng.choice(np.flatnonzero((world.o_terminal == terminal) & no_refund_right)))
                for terminal in term
            ]
        )
    if scenario == "refund_over_sale":
        # an evading refund exceeds the sale by a plausible few per cent (tolerance is 0 fen,
        # so it cannot go under the rule)
        factor = rng.uniform(1.2, 3.0, refund_count)
        level = ctx.level(scenario)
        if level > 0:
            factor = 1 + (factor - 1) * (1 - 0.95 * level)
        amount = np.maximum((amount * factor).astype(np.int64), amount + 1)
    if scenario == "refund_other_card":
        card = ATTACKER_CARD_BASE + rng.integers(0, 10**9, refund_count)
    original = (
        np.where(rng.random(refund_count) < 0.5, -1, -2)
        if scenario == "refund_without_sale"
        else None
    )
    rows = _refund_rows(ctx, picked, ts, ops, amount=amount, card=card, original=original)
    for seq, when in zip(
        rows.get_column("seq").to_list(), rows.get_column("ts").to_list(), strict=True
    ):
        ctx.label(scenario, "transaction", seq, when, when)


def _operator_refund_run(ctx: DayContext, count: int, scenario: str) -> None:
    world, rng = ctx.world, ctx.rng
    need = {"off_hours_refunds": 8, "refund_burst": 20, "round_amount_refunds": 1}[scenario]
    busy = ctx.busy_terminals(need)
    if scenario == "off_hours_refunds":
        busy = busy[~world.m_is_24h[world.t_merchant[busy]]]
    if busy.size == 0:
        return
    for terminal in rng.choice(busy, size=min(count, busy.size), replace=False):
        terminal = int(terminal)
        merchant = int(world.t_merchant[terminal])
        op = ctx.refund_operator(terminal)
        sales = ctx.sales_at(terminal)
        if sales.height < need:
            continue
        level = ctx.level(scenario)
        if scenario == "off_hours_refunds":
            refund_count = int(rng.integers(3, 7))
            if level > 0:  # fewer refunds while closed than the policy counts
                below = _limit("off_hours_refunds", "min_refunds") - 1
                refund_count = max(1, _towards(refund_count, below, level))
            # after closing, into the night: before the next opening, after all of today's sales
            minute = int(world.m_close[merchant]) + int(rng.integers(60, 241))
            t0 = ctx.base + minute * US_PER_MINUTE
            ts = t0 + np.cumsum(rng.integers(3, 16, refund_count)) * US_PER_MINUTE
            picked = sales
            if picked.height < refund_count:
                continue
            picked = picked.sample(refund_count, seed=int(rng.integers(0, 2**31)))
            ctx.activity.logins.event(t0, terminal, str(world.o_no[op]), op, "success")
            _refund_rows(ctx, picked, ts, op)
            ctx.label(scenario, "operator", op, t0, int(ts[-1]))
        elif scenario == "refund_burst":
            refund_count = int(rng.integers(8, 16))
            start = (
                int(sales.get_column("ts")[min(sales.height - 1, refund_count + 2)])
                + int(rng.integers(1, 30)) * US_PER_MINUTE
            )
            earlier = sales.filter(pl.col("ts") < start)
            refund_count = min(refund_count, earlier.height)
            span = int(rng.integers(20, 41)) * US_PER_MINUTE
            if level > 0:
                # fewer refunds than the policy counts, spread over up to three of its windows
                window = _limit("refund_bursts", "window_minutes") * US_PER_MINUTE
                below = _limit("refund_bursts", "min_refunds") - 1
                refund_count = max(1, min(refund_count, _towards(refund_count, below, level)))
                span = _towards(span, 3 * window, level)
            ts = np.sort(start + (rng.random(refund_count) * span).astype(np.int64))
            _refund_rows(
                ctx, earlier.sample(refund_count, seed=int(rng.integers(0, 2**31))), ts, op
            )
            ctx.label(scenario, "operator", op, int(ts[0]), int(ts[-1]))
        else:
            sale_count = int(rng.integers(3, 7))
            if level > 0:  # fewer round refunds in the policy's window than it counts
                below = _limit("round_amount_refunds", "min_refunds") - 1
                sale_count = max(1, _towards(sale_count, below, level))
            s0 = ctx.base + (world.m_open[merchant] + int(rng.integers(10, 120))) * US_PER_MINUTE
            sale_ts = np.sort(s0 + rng.integers(0, 180, sale_count) * US_PER_MINUTE)
            accomplice = ATTACKER_CARD_BASE + rng.integers(0, 10**9, 2)
            big = ctx.txn(
                {
                    "ts": sale_ts,
                    "terminal": np.full(sale_count, terminal),
                    "operator": np.full(sale_count, op),
                    "kind": "sale",
                    "channel": np.full(sale_count, 1),
                    "amount": rng.integers(80_000, 500_000, sale_count),
                    "card": accomplice[rng.integers(0, 2, sale_count)],
                    "original": np.full(sale_count, -1),
                }
            )
            amount = big.get_column("amount").to_numpy()
            refund = np.maximum(
                (amount * rng.uniform(0.5, 0.9, sale_count) // 10_000) * 10_000, 20_000
            )
            ts = np.sort(sale_ts + rng.integers(20, 120, sale_count) * US_PER_MINUTE)
            _refund_rows(ctx, big, ts, op, amount=refund.astype(np.int64))
            ctx.label(scenario, "operator", op, int(sale_ts[0]), int(ts.max()))


INJECTORS: Final[dict[str, Callable[[DayContext, int], None]]] = {
    "pin_brute_force": pin_brute_force,
    "operator_enumeration": operator_enumeration,
    "credential_sharing": credential_sharing,
    "takeover_refund": takeover_refund,
    "refund_other_card": lambda context, count: _single_refunds(
        context, count, "refund_other_card"
    ),
    "refund_without_sale": lambda context, count: _single_refunds(
        context, count, "refund_without_sale"
    ),
    "refund_over_sale": lambda context, count: _single_refunds(context, count, "refund_over_sale"),
    "refund_without_permission": lambda context, count: _single_refunds(
        context, count, "refund_without_permission"
    ),
    "late_refund": lambda context, count: _single_refunds(context, count, "late_refund"),
    "off_hours_refunds": lambda context, count: _operator_refund_run(
        context, count, "off_hours_refunds"
    ),
    "refund_burst": lambda context, count: _operator_refund_run(context, count, "refund_burst"),
    "round_amount_refunds": lambda context, count: _operator_refund_run(
        context, count, "round_amount_refunds"
    ),
}
# The exposure each daily rate is counted against (docs/scenarios.md).
EXPOSURE: Final = {
    "pin_brute_force": "operator_days",
    "operator_enumeration": "terminal_days",
    "credential_sharing": "operator_days",
    "takeover_refund": "operator_days",
    "refund_other_card": "sales",
    "refund_without_sale": "sales",
    "refund_over_sale": "sales",
    "refund_without_permission": "sales",
    "late_refund": "late_sales",
    "off_hours_refunds": "operator_days",
    "refund_burst": "operator_days",
    "round_amount_refunds": "operator_days",
}


def allocate(state: SimState, name: str, expected: float, phase: float) -> int:
    """Whole incidents for today so that the running total tracks the expected total."""
    acc = state.accumulators.get(name, phase) + expected
    incidents = int(np.floor(acc))
    state.accumulators[name] = acc - incidents
    return incidents


def plan_friendly_refunds(
    world: World, rng: np.random.Generator, state: SimState, rate: float, first_day: int, days: int
) -> list[tuple[int, int, int]]:
    """Operators who refund friends' purchases over weeks; returns (operator, start, end)."""
    able = np.flatnonzero(world.o_can_refund & ~world.o_is_admin)
    if able.size == 0 or rate == 0:
        return []
    chosen = rng.choice(able, size=min(able.size, round(rate / 1000 * able.size)), replace=False)
    incidents = []
    rows: list[pl.DataFrame] = []
    for op in chosen:
        terminal = int(world.o_terminal[op])
        merchant = int(world.t_merchant[terminal])
        friends = ATTACKER_CARD_BASE + rng.integers(0, 10**9, int(rng.integers(2, 4)))
        day = first_day + int(rng.integers(0, 4))
        first = None
        last = None
        while day < first_day + days:
            minute = int(world.m_open[merchant]) + int(
                rng.integers(
                    30, max(int(world.m_close[merchant] - world.m_open[merchant]) - 60, 31)
                )
            )
            ts = day_start_us(world, day) + minute * US_PER_MINUTE
            due = (
                ts
                + int(rng.integers(1, 4)) * US_PER_DAY
                + int(rng.integers(-60, 60)) * US_PER_MINUTE
            )
            due = int(snap_to_opening(world, np.array([merchant]), np.array([due]), rng)[0])
            amount = int(rng.integers(3_000, 20_000))
            rows.append(
                pl.DataFrame(
                    {
                        "day": [day],
                        "ts": [ts],
                        "due": [due],
                        "terminal": [terminal],
                        "operator": [int(op)],
                        "card": [int(rng.choice(friends))],
                        "amount": [amount],
                    }
                )
            )
            first = ts if first is None else first
            if due < day_start_us(world, first_day + days):
                last = due
            day += int(rng.integers(2, 5))
        if first is not None and last is not None:
            incidents.append((int(op), first, last))
    state.friendly_plan = pl.concat(rows) if rows else None
    return incidents


def friendly_purchases(ctx: DayContext) -> None:
    """Today's planned purchases by friendly cards, with their refunds scheduled."""
    plan = ctx.state.friendly_plan
    if plan is None:
        return
    today = plan.filter(pl.col("day") == ctx.day)
    purchase_count = today.height
    if purchase_count == 0:
        return
    sales = ctx.txn(
        {
            "ts": today.get_column("ts").to_numpy(),
            "terminal": today.get_column("terminal").to_numpy(),
            "operator": today.get_column("operator").to_numpy(),
            "kind": "sale",
            "channel": np.full(purchase_count, 2),
            "amount": today.get_column("amount").to_numpy(),
            "card": today.get_column("card").to_numpy(),
            "original": np.full(purchase_count, -1),
        }
    )
    refunds = pl.DataFrame(
        {
            "ts": today.get_column("due"),
            "terminal": sales.get_column("terminal"),
            "operator": sales.get_column("operator"),
            "kind": pl.Series(["refund"] * purchase_count, dtype=KIND_T),
            "channel": sales.get_column("channel"),
            "amount": sales.get_column("amount"),
            "card": sales.get_column("card"),
            "original": sales.get_column("seq"),
            "status": pl.Series(["approved"] * purchase_count, dtype=STATUS_T),
            "failure": pl.Series([None] * purchase_count, dtype=FAILURE_T),
        }
    )
    ctx.state.pending = pl.concat([ctx.state.pending, refunds.select(ctx.state.pending.columns)])


def inject_day(ctx: DayContext, rates: dict[str, float], phases: dict[str, float]) -> None:
    """Every scenario's incidents for today, in a fixed order."""
    world = ctx.world
    exposure = {
        "operator_days": float(world.n_operators),
        "terminal_days": float(world.n_terminals),
        "sales": float(ctx.sales.height),
        "late_sales": float(ctx.sales.height) if ctx.day > REFUND_WINDOW_DAYS else 0.0,
    }
    for name, inject in INJECTORS.items():
        rate = rates.get(name, 0.0)
        if rate <= 0:
            continue
        incidents = allocate(ctx.state, name, rate / 1000 * exposure[EXPOSURE[name]], phases[name])
        if incidents:
            inject(ctx, incidents)
    friendly_purchases(ctx)
    ctx.flush()


def log_frames(log: LoginLog) -> tuple[pl.DataFrame, pl.DataFrame]:
    logins = pl.DataFrame(
        {
            "ts": log.ts,
            "terminal": log.terminal,
            "operator_no": log.operator_no,
            "operator": log.operator,
            "outcome": log.outcome,
        },
        schema={
            "ts": pl.Int64,
            "terminal": pl.Int64,
            "operator_no": pl.String,
            "operator": pl.Int64,
            "outcome": pl.String,
        },
    )
    lockouts = pl.DataFrame(
        {
            "terminal": log.lock_terminal,
            "operator": log.lock_operator,
            "locked_at": log.locked_at,
            "unlocked_at": log.unlocked_at,
            "unlock_method": log.unlock_method,
        },
        schema={
            "terminal": pl.Int64,
            "operator": pl.Int64,
            "locked_at": pl.Int64,
            "unlocked_at": pl.Int64,
            "unlock_method": pl.String,
        },
    )
    return logins, lockouts
