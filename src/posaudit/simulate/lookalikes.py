"""Innocent look-alikes: honest behaviour that resembles an attack (docs/scenarios.md).

Each incident is labelled ``benign:<kind>`` in ground truth, and only there: the rows it adds
are ordinary sales, refunds and logins. On by default; when off (``--no-lookalikes``)
nothing here runs, so the world and its random draws are exactly those without look-alikes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Final

import numpy as np
import polars as pl

from posaudit.simulate.attempts import guessing_run
from posaudit.simulate.catalog import CATEGORY_NAMES
from posaudit.simulate.day import FAILURE_T, KIND_T, REFUND_WINDOW_DAYS, STATUS_T
from posaudit.simulate.fraud import DayContext, _refund_rows, allocate
from posaudit.simulate.scenario import BENIGN_PREFIX, LOOKALIKE_KINDS
from posaudit.simulate.world import (
    CARD_BLOCK,
    REPLACEMENT_OFFSET,
    US_PER_DAY,
    US_PER_MINUTE,
    day_date,
    day_start_us,
    replacement_of,
)

US_PER_SECOND: Final = 1_000_000
SHOPS: Final = ("apparel", "electronics", "supermarket")
# The days after the golden weeks (Labour Day, National Day), when returns pile up.
POST_HOLIDAY: Final = frozenset({(5, 6), (5, 7), (5, 8), (10, 8), (10, 9), (10, 10)})
# Where each kind belongs: the merchant categories (None: any merchant).
CATEGORIES: Final[dict[str, tuple[str, ...] | None]] = {
    "return_wave": SHOPS,
    "replaced_card": (*SHOPS, "hotel"),
    "closing_refunds": ("restaurant", "cafe"),
    "shift_cover": None,
    "forgetful_operator": None,
    "hotel_deposits": ("hotel",),
    "new_clerk": None,
    "seasonal_peak": SHOPS,
}


def return_wave_day(ctx: DayContext) -> bool:
    """A month-end or post-holiday day: the last three and first two days of a month, and
    the three days after a golden week."""
    today = day_date(ctx.world, ctx.day)
    month_end = (today + timedelta(days=3)).month != today.month or today.day <= 2
    return month_end or (today.month, today.day) in POST_HOLIDAY


def _eligible(ctx: DayContext, kind: str) -> np.ndarray:
    """The merchants where ``kind`` may happen today."""
    world = ctx.world
    names = CATEGORIES[kind]
    ok = np.ones(world.m_category.size, dtype=bool)
    if names is not None:
        codes = [CATEGORY_NAMES.index(name) for name in names]
        ok &= np.isin(world.m_category, codes)
    if kind == "shift_cover":
        ok &= np.bincount(world.t_merchant, minlength=ok.size) > 1
    if kind == "closing_refunds":
        ok &= ~world.m_is_24h
    if kind == "return_wave" and not return_wave_day(ctx):
        ok[:] = False
    return np.flatnonzero(ok)


def _terminal_of(ctx: DayContext, merchant: int) -> int:
    return int(ctx.rng.choice(np.flatnonzero(ctx.world.t_merchant == merchant)))


def _older_sales(
    ctx: DayContext, terminal: int, before: int, *, today: bool = True
) -> pl.DataFrame:
    """Sales of ``terminal`` before ``before`` that may still be refunded: the remembered ones
    of the refund window and (``today``) today's, none refunded by an injection yet."""
    pool = ctx.state.sale_pool.filter(
        (pl.col("terminal") == terminal)
        & (pl.col("ts") >= before - (REFUND_WINDOW_DAYS - 1) * US_PER_DAY)
    )
    columns = ["seq", "ts", "terminal", "channel", "amount", "card"]
    parts = [pool.select(columns)]
    if today:
        parts.append(ctx.sales_at(terminal).filter(pl.col("ts") < before).select(columns))
    return ctx.unused(pl.concat(parts))


def _take(ctx: DayContext, sales: pl.DataFrame, count: int) -> pl.DataFrame:
    picked = sales.sample(count, seed=int(ctx.rng.integers(0, 2**31)))
    # a remembered sale refunded here is refunded by nobody else, on no later day
    ctx.state.sale_pool = ctx.state.sale_pool.filter(
        ~pl.col("seq").is_in(picked.get_column("seq").implode())
    )
    return picked


def _opening(ctx: DayContext, merchant: int) -> tuple[int, int]:
    world = ctx.world
    opens = ctx.base + int(world.m_open[merchant]) * US_PER_MINUTE
    closes = ctx.base + min(int(world.m_close[merchant]), 1440) * US_PER_MINUTE
    return opens, closes


def _refund_run(
    ctx: DayContext,
    kind: str,
    merchant: int,
    low: int,
    high: int,
    at: int,
    span: int,
    *,
    today: bool = True,
) -> None:
    """``low``-``high`` full refunds to the paying cards by one refunder within ``span``, of
    the till's sales of the refund window (``today``: today's sales among them)."""
    terminal = _terminal_of(ctx, merchant)
    earlier = _older_sales(ctx, terminal, at, today=today)
    count = min(int(ctx.rng.integers(low, high + 1)), earlier.height)
    if count < 3:
        return
    op = ctx.refund_operator(terminal)
    ts = np.sort(at + (ctx.rng.random(count) * span).astype(np.int64))
    _refund_rows(ctx, _take(ctx, earlier, count), ts, op)
    ctx.label(BENIGN_PREFIX + kind, "operator", op, int(ts[0]), int(ts[-1]))


def return_wave(ctx: DayContext, merchant: int) -> None:
    """Month-end or post-holiday returns: 8-14 full refunds at one till within an hour, of
    goods bought on earlier days (none in the data's first days, with no earlier sales)."""
    opens, closes = _opening(ctx, merchant)
    at = opens + int(ctx.rng.integers(60, 240)) * US_PER_MINUTE
    span = int(ctx.rng.integers(40, 70)) * US_PER_MINUTE
    if at + span < closes:
        _refund_run(ctx, "return_wave", merchant, 8, 14, at, span, today=False)


def closing_refunds(ctx: DayContext, merchant: int) -> None:
    """Bills corrected at cash-up: 4-8 refunds in the last 40 minutes before closing."""
    opens, closes = _opening(ctx, merchant)
    at = closes - 40 * US_PER_MINUTE
    if at > opens:
        _refund_run(ctx, "closing_refunds", merchant, 4, 8, at, 38 * US_PER_MINUTE)


def replaced_card(ctx: DayContext, merchant: int) -> None:
    """A customer's card was replaced: the refund of a sale goes to the new card."""
    rng = ctx.rng
    terminal = _terminal_of(ctx, merchant)
    opens, closes = _opening(ctx, merchant)
    at = opens + int(rng.integers(30, max((closes - opens) // US_PER_MINUTE - 10, 31))) * (
        US_PER_MINUTE
    )
    earlier = _older_sales(ctx, terminal, at).filter(pl.col("channel") < 2)  # cards only
    if earlier.height == 0:
        return
    sale = _take(ctx, earlier, 1)
    # The new card has another number (and token) but the old card's account. A number is
    # still drawn here, which keeps the rest of the day's random stream where it is.
    rng.integers(REPLACEMENT_OFFSET, CARD_BLOCK)
    new_card = replacement_of(int(sale.get_column("card")[0]))
    rows = _refund_rows(
        ctx, sale, np.array([at]), ctx.refund_operator(terminal), card=np.array([new_card])
    )
    seq = int(rows.get_column("seq")[0])
    ctx.label(BENIGN_PREFIX + "replaced_card", "transaction", seq, at, at)


def _sales(ctx: DayContext, ts: np.ndarray, terminals: np.ndarray, op: int) -> None:
    world, rng = ctx.world, ctx.rng
    city = world.m_city[world.t_merchant[terminals]]
    ctx.txn(
        {
            "ts": ts,
            "terminal": terminals,
            "operator": np.full(ts.size, op),
            "kind": "sale",
            "channel": rng.integers(0, 5, ts.size),
            "amount": rng.integers(1_000, 30_000, ts.size),
            "card": city * CARD_BLOCK + rng.integers(0, REPLACEMENT_OFFSET, ts.size),
            "original": np.full(ts.size, -1),
        }
    )


def shift_cover(ctx: DayContext, merchant: int) -> None:
    """At shift change a senior clerk covers two tills: logged in and selling on both for
    30-60 minutes."""
    world, rng = ctx.world, ctx.rng
    terminals = np.flatnonzero(world.t_merchant == merchant)
    home, other = (int(t) for t in rng.choice(terminals, size=2, replace=False))
    clerks = np.flatnonzero(
        (world.o_terminal == home) & ~world.o_is_admin & world.o_can_sale & world.o_can_refund
    )
    if clerks.size == 0:
        clerks = np.flatnonzero((world.o_terminal == home) & ~world.o_is_admin & world.o_can_sale)
    if clerks.size == 0:
        return
    op = int(rng.choice(clerks))
    opens, closes = _opening(ctx, merchant)
    split = int(ctx.shifts.end_us[home, 0]) if ctx.shifts.operator[home, 1] >= 0 else 0
    if not opens + 20 * US_PER_MINUTE < split < closes - 70 * US_PER_MINUTE:
        split = (opens + closes) // 2
    span = int(rng.integers(30, 61)) * US_PER_MINUTE
    w0 = split - 10 * US_PER_MINUTE
    log = ctx.activity.logins
    log.event(w0, home, str(world.o_no[op]), op, "success")
    log.event(w0 + 2 * US_PER_MINUTE, other, str(world.o_no[op]), op, "success")
    count = int(rng.integers(4, 11))
    ts = np.sort(w0 + 3 * US_PER_MINUTE + (rng.random(count) * span).astype(np.int64))
    where = np.where(np.arange(count) % 2 == 0, other, home)
    _sales(ctx, ts, where, op)
    ctx.label(BENIGN_PREFIX + "shift_cover", "operator", op, w0, int(ts[-1]))


def forgetful_operator(ctx: DayContext, merchant: int) -> None:
    """A clerk forgets the PIN: wrong PINs up to a lockout and a few more, the administrator
    unlocks, the clerk logs in and works as usual. No refunds follow."""
    world, rng = ctx.world, ctx.rng
    terminal = _terminal_of(ctx, merchant)
    clerks = np.flatnonzero((world.o_terminal == terminal) & ~world.o_is_admin)
    if clerks.size == 0:
        return
    op = int(rng.choice(clerks))
    opens, closes = _opening(ctx, merchant)
    start = opens + int(rng.integers(0, max((closes - opens) // US_PER_MINUTE - 60, 1))) * (
        US_PER_MINUTE
    )
    threshold = int(world.t_threshold[terminal])
    failures = (threshold if threshold > 0 else 5) + int(rng.integers(0, 4))
    end = guessing_run(
        ctx.activity.logins,
        start_us=start,
        terminal=terminal,
        operator=op,
        operator_no=str(world.o_no[op]),
        threshold=threshold,
        lockout_minutes=int(world.t_minutes[terminal]),
        failures=failures,
        gaps_us=(rng.integers(15, 60, 8) * US_PER_SECOND).tolist(),
        succeed=True,
        unlock_method="admin",
        unlock_delay_us=int(rng.integers(3, 15)) * US_PER_MINUTE,
        locked_tries=int(rng.integers(0, 2)),
    )
    ctx.label(BENIGN_PREFIX + "forgetful_operator", "operator", op, start, end)


def hotel_deposits(ctx: DayContext, merchant: int, last_day: int) -> None:
    """Guests checking in pay round deposits (500-2,000 CNY); at check-out 1-3 days later the
    front desk refunds them in one morning, most in full, some less a round charge."""
    world, rng = ctx.world, ctx.rng
    terminal = _terminal_of(ctx, merchant)
    op = ctx.refund_operator(terminal)
    count = int(rng.integers(3, 7))
    ts = np.sort(ctx.base + rng.integers(14 * 60, 22 * 60, count) * US_PER_MINUTE)
    deposit = rng.choice(np.array([50_000, 80_000, 100_000, 150_000, 200_000]), count)
    city = int(world.m_city[merchant])
    card = city * CARD_BLOCK + rng.integers(0, REPLACEMENT_OFFSET, count)
    sales = ctx.txn(
        {
            "ts": ts,
            "terminal": np.full(count, terminal),
            "operator": np.full(count, op),
            "kind": "sale",
            "channel": np.full(count, 1),
            "amount": deposit,
            "card": card,
            "original": np.full(count, -1),
        }
    )
    checkout = ctx.day + int(rng.integers(1, 4))
    refund_ts = np.sort(
        day_start_us(world, checkout) + rng.integers(7 * 60, 11 * 60, count) * US_PER_MINUTE
    )
    charge = np.where(rng.random(count) < 0.3, rng.integers(1, 4, count) * 10_000, 0)
    refunds = pl.DataFrame(
        {
            "ts": refund_ts,
            "terminal": sales.get_column("terminal"),
            "operator": sales.get_column("operator"),
            "kind": pl.Series(["refund"] * count, dtype=KIND_T),
            "channel": sales.get_column("channel"),
            "amount": deposit - charge,
            "card": card,
            "original": sales.get_column("seq"),
            "status": pl.Series(["approved"] * count, dtype=STATUS_T),
            "failure": pl.Series([None] * count, dtype=FAILURE_T),
        }
    )
    ctx.state.pending = pl.concat([ctx.state.pending, refunds.select(ctx.state.pending.columns)])
    if checkout < last_day:
        ctx.label(BENIGN_PREFIX + "hotel_deposits", "operator", op, int(ts[0]), int(refund_ts[-1]))


def new_clerk(ctx: DayContext, merchant: int, last_day: int) -> None:
    """A clerk's first week: plans the week; :func:`new_clerk_day` plays each of its days."""
    world, rng = ctx.world, ctx.rng
    clerks = np.flatnonzero((world.o_merchant == merchant) & ~world.o_is_admin & world.o_can_sale)
    if clerks.size == 0:
        return
    op = int(rng.choice(clerks))
    until = min(ctx.day + 7, last_day)
    ctx.state.new_clerks.append((op, ctx.day, until))
    ctx.label(
        BENIGN_PREFIX + "new_clerk",
        "operator",
        op,
        ctx.base,
        day_start_us(world, until) - 1,
    )


def new_clerk_day(ctx: DayContext) -> None:
    """Each new clerk's clumsy day, on the till and in the shift it works that day (none on a
    day off): a PIN not yet remembered (1-3 wrong PINs, under the lockout), then sales with
    one or two keyed wrong and refunded in full minutes later."""
    world, shifts = ctx.world, ctx.shifts
    for op, first, until in ctx.state.new_clerks:
        if not first <= ctx.day < until:
            continue
        rng = ctx.rng
        tills, slots = np.nonzero(shifts.operator == op)
        if tills.size == 0:
            continue  # a day off
        terminal, slot = int(tills[0]), int(slots[0])
        shift_start = int(shifts.start_us[terminal, slot])
        minutes = max((int(shifts.end_us[terminal, slot]) - shift_start) // US_PER_MINUTE - 100, 1)
        start = shift_start + int(rng.integers(0, minutes)) * US_PER_MINUTE
        merchant = int(world.t_merchant[terminal])
        threshold = int(world.t_threshold[terminal])
        wrong = int(rng.integers(1, 4))
        if threshold > 0:
            wrong = min(wrong, threshold - 1)
        ts = start
        for _ in range(wrong):
            ctx.activity.logins.event(ts, terminal, str(world.o_no[op]), op, "wrong_pin")
            ts += int(rng.integers(10, 40)) * US_PER_SECOND
        ctx.activity.logins.event(ts, terminal, str(world.o_no[op]), op, "success")
        count = int(rng.integers(3, 7))
        times = np.sort(ts + rng.integers(2, 90, count) * US_PER_MINUTE)
        city = int(world.m_city[merchant])
        sales = ctx.txn(
            {
                "ts": times,
                "terminal": np.full(count, terminal),
                "operator": np.full(count, op),
                "kind": "sale",
                "channel": rng.integers(0, 5, count),
                "amount": rng.integers(1_000, 30_000, count),
                "card": city * CARD_BLOCK + rng.integers(0, REPLACEMENT_OFFSET, count),
                "original": np.full(count, -1),
            }
        )
        wrong_sales = rng.choice(count, size=int(rng.integers(1, 3)), replace=False)
        picked = pl.DataFrame({c: sales.get_column(c) for c in sales._data if c != "kind"})[
            np.sort(wrong_sales).tolist()
        ]
        refunder = op if world.o_can_refund[op] else ctx.refund_operator(terminal)
        refund_ts = picked.get_column("ts").to_numpy() + rng.integers(2, 10, picked.height) * (
            US_PER_MINUTE
        )
        _refund_rows(ctx, picked, refund_ts, refunder)


def seasonal_peak(ctx: DayContext, merchant: int) -> None:
    """A merchant's seasonal peak: twice its usual sales, and at the busy returns desk 6-10
    refunds within two hours."""
    world, rng = ctx.world, ctx.rng
    opens, closes = _opening(ctx, merchant)
    terminals = np.flatnonzero(world.t_merchant == merchant)
    usual = ctx.sales.filter(pl.col("terminal").is_in(terminals.tolist()))
    extra = max(usual.height, 10)
    ts = np.sort(opens + (rng.random(extra) * (closes - opens - US_PER_MINUTE)).astype(np.int64))
    where = rng.choice(terminals, extra)
    for terminal in np.unique(where):
        chosen = where == terminal
        seller = int(world.t_sale_ops[terminal, int(rng.integers(0, world.t_sale_n[terminal]))])
        _sales(ctx, ts[chosen], np.full(int(chosen.sum()), terminal), seller)
    at = opens + (closes - opens) // 2
    _refund_run(ctx, "seasonal_peak", merchant, 6, 10, at, 120 * US_PER_MINUTE)


_DAILY: Final[dict[str, Callable[[DayContext, int], None]]] = {
    "return_wave": return_wave,
    "replaced_card": replaced_card,
    "closing_refunds": closing_refunds,
    "shift_cover": shift_cover,
    "forgetful_operator": forgetful_operator,
    "seasonal_peak": seasonal_peak,
}


def inject_day(ctx: DayContext, rates: dict[str, float], last_day: int) -> None:
    """Today's look-alikes of every kind, in a fixed order; ``rates`` per 1,000 eligible
    merchant-days; ``last_day`` is the day after the world's last."""
    for kind in LOOKALIKE_KINDS:
        if kind not in CATEGORIES:  # another module's kind (sales_fraud.py)
            continue
        rate = rates.get(kind, 0.0)
        if rate <= 0:
            continue
        eligible = _eligible(ctx, kind)
        expected = rate / 1000 * eligible.size
        incidents = min(allocate(ctx.state, BENIGN_PREFIX + kind, expected, 0.5), eligible.size)
        if not incidents:
            continue
        for merchant in ctx.rng.choice(eligible, size=incidents, replace=False):
            if kind == "hotel_deposits":
                hotel_deposits(ctx, int(merchant), last_day)
            elif kind == "new_clerk":
                new_clerk(ctx, int(merchant), last_day)
            else:
                _DAILY[kind](ctx, int(merchant))
    new_clerk_day(ctx)
    ctx.flush()
