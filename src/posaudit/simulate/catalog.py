"""Merchant categories, cities, terminal models and the fee table: the world's fixed facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

CHANNELS: Final = ("debit_card", "credit_card", "alipay_qr", "wechat_qr", "unionpay_qr")
# Merchant discount rate in basis points of 0.01 % (the fee table of docs/domain.md).
CHANNEL_RATE_BP: Final = np.array([50, 60, 38, 38, 38], dtype=np.int64)
DEBIT_CAP_FEN: Final = 2_000  # debit cards: 20 CNY per transaction at most
DISCOUNT_RATE_BP: Final = (38, 48)  # discount-class merchants, all channels

CITIES: Final = (
    "Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Wuhan",
    "Nanjing", "Xi'an", "Suzhou", "Tianjin", "Chongqing", "Changsha", "Qingdao",
)  # fmt: skip
CITY_WEIGHTS: Final = np.array([14, 12, 11, 10, 8, 8, 7, 6, 5, 5, 5, 4, 3, 2], dtype=float)

# Terminal models: (name, family, admin operator number). esign = electronic-signature POS.
MODELS: Final = (
    ("LANDI A8", "esign", "00"),
    ("PAX S90", "esign", "00"),
    ("Newland ME31", "esign", "00"),
    ("SUNMI P2", "smart", "99"),
    ("PAX A920", "smart", "99"),
)
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
    Category("convenience_store", 0.22, 110, (1, 2), (2, 4), 22, 0.8, (0.10, 0.05, 0.40, 0.40, 0.05),
             0.010, ((420, 1380), (360, 1410)), 0.4, ((8, 1.5, 1), (12.5, 1.5, 0.8), (19, 2.5, 1.2)),
             1.05, 0.1, 0.2, 0.0),
    Category("supermarket", 0.12, 220, (2, 4), (2, 4), 85, 0.9, (0.20, 0.15, 0.30, 0.30, 0.05),
             0.020, ((480, 1320), (450, 1350)), 0.0, ((11, 2, 1), (18.5, 2, 1.4)), 1.25, 0.5, 0.4, 0.0),
    Category("restaurant", 0.18, 70, (1, 2), (1, 3), 95, 0.7, (0.10, 0.15, 0.35, 0.35, 0.05),
             0.010, ((600, 1320), (630, 1290)), 0.0, ((12, 1.0, 1.2), (18.5, 1.3, 1.5)), 1.2, 0.1, 0.2, 0.5),
    Category("cafe", 0.08, 90, (1, 1), (1, 3), 32, 0.5, (0.05, 0.10, 0.40, 0.40, 0.05),
             0.010, ((450, 1260), (480, 1320)), 0.0, ((8.5, 1.5, 1.3), (15, 2.5, 1)), 1.15, 0.0, 0.3, 0.3),
    Category("pharmacy", 0.08, 50, (1, 2), (1, 3), 60, 0.9, (0.30, 0.10, 0.25, 0.25, 0.10),
             0.015, ((480, 1320),), 0.1, ((10, 2.5, 1), (18, 2.5, 1)), 0.95, 0.2, 0.5, 0.0),
    Category("petrol_station", 0.06, 170, (2, 4), (2, 4), 260, 0.5, (0.30, 0.30, 0.15, 0.15, 0.10),
             0.010, ((360, 1380),), 0.6, ((8, 2, 1.2), (17.5, 2, 1.3)), 1.0, 0.5, 0.3, 0.2),
    Category("apparel", 0.10, 30, (1, 2), (1, 3), 300, 0.8, (0.20, 0.30, 0.20, 0.20, 0.10),
             0.030, ((600, 1320),), 0.0, ((15, 3, 1), (20, 1.5, 1.2)), 1.4, 0.0, 0.6, 0.2),
    Category("electronics", 0.06, 12, (1, 2), (1, 3), 1500, 1.0, (0.20, 0.50, 0.10, 0.10, 0.10),
             0.030, ((600, 1260),), 0.0, ((15, 3, 1),), 1.5, 0.0, 0.6, 0.3),
    Category("hotel", 0.05, 20, (1, 2), (2, 4), 450, 0.6, (0.10, 0.50, 0.15, 0.15, 0.10),
             0.030, ((0, 1440),), 1.0, ((14, 3, 1), (21, 2, 0.8)), 1.3, 0.0, 0.8, 0.5),
    Category("charity", 0.03, 6, (1, 1), (1, 2), 100, 1.0, (0.30, 0.10, 0.20, 0.30, 0.10),
             0.010, ((540, 1080),), 0.0, ((11, 3, 1),), 0.6, 0.0, 0.5, 0.6),
)  # fmt: skip
CATEGORY_NAMES: Final = tuple(category.name for category in CATEGORIES)

MERCHANT_WORDS: Final = (
    "Golden", "Lucky", "Harmony", "Sunrise", "Jade", "Red Lantern", "Peach", "Bamboo",
    "Pearl", "Lotus", "Dragon", "Phoenix", "Everbright", "Ocean", "Mountain", "Prosper",
)  # fmt: skip
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
