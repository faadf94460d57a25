"""The static world: merchants, their terminals and operators, as frames and fast arrays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

import numpy as np
import polars as pl

from posaudit.simulate import catalog as cat
from posaudit.simulate.rng import exact_mask, stream

US_PER_MINUTE: Final = 60_000_000
US_PER_DAY: Final = 86_400_000_000
POLICY_MAX_FAILURES: Final = 6
# Card numbers come in blocks of CARD_BLOCK per city (a city's customers hold the first
# numbers of its block); a card issued to replace one takes the number REPLACEMENT_OFFSET
# above it, in the block's upper half, and belongs to the same account.
CARD_BLOCK: Final = 10_000_000
REPLACEMENT_OFFSET: Final = 5_000_000
POLICY_MIN_LOCKOUT_MINUTES: Final = 30


@dataclass
class World:
    """Everything about the world that does not change from day to day."""

    start: date
    merchants: pl.DataFrame
    terminals: pl.DataFrame
    operators: pl.DataFrame
    # merchant arrays
    m_category: np.ndarray
    m_size: np.ndarray
    m_open: np.ndarray  # minute of day
    m_close: np.ndarray  # minute of day (exclusive); 1440 around the clock
    m_is_24h: np.ndarray
    m_fee_class: np.ndarray  # 0 standard, 1 discount, 2 charity
    m_rate_bp: np.ndarray
    m_city: np.ndarray
    m_profile: np.ndarray
    m_transfers: np.ndarray
    # terminal arrays
    t_merchant: np.ndarray
    t_family: np.ndarray  # 0 esign, 1 smart
    t_threshold: np.ndarray  # -1 never locks
    t_minutes: np.ndarray
    t_flaky: np.ndarray
    t_loose: np.ndarray
    t_admin: np.ndarray  # operator index of the terminal's administrator
    t_sale_ops: np.ndarray  # padded (n_terminals, k) operator indices allowed to sell
    t_sale_n: np.ndarray
    t_refund_ops: np.ndarray
    t_refund_n: np.ndarray
    t_ids: np.ndarray
    # operator arrays
    o_terminal: np.ndarray
    o_merchant: np.ndarray
    o_is_admin: np.ndarray
    o_can_refund: np.ndarray
    o_can_sale: np.ndarray
    o_no: np.ndarray  # operator number strings
    o_ids: np.ndarray
    o_created_us: np.ndarray
    profile_cdf: np.ndarray  # (profiles, 1440) cumulative traffic by minute
    start_us: int

    @property
    def n_terminals(self) -> int:
        return int(self.t_merchant.size)

    @property
    def n_operators(self) -> int:
        return int(self.o_terminal.size)


def _us(day: date) -> int:
    return int((datetime.combine(day, time()) - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def _profile(category: cat.Category, open_minute: int, close_minute: int) -> np.ndarray:
    minutes = np.arange(1440) / 60.0
    density = np.full(1440, 0.05)
    for hour, width, weight in category.peaks:
        density += weight * np.exp(-0.5 * ((minutes - hour) / width) ** 2)
    mask = (np.arange(1440) >= open_minute) & (np.arange(1440) < close_minute)
    density = density * mask
    cdf = np.cumsum(density)
    return cdf / cdf[-1]


def build_world(
    seed: int,
    n_merchants: int,
    start: date,
    *,
    lockout_loose_share: float,
    flaky_share: float,
    transfer_share: float,
) -> World:
    """The world for ``seed``: the same seed and size always give the same world."""
    rng = stream(seed, "world")
    n_cat = len(cat.CATEGORIES)
    weights = np.array([category.weight for category in cat.CATEGORIES])
    m_category = rng.choice(n_cat, size=n_merchants, p=weights / weights.sum())
    m_size = rng.lognormal(0.0, 0.5, n_merchants)
    m_size = m_size / np.exp(0.125)  # mean 1
    m_city = rng.choice(
        len(cat.CITIES), size=n_merchants, p=cat.CITY_WEIGHTS / cat.CITY_WEIGHTS.sum()
    )

    m_open = np.zeros(n_merchants, dtype=np.int64)
    m_close = np.zeros(n_merchants, dtype=np.int64)
    m_is_24h = np.zeros(n_merchants, dtype=bool)
    m_fee_class = np.zeros(n_merchants, dtype=np.int64)
    m_rate_bp = np.zeros(n_merchants, dtype=np.int64)
    profile_keys: dict[tuple[int, int, int], int] = {}
    profiles: list[np.ndarray] = []
    m_profile = np.zeros(n_merchants, dtype=np.int64)
    u_hours, u_24h, u_disc = (
        rng.random(n_merchants),
        rng.random(n_merchants),
        rng.random(n_merchants),
    )
    for merchant in range(n_merchants):
        category = cat.CATEGORIES[m_category[merchant]]
        if u_24h[merchant] < category.share_24h:
            open_minute, close_minute, m_is_24h[merchant] = 0, 1440, True
        else:
            open_minute, close_minute = category.hours[int(u_hours[merchant] * len(category.hours))]
            m_is_24h[merchant] = (open_minute, close_minute) == (0, 1440)
        m_open[merchant], m_close[merchant] = open_minute, close_minute
        if category.name == "charity":
            m_fee_class[merchant] = 2
        elif u_disc[merchant] < category.discount_share:
            m_fee_class[merchant] = 1
            m_rate_bp[merchant] = rng.integers(cat.DISCOUNT_RATE_BP[0], cat.DISCOUNT_RATE_BP[1] + 1)
        key = (int(m_category[merchant]), int(open_minute), int(close_minute))
        if key not in profile_keys:
            profile_keys[key] = len(profiles)
            profiles.append(_profile(category, open_minute, close_minute))
        m_profile[merchant] = profile_keys[key]
    m_transfers = rng.random(n_merchants) < transfer_share

    # terminals
    t_per_m = np.array(
        [
            rng.integers(
                cat.CATEGORIES[category_code].terminals[0],
                cat.CATEGORIES[category_code].terminals[1] + 1,
            )
            for category_code in m_category
        ]
    )
    t_merchant = np.repeat(np.arange(n_merchants), t_per_m)
    n_terminals = t_merchant.size
    t_model = rng.integers(0, len(cat.MODELS), n_terminals)
    t_family = np.array(
        [0 if cat.MODELS[model][1] == "esign" else 1 for model in t_model], dtype=np.int64
    )
    t_threshold = rng.choice([3, 5, 6], size=n_terminals, p=[0.1, 0.7, 0.2])
    t_minutes = rng.choice([30, 60], size=n_terminals, p=[0.8, 0.2])
    t_loose = exact_mask(rng, n_terminals, lockout_loose_share)
    kind = rng.integers(0, 4, n_terminals)
    t_threshold = np.where(t_loose & (kind == 0), 10, t_threshold)
    t_threshold = np.where(t_loose & (kind == 1), 20, t_threshold)
    t_threshold = np.where(t_loose & (kind == 2), -1, t_threshold)
    t_minutes = np.where(t_loose & (kind == 3), 10, t_minutes)
    t_flaky = rng.random(n_terminals) < flaky_share
    installed_days = rng.integers(60, 1500, n_terminals)
    start_us = _us(start)
    t_installed_us = (
        start_us
        - installed_days * US_PER_DAY
        + rng.integers(9 * 60, 17 * 60, n_terminals) * US_PER_MINUTE
    )
    t_ids = np.array([f"T{terminal + 1:06d}" for terminal in range(n_terminals)])
    m_ids = np.array([f"M{merchant + 1:06d}" for merchant in range(n_merchants)])

    # operators: administrator + clerks per terminal; clerk numbers unique within a merchant
    o_rows: list[tuple[int, str, bool, bool, bool, bool, bool, int]] = []
    next_clerk_no = np.ones(n_merchants, dtype=np.int64)
    for terminal in range(n_terminals):
        merchant = int(t_merchant[terminal])
        category = cat.CATEGORIES[m_category[merchant]]
        admin_no = cat.MODELS[t_model[terminal]][2]
        admin_can_transfer = bool(m_transfers[merchant] and t_family[terminal] == 1)
        installed = int(t_installed_us[terminal])
        o_rows.append((terminal, admin_no, True, True, True, admin_can_transfer, True, installed))
        for _ in range(rng.integers(category.clerks[0], category.clerks[1] + 1)):
            no = int(next_clerk_no[merchant])
            next_clerk_no[merchant] += 1
            can_refund = bool(rng.random() < category.refund_clerk_share)
            can_transfer = bool(
                m_transfers[merchant] and t_family[terminal] == 1 and rng.random() < 0.3
            )
            can_manage = bool(rng.random() < 0.05)
            created = int(
                t_installed_us[terminal]
                + rng.integers(0, installed_days[terminal]) * US_PER_DAY * 0.7
            )
            o_rows.append(
                (terminal, f"{no:02d}", False, True, can_refund, can_transfer, can_manage, created)
            )
    n_ops = len(o_rows)
    o_terminal = np.array([row[0] for row in o_rows], dtype=np.int64)
    o_no = np.array([row[1] for row in o_rows])
    o_is_admin = np.array([row[2] for row in o_rows])
    o_can_sale = np.array([row[3] for row in o_rows])
    o_can_refund = np.array([row[4] for row in o_rows])
    o_can_transfer = np.array([row[5] for row in o_rows])
    o_can_manage = np.array([row[6] for row in o_rows]) | o_is_admin
    o_created_us = np.array([row[7] for row in o_rows], dtype=np.int64)
    o_merchant = t_merchant[o_terminal]
    o_ids = np.char.add(np.char.add(t_ids[o_terminal], "-"), o_no)
    t_admin = np.flatnonzero(o_is_admin)
    names = np.char.add(
        np.char.add(np.array(cat.SURNAMES)[rng.integers(0, len(cat.SURNAMES), n_ops)], " "),
        np.array(cat.GIVEN)[rng.integers(0, len(cat.GIVEN), n_ops)],
    )

    def padded(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.flatnonzero(mask)
        counts = np.bincount(o_terminal[idx], minlength=n_terminals)
        width = max(int(counts.max()), 1)
        out = np.zeros((n_terminals, width), dtype=np.int64)
        order = np.argsort(o_terminal[idx], kind="stable")
        idx = idx[order]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(idx.size) - np.repeat(starts, counts)
        out[o_terminal[idx], pos] = idx
        return out, counts

    # Shifts are worked by clerks; an administrator sells only where no clerk can.
    sale_mask = o_can_sale & ~o_is_admin
    t_sale_ops, t_sale_n = padded(sale_mask)
    no_clerk = t_sale_n == 0
    t_sale_ops[no_clerk, 0] = t_admin[no_clerk]
    t_sale_n = np.where(no_clerk, 1, t_sale_n)
    t_refund_ops, t_refund_n = padded(o_can_refund)

    def clock(minutes: np.ndarray) -> list[time]:
        return [
            time(23, 59, 59) if minute >= 1440 else time(int(minute) // 60, int(minute) % 60)
            for minute in minutes
        ]

    merchants = pl.DataFrame(
        {
            "merchant_id": m_ids,
            "name": [
                f"{cat.MERCHANT_WORDS[merchant % len(cat.MERCHANT_WORDS)]} "
                f"{cat.CATEGORY_WORDS[cat.CATEGORY_NAMES[category_code]]} #{merchant + 1}"
                for merchant, category_code in enumerate(m_category)
            ],
            "category": np.array(cat.CATEGORY_NAMES)[m_category],
            "fee_class": np.array(["standard", "discount", "charity"])[m_fee_class],
            "discount_rate_bp": pl.Series(np.where(m_fee_class == 1, m_rate_bp, 0)).cast(pl.Int32),
            "city": np.array(cat.CITIES)[m_city],
            "opens_at": clock(m_open),
            "closes_at": clock(m_close),
            "is_24h": m_is_24h,
        }
    ).with_columns(
        pl.when(pl.col("fee_class") == "discount")
        .then(pl.col("discount_rate_bp"))
        .alias("discount_rate_bp")
    )
    terminals = pl.DataFrame(
        {
            "terminal_id": t_ids,
            "merchant_id": m_ids[t_merchant],
            "model": np.array([model[0] for model in cat.MODELS])[t_model],
            "family": np.array(["esign", "smart"])[t_family],
            "installed_at": pl.Series(t_installed_us).cast(pl.Datetime("us")),
            "lockout_threshold": pl.Series(t_threshold).cast(pl.Int32),
            "lockout_minutes": pl.Series(t_minutes).cast(pl.Int32),
        }
    ).with_columns(
        pl.when(pl.col("lockout_threshold") > 0)
        .then(pl.col("lockout_threshold"))
        .alias("lockout_threshold"),
        pl.when(pl.col("lockout_threshold") > 0)
        .then(pl.col("lockout_minutes"))
        .alias("lockout_minutes"),
    )
    operators = pl.DataFrame(
        {
            "operator_id": o_ids,
            "terminal_id": t_ids[o_terminal],
            "merchant_id": m_ids[o_merchant],
            "operator_no": o_no,
            "name": names,
            "role": np.where(o_is_admin, "admin", "clerk"),
            "can_query": np.ones(n_ops, dtype=bool),
            "can_sale": o_can_sale,
            "can_refund": o_can_refund,
            "can_transfer": o_can_transfer,
            "can_manage": o_can_manage,
            "created_at": pl.Series(o_created_us).cast(pl.Datetime("us")),
            "disabled_at": pl.Series([None] * n_ops, dtype=pl.Datetime("us")),
        }
    )
    return World(
        start=start,
        merchants=merchants,
        terminals=terminals,
        operators=operators,
        m_category=m_category,
        m_size=m_size,
        m_open=m_open,
        m_close=m_close,
        m_is_24h=m_is_24h,
        m_fee_class=m_fee_class,
        m_rate_bp=m_rate_bp,
        m_city=m_city,
        m_profile=m_profile,
        m_transfers=m_transfers,
        t_merchant=t_merchant,
        t_family=t_family,
        t_threshold=t_threshold,
        t_minutes=t_minutes,
        t_flaky=t_flaky,
        t_loose=t_loose,
        t_admin=t_admin,
        t_sale_ops=t_sale_ops,
        t_sale_n=t_sale_n,
        t_refund_ops=t_refund_ops,
        t_refund_n=t_refund_n,
        t_ids=t_ids,
        o_terminal=o_terminal,
        o_merchant=o_merchant,
        o_is_admin=o_is_admin,
        o_can_refund=o_can_refund,
        o_can_sale=o_can_sale,
        o_no=o_no,
        o_ids=o_ids,
        o_created_us=o_created_us,
        profile_cdf=np.stack(profiles),
        start_us=start_us,
    )


def day_start_us(world: World, day: int) -> int:
    return world.start_us + day * US_PER_DAY


def day_date(world: World, day: int) -> date:
    return world.start + timedelta(days=day)


def account_of(card: np.ndarray) -> np.ndarray:
    """The account each card number belongs to: a replacement card's is the account of the
    card it replaced, every other card's its own number.

    >>> account_of(np.array([30_000_123, 35_000_123])).tolist()
    [30000123, 30000123]
    """
    replacement = card % CARD_BLOCK >= REPLACEMENT_OFFSET
    return np.where(replacement, card - REPLACEMENT_OFFSET, card)


def replacement_of(card: int) -> int:
    """The number of the card issued to replace ``card``: another card of the same account,
    in the other half of its block (a replacement's own replacement is its account's first
    number).

    >>> replacement_of(30_000_123), replacement_of(35_000_123)
    (35000123, 30000123)
    """
    return (
        card + REPLACEMENT_OFFSET
        if card % CARD_BLOCK < REPLACEMENT_OFFSET
        else card - REPLACEMENT_OFFSET
    )
