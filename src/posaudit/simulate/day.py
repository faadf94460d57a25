"""One simulated day of natural activity: shifts, logins, sales, voids, refunds, transfers.

Everything is vectorised over the day's terminals; rows carry integer codes (terminal,
operator, sequence numbers) and are turned into the contract's strings when written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import polars as pl

from posaudit.simulate import catalog as cat
from posaudit.simulate.attempts import LoginLog, guessing_run
from posaudit.simulate.rng import choice_rows
from posaudit.simulate.world import (
    CARD_BLOCK,
    US_PER_DAY,
    US_PER_MINUTE,
    World,
    day_date,
    day_start_us,
)

US_PER_SECOND: Final = 1_000_000
REFUND_WINDOW_DAYS: Final = 15  # the acquirer refuses refunds later than this after the sale
ACCOUNT_CHANNEL: Final = 5
CHANNEL_NAMES: Final = (*cat.CHANNELS, "account")

KIND_T: Final = pl.Enum(["sale", "void", "refund", "transfer"])
STATUS_T: Final = pl.Enum(["approved", "declined", "failed"])
FAILURE_T: Final = pl.Enum(
    [
        "insufficient_funds",
        "card_expired",
        "issuer_unavailable",
        "insufficient_balance",
        "wrong_parameters",
        "system_fault",
        "wrong_account",
        "amount_not_allowed",
        "past_refund_window",
    ]
)

TXN_SCHEMA: Final = {
    "seq": pl.Int64,
    "ts": pl.Int64,
    "terminal": pl.Int64,
    "operator": pl.Int64,
    "kind": KIND_T,
    "channel": pl.Int64,
    "amount": pl.Int64,
    "card": pl.Int64,
    "original": pl.Int64,  # -1 none named, -2 a name that matches no sale
    "status": STATUS_T,
    "failure": FAILURE_T,
}
PENDING_SCHEMA: Final = {column: dtype for column, dtype in TXN_SCHEMA.items() if column != "seq"}
SALE_POOL_SCHEMA: Final = {
    "seq": pl.Int64,
    "ts": pl.Int64,
    "terminal": pl.Int64,
    "channel": pl.Int64,
    "amount": pl.Int64,
    "card": pl.Int64,
}


def _where_or_null(mask: np.ndarray, values: np.ndarray) -> pl.Series:
    """Failure reasons: ``values`` where ``mask`` holds, null elsewhere (as the Enum)."""
    idx = np.zeros(mask.size, dtype=np.int64)
    idx[mask] = [_FAILURE_INDEX[reason] for reason in values[mask].tolist()]
    return pl.select(
        pl.when(pl.Series(mask)).then(_FAILURE_NAMES.gather(pl.Series(idx)))
    ).to_series()


def _status(failed: np.ndarray, name: str) -> pl.Series:
    """``name`` where ``failed`` holds, 'approved' elsewhere (as the Enum)."""
    return pl.Series(["approved", name], dtype=STATUS_T).gather(failed.astype(np.int64))


_FAILURE_NAMES: Final = pl.Series(FAILURE_T.categories, dtype=FAILURE_T)
_FAILURE_INDEX: Final = {name: index for index, name in enumerate(FAILURE_T.categories.to_list())}


def empty_txns() -> pl.DataFrame:
    return pl.DataFrame(schema=TXN_SCHEMA)


@dataclass
class SimState:
    """What one day hands to the next."""

    next_txn: int
    trace: np.ndarray
    pending: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PENDING_SCHEMA))
    sale_pool: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SALE_POOL_SCHEMA))
    accumulators: dict[str, float] = field(default_factory=dict)
    friendly_plan: pl.DataFrame | None = None
    # look-alike new clerks: (operator, first day, day after the last)
    new_clerks: list[tuple[int, int, int]] = field(default_factory=list)
    # merchant typologies (simulate/merchant_fraud.py): the world's plan, and the merchants
    # whose sales, in part (behaves_share), look like another category's (behaves_as), drawn
    # by minute from behaves_profile's row of profile_cdf; None: every merchant its own
    merchant_plan: Any = None
    behaves_as: np.ndarray | None = None
    behaves_share: np.ndarray | None = None
    behaves_profile: np.ndarray | None = None
    profile_cdf: np.ndarray | None = None

    def take_seqs(self, count: int) -> np.ndarray:
        seqs = np.arange(self.next_txn, self.next_txn + count, dtype=np.int64)
        self.next_txn += count
        return seqs


@dataclass
class Shifts:
    """The day's shifts: per terminal two slots (the second empty where the day is short)."""

    start_us: np.ndarray  # (T, 2)
    end_us: np.ndarray  # (T, 2)
    operator: np.ndarray  # (T, 2); -1 where no second shift
    split_minute: np.ndarray  # (T,)


@dataclass
class DayActivity:
    txns: list[pl.DataFrame] = field(default_factory=list)
    logins: LoginLog = field(default_factory=LoginLog)
    labels: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # (scenario, entity_type, entity index or txn seq, start_us, end_us)


def _category_array(world: World, attr: str) -> np.ndarray:
    return np.array([getattr(category, attr) for category in cat.CATEGORIES])


def make_shifts(world: World, day: int, rng: np.random.Generator, roaming_share: float) -> Shifts:
    t_m = world.t_merchant
    opens, closes = world.m_open[t_m], world.m_close[t_m]
    span = closes - opens
    # one split per merchant, so a clerk swapped between sibling terminals works one at a time
    m_jitter = rng.integers(-30, 31, world.m_open.size)
    split = np.where(span > 600, opens + span // 2 + m_jitter[t_m], closes)
    base = day_start_us(world, day)
    seller_counts = world.t_sale_n
    first = (rng.random(world.n_terminals) * seller_counts).astype(np.int64)
    second = np.where(
        seller_counts > 1,
        (first + 1 + (rng.random(world.n_terminals) * (seller_counts - 1)).astype(np.int64))
        % np.maximum(seller_counts, 1),
        first,
    )
    rows = np.arange(world.n_terminals)
    ops = np.stack([world.t_sale_ops[rows, first], world.t_sale_ops[rows, second]], axis=1)
    has_second = split < closes
    ops[~has_second, 1] = -1
    # roaming: a clerk works the first shift on a sibling terminal of its merchant
    swap = np.flatnonzero(rng.random(world.n_terminals) < roaming_share)
    done: set[int] = set()
    for terminal in swap:
        sib = (
            terminal + 1
            if terminal + 1 < world.n_terminals and t_m[terminal + 1] == t_m[terminal]
            else terminal - 1
        )
        if sib < 0 or t_m[sib] != t_m[terminal] or terminal in done or sib in done:
            continue
        if world.o_is_admin[ops[terminal, 0]] or world.o_is_admin[ops[sib, 0]]:
            continue
        if ops[terminal, 0] in (ops[sib, 1], ops[terminal, 1]) or ops[sib, 0] in (
            ops[terminal, 1],
            ops[sib, 1],
        ):
            continue
        ops[terminal, 0], ops[sib, 0] = ops[sib, 0], ops[terminal, 0]
        done.update((int(terminal), int(sib)))
    start = np.stack([base + opens * US_PER_MINUTE, base + split * US_PER_MINUTE], axis=1)
    end = np.stack([base + split * US_PER_MINUTE, base + closes * US_PER_MINUTE], axis=1)
    return Shifts(start_us=start, end_us=end, operator=ops, split_minute=split)


def natural_logins(
    world: World,
    shifts: Shifts,
    rng: np.random.Generator,
    log: LoginLog,
    behaviour: dict[str, Any],
    flaky_today: np.ndarray,
) -> None:
    """Shift logins with their typos, mistyped numbers and network errors (vectorised)."""
    t_idx, slot = np.nonzero(shifts.operator >= 0)
    op = shifts.operator[t_idx, slot]
    start = shifts.start_us[t_idx, slot] - rng.integers(1, 10 * 60, t_idx.size) * US_PER_SECOND
    start = np.maximum(start, shifts.start_us[t_idx, 0] - 15 * US_PER_MINUTE)
    # a second login after a break, for some shifts
    relog = rng.random(t_idx.size) < 0.4
    length = shifts.end_us[t_idx, slot] - shifts.start_us[t_idx, slot]
    mid = shifts.start_us[t_idx, slot] + (length * rng.uniform(0.3, 0.7, t_idx.size)).astype(
        np.int64
    )
    t_idx = np.concatenate([t_idx, t_idx[relog]])
    op = np.concatenate([op, op[relog]])
    start = np.concatenate([start, mid[relog]])
    session_count = t_idx.size
    unknown = (rng.random(session_count) < behaviour["unknown_operator_share"]).astype(np.int64)
    network = (rng.random(session_count) < 0.003).astype(np.int64)
    typos = np.where(
        rng.random(session_count) < behaviour["typo_share"],
        np.where(rng.random(session_count) < 0.8, 1, 2),
        0,
    )
    count = unknown + network + typos + 1
    session = np.repeat(np.arange(session_count), count)
    offsets = np.concatenate([[0], np.cumsum(count)[:-1]])
    attempt = np.arange(session.size) - np.repeat(offsets, count)
    gap = rng.integers(6, 25, session.size) * US_PER_SECOND
    ts = start[session] + attempt * gap
    u_end = unknown[session]
    n_end = u_end + network[session]
    w_end = n_end + typos[session]
    outcome = np.where(attempt < w_end, "wrong_pin", "success")
    outcome = np.where(attempt < n_end, "network_error", outcome)
    outcome = np.where(attempt < u_end, "unknown_operator", outcome)
    ops = op[session]
    numbers = world.o_no[ops]
    wrong_numbers = np.char.zfill((50 + rng.integers(0, 40, session.size)).astype(str), 2)
    numbers = np.where(outcome == "unknown_operator", wrong_numbers, numbers)
    operator = np.where(outcome == "unknown_operator", -1, ops)
    log.ts.extend(ts.tolist())
    log.terminal.extend(t_idx[session].tolist())
    log.operator_no.extend(numbers.tolist())
    log.operator.extend(operator.tolist())
    log.outcome.extend(outcome.tolist())
    # network bursts on flaky terminals
    for terminal in np.flatnonzero(flaky_today):
        if shifts.operator[terminal, 0] < 0:
            continue
        shift_operator = int(shifts.operator[terminal, 0])
        size = int(rng.integers(5, 40))
        s0 = int(
            shifts.start_us[terminal, 0]
            + rng.random()
            * max(
                shifts.end_us[terminal, 0] - shifts.start_us[terminal, 0] - 3_600 * US_PER_SECOND, 1
            )
        )
        gaps = rng.integers(20, 120, size) * US_PER_SECOND
        times = s0 + np.cumsum(gaps)
        for ts_net in times.tolist():
            log.event(
                ts_net,
                int(terminal),
                str(world.o_no[shift_operator]),
                shift_operator,
                "network_error",
            )
        log.event(
            int(times[-1] + 30 * US_PER_SECOND),
            int(terminal),
            str(world.o_no[shift_operator]),
            shift_operator,
            "success",
        )


def forgotten_pins(
    world: World, resets: pl.DataFrame, rng: np.random.Generator, log: LoginLog
) -> None:
    """Before each reset of a forgotten PIN: wrong PINs, maybe a lockout, the unlock, a login."""
    for op, ts_reset, actor in resets.select("op", "ts", "actor").iter_rows():
        terminal = int(world.o_terminal[op])
        wrong_pins = int(rng.integers(3, 9))
        threshold = int(world.t_threshold[terminal])
        method = "admin" if actor == 1 else "service_desk"
        gaps = (rng.integers(8, 40, 12) * US_PER_SECOND).tolist()
        span = wrong_pins * 40 * US_PER_SECOND + 10 * US_PER_MINUTE
        start = ts_reset - span
        log_locked = 0 < threshold <= wrong_pins
        guessing_run(
            log,
            start_us=start,
            terminal=terminal,
            operator=op,
            operator_no=str(world.o_no[op]),
            threshold=threshold,
            lockout_minutes=int(world.t_minutes[terminal]),
            failures=min(wrong_pins, threshold) if log_locked else wrong_pins,
            gaps_us=gaps,
            succeed=False,
            unlock_method=method,
            unlock_delay_us=max(ts_reset - start - wrong_pins * 40 * US_PER_SECOND, US_PER_MINUTE),
            locked_tries=int(rng.integers(0, 3)),
        )
        log.event(
            int(ts_reset + rng.integers(30, 180) * US_PER_SECOND),
            terminal,
            str(world.o_no[op]),
            op,
            "success",
        )


def natural_transactions(
    world: World,
    day: int,
    shifts: Shifts,
    rng: np.random.Generator,
    state: SimState,
    behaviour: dict[str, Any],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The day's sales, voids and transfers; refunds of today's sales go to ``state.pending``.

    Returns (transactions, approved sales that nothing voids or refunds) frames.
    """
    t_m = world.t_merchant
    t_cat = world.m_category[t_m]
    weekend = day_date(world, day).weekday() >= 5
    rate = (
        _category_array(world, "sales_per_day")[t_cat]
        * world.m_size[t_m]
        * behaviour["sales_scale"]
    )
    if weekend:
        rate = rate * _category_array(world, "weekend")[t_cat]
    n_per_t = rng.poisson(rate)
    sale_count = int(n_per_t.sum())
    term = np.repeat(np.arange(world.n_terminals), n_per_t)
    merchant = t_m[term]
    category = world.m_category[merchant]
    prof = world.m_profile[merchant]
    profile_cdf = world.profile_cdf
    if state.behaves_as is not None:
        category, prof, profile_cdf = _behaviour(state, day, merchant, category, prof)
    n_prof = profile_cdf.shape[0]
    flat = (profile_cdf + np.arange(n_prof)[:, None]).ravel()
    minute = np.searchsorted(flat, rng.random(sale_count) + prof, side="right") - prof * 1440
    minute = np.clip(minute, 0, 1439)
    base = day_start_us(world, day)
    ts = base + minute * US_PER_MINUTE + rng.integers(0, 60 * US_PER_SECOND, sale_count)
    second = minute >= shifts.split_minute[term]
    operator = shifts.operator[term, second.astype(np.int64)]
    operator = np.where(operator < 0, shifts.operator[term, 0], operator)
    mix = np.cumsum(np.array([entry.channel_mix for entry in cat.CATEGORIES]), axis=1)
    channel = choice_rows(rng, mix[category])
    median = np.log(_category_array(world, "median_yuan") * 100)
    sigma = _category_array(world, "sigma")
    amount = np.exp(median[category] + sigma[category] * rng.standard_normal(sale_count))
    round_share = _category_array(world, "round_share")[category]
    is_round = rng.random(sale_count) < round_share
    unit = np.where(cat.CATEGORY_NAMES.index("hotel") == category, 10_000, 100)
    amount = np.where(is_round, np.maximum(np.round(amount / unit), 1) * unit, np.round(amount))
    amount = np.maximum(amount, 100).astype(np.int64)
    city_pool = 200_000
    card = world.m_city[merchant] * CARD_BLOCK + rng.integers(0, city_pool, sale_count)
    declined = rng.random(sale_count) < 0.012
    reasons = np.array(["insufficient_funds", "card_expired", "issuer_unavailable"])
    failure = _where_or_null(declined, reasons[rng.integers(0, 3, sale_count)])
    seq = state.take_seqs(sale_count)
    sales = pl.DataFrame(
        {
            "seq": seq,
            "ts": ts,
            "terminal": term,
            "operator": operator,
            "kind": "sale",
            "channel": channel,
            "amount": amount,
            "card": card,
            "original": -1,
            "status": _status(declined, "declined"),
            "failure": failure,
        },
        schema=TXN_SCHEMA,
    )
    approved = sales.filter(pl.col("status") == "approved")

    # voids: minutes later, same operator, same batch
    void_mask = rng.random(approved.height) < behaviour["void_share"]
    voids = approved.filter(pl.Series(void_mask))
    void_ts = (
        voids.get_column("ts").to_numpy() + rng.integers(60, 600, voids.height) * US_PER_SECOND
    )
    voids = voids.with_columns(
        pl.Series("ts", np.minimum(void_ts, base + US_PER_DAY - 1)),
        pl.col("seq").alias("original"),
        pl.lit("void", dtype=KIND_T).alias("kind"),
    ).with_columns(pl.Series("seq", state.take_seqs(voids.height)))
    kept = approved.filter(~pl.Series(void_mask))

    # refunds of today's sales, scheduled hours to two weeks ahead
    refund_share = _category_array(world, "refund_share") * behaviour["refund_scale"]
    k_cat = world.m_category[t_m[kept.get_column("terminal").to_numpy()]]
    refunded = rng.random(kept.height) < refund_share[k_cat]
    to_refund = kept.filter(pl.Series(refunded))
    schedule_refunds(world, to_refund, rng, state)

    transfers = make_transfers(world, day, shifts, rng, state)
    # what abuse can still refund today: approved sales neither voided nor refunded
    return pl.concat([sales, voids, transfers]), kept.filter(~pl.Series(refunded))


def _behaviour(
    state: SimState, day: int, merchant: np.ndarray, category: np.ndarray, prof: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The category and hour profile each sale follows, where a merchant behaves in part
    like another category (``state.behaves_*``); no random draw, so no other draw moves."""
    assert state.behaves_share is not None and state.behaves_profile is not None
    assert state.behaves_as is not None and state.profile_cdf is not None
    # a fixed spread of the day's sales over 0..1 (Knuth's multiplicative hash)
    spread = (
        (np.arange(merchant.size, dtype=np.uint64) + np.uint64(day * 7919))
        * np.uint64(2_654_435_761)
    ) % np.uint64(2**32)
    follows = spread.astype(np.float64) / 2**32 < state.behaves_share[merchant]
    return (
        np.where(follows, state.behaves_as[merchant], category),
        np.where(follows, state.behaves_profile[merchant], prof),
        state.profile_cdf,
    )


def schedule_refunds(
    world: World, sales: pl.DataFrame, rng: np.random.Generator, state: SimState
) -> None:
    refund_count = sales.height
    if refund_count == 0:
        return
    term = sales.get_column("terminal").to_numpy()
    merchant = world.t_merchant[term]
    same_day = rng.random(refund_count) < 0.4
    lag_h = np.where(
        same_day,
        rng.uniform(0.5, 8, refund_count),
        24 * np.clip(rng.lognormal(1.1, 0.8, refund_count), 1, 20),
    )
    due = sales.get_column("ts").to_numpy() + (lag_h * 3_600 * US_PER_SECOND).astype(np.int64)
    due = snap_to_opening(world, merchant, due, rng)
    amount = sales.get_column("amount").to_numpy()
    partial = rng.random(refund_count) < 0.3
    part = np.round(amount * rng.uniform(0.2, 0.9, refund_count)).astype(np.int64)
    part = np.where(part % 10_000 == 0, part - rng.integers(1, 99, refund_count), part)
    refund_amount = np.where(partial & (amount > 200), np.maximum(part, 1), amount)
    n_ref = world.t_refund_n[term]
    op = world.t_refund_ops[term, (rng.random(refund_count) * n_ref).astype(np.int64)]
    lag_days = (due - sales.get_column("ts").to_numpy()) / (US_PER_DAY)
    late = lag_days > REFUND_WINDOW_DAYS
    failed = rng.random(refund_count) < 0.025
    reasons = np.array(["wrong_account", "amount_not_allowed", "system_fault"])
    failure = _where_or_null(
        late | failed,
        np.where(late, "past_refund_window", reasons[rng.integers(0, 3, refund_count)]),
    )
    rows = pl.DataFrame(
        {
            "ts": due,
            "terminal": term,
            "operator": op,
            "kind": "refund",
            "channel": sales.get_column("channel"),
            "amount": refund_amount,
            "card": sales.get_column("card"),
            "original": sales.get_column("seq"),
            "status": _status(late | failed, "failed"),
            "failure": failure,
        },
        schema=PENDING_SCHEMA,
    )
    state.pending = pl.concat([state.pending, rows])


def snap_to_opening(
    world: World, merchant: np.ndarray, ts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Move times outside a merchant's opening hours to shortly after its next opening."""
    day0 = ts - ts % US_PER_DAY
    minute = (ts - day0) // US_PER_MINUTE
    opens, closes = world.m_open[merchant], world.m_close[merchant]
    later = rng.integers(5, 120, ts.size) * US_PER_MINUTE
    span_ok = np.minimum(later, np.maximum((closes - opens - 1) * US_PER_MINUTE, US_PER_MINUTE))
    before = minute < opens
    after = minute >= closes
    out = np.where(before, day0 + opens * US_PER_MINUTE + span_ok, ts)
    return np.where(after, day0 + US_PER_DAY + opens * US_PER_MINUTE + span_ok, out)


def make_transfers(
    world: World, day: int, shifts: Shifts, rng: np.random.Generator, state: SimState
) -> pl.DataFrame:
    able = world.m_transfers[world.t_merchant] & (world.t_family == 1)
    counts = np.where(able, rng.poisson(0.8, world.n_terminals), 0)
    transfer_count = int(counts.sum())
    term = np.repeat(np.arange(world.n_terminals), counts)
    base = day_start_us(world, day)
    s0, s1 = shifts.start_us[term, 0], shifts.end_us[term, 0]
    ts = s0 + ((s1 - s0) * rng.random(transfer_count)).astype(np.int64)
    failed = rng.random(transfer_count) < 0.05
    reasons = np.array(["insufficient_balance", "wrong_parameters", "system_fault"])
    del base
    log_amount = np.log(200_000) + rng.standard_normal(transfer_count)
    amount = np.round(np.exp(log_amount)).astype(np.int64) + 100
    return pl.DataFrame(
        {
            "seq": state.take_seqs(transfer_count),
            "ts": ts,
            "terminal": term,
            "operator": world.t_admin[term],
            "kind": "transfer",
            "channel": ACCOUNT_CHANNEL,
            "amount": amount,
            "card": rng.integers(0, 10**9, transfer_count),
            "original": -1,
            "status": _status(failed, "failed"),
            "failure": _where_or_null(failed, reasons[rng.integers(0, 3, transfer_count)]),
        },
        schema=TXN_SCHEMA,
    )


def due_refunds(state: SimState, day_end_us: int) -> pl.DataFrame:
    """Scheduled refunds that fall before ``day_end_us``, taken out of the pending list."""
    due = state.pending.filter(pl.col("ts") < day_end_us)
    state.pending = state.pending.filter(pl.col("ts") >= day_end_us)
    return due.with_columns(pl.Series("seq", state.take_seqs(due.height))).select(list(TXN_SCHEMA))
