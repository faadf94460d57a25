"""The fee table: what an approved sale costs the merchant, one definition for the whole package.

The acquirer's price list (docs/domain.md, "Fees"): a rate in basis points of the sale amount
(1 bp = 0.01 %) by channel, a cap per debit card sale, a rate of its own for each merchant of
the discount class, and no fee for charities. A fee rounds half up to the fen; a void carries
minus its sale's fee; refunds, transfers and declined or failed records carry none.

The simulator charges from this table and the fee audit (:mod:`posaudit.detect.ledger`)
recomputes from it, in integers only, so a clean world recomputes to zero differences, exact
to the fen, in DuckDB, in Polars and in numpy alike.
"""

from __future__ import annotations

from typing import Final

import numpy as np

# The channels as the store names them, in the simulator's channel order.
CARD_AND_QR_CHANNELS: Final = ("debit_card", "credit_card", "alipay_qr", "wechat_qr", "unionpay_qr")
# Merchant discount rate by channel, in basis points (docs/domain.md, the acquirer's price list).
CHANNEL_RATE_BP: Final[dict[str, int]] = {
    "debit_card": 50,  # 0.50 %
    "credit_card": 60,  # 0.60 %
    "alipay_qr": 38,  # 0.38 %
    "wechat_qr": 38,
    "unionpay_qr": 38,
}
DEBIT_CAP_FEN: Final = 2_000  # debit cards: 20 CNY per sale at most
DISCOUNT_RATE_BP: Final = (38, 48)  # discount-class merchants: 0.38 % to 0.48 %, any channel
CHARITY_RATE_BP: Final = 0
BP_DENOMINATOR: Final = 10_000
HALF: Final = BP_DENOMINATOR // 2


def fee_of(amount_fen: np.ndarray, rate_bp: np.ndarray, *, capped: np.ndarray) -> np.ndarray:
    """The fee of sales of ``amount_fen`` at ``rate_bp``, half up to the fen, and no more than
    :data:`DEBIT_CAP_FEN` where ``capped`` (debit cards).

    >>> fee_of(np.array([10_000, 500_000]), np.array([50, 50]), capped=np.array([True, True]))
    array([  50, 2000])
    """
    fee = (amount_fen * rate_bp + HALF) // BP_DENOMINATOR
    return np.where(capped, np.minimum(fee, DEBIT_CAP_FEN), fee)


def fee_sql(amount: str, rate_bp: str) -> str:
    """The fee of ``amount`` at ``rate_bp`` (SQL expressions) half up to the fen, in integers
    DuckDB and Polars both compute exactly (``/`` of integers is a float in both)."""
    scaled = f"({amount} * {rate_bp} + {HALF})"
    return f"CAST(({scaled} - {scaled} % {BP_DENOMINATOR}) / {BP_DENOMINATOR} AS BIGINT)"


def rate_sql(channel: str, fee_class: str, discount_rate_bp: str) -> str:
    """The rate of a sale in basis points from its channel and its merchant's fee class (no
    ``IN`` list: Polars' SQL reads one as a deprecated ``is_in``)."""
    discount = f"CAST({discount_rate_bp} AS BIGINT)"
    by_channel = " ".join(
        f"WHEN {channel} = '{name}' THEN "
        f"CASE WHEN {fee_class} = 'discount' THEN {discount} ELSE {bp} END"
        for name, bp in CHANNEL_RATE_BP.items()
    )
    return f"CASE WHEN {fee_class} = 'charity' THEN {CHARITY_RATE_BP} {by_channel} ELSE 0 END"
