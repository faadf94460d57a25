"""Merchant typologies: cash-out through sales, category misuse, a dormant terminal's surge.

Each is planned once per world (:func:`plan_merchants`) on its own random stream, with its
innocent look-alike, and played day by day after the other attacks and look-alikes
(:func:`inject_day`), so no other scenario's draws move. Category misuse and the mixed store
change how a merchant's natural sales look (``SimState.behaves_as``, read by
``day.natural_transactions`` without a draw of its own); a dormant or reopening terminal's
natural transactions are taken out while it is silent (:func:`silence`). See
docs/scenarios.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import polars as pl

from posaudit.simulate import catalog as cat
from posaudit.simulate.day import SimState
from posaudit.simulate.fraud import DayContext, _limit, _towards
from posaudit.simulate.scenario import BENIGN_PREFIX
from posaudit.simulate.world import (
    CARD_BLOCK,
    US_PER_MINUTE,
    World,
    _profile,
    day_start_us,
)

US_PER_SECOND: Final = 1_000_000
CITY_CARDS: Final = 200_000  # a city's everyday cards: the first numbers of its block
# Categories a misusing merchant's sales really belong to: standard-rate trades that pay the
# full card rate (docs/domain.md's fee table).
MISUSED_AS: Final = ("restaurant", "cafe", "apparel", "electronics", "hotel")
# The food counter of a mixed store.
COUNTER_AS: Final = ("restaurant", "cafe")
MIXED_STORES: Final = ("supermarket", "convenience_store", "pharmacy")
BULK_SHOPS: Final = ("apparel", "electronics", "supermarket")
# Cash-out amounts sit just under these round sums (yuan).
ROUND_YUAN: Final = np.array([2_000, 3_000, 5_000, 8_000, 10_000, 20_000, 30_000, 50_000])
SILENCE_DAYS: Final = (30, 36)  # a dormant or renovated terminal's silence, days
HISTORY_DAYS: Final = (2, 6)  # active days before the silence
SURGE_DAYS: Final = (5, 9)
SURGE_FACTOR: Final = (5.0, 10.0)  # the surge, times the terminal's own sales
# A surge reaches the top of its category: at least this many times the category's mean.
SURGE_FLOOR: Final = 3.0
# Invented amounts are typed by hand just under these round sums (yuan): the two smallest at or
# above the category's median sale.
INVENTED_ROUND_YUAN: Final = np.array([20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000])
INVENTED_UNDER: Final = 0.06  # at most this share of the round sum below it, in whole yuan
INVENTED_SHARE: Final = (0.25, 0.5)  # invented sales, as a share of the merchant's own trade
# At full evasion the share falls to this fraction of it: a few invented sales among many.
INVENTED_EVADED: Final = 0.1
MERCHANT_SCENARIOS: Final = (
    "cash_out_sales",
    "category_misuse",
    "dormant_surge",
    "invented_amounts",
)
MERCHANT_LOOKALIKES: Final = ("bulk_buyer", "mixed_store", "reopening")


@dataclass
class CashOut:
    merchant: int
    days: frozenset[int]
    cards: np.ndarray
    first_us: int = -1
    last_us: int = -1


@dataclass
class Surge:
    terminal: int
    silent_from: int  # first silent day
    wake: int  # first day back
    until: int  # day after the surge (== wake for a reopening: no surge)
    factor: float
    benign: bool


@dataclass
class Invented:
    merchant: int
    share: float  # invented sales a day, as a share of the merchant's expected trade
    rounds_fen: np.ndarray  # the round sums the amounts sit just under


@dataclass
class MerchantPlan:
    cash_outs: list[CashOut] = field(default_factory=list)
    invented: list[Invented] = field(default_factory=list)
    bulk_buys: dict[int, list[int]] = field(default_factory=dict)  # day -> merchants
    surges: list[Surge] = field(default_factory=list)
    labels: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    evasion: dict[str, float] = field(default_factory=dict)


def _count(rate: float, exposure: int, rng: np.random.Generator) -> int:
    """Whole incidents for ``rate`` per 1,000 of ``exposure``, rounded at random."""
    expected = rate / 1000 * exposure
    return int(np.floor(expected + rng.random()))


def _codes(names: tuple[str, ...]) -> list[int]:
    return [cat.CATEGORY_NAMES.index(name) for name in names]


def _behave(world: World, state: SimState, merchant: int, category: int, share: float) -> None:
    """From now on ``share`` of the merchant's sales look like ``category``'s."""
    if state.behaves_as is None:
        state.behaves_as = world.m_category.copy()
        state.behaves_share = np.zeros(world.m_category.size)
        state.behaves_profile = world.m_profile.copy()
        state.profile_cdf = world.profile_cdf
    assert state.behaves_share is not None and state.behaves_profile is not None
    assert state.profile_cdf is not None
    template = cat.CATEGORIES[category]
    opens, closes = template.hours[0]
    state.profile_cdf = np.vstack([state.profile_cdf, _profile(template, opens, closes)])
    state.behaves_as[merchant] = category
    state.behaves_share[merchant] = share
    state.behaves_profile[merchant] = state.profile_cdf.shape[0] - 1


def plan_merchants(
    world: World,
    rng: np.random.Generator,
    state: SimState,
    *,
    rates: dict[str, float],
    evasion: dict[str, float],
    benign: dict[str, float],
    first_day: int,
    days: int,
) -> MerchantPlan:
    """The world's merchant typologies and their look-alikes, drawn once; kept in ``state``."""
    plan = MerchantPlan(evasion=evasion)
    start_us = day_start_us(world, first_day)
    end_us = day_start_us(world, first_day + days) - 1
    n_merchants = world.m_category.size
    taken: set[int] = set()

    def pick(pool: np.ndarray, count: int) -> list[int]:
        free = np.array([m for m in pool.tolist() if m not in taken], dtype=np.int64)
        chosen = rng.choice(free, size=min(count, free.size), replace=False).tolist()
        taken.update(chosen)
        return [int(m) for m in chosen]

    # cash-out: merchants that keep hours (round the clock, the hours tell nothing)
    count = _count(rates.get("cash_out_sales", 0.0), n_merchants, rng)
    for merchant in pick(np.flatnonzero(~world.m_is_24h), count):
        length = int(rng.integers(3, 9))
        first = first_day + int(rng.integers(0, max(days - length, 1)))
        active = [d for d in range(first, min(first + length, first_day + days))]
        keep = [d for i, d in enumerate(active) if i == 0 or rng.random() < 0.7]
        cards = world.m_city[merchant] * CARD_BLOCK + rng.integers(
            0, CITY_CARDS, int(rng.integers(2, 5))
        )
        plan.cash_outs.append(CashOut(merchant, frozenset(keep), cards))

    # category misuse: discount- or charity-class merchants selling like another trade
    low_fee = np.flatnonzero(world.m_fee_class > 0)
    count = _count(rates.get("category_misuse", 0.0), n_merchants, rng)
    target = 1 - 0.01 * (_limit("category_misuse", "min_shift_percent") - 1)
    share = 1 - evasion.get("category_misuse", 0.0) * target
    for merchant in pick(low_fee, count):
        others = [c for c in _codes(MISUSED_AS) if c != world.m_category[merchant]]
        _behave(world, state, merchant, int(rng.choice(others)), share)
        plan.labels.append(("category_misuse", "merchant", merchant, start_us, end_us))

    # dormant terminals: silent 30+ days, then far busier than before
    # the longest silence and surge after the fewest days of trade: 45 days
    room = HISTORY_DAYS[0] + SILENCE_DAYS[1] - 1 + SURGE_DAYS[1] - 1
    count = _count(rates.get("dormant_surge", 0.0), world.n_terminals, rng)
    level = evasion.get("dormant_surge", 0.0)
    if days >= room:
        for terminal in _pick_terminals(world, rng, count, taken):
            silence = _towards(
                int(rng.integers(*SILENCE_DAYS)),
                _limit("dormant_surge", "min_silent_days") - 1,
                level,
            )
            factor = float(rng.uniform(*SURGE_FACTOR))
            factor = factor + level * (_limit("dormant_surge", "min_jump") - 1 - factor)
            plan.surges.append(_surge(world, rng, terminal, silence, factor, first_day, days))

    # look-alikes
    count = _count(benign.get("bulk_buyer", 0.0), n_merchants, rng)
    shops = np.flatnonzero(np.isin(world.m_category, _codes(BULK_SHOPS)) & ~world.m_is_24h)
    for merchant in pick(shops, count):
        day = first_day + int(rng.integers(0, days))
        plan.bulk_buys.setdefault(day, []).append(merchant)
    count = _count(benign.get("mixed_store", 0.0), n_merchants, rng)
    stores = np.flatnonzero(
        np.isin(world.m_category, _codes(MIXED_STORES)) & (world.m_fee_class > 0)
    )
    for merchant in pick(stores, count):
        _behave(world, state, merchant, int(rng.choice(_codes(COUNTER_AS))), rng.uniform(0.15, 0.3))
        plan.labels.append((BENIGN_PREFIX + "mixed_store", "merchant", merchant, start_us, end_us))
    count = _count(benign.get("reopening", 0.0), world.n_terminals, rng)
    if days >= room:
        for terminal in _pick_terminals(world, rng, count, taken):
            silence = int(rng.integers(*SILENCE_DAYS))
            plan.surges.append(_surge(world, rng, terminal, silence, 1.0, first_day, days))
    for surge in plan.surges:
        kind = BENIGN_PREFIX + "reopening" if surge.benign else "dormant_surge"
        plan.labels.append(
            (
                kind,
                "terminal",
                surge.terminal,
                day_start_us(world, surge.wake),
                day_start_us(world, max(surge.until, surge.wake + 7)) - 1,
            )
        )
    # invented amounts: a merchant adding sales typed by hand, just under round sums (drawn
    # last, so no draw above moves)
    count = _count(rates.get("invented_amounts", 0.0), n_merchants, rng)
    level = evasion.get("invented_amounts", 0.0)
    for merchant in pick(np.arange(n_merchants), count):
        template = cat.CATEGORIES[int(world.m_category[merchant])]
        above = INVENTED_ROUND_YUAN[template.median_yuan <= INVENTED_ROUND_YUAN]
        rounds = (above if above.size else INVENTED_ROUND_YUAN[-1:])[:2] * 100
        share = float(rng.uniform(*INVENTED_SHARE)) * (1 - level * (1 - INVENTED_EVADED))
        plan.invented.append(Invented(merchant, share, rounds.astype(np.int64)))
        plan.labels.append(("invented_amounts", "merchant", merchant, start_us, end_us))
    state.merchant_plan = plan
    return plan


def _pick_terminals(
    world: World, rng: np.random.Generator, count: int, taken: set[int]
) -> list[int]:
    """Terminals of merchants not yet in a plan, one per merchant."""
    free = np.array([m for m in range(world.m_category.size) if m not in taken], dtype=np.int64)
    merchants = rng.choice(free, size=min(count, free.size), replace=False).tolist()
    taken.update(int(m) for m in merchants)
    return [int(rng.choice(np.flatnonzero(world.t_merchant == m))) for m in merchants]


def _surge(
    world: World,
    rng: np.random.Generator,
    terminal: int,
    silence: int,
    factor: float,
    first_day: int,
    days: int,
) -> Surge:
    surge_days = int(rng.integers(*SURGE_DAYS))
    latest = first_day + days - silence - surge_days
    silent_from = int(rng.integers(first_day + HISTORY_DAYS[0], latest + 1))
    wake = silent_from + silence
    until = wake + surge_days if factor > 1 else wake
    return Surge(terminal, silent_from, wake, until, factor, benign=factor <= 1)


def silence(
    state: SimState, day: int, txns: pl.DataFrame, sales: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Today's natural transactions without those of terminals silent today."""
    plan = state.merchant_plan
    if plan is None or not plan.surges:
        return txns, sales
    quiet = [s.terminal for s in plan.surges if s.silent_from <= day < s.wake]
    if not quiet:
        return txns, sales
    gone = txns.filter(pl.col("terminal").is_in(quiet))
    state.pending = state.pending.filter(
        ~pl.col("terminal").is_in(quiet)
        | ~pl.col("original").is_in(gone.get_column("seq").implode())
    )
    return (
        txns.filter(~pl.col("terminal").is_in(quiet)),
        sales.filter(~pl.col("terminal").is_in(quiet)),
    )


def quiet(
    world: World,
    state: SimState,
    day: int,
    txns: pl.DataFrame,
    logins: pl.DataFrame,
    lockouts: pl.DataFrame,
    labels: list[tuple[str, str, int, int, int]],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The day's rows without any at a terminal silent today (an unplugged terminal records
    nothing, whatever else the day planned there), and without the labels of what was
    planned there."""
    plan = state.merchant_plan
    quiet_terminals = (
        [s.terminal for s in plan.surges if s.silent_from <= day < s.wake] if plan else []
    )
    if not quiet_terminals:
        return txns, logins, lockouts
    at_quiet = pl.col("terminal").is_in(quiet_terminals)
    gone = set(txns.filter(at_quiet).get_column("seq").to_list())
    quiet_set = set(quiet_terminals)
    labels[:] = [
        label
        for label in labels
        if not (
            (label[1] == "terminal" and label[2] in quiet_set)
            or (label[1] == "operator" and int(world.o_terminal[label[2]]) in quiet_set)
            or (label[1] == "transaction" and label[2] in gone)
        )
    ]
    return txns.filter(~at_quiet), logins.filter(~at_quiet), lockouts.filter(~at_quiet)


def _shift_operator(ctx: DayContext, terminal: int | np.ndarray, minute: np.ndarray) -> np.ndarray:
    second = minute >= ctx.shifts.split_minute[terminal]
    operator = ctx.shifts.operator[terminal, second.astype(np.int64)]
    return np.where(operator < 0, ctx.shifts.operator[terminal, 0], operator)


def _cash_out_day(ctx: DayContext, cash_out: CashOut) -> None:
    """Tonight's cash-out: credit sales just under round sums by a few cards, after hours."""
    world, rng = ctx.world, ctx.rng
    merchant = cash_out.merchant
    level = ctx.level("cash_out_sales")
    count = _towards(int(rng.integers(5, 11)), _limit("cash_out_sales", "min_sales") - 1, level)
    if count <= 0:
        return
    terminal = int(rng.choice(np.flatnonzero(world.t_merchant == merchant)))
    # a burst in the small hours, a few minutes apart
    start = int(rng.integers(0, 240))
    minute = np.minimum(start + np.cumsum(rng.integers(1, 15, count)), 359)
    ts = ctx.base + minute * US_PER_MINUTE + rng.integers(0, 60, count) * US_PER_SECOND
    round_fen = rng.choice(ROUND_YUAN, count) * 100
    under = np.maximum(np.round(round_fen * rng.uniform(0.002, 0.015, count) / 1000), 1) * 1000
    ctx.txn(
        {
            "ts": np.sort(ts),
            "terminal": np.full(count, terminal),
            "operator": _shift_operator(ctx, terminal, minute),
            "kind": "sale",
            "channel": np.full(count, 1),  # credit card
            "amount": (round_fen - under).astype(np.int64),
            "card": rng.choice(cash_out.cards, count),
            "original": np.full(count, -1),
        }
    )
    if cash_out.first_us < 0:
        cash_out.first_us = int(ts.min())
    cash_out.last_us = int(ts.max())


def _bulk_buy(ctx: DayContext, merchant: int) -> None:
    """A company buys gift cards or stock: a few near-round credit sales, one card, by day."""
    world, rng = ctx.world, ctx.rng
    count = int(rng.integers(3, 7))
    terminal = int(rng.choice(np.flatnonzero(world.t_merchant == merchant)))
    opens, closes = int(world.m_open[merchant]), int(world.m_close[merchant])
    start = opens + int(rng.integers(30, max(closes - opens - 90, 31)))
    # each item its own sale, rung up a few minutes apart (never a record's double)
    minute = np.minimum(start + np.cumsum(rng.integers(2, 6, count)), closes - 1)
    ts = ctx.base + minute * US_PER_MINUTE
    round_fen = rng.choice(ROUND_YUAN[:5], count) * 100
    card = world.m_city[merchant] * CARD_BLOCK + int(rng.integers(0, CITY_CARDS))
    ctx.txn(
        {
            "ts": ts,
            "terminal": np.full(count, terminal),
            "operator": _shift_operator(ctx, terminal, minute),
            "kind": "sale",
            "channel": np.full(count, 1),
            "amount": (round_fen - 1000 * rng.integers(1, 5, count)).astype(np.int64),
            "card": np.full(count, card),
            "original": np.full(count, -1),
        }
    )
    ctx.label(BENIGN_PREFIX + "bulk_buyer", "merchant", merchant, int(ts[0]), int(ts[-1]))


def _surge_day(ctx: DayContext, surge: Surge) -> None:
    """Extra sales of a woken terminal: its own trade, many times over."""
    world, rng = ctx.world, ctx.rng
    terminal = surge.terminal
    merchant = int(world.t_merchant[terminal])
    category = int(world.m_category[merchant])
    template = cat.CATEGORIES[category]
    own = template.sales_per_day * world.m_size[merchant]
    wanted = max(surge.factor * own, SURGE_FLOOR * template.sales_per_day)
    count = int(rng.poisson(max(wanted - own, 0.0)))
    if count == 0:
        return
    cdf = world.profile_cdf[world.m_profile[merchant]]
    minute = np.clip(np.searchsorted(cdf, rng.random(count), side="right"), 0, 1439)
    ts = ctx.base + minute * US_PER_MINUTE + rng.integers(0, 60, count) * US_PER_SECOND
    mix = np.cumsum(template.channel_mix)
    channel = np.minimum(np.searchsorted(mix, rng.random(count) * mix[-1], side="right"), 4)
    amount = np.exp(
        np.log(template.median_yuan * 100) + template.sigma * rng.standard_normal(count)
    )
    ctx.txn(
        {
            "ts": ts,
            "terminal": np.full(count, terminal),
            "operator": _shift_operator(ctx, terminal, minute),
            "kind": "sale",
            "channel": channel,
            "amount": np.maximum(np.round(amount), 100).astype(np.int64),
            "card": world.m_city[merchant] * CARD_BLOCK + rng.integers(0, CITY_CARDS, count),
            "original": np.full(count, -1),
        }
    )


def _invented_day(ctx: DayContext, invented: Invented) -> None:
    """Today's invented sales: amounts typed by hand, a few yuan under a round sum, at the
    merchant's own hours and on its customers' kinds of card."""
    world, rng = ctx.world, ctx.rng
    merchant = invented.merchant
    template = cat.CATEGORIES[int(world.m_category[merchant])]
    count = int(rng.poisson(invented.share * template.sales_per_day * world.m_size[merchant]))
    if count == 0:
        return
    terminal = rng.choice(np.flatnonzero(world.t_merchant == merchant), count)
    cdf = world.profile_cdf[world.m_profile[merchant]]
    minute = np.clip(np.searchsorted(cdf, rng.random(count), side="right"), 0, 1439)
    ts = ctx.base + minute * US_PER_MINUTE + rng.integers(0, 60, count) * US_PER_SECOND
    mix = np.cumsum(template.channel_mix)
    channel = np.minimum(np.searchsorted(mix, rng.random(count) * mix[-1], side="right"), 4)
    round_fen = rng.choice(invented.rounds_fen, count)
    most_under = np.maximum(np.floor(round_fen / 100 * INVENTED_UNDER), 1).astype(np.int64)
    under_fen = (1 + rng.integers(0, most_under)) * 100
    order = np.argsort(ts, kind="stable")
    ctx.txn(
        {
            "ts": ts[order],
            "terminal": terminal[order],
            "operator": _shift_operator(ctx, terminal, minute)[order],
            "kind": "sale",
            "channel": channel[order],
            "amount": (round_fen - under_fen)[order].astype(np.int64),
            "card": (world.m_city[merchant] * CARD_BLOCK + rng.integers(0, CITY_CARDS, count))[
                order
            ],
            "original": np.full(count, -1),
        }
    )


def inject_day(ctx: DayContext) -> None:
    """Today's cash-outs, bulk buys, surges and invented sales, as the world's plan has them."""
    plan = ctx.state.merchant_plan
    if plan is None:
        return
    for cash_out in plan.cash_outs:
        if ctx.day in cash_out.days:
            _cash_out_day(ctx, cash_out)
    for merchant in plan.bulk_buys.get(ctx.day, []):
        _bulk_buy(ctx, merchant)
    for surge in plan.surges:
        if surge.wake <= ctx.day < surge.until:
            _surge_day(ctx, surge)
    for invented in plan.invented:  # last: no draw above moves
        _invented_day(ctx, invented)
    ctx.flush()


def plan_labels(plan: MerchantPlan) -> list[tuple[str, str, int, int, int]]:
    """The ground truth of the world's plan, once every day has been played."""
    cash = [
        ("cash_out_sales", "merchant", c.merchant, c.first_us, c.last_us)
        for c in plan.cash_outs
        if c.first_us >= 0
    ]
    return plan.labels + cash
