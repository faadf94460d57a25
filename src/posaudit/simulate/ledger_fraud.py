"""Fees and completeness: duplicated records, deleted records and misapplied fees, with their
innocent look-alikes (docs/scenarios.md), and the terminals' own batch totals.

Every draw here comes from the world's ``ledger`` streams, after the other injections and
look-alikes of the day, so the rest of the world stays what it was without them:

- ``duplicate_transactions``: a sale recorded twice, the copy with a new trace number 1-20 s
  after it, or replayed with the sale's own time (per 1,000 approved sales);
- ``deleted_records``: 1-3 approved sales removed from a terminal's batch after the terminal
  counted them, so the trace numbers have a gap and the batch total no longer adds up (per
  1,000 terminal-days);
- ``fee_misapplied``: a merchant billed by the wrong line of the fee table: the discount rate
  on a standard merchant, the debit cap on credit cards, or a charity charged (per 1,000
  merchants, for the whole period);
- look-alikes (per 1,000 merchant-days): a sale retried after a decline, a trace counter that
  wraps past 999,999 inside a batch, a terminal re-initialised to trace 1 at a new batch,
  large debit sales at the debit cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import polars as pl

from posaudit.detect import fees
from posaudit.simulate import catalog as cat
from posaudit.simulate.fraud import DayContext, _limit, _towards, allocate
from posaudit.simulate.scenario import BENIGN_PREFIX
from posaudit.simulate.world import CARD_BLOCK, US_PER_DAY, World

US_PER_SECOND: Final = 1_000_000
TRACE_MAX: Final = 999_999  # six-digit trace numbers wrap after this
SCENARIOS: Final = ("duplicate_transactions", "deleted_records", "fee_misapplied")
LOOKALIKES: Final = (
    "retry_after_decline",
    "trace_wrap",
    "terminal_reinit",
    "debit_cap_purchases",
)
# Where each look-alike belongs: the merchant categories (None: any merchant).
CATEGORIES: Final[dict[str, tuple[str, ...] | None]] = {
    "retry_after_decline": None,
    "trace_wrap": None,
    "terminal_reinit": None,
    "debit_cap_purchases": ("electronics", "hotel", "supermarket", "apparel"),
}
# How a merchant's fees go wrong; 0 is "they do not".
FEE_ERROR_KINDS: Final = ("", "discount_rate_on_standard", "cap_on_credit", "charity_charged")
_CARD_CHANNELS: Final = (0, 1)
_DEBIT, _CREDIT = 0, 1


@dataclass
class FeePlan:
    """The merchants whose fees go wrong, and how; filled in as the renderer charges."""

    kind: np.ndarray  # per merchant: index into FEE_ERROR_KINDS
    rate_bp: np.ndarray  # per merchant: the discount rate a standard merchant is billed at
    share: float  # share of a merchant's chargeable records billed wrongly
    rng: np.random.Generator
    first_us: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    last_us: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def charge(
        self,
        fee: np.ndarray,
        *,
        merchant: np.ndarray,
        channel: np.ndarray,
        amount: np.ndarray,
        chargeable: np.ndarray,
        ts: np.ndarray,
    ) -> np.ndarray:
        """The fees billed: ``fee`` (the fee table's, before the sign of a void), except for
        the planned merchants' records, billed by the wrong line of the table."""
        kind = self.kind[merchant]
        if not kind.any():
            return fee
        card_or_qr = channel < len(cat.CHANNELS)
        rate = np.append(cat.CHANNEL_RATE_BP, 0)[channel]
        discounted = fees.fee_of(amount, self.rate_bp[merchant], capped=channel == _DEBIT)
        standard = fees.fee_of(amount, rate, capped=channel == _DEBIT)
        wrong = np.select(
            [kind == 1, (kind == 2) & (channel == _CREDIT), kind == 3],
            [discounted, np.minimum(fee, fees.DEBIT_CAP_FEN), standard],
            fee,
        )
        billed = np.where(
            chargeable & card_or_qr & (self.rng.random(fee.size) < self.share), wrong, fee
        )
        touched = chargeable & (billed != fee)
        if touched.any():
            at = merchant[touched]
            np.minimum.at(self.first_us, at, ts[touched])
            np.maximum.at(self.last_us, at, ts[touched])
        return billed

    def labels(self) -> list[tuple[str, str, int, int, int]]:
        """One incident per merchant billed wrongly at least once, over the records so billed."""
        return [
            ("fee_misapplied", "merchant", int(m), int(self.first_us[m]), int(self.last_us[m]))
            for m in np.flatnonzero(self.last_us >= 0)
        ]


def plan_fee_errors(
    world: World, rng: np.random.Generator, rate: float, level: float
) -> FeePlan | None:
    """``rate`` per 1,000 merchants billed by the wrong line of the fee table, whole incidents
    rounded to the nearest; at evasion ``level`` only part of their records go wrong."""
    count = round(rate / 1000 * world.m_fee_class.size)
    if count == 0:
        return None
    n = world.m_fee_class.size
    kind = np.zeros(n, dtype=np.int64)
    standard = np.flatnonzero(world.m_fee_class == 0)
    charity = np.flatnonzero(world.m_fee_class == 2)
    # the debit cap on credit cards shows only on credit sales over 3,333 CNY: big tickets
    median = np.array([c.median_yuan for c in cat.CATEGORIES], dtype=float)
    big_ticket = standard[median[world.m_category[standard]] >= 250]
    wanted = [(i % 3) + 1 for i in range(count)]
    for error in wanted:
        pool = {1: standard, 2: big_ticket, 3: charity}[error]
        pool = pool[kind[pool] == 0]
        if pool.size == 0:
            error, pool = 1, standard[kind[standard] == 0]
            if pool.size == 0:
                continue
        kind[int(rng.choice(pool))] = error
    rate_bp = rng.integers(fees.DISCOUNT_RATE_BP[0], fees.DISCOUNT_RATE_BP[1] + 1, n)
    return FeePlan(
        kind=kind,
        rate_bp=rate_bp,
        share=1.0 - 0.5 * level,
        rng=rng,
        first_us=np.full(n, np.iinfo(np.int64).max, dtype=np.int64),
        last_us=np.full(n, -1, dtype=np.int64),
    )


def duplicate_transactions(ctx: DayContext, count: int) -> None:
    """Sales recorded twice: the copy 1-20 s later with a new trace number, or (a third of
    them) replayed with the sale's own time. An evading copy comes as late as the rule's
    window allows."""
    rng = ctx.rng
    sales = ctx.unused(ctx.sales).filter(pl.col("channel") < len(cat.CHANNELS))
    count = min(count, sales.height)
    if count == 0:
        return
    picked = sales[np.sort(rng.choice(sales.height, size=count, replace=False)).tolist()]
    gap = np.where(rng.random(count) < 1 / 3, 0, rng.integers(1, 21, count))
    limit = _limit("duplicate_transactions", "max_gap_seconds")
    level = ctx.level("duplicate_transactions")
    gap = np.array([_towards(int(g), limit - 1, level) for g in gap], dtype=np.int64)
    ts = picked.get_column("ts").to_numpy() + gap * US_PER_SECOND
    copies = ctx.txn(
        {
            "ts": ts,
            "terminal": picked.get_column("terminal").to_numpy(),
            "operator": picked.get_column("operator").to_numpy(),
            "kind": "sale",
            "channel": picked.get_column("channel").to_numpy(),
            "amount": picked.get_column("amount").to_numpy(),
            "card": picked.get_column("card").to_numpy(),
            "original": -1,
        }
    )
    ctx.use(picked)
    for seq, at in zip(copies.get_column("seq").to_list(), ts.tolist(), strict=True):
        ctx.label("duplicate_transactions", "transaction", seq, at, at)


def _eligible(ctx: DayContext, kind: str) -> np.ndarray:
    names = CATEGORIES[kind]
    ok = np.ones(ctx.world.m_category.size, dtype=bool)
    if names is not None:
        ok &= np.isin(ctx.world.m_category, [cat.CATEGORY_NAMES.index(n) for n in names])
    return np.flatnonzero(ok)


def retry_after_decline(ctx: DayContext, merchant: int) -> None:
    """A card declined (the issuer did not answer, or funds were short) and the same sale tried
    again on the same card 10-90 s later, approved: two records, one sale."""
    rng = ctx.rng
    terminals = np.flatnonzero(ctx.world.t_merchant == merchant)
    sales = ctx.unused(ctx.sales).filter(
        pl.col("terminal").is_in(terminals.tolist()) & pl.col("channel").is_in(_CARD_CHANNELS)
    )
    if sales.height == 0:
        return
    sale = sales.row(int(rng.integers(0, sales.height)), named=True)
    gap = int(rng.integers(10, 91)) * US_PER_SECOND
    reason = ("issuer_unavailable", "insufficient_funds")[int(rng.integers(0, 2))]
    ctx.txn(
        {
            "ts": [sale["ts"] - gap],
            "terminal": sale["terminal"],
            "operator": sale["operator"],
            "kind": "sale",
            "channel": sale["channel"],
            "amount": sale["amount"],
            "card": sale["card"],
            "original": -1,
            "failure": reason,
        }
    )
    ctx.label(
        BENIGN_PREFIX + "retry_after_decline",
        "transaction",
        sale["seq"],
        sale["ts"] - gap,
        sale["ts"],
    )


def debit_cap_purchases(ctx: DayContext, merchant: int) -> None:
    """1-3 large debit card sales (4,000-20,000 CNY): their fee stops at the debit cap."""
    rng = ctx.rng
    world = ctx.world
    terminal = int(rng.choice(np.flatnonzero(world.t_merchant == merchant)))
    count = int(rng.integers(1, 4))
    opens = ctx.base + int(world.m_open[merchant]) * 60 * US_PER_SECOND
    closes = ctx.base + min(int(world.m_close[merchant]), 1440) * 60 * US_PER_SECOND
    ts = np.sort(opens + (rng.random(count) * max(closes - opens - 60 * US_PER_SECOND, 1)))
    ts = ts.astype(np.int64)
    seller = int(world.t_sale_ops[terminal, int(rng.integers(0, world.t_sale_n[terminal]))])
    ctx.txn(
        {
            "ts": ts,
            "terminal": terminal,
            "operator": seller,
            "kind": "sale",
            "channel": _DEBIT,
            "amount": rng.integers(400_000, 2_000_000, count),
            "card": world.m_city[merchant] * CARD_BLOCK + rng.integers(0, 200_000, count),
            "original": -1,
        }
    )
    ctx.label(BENIGN_PREFIX + "debit_cap_purchases", "merchant", merchant, ts[0], ts[-1])


def _counter(ctx: DayContext, merchant: int, kind: str) -> None:
    """A trace counter set before the day's records are numbered: near the top, so it wraps
    inside today's batch (``trace_wrap``), or back to the start (``terminal_reinit``)."""
    terminal = int(ctx.rng.choice(np.flatnonzero(ctx.world.t_merchant == merchant)))
    if kind == "trace_wrap":
        ctx.state.trace[terminal] = TRACE_MAX - int(ctx.rng.integers(1, 4))
    else:
        ctx.state.trace[terminal] = 0
    ctx.label(BENIGN_PREFIX + kind, "terminal", terminal, ctx.base, ctx.base + US_PER_DAY - 1)


def inject_day(ctx: DayContext, rates: dict[str, float], benign: dict[str, float]) -> None:
    """Today's duplicated records and look-alikes (deletions come after rendering:
    :func:`deleted_records`)."""
    rate = rates.get("duplicate_transactions", 0.0)
    if rate > 0:
        incidents = allocate(
            ctx.state, "duplicate_transactions", rate / 1000 * ctx.sales.height, 0.5
        )
        if incidents:
            duplicate_transactions(ctx, incidents)
    for kind in LOOKALIKES:
        rate = benign.get(kind, 0.0)
        if rate <= 0:
            continue
        eligible = _eligible(ctx, kind)
        incidents = min(
            allocate(ctx.state, BENIGN_PREFIX + kind, rate / 1000 * eligible.size, 0.5),
            eligible.size,
        )
        for merchant in ctx.rng.choice(eligible, size=incidents, replace=False):
            if kind == "retry_after_decline":
                retry_after_decline(ctx, int(merchant))
            elif kind == "debit_cap_purchases":
                debit_cap_purchases(ctx, int(merchant))
            else:
                _counter(ctx, int(merchant), kind)
    ctx.flush()


def deleted_records(
    ctx: DayContext, transactions: pl.DataFrame, terminal_ids: pl.Series, rate: float
) -> pl.DataFrame:
    """The day's rendered records without the deleted ones: per incident 1-3 approved sales
    of one terminal's batch, not its first or last record (an evading thief deletes one, and
    at times the batch's last records, which leave no gap in the trace numbers)."""
    world, rng = ctx.world, ctx.rng
    incidents = allocate(ctx.state, "deleted_records", rate / 1000 * world.n_terminals, 0.5)
    if incidents == 0 or transactions.height == 0:
        return transactions
    level = ctx.level("deleted_records")
    frame = transactions.with_row_index("row").with_columns(
        pl.int_range(pl.len()).over("terminal_id", order_by=["ts", "trace_no"]).alias("place"),
        pl.len().over("terminal_id").alias("records"),
    )
    busy = frame.filter(pl.col("records") >= 6).get_column("terminal_id").unique().sort()
    if busy.len() == 0:
        return transactions
    chosen = rng.choice(busy.len(), size=min(incidents, busy.len()), replace=False)
    index = {t: i for i, t in enumerate(terminal_ids.to_list())}
    dropped: list[int] = []
    for terminal_id in busy.gather(np.sort(chosen)).to_list():
        rows = frame.filter(pl.col("terminal_id") == terminal_id)
        last = int(rows.get_column("records")[0]) - 1
        at_end = rng.random() < 0.5 * level
        sales = rows.filter(
            (pl.col("kind") == "sale")
            & (pl.col("status") == "approved")
            & (pl.col("place") > 0)
            & ((pl.col("place") < last) | at_end)
        )
        if sales.height == 0:
            continue
        count = min(_towards(int(rng.integers(1, 4)), 1, level), sales.height)
        if at_end:
            picked = sales.sort("place").tail(count)
        else:
            picked = sales[np.sort(rng.choice(sales.height, size=count, replace=False)).tolist()]
        dropped.extend(picked.get_column("row").to_list())
        ts = picked.get_column("ts").dt.epoch("us")
        ctx.label("deleted_records", "terminal", index[terminal_id], ts.min(), ts.max())
    if not dropped:
        return transactions
    keep = np.ones(transactions.height, dtype=bool)
    keep[dropped] = False
    return transactions.filter(pl.Series(keep))


def batch_totals(transactions: pl.DataFrame) -> pl.DataFrame:
    """Each terminal batch as its terminal counted it when it settled: the approved records,
    their sums and fees, and the first and last trace numbers it issued."""
    approved = pl.col("status") == "approved"
    kind = pl.col("kind")

    def total(name: str) -> pl.Expr:
        return pl.col("amount_fen").filter(approved & (kind == name)).sum().cast(pl.Int64)

    return (
        transactions.sort("terminal_id", "ts", "trace_no")
        .group_by("terminal_id", "merchant_id", "batch_no", maintain_order=True)
        .agg(
            (pl.col("ts").max() + pl.duration(minutes=1)).alias("settled_at"),
            approved.sum().cast(pl.Int64).alias("txn_count"),
            pl.col("trace_no").first().alias("first_trace"),
            pl.col("trace_no").last().alias("last_trace"),
            total("sale").alias("sale_amount_fen"),
            total("void").alias("void_amount_fen"),
            total("refund").alias("refund_amount_fen"),
            pl.col("fee_fen").sum().cast(pl.Int64).alias("fee_fen"),
        )
        .select(
            pl.format("{}:{}", "terminal_id", "batch_no").alias("batch_id"),
            "terminal_id",
            "merchant_id",
            "batch_no",
            "settled_at",
            "txn_count",
            "first_trace",
            "last_trace",
            "sale_amount_fen",
            "void_amount_fen",
            "refund_amount_fen",
            "fee_fen",
        )
    )
