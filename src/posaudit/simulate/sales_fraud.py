"""Sales-pattern abuse and its innocent look-alikes (docs/scenarios.md, family ``sales``).

- ``split_sales``: one purchase cut into several sales on the same card, swiped back to back
  at one till, each under a limit (labelled on the terminal);
- ``card_testing``: a burst of tiny sales from many cards, mostly declined, someone checking
  which stolen card numbers still work (labelled on the terminal);
- ``void_abuse``: a clerk voids several of the day's sales after the customers have gone,
  at the end of the batch, and keeps the cash (labelled on the operator).

Their look-alikes (``benign:<kind>``): ``second_purchase`` (a customer back at the till a
quarter of an hour later), ``issuer_outage`` (an issuer that cannot be reached for a while:
normal purchases declined and paid again), ``closing_corrections`` (sales rung up wrong,
voided at closing and rung up again on the same card).

Everything here runs after the other injectors and look-alikes, on streams of its own
(``sales``, ``sales-lookalike``), so the rest of a world and its draws stay what they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import polars as pl

from posaudit.simulate.fraud import DayContext, _limit, _towards, allocate
from posaudit.simulate.rng import stream
from posaudit.simulate.scenario import BENIGN_PREFIX
from posaudit.simulate.world import CARD_BLOCK, US_PER_DAY, US_PER_MINUTE

US_PER_SECOND: Final = 1_000_000
# The numbers a city's cards are drawn from (day.py natural_transactions): attack cards come
# from the same space, so no card number tells an attack.
CITY_CARDS: Final = 200_000
SALES_SCENARIOS: Final = ("split_sales", "card_testing", "void_abuse")
SALES_LOOKALIKES: Final = ("second_purchase", "issuer_outage", "closing_corrections")
# The limits a split purchase stays under (a card's or the till's limit on one sale), in fen.
SPLIT_LIMITS_FEN: Final = (100_000, 200_000, 500_000, 1_000_000)
TESTING_REASONS: Final = np.array(["insufficient_funds", "card_expired"])


def _card(ctx: DayContext, merchant: np.ndarray | int, size: int) -> np.ndarray:
    """Card numbers of the merchant's city, like any customer's."""
    city = ctx.world.m_city[merchant]
    return city * CARD_BLOCK + ctx.rng.integers(0, CITY_CARDS, size)


def _busy(ctx: DayContext, min_sales: int) -> np.ndarray:
    return ctx.busy_terminals(min_sales)


def split_sales(ctx: DayContext, count: int) -> None:
    world, rng = ctx.world, ctx.rng
    busy = _busy(ctx, 3)
    if busy.size == 0:
        return
    level = ctx.level("split_sales")
    # an evading splitter leaves the till between swipes, up to just past the policy's gap
    escape_s = _limit("split_sales", "max_gap_minutes") * 60 + 30
    for terminal in rng.choice(busy, size=min(count, busy.size), replace=False):
        sales = ctx.sales_at(int(terminal))
        anchor = sales.row(int(rng.integers(0, sales.height)), named=True)
        parts = int(rng.integers(3, 7))
        limit = int(rng.choice(SPLIT_LIMITS_FEN))
        amount = (limit * rng.uniform(0.85, 0.995, parts)).astype(np.int64)
        gaps_s = rng.integers(20, 150, parts - 1)
        if level > 0:
            gaps_s = np.array([_towards(int(g), escape_s, level) for g in gaps_s])
        ts = int(anchor["ts"]) + np.concatenate([[0], np.cumsum(gaps_s)]) * US_PER_SECOND
        ts = np.minimum(ts, ctx.base + US_PER_DAY - 1)
        merchant = int(world.t_merchant[terminal])
        channel = int(rng.choice([0, 1, 1, 2, 3]))
        ctx.txn(
            {
                "ts": ts,
                "terminal": np.full(parts, terminal),
                "operator": np.full(parts, int(anchor["operator"])),
                "kind": "sale",
                "channel": np.full(parts, channel),
                "amount": amount,
                "card": np.full(parts, int(_card(ctx, merchant, 1)[0])),
                "original": np.full(parts, -1),
            }
        )
        ctx.label("split_sales", "terminal", int(terminal), int(ts[0]), int(ts[-1]))


def card_testing(ctx: DayContext, count: int) -> None:
    world, rng = ctx.world, ctx.rng
    level = ctx.level("card_testing")
    below = _limit("card_testing", "min_declines") - 1
    cities = np.unique(world.m_city)
    for terminal in rng.choice(
        world.n_terminals, size=min(count, world.n_terminals), replace=False
    ):
        attempts = int(rng.integers(20, 61))
        declined = round(attempts * rng.uniform(0.7, 0.95))
        if level > 0:  # fewer declined cards than the policy counts
            kept = max(1, _towards(declined, below, level))
            attempts = max(kept, round(attempts * kept / declined))
            declined = kept
        span = int(rng.integers(5, 31)) * US_PER_MINUTE
        start = ctx.base + int(rng.integers(0, US_PER_DAY - span - US_PER_MINUTE))
        ts = np.sort(start + (rng.random(attempts) * span).astype(np.int64))
        operator = int(ctx.shifts.operator[terminal, 0])
        if operator < 0:
            operator = int(world.t_admin[terminal])
        city = rng.choice(cities, attempts)
        failure = np.full(attempts, "", dtype=object)
        failure[rng.permutation(attempts)[:declined]] = TESTING_REASONS[
            rng.integers(0, TESTING_REASONS.size, declined)
        ]
        ctx.txn(
            {
                "ts": ts,
                "terminal": np.full(attempts, terminal),
                "operator": np.full(attempts, operator),
                "kind": "sale",
                "channel": rng.integers(0, 2, attempts),
                "amount": rng.integers(1, 500, attempts),
                "card": city * CARD_BLOCK + rng.integers(0, CITY_CARDS, attempts),
                "original": np.full(attempts, -1),
                "failure": failure,
            }
        )
        ctx.label("card_testing", "terminal", int(terminal), int(ts[0]), int(ts[-1]))


def _clerk_sales(ctx: DayContext, min_sales: int) -> tuple[np.ndarray, pl.DataFrame]:
    """Clerks (not administrators) with at least ``min_sales`` of today's sales left, and
    those sales."""
    sales = ctx.unused(ctx.sales)
    ops = sales.get_column("operator").to_numpy()
    counts = np.bincount(ops, minlength=ctx.world.n_operators)
    able = np.flatnonzero((counts >= min_sales) & ~ctx.world.o_is_admin)
    return able, sales


def _voids(ctx: DayContext, picked: pl.DataFrame, ts: np.ndarray, op: int) -> None:
    ctx.use(picked)
    ctx.txn(
        {
            "ts": ts,
            "terminal": picked.get_column("terminal").to_numpy(),
            "operator": np.full(picked.height, op),
            "kind": "void",
            "channel": picked.get_column("channel").to_numpy(),
            "amount": picked.get_column("amount").to_numpy(),
            "card": picked.get_column("card").to_numpy(),
            "original": picked.get_column("seq").to_numpy(),
        }
    )


def _end_of_batch(ctx: DayContext, mine: pl.DataFrame, voids: int) -> np.ndarray | None:
    """Times after the clerk's last sale of the day, minutes apart, inside the day."""
    rng = ctx.rng
    last = int(mine.get_column("ts").max())  # type: ignore[arg-type]
    start = last + int(rng.integers(5, 40)) * US_PER_MINUTE
    ts = start + np.cumsum(rng.integers(30, 240, voids)) * US_PER_SECOND
    if ts[-1] >= ctx.base + US_PER_DAY:
        return None
    return ts


def void_abuse(ctx: DayContext, count: int) -> None:
    rng = ctx.rng
    able, sales = _clerk_sales(ctx, 8)
    if able.size == 0:
        return
    level = ctx.level("void_abuse")
    below = _limit("void_abuse", "min_late_voids") - 1
    for op in rng.choice(able, size=min(count, able.size), replace=False):
        voids = int(rng.integers(3, 7))
        if level > 0:  # fewer voids after the customers left than the policy counts
            voids = max(1, _towards(voids, below, level))
        mine = ctx.unused(sales.filter(pl.col("operator") == int(op)))
        ts = _end_of_batch(ctx, mine, voids)
        if ts is None:
            continue
        # sales the customers walked away from an hour or more before
        earlier = mine.filter(pl.col("ts") < int(ts[0]) - 60 * US_PER_MINUTE)
        if earlier.height < voids:
            continue
        picked = earlier.sample(voids, seed=int(rng.integers(0, 2**31)))
        _voids(ctx, picked, ts, int(op))
        ctx.label("void_abuse", "operator", int(op), int(ts[0]), int(ts[-1]))


INJECTORS: Final[dict[str, Callable[[DayContext, int], None]]] = {
    "split_sales": split_sales,
    "card_testing": card_testing,
    "void_abuse": void_abuse,
}
# The exposure each daily rate is counted against (docs/scenarios.md).
EXPOSURE: Final = {
    "split_sales": "terminal_days",
    "card_testing": "terminal_days",
    "void_abuse": "operator_days",
}


# --- look-alikes --------------------------------------------------------------------------


def second_purchase(ctx: DayContext, merchant: int) -> None:
    """A customer back at the till 10-40 minutes later, once or twice, buying something else."""
    rng = ctx.rng
    terminals = np.flatnonzero(ctx.world.t_merchant == merchant)
    for terminal in rng.permutation(terminals):
        sales = ctx.sales_at(int(terminal))
        if sales.height < 2:
            continue
        first = sales.row(int(rng.integers(0, sales.height)), named=True)
        again = int(rng.integers(1, 3))
        ts = int(first["ts"]) + np.cumsum(rng.integers(10, 41, again)) * US_PER_MINUTE
        if ts[-1] >= ctx.base + US_PER_DAY:
            return
        amount = sales.get_column("amount").sample(
            again, with_replacement=True, seed=int(rng.integers(0, 2**31))
        )
        ctx.txn(
            {
                "ts": ts,
                "terminal": np.full(again, terminal),
                "operator": np.full(again, int(first["operator"])),
                "kind": "sale",
                "channel": np.full(again, int(first["channel"])),
                "amount": amount.to_numpy(),
                "card": np.full(again, int(first["card"])),
                "original": np.full(again, -1),
            }
        )
        ctx.label(BENIGN_PREFIX + "second_purchase", "terminal", int(terminal), first["ts"], ts[-1])
        return


def issuer_outage(ctx: DayContext, merchant: int) -> None:
    """An issuer out of reach for a while: customers' cards declined (issuer unavailable) at
    their usual amounts, each paid again minutes later with the same card."""
    rng = ctx.rng
    terminals = np.flatnonzero(ctx.world.t_merchant == merchant)
    for terminal in rng.permutation(terminals):
        sales = ctx.sales_at(int(terminal))
        if sales.height < 10:
            continue
        customers = int(rng.integers(8, 21))
        span = int(rng.integers(20, 61)) * US_PER_MINUTE
        start = int(sales.get_column("ts")[int(rng.integers(0, sales.height))])
        ts = np.sort(start + (rng.random(customers) * span).astype(np.int64))
        paid = ts + rng.integers(60, 300, customers) * US_PER_SECOND
        if paid.max() >= ctx.base + US_PER_DAY:
            return
        amount = sales.get_column("amount").sample(
            customers, with_replacement=True, seed=int(rng.integers(0, 2**31))
        )
        card = _card(ctx, merchant, customers)
        channel = rng.integers(0, 2, customers)
        operator = sales.get_column("operator").gather(
            np.searchsorted(sales.get_column("ts").to_numpy(), ts).clip(0, sales.height - 1)
        )
        for when, failure in ((ts, "issuer_unavailable"), (paid, "")):
            ctx.txn(
                {
                    "ts": when,
                    "terminal": np.full(customers, terminal),
                    "operator": operator.to_numpy(),
                    "kind": "sale",
                    "channel": channel,
                    "amount": amount.to_numpy(),
                    "card": card,
                    "original": np.full(customers, -1),
                    "failure": failure,
                }
            )
        ctx.label(BENIGN_PREFIX + "issuer_outage", "terminal", int(terminal), ts[0], paid.max())
        return


def closing_corrections(ctx: DayContext, merchant: int) -> None:
    """At closing, a clerk voids sales rung up wrong earlier and rings each up again, right
    away, on the same card at the corrected amount."""
    rng = ctx.rng
    able, sales = _clerk_sales(ctx, 6)
    able = able[ctx.world.o_merchant[able] == merchant]
    if able.size == 0:
        return
    op = int(rng.choice(able))
    mine = ctx.unused(sales.filter(pl.col("operator") == op))
    corrections = int(rng.integers(2, 5))
    ts = _end_of_batch(ctx, mine, corrections)
    if ts is None:
        return
    earlier = mine.filter(pl.col("ts") < int(ts[0]) - 60 * US_PER_MINUTE)
    if earlier.height < corrections:
        return
    picked = earlier.sample(corrections, seed=int(rng.integers(0, 2**31)))
    _voids(ctx, picked, ts, op)
    again = ts + rng.integers(20, 120, corrections) * US_PER_SECOND
    amount = picked.get_column("amount").to_numpy() * rng.uniform(0.7, 1.3, corrections)
    ctx.txn(
        {
            "ts": again,
            "terminal": picked.get_column("terminal").to_numpy(),
            "operator": np.full(corrections, op),
            "kind": "sale",
            "channel": picked.get_column("channel").to_numpy(),
            "amount": np.maximum(amount.astype(np.int64), 100),
            "card": picked.get_column("card").to_numpy(),
            "original": np.full(corrections, -1),
        }
    )
    ctx.label(BENIGN_PREFIX + "closing_corrections", "operator", op, int(ts[0]), int(again.max()))


LOOKALIKES: Final[dict[str, Callable[[DayContext, int], None]]] = {
    "second_purchase": second_purchase,
    "issuer_outage": issuer_outage,
    "closing_corrections": closing_corrections,
}


def inject_day(
    ctx: DayContext, rates: dict[str, float], benign: dict[str, float], *, seed: int
) -> None:
    """Today's sales-pattern attacks (rates per 1,000 of their exposure) and look-alikes
    (per 1,000 merchant-days), each on its own stream, after everything else of the day."""
    world = ctx.world
    exposure = {
        "operator_days": float(world.n_operators),
        "terminal_days": float(world.n_terminals),
    }
    ctx.rng = stream(seed, "sales", ctx.day)
    for name, inject in INJECTORS.items():
        rate = rates.get(name, 0.0)
        if rate <= 0:
            continue
        incidents = allocate(ctx.state, name, rate / 1000 * exposure[EXPOSURE[name]], 0.5)
        if incidents:
            inject(ctx, incidents)
    ctx.rng = stream(seed, "sales-lookalike", ctx.day)
    merchants = world.m_category.size
    for kind, inject_lookalike in LOOKALIKES.items():
        rate = benign.get(kind, 0.0)
        if rate <= 0:
            continue
        expected = rate / 1000 * merchants
        incidents = min(allocate(ctx.state, BENIGN_PREFIX + kind, expected, 0.5), merchants)
        for merchant in ctx.rng.choice(merchants, size=incidents, replace=False):
            inject_lookalike(ctx, int(merchant))
    ctx.flush()
