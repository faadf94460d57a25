"""Merchant categories, cities, terminal models and the fee table: the world's fixed facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from posaudit.detect import fees

CHANNELS: Final = fees.CARD_AND_QR_CHANNELS
# The fee table of docs/domain.md, defined once in posaudit.detect.fees (the fee audit
# recomputes from the same table): rate in basis points of 0.01 % by channel.
CHANNEL_RATE_BP: Final = np.array([fees.CHANNEL_RATE_BP[c] for c in CHANNELS], dtype=np.int64)
DEBIT_CAP_FEN: Final = fees.DEBIT_CAP_FEN  # debit cards: 20 CNY per transaction at most
DISCOUNT_RATE_BP: Final = fees.DISCOUNT_RATE_BP  # discount-class merchants, all channels

# Cities and their weights in the draw of a merchant's city.
_CITY_WEIGHTS: Final = (
    ("Shanghai", 14),
    ("Beijing", 12),
    ("Shenzhen", 11),
    ("Guangzhou", 10),
    ("Hangzhou", 8),
    ("Chengdu", 8),
    ("Wuhan", 7),
    ("Nanjing", 6),
    ("Xi'an", 5),
    ("Suzhou", 5),
    ("Tianjin", 5),
    ("Chongqing", 4),
    ("Changsha", 3),
    ("Qingdao", 2),
)
CITIES: Final = tuple(city for city, _ in _CITY_WEIGHTS)
CITY_WEIGHTS: Final = np.array([weight for _, weight in _CITY_WEIGHTS], dtype=float)

# Terminal models: (name, family, admin operator number). esign = electronic-signature POS.
MODELS: Final = (
    ("LANDI A8", "esign", "00"),
    ("PAX S90", "esign", "00"),
    ("Newland ME31", "esign", "00"),
    ("SUNMI P2", "smart", "99"),
    ("PAX A920", "smart", "99"),
)
# The PIN lengths each terminal family accepts, fewest and most digits (docs/domain.md):
# operators are told to choose six, which every family takes.
PIN_DIGITS: Final = {"esign": (4, 6), "smart": (4, 8)}
# The acquirer's default administrator PIN by family; digests only ever leave the simulator.
DEFAULT_ADMIN_PIN: Final = {"esign": "000000", "smart": "123456"}


@dataclass(frozen=True)
class Category:
    name: str
    weight: float  # share of merchants
    sales_per_day: float  # mean sales per terminal-day for a merchant of size 1
    terminals: tuple[int, int]
    clerks: tuple[int, int]  # clerks per terminal
    median_yuan: float
    sigma: float
    channel_mix: tuple[float, float, float, float, float]
    refund_share: float
    hours: tuple[tuple[int, int], ...]  # opening templates, minutes of day (open, close)
    share_24h: float
    peaks: tuple[tuple[float, float, float], ...]  # (hour, width hours, weight)
    weekend: float  # weekend traffic factor
    discount_share: float  # share of these merchants in the discount fee class
    refund_clerk_share: float  # clerks trusted with refunds
    round_share: float  # sales in round amounts (deposits, set prices)


CATEGORIES: Final = (
    Category(
        name="convenience_store",
        weight=0.22,
        sales_per_day=110,
        terminals=(1, 2),
        clerks=(2, 4),
        median_yuan=22,
        sigma=0.8,
        channel_mix=(0.10, 0.05, 0.40, 0.40, 0.05),
        refund_share=0.010,
        hours=((420, 1380), (360, 1410)),
        share_24h=0.4,
        peaks=((8, 1.5, 1), (12.5, 1.5, 0.8), (19, 2.5, 1.2)),
        weekend=1.05,
        discount_share=0.1,
        refund_clerk_share=0.2,
        round_share=0.0,
    ),
    Category(
        name="supermarket",
        weight=0.12,
        sales_per_day=220,
        terminals=(2, 4),
        clerks=(2, 4),
        median_yuan=85,
        sigma=0.9,
        channel_mix=(0.20, 0.15, 0.30, 0.30, 0.05),
        refund_share=0.020,
        hours=((480, 1320), (450, 1350)),
        share_24h=0.0,
        peaks=((11, 2, 1), (18.5, 2, 1.4)),
        weekend=1.25,
        discount_share=0.5,
        refund_clerk_share=0.4,
        round_share=0.0,
    ),
    Category(
        name="restaurant",
        weight=0.18,
        sales_per_day=70,
        terminals=(1, 2),
        clerks=(1, 3),
        median_yuan=95,
        sigma=0.7,
        channel_mix=(0.10, 0.15, 0.35, 0.35, 0.05),
        refund_share=0.010,
        hours=((600, 1320), (630, 1290)),
        share_24h=0.0,
        peaks=((12, 1.0, 1.2), (18.5, 1.3, 1.5)),
        weekend=1.2,
        discount_share=0.1,
        refund_clerk_share=0.2,
        round_share=0.5,
    ),
    Category(
        name="cafe",
        weight=0.08,
        sales_per_day=90,
        terminals=(1, 1),
        clerks=(1, 3),
        median_yuan=32,
        sigma=0.5,
        channel_mix=(0.05, 0.10, 0.40, 0.40, 0.05),
        refund_share=0.010,
        hours=((450, 1260), (480, 1320)),
        share_24h=0.0,
        peaks=((8.5, 1.5, 1.3), (15, 2.5, 1)),
        weekend=1.15,
        discount_share=0.0,
        refund_clerk_share=0.3,
        round_share=0.3,
    ),
    Category(
        name="pharmacy",
        weight=0.08,
        sales_per_day=50,
        terminals=(1, 2),
        clerks=(1, 3),
        median_yuan=60,
        sigma=0.9,
        channel_mix=(0.30, 0.10, 0.25, 0.25, 0.10),
        refund_share=0.015,
        hours=((480, 1320),),
        share_24h=0.1,
        peaks=((10, 2.5, 1), (18, 2.5, 1)),
        weekend=0.95,
        discount_share=0.2,
        refund_clerk_share=0.5,
        round_share=0.0,
    ),
    Category(
        name="petrol_station",
        weight=0.06,
        sales_per_day=170,
        terminals=(2, 4),
        clerks=(2, 4),
        median_yuan=260,
        sigma=0.5,
        channel_mix=(0.30, 0.30, 0.15, 0.15, 0.10),
        refund_share=0.010,
        hours=((360, 1380),),
        share_24h=0.6,
        peaks=((8, 2, 1.2), (17.5, 2, 1.3)),
        weekend=1.0,
        discount_share=0.5,
        refund_clerk_share=0.3,
        round_share=0.2,
    ),
    Category(
        name="apparel",
        weight=0.10,
        sales_per_day=30,
        terminals=(1, 2),
        clerks=(1, 3),
        median_yuan=300,
        sigma=0.8,
        channel_mix=(0.20, 0.30, 0.20, 0.20, 0.10),
        refund_share=0.030,
        hours=((600, 1320),),
        share_24h=0.0,
        peaks=((15, 3, 1), (20, 1.5, 1.2)),
        weekend=1.4,
        discount_share=0.0,
        refund_clerk_share=0.6,
        round_share=0.2,
    ),
    Category(
        name="electronics",
        weight=0.06,
        sales_per_day=12,
        terminals=(1, 2),
        clerks=(1, 3),
        median_yuan=1500,
        sigma=1.0,
        channel_mix=(0.20, 0.50, 0.10, 0.10, 0.10),
        refund_share=0.030,
        hours=((600, 1260),),
        share_24h=0.0,
        peaks=((15, 3, 1),),
        weekend=1.5,
        discount_share=0.0,
        refund_clerk_share=0.6,
        round_share=0.3,
    ),
    Category(
        name="hotel",
        weight=0.05,
        sales_per_day=20,
        terminals=(1, 2),
        clerks=(2, 4),
        median_yuan=450,
        sigma=0.6,
        channel_mix=(0.10, 0.50, 0.15, 0.15, 0.10),
        refund_share=0.030,
        hours=((0, 1440),),
        share_24h=1.0,
        peaks=((14, 3, 1), (21, 2, 0.8)),
        weekend=1.3,
        discount_share=0.0,
        refund_clerk_share=0.8,
        round_share=0.5,
    ),
    Category(
        name="charity",
        weight=0.03,
        sales_per_day=6,
        terminals=(1, 1),
        clerks=(1, 2),
        median_yuan=100,
        sigma=1.0,
        channel_mix=(0.30, 0.10, 0.20, 0.30, 0.10),
        refund_share=0.010,
        hours=((540, 1080),),
        share_24h=0.0,
        peaks=((11, 3, 1),),
        weekend=0.6,
        discount_share=0.0,
        refund_clerk_share=0.5,
        round_share=0.6,
    ),
)
CATEGORY_NAMES: Final = tuple(category.name for category in CATEGORIES)

MERCHANT_WORDS: Final = (
    "Golden",
    "Lucky",
    "Harmony",
    "Sunrise",
    "Jade",
    "Red Lantern",
    "Peach",
    "Bamboo",
    "Pearl",
    "Lotus",
    "Dragon",
    "Phoenix",
    "Everbright",
    "Ocean",
    "Mountain",
    "Prosper",
)
CATEGORY_WORDS: Final = {
    "convenience_store": "Mart",
    "supermarket": "Supermarket",
    "restaurant": "Kitchen",
    "cafe": "Cafe",
    "pharmacy": "Pharmacy",
    "petrol_station": "Petrol",
    "apparel": "Fashion",
    "electronics": "Digital",
    "hotel": "Hotel",
    "charity": "Charity Fund",
}
SURNAMES: Final = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu")
GIVEN: Final = (
    "Wei",
    "Fang",
    "Na",
    "Min",
    "Jing",
    "Lei",
    "Jun",
    "Yan",
    "Hao",
    "Ting",
    "Yu",
    "Qiang",
)
