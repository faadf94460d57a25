"""Merchant typologies: each merchant (or terminal) set against the others of its category.

Three ways a merchant misuses its acquiring, all seen only against its peers:

- ``cash_out_sales`` (套现): credit-card sales just under a round sum, by cards that come back
  the same day and are never refunded or voided, at hours when the category sells next to
  nothing: money drawn from credit lines, not goods sold.
- ``category_misuse`` (跳码): a discount- or charity-class merchant whose amounts, hours and
  channel mix lie most of the way to another category's: a trade that owes the full card rate
  paying the reduced one.
- ``dormant_surge``: a terminal silent for a month or more that comes back among the busiest
  tenth of its category and several times its own earlier trade: a sold or borrowed terminal
  put to someone else's use.

One query (``MERCHANT_TERMINAL_DAYS_SQL``) reduces every transaction to a row per terminal
and day in the store; the category comparisons are made here, on the whole population
(family ``merchants`` is a population family: on Spark it runs on the driver). A category
with fewer than ``min_peers`` other merchants (terminals) is not judged.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.detect.findings import to_findings
from posaudit.detect.registry import derived_query, rule
from posaudit.detect.sentences import DAY, NUMBER, Money, Sentence, Value, Words

FAMILY: Final = "merchants"
HOUR_BINS: Final = 8  # three hours each: 00-03 .. 21-24
ROUND_STEP_FEN: Final = 100_000  # 1,000 CNY: the sums a credit line is drawn in
# "Just under" a round sum: at most a fiftieth (2 %) below it.
NEAR_ROUND_DIVISOR: Final = 50
# ln(amount) is summed in millionths, as an integer: a sum of floats depends on the order the
# engine adds them in, and a finding's score and evidence must not.
LOG_SCALE: Final = 1_000_000
CHANNEL_COLUMNS: Final = {
    "credit_count": "'credit_card'",
    "debit_count": "'debit_card'",
}
RULE_NAMES: Final = ("cash_out_sales", "category_misuse", "dormant_surge", "invented_amounts")
SEVERITY_OF: Final = {name: "medium" for name in RULE_NAMES} | {"invented_amounts": "low"}
US_PER_DAY: Final = 86_400_000_000


def _bins(hour: str, prefix: str, *, count: str = "1") -> str:
    return ",\n".join(
        f"    CAST(SUM(CASE WHEN {hour} >= {3 * b} AND {hour} < {3 * b + 3} "
        f"THEN {count} ELSE 0 END) AS BIGINT) AS {prefix}{b}"
        for b in range(HOUR_BINS)
    )


_SALE: Final = "t.kind = 'sale' AND t.status = 'approved'"
_HOUR: Final = "CAST(EXTRACT(HOUR FROM t.ts) AS INTEGER)"


def _near_round_credit_sales(t: str) -> str:
    """The condition on a transaction (columns prefixed ``t``) of an approved credit sale at
    most 2 % under a multiple of 1,000 CNY, with its card."""
    return (
        f"{t}kind = 'sale' AND {t}status = 'approved' AND {t}channel = 'credit_card' "
        f"AND {t}card_token IS NOT NULL AND {t}amount_fen >= {ROUND_STEP_FEN} "
        f"AND {t}amount_fen % {ROUND_STEP_FEN} <> 0 "
        f"AND ({ROUND_STEP_FEN} - {t}amount_fen % {ROUND_STEP_FEN}) * {NEAR_ROUND_DIVISOR} "
        f"<= {t}amount_fen"
    )


# The store puts its own WITH before a derived query, so the parts are subqueries. Each part
# reads the transactions once and tests a row's kind and status once, in its WHERE: the
# counts of a day's sales are summed per hour first (a few rows per terminal-day), then per
# day (measured: 0.6 s against 0.9 s for one grouping testing every row in every sum, on ten
# million transactions).
#
# Credit sales at most 2 % under a multiple of 1,000 CNY, each with how many such sales its
# card made at the merchant that day.
_NEAR_SQL: Final = f"""(
    SELECT
        CAST(t.terminal_id AS VARCHAR) AS terminal_id,
        CAST(t.merchant_id AS VARCHAR) AS merchant_id,
        CAST(t.card_token AS VARCHAR) AS card_token,
        CAST(t.ts AS DATE) AS day,
        {_HOUR} AS hour,
        t.amount_fen AS amount_fen,
        COUNT(*) OVER (PARTITION BY t.merchant_id, t.card_token, CAST(t.ts AS DATE))
            AS card_day_count
    FROM transactions AS t
    WHERE {_near_round_credit_sales("t.")}
)"""
_CASH_SQL: Final = f"""(
    SELECT
        n.terminal_id AS terminal_id,
        n.day AS day,
        CAST(COUNT(*) AS BIGINT) AS cash_count,
        CAST(SUM(n.amount_fen) AS BIGINT) AS cash_amount_fen,
{_bins("n.hour", "cash_h")}
    FROM {_NEAR_SQL} AS n
    ANTI JOIN (
        SELECT
            CAST(t.merchant_id AS VARCHAR) AS merchant_id,
            CAST(t.card_token AS VARCHAR) AS card_token
        FROM transactions AS t
        WHERE t.kind IN ('refund', 'void') AND t.card_token IS NOT NULL
    ) AS x ON n.merchant_id = x.merchant_id AND n.card_token = x.card_token
    WHERE n.card_day_count >= 2
    GROUP BY n.terminal_id, n.day
)"""
_SALE_HOURS_SQL: Final = f"""(
    SELECT
        CAST(t.terminal_id AS VARCHAR) AS terminal_id,
        CAST(t.merchant_id AS VARCHAR) AS merchant_id,
        CAST(t.ts AS DATE) AS day,
        {_HOUR} AS hour,
        COUNT(*) AS sales,
        SUM(t.amount_fen) AS amount_fen,
        SUM(CAST(ROUND(LN(CAST(t.amount_fen AS DOUBLE)) * {LOG_SCALE}) AS BIGINT)) AS logs,
        SUM(CASE WHEN t.channel = 'credit_card' THEN 1 ELSE 0 END) AS credit,
        SUM(CASE WHEN t.channel = 'debit_card' THEN 1 ELSE 0 END) AS debit,
        SUM(CASE WHEN t.amount_fen % 10000 = 0 THEN 1 ELSE 0 END) AS round
    FROM transactions AS t
    WHERE {_SALE}
    GROUP BY t.terminal_id, t.merchant_id, CAST(t.ts AS DATE), {_HOUR}
)"""
_SALE_DAYS_SQL: Final = f"""(
    SELECT
        s.terminal_id AS terminal_id,
        s.merchant_id AS merchant_id,
        s.day AS day,
        SUM(s.sales) AS sale_count,
        SUM(s.amount_fen) AS sale_amount_fen,
        SUM(s.logs) AS log_amount_sum,
        SUM(s.credit) AS credit_count,
        SUM(s.debit) AS debit_count,
        SUM(s.round) AS round_count,
{_bins("s.hour", "h", count="s.sales")}
    FROM {_SALE_HOURS_SQL} AS s
    GROUP BY s.terminal_id, s.merchant_id, s.day
)"""
_RETURN_DAYS_SQL: Final = """(
    SELECT
        CAST(t.terminal_id AS VARCHAR) AS terminal_id,
        CAST(t.merchant_id AS VARCHAR) AS merchant_id,
        CAST(t.ts AS DATE) AS day,
        COUNT(*) AS return_count
    FROM transactions AS t
    WHERE t.kind IN ('refund', 'void') AND t.status = 'approved'
    GROUP BY t.terminal_id, t.merchant_id, CAST(t.ts AS DATE)
)"""
# Every terminal-day with any record has a row, a day without an approved sale too.
_DAYS_SQL: Final = """(
    SELECT
        CAST(t.terminal_id AS VARCHAR) AS terminal_id,
        CAST(t.merchant_id AS VARCHAR) AS merchant_id,
        CAST(t.ts AS DATE) AS day
    FROM transactions AS t
    GROUP BY t.terminal_id, t.merchant_id, CAST(t.ts AS DATE)
)"""


def _counted(column: str, part: str = "s") -> str:
    return f"CAST(COALESCE({part}.{column}, 0) AS BIGINT) AS {column}"


MERCHANT_TERMINAL_DAYS_SQL: Final = f"""
SELECT
    d.terminal_id, d.merchant_id, d.day,
    {", ".join(_counted(c) for c in ("sale_count", "sale_amount_fen", "log_amount_sum"))},
    {", ".join(_counted(c) for c in ("credit_count", "debit_count", "round_count"))},
    {", ".join(_counted(f"h{b}") for b in range(HOUR_BINS))},
    {_counted("return_count", "r")},
    {_counted("cash_count", "c")},
    {_counted("cash_amount_fen", "c")},
    {", ".join(_counted(f"cash_h{b}", "c") for b in range(HOUR_BINS))}
FROM {_DAYS_SQL} AS d
LEFT JOIN {_SALE_DAYS_SQL} AS s
    ON d.terminal_id = s.terminal_id AND d.merchant_id = s.merchant_id AND d.day = s.day
LEFT JOIN {_RETURN_DAYS_SQL} AS r
    ON d.terminal_id = r.terminal_id AND d.merchant_id = r.merchant_id AND d.day = r.day
LEFT JOIN {_CASH_SQL} AS c ON d.terminal_id = c.terminal_id AND d.day = c.day
"""
# The cards of a merchant-day's near-round credit sales, two or more (the cash-like sales if
# the card is never refunded or voided there).
_CASH_LIKE_CARDS_SQL: Final = f"""
SELECT
    CAST(t.merchant_id AS VARCHAR) AS merchant_id,
    CAST(t.card_token AS VARCHAR) AS card_token,
    CAST(t.ts AS DATE) AS day
FROM transactions AS t
WHERE {_near_round_credit_sales("t.")}
GROUP BY CAST(t.merchant_id AS VARCHAR), CAST(t.card_token AS VARCHAR), CAST(t.ts AS DATE)
HAVING COUNT(*) >= 2
"""
merchant_terminal_days = derived_query(
    "merchant_terminal_days",
    sql=MERCHANT_TERMINAL_DAYS_SQL,
    source="transactions",
    time_column="day",
    per_day=True,
    reaches="kind IN ('refund', 'void') AND card_token IS NOT NULL",
    # a cash-like sale's day reads every refund and void to its card at the merchant
    reached_by=_CASH_LIKE_CARDS_SQL,
    reach_key=("merchant_id", "card_token"),
)
merchant_terminal_days.__doc__ = """Every terminal's day in a row (``MERCHANT_TERMINAL_DAYS_SQL``).

Columns: ``terminal_id``, ``merchant_id``, ``day``; of approved sales ``sale_count``,
``sale_amount_fen``, ``log_amount_sum`` (of ln amount, in millionths), ``credit_count``,
``debit_count``, ``round_count`` (whole 100 CNY) and ``h0`` .. ``h7`` (three-hour bins);
``return_count`` (approved refunds and voids); ``cash_count``, ``cash_amount_fen`` and
``cash_h0`` .. ``cash_h7``:
credit sales at most 2 % under a multiple of 1,000 CNY by a card that made another such sale
at the merchant that day and never had a refund or void there.
"""

CATEGORY_WORDS: Final[dict[str, tuple[str, str]]] = {
    "convenience_store": ("convenience store", "便利店"),
    "supermarket": ("supermarket", "超市"),
    "restaurant": ("restaurant", "餐厅"),
    "cafe": ("cafe", "咖啡馆"),
    "pharmacy": ("pharmacy", "药店"),
    "petrol_station": ("petrol station", "加油站"),
    "apparel": ("apparel", "服装店"),
    "electronics": ("electronics", "电子产品店"),
    "hotel": ("hotel", "酒店"),
    "charity": ("charity", "公益机构"),
}
FEE_CLASS_WORDS: Final[dict[str, tuple[str, str]]] = {
    "standard": ("standard", "标准"),
    "discount": ("discount", "优惠"),
    "charity": ("charity", "公益"),
}


def _categories(merchants: pl.LazyFrame) -> pl.LazyFrame:
    return merchants.select(
        pl.col("merchant_id").cast(pl.String),
        pl.col("category").cast(pl.String),
        pl.col("fee_class").cast(pl.String),
    )


def _day_start(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Datetime("us"))


def _day_end(column: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Datetime("us")) + pl.duration(days=1)) - pl.duration(
        microseconds=1
    )


# -- cash-out ---------------------------------------------------------------------------------

CASH_OUT_SALES: Final = Sentence(
    en="Merchant {merchant_id} took {sales} credit sales just under round sums totalling "
    "{amount} from {first_day} to {last_day}, {odd_sales} of them at hours when "
    "{category} merchants sell almost nothing, by cards that came back the same day and were "
    "never refunded; {min_sales} such sales in a day make cash-out",
    zh="商户 {merchant_id} 于 {first_day} 至 {last_day} 受理略低于整数金额的信用卡消费 {sales} 笔，"
    "合计 {amount}，其中 {odd_sales} 笔发生在{category}同行几乎无交易的时段，且为同日重复刷卡、"
    "从未退款；单日达到 {min_sales} 笔即视为套现",
    fields={
        "merchant_id": Value(),
        "sales": Value(NUMBER),
        "amount": Money(),
        "first_day": Value(DAY),
        "last_day": Value(DAY),
        "odd_sales": Value(NUMBER),
        "category": Words(CATEGORY_WORDS),
        "min_sales": Value(NUMBER),
    },
)


def _hour_bin_names(odd: pl.Expr) -> pl.Expr:
    """The odd three-hour bins as text ('00-03, 03-06') from a list of bin numbers."""
    return odd.list.eval(
        pl.format(
            "{}-{}",
            (pl.element() * 3).cast(pl.String).str.zfill(2),
            (pl.element() * 3 + 3).cast(pl.String).str.zfill(2),
        )
    ).list.join(", ")


@rule(
    family=FAMILY,
    entity_type="merchant",
    partition_key="merchant_id",
    lookback=timedelta(days=30),
    scenarios=("cash_out_sales",),
)
def cash_out_sales(
    merchant_terminal_days: pl.LazyFrame,
    merchants: pl.LazyFrame,
    *,
    min_sales: int = 3,
    odd_hour_percent: float = 2.0,
    min_peers: int = 1,
    merge_days: int = 7,
) -> pl.LazyFrame:
    """Merchants whose repeat-card credit sales just under round sums come at hours their
    category hardly sells: ``min_sales`` or more in a day in three-hour bins holding under
    ``odd_hour_percent`` % of the category's sales (merchant-days ``merge_days`` apart or
    closer make one finding)."""
    bins = [f"h{b}" for b in range(HOUR_BINS)]
    by_merchant_day = (
        merchant_terminal_days.group_by(pl.col("merchant_id").cast(pl.String), "day")
        .agg(
            pl.col(*bins, "sale_count", "cash_amount_fen").sum(),
            *[pl.col(f"cash_h{b}").sum() for b in range(HOUR_BINS)],
        )
        .join(_categories(merchants), on="merchant_id", how="inner")
    )
    category = by_merchant_day.group_by("category").agg(
        pl.col("merchant_id").n_unique().alias("category_merchants"),
        *[
            (100 * pl.col(f"h{b}").sum() / pl.col("sale_count").sum()).alias(f"share{b}")
            for b in range(HOUR_BINS)
        ],
    )
    odd = [pl.col(f"share{b}") < odd_hour_percent for b in range(HOUR_BINS)]
    days = (
        by_merchant_day.join(category, on="category", how="inner")
        .filter(pl.col("category_merchants") - 1 >= min_peers)
        .with_columns(
            pl.sum_horizontal(
                [pl.when(odd[b]).then(pl.col(f"cash_h{b}")).otherwise(0) for b in range(HOUR_BINS)]
            ).alias("odd_sales"),
            pl.sum_horizontal([pl.col(f"cash_h{b}") for b in range(HOUR_BINS)]).alias("sales"),
            pl.concat_list([pl.when(odd[b]).then(pl.lit(b)) for b in range(HOUR_BINS)])
            .list.drop_nulls()
            .alias("odd_bins"),
        )
        .filter(pl.col("odd_sales") >= min_sales)
        .sort("merchant_id", "day")
        .with_columns(
            (
                (pl.col("day") - pl.col("day").shift(1)).dt.total_days().fill_null(merge_days + 1)
                > merge_days
            )
            .cum_sum()
            .over("merchant_id")
            .alias("episode")
        )
    )
    runs = days.group_by("merchant_id", "episode").agg(
        pl.col("day").min().alias("first_day"),
        pl.col("day").max().alias("last_day"),
        pl.col("day").len().alias("days"),
        pl.col("sales").sum(),
        pl.col("cash_amount_fen").sum(),
        pl.col("odd_sales").sum(),
        pl.col("category").first(),
        pl.col("odd_bins").first(),
    )
    return to_findings(
        runs.with_columns(
            _day_start("first_day").alias("window_start"), _day_end("last_day").alias("window_end")
        ),
        rule="cash_out_sales",
        family=FAMILY,
        entity_type="merchant",
        severity="medium",
        score=(0.6 + 0.04 * (pl.col("odd_sales") - min_sales)).clip(0.6, 1.0),
        summary=CASH_OUT_SALES.expr(
            merchant_id="merchant_id",
            sales="sales",
            amount="cash_amount_fen",
            first_day=pl.col("first_day").cast(pl.String),
            last_day=pl.col("last_day").cast(pl.String),
            odd_sales="odd_sales",
            category="category",
            min_sales=pl.lit(min_sales),
        ),
        evidence={
            "days": pl.col("days"),
            "sales": pl.col("sales"),
            "cash_amount_fen": pl.col("cash_amount_fen"),
            "odd_hour_sales": pl.col("odd_sales"),
            "category": pl.col("category"),
            "odd_hours": _hour_bin_names(pl.col("odd_bins")),
            "min_sales": pl.lit(min_sales),
            "odd_hour_percent": pl.lit(odd_hour_percent),
        },
        entity_id="merchant_id",
    )


# -- category misuse --------------------------------------------------------------------------

CATEGORY_MISUSE: Final = Sentence(
    en="Merchant {merchant_id}, a {fee_class}-class {category}, sells like a {behaves_as}: "
    "its amounts, hours and channels lie {shift} % of the way from its category to that one "
    "over {sales} sales; {min_shift} % makes category misuse",
    zh="商户 {merchant_id} 登记为{fee_class}费率的{category}，"
    "但 {sales} 笔消费的金额、时段与支付渠道已有 {shift}% 偏向{behaves_as}；"
    "达到 {min_shift}% 即视为跳码",
    fields={
        "merchant_id": Value(),
        "fee_class": Words(FEE_CLASS_WORDS),
        "category": Words(CATEGORY_WORDS),
        "behaves_as": Words(CATEGORY_WORDS),
        "shift": Value(NUMBER),
        "sales": Value(NUMBER),
        "min_shift": Value(NUMBER),
    },
)
# The profile a merchant's sales draw over its window: the mean ln amount, the shares of
# credit, debit and whole-100-CNY sales, and of each three-hour bin.
PROFILE: Final = (
    "log_amount",
    "credit",
    "debit",
    "round",
    *(f"hour{b}" for b in range(HOUR_BINS)),
)


def _merchant_profiles(
    merchant_terminal_days: pl.LazyFrame, merchants: pl.LazyFrame, min_sales: int
) -> pl.LazyFrame:
    count = pl.col("sale_count")
    return (
        merchant_terminal_days.group_by(pl.col("merchant_id").cast(pl.String))
        .agg(
            pl.col(
                "sale_count",
                "log_amount_sum",
                "credit_count",
                "debit_count",
                "round_count",
                *(f"h{b}" for b in range(HOUR_BINS)),
            ).sum()
        )
        .filter(count >= min_sales)
        .select(
            "merchant_id",
            "sale_count",
            (pl.col("log_amount_sum") / LOG_SCALE / count).alias("log_amount"),
            (pl.col("credit_count") / count).alias("credit"),
            (pl.col("debit_count") / count).alias("debit"),
            (pl.col("round_count") / count).alias("round"),
            *((pl.col(f"h{b}") / count).alias(f"hour{b}") for b in range(HOUR_BINS)),
        )
        .join(_categories(merchants), on="merchant_id", how="inner")
    )


@rule(
    family=FAMILY,
    entity_type="merchant",
    partition_key="merchant_id",
    lookback=timedelta(days=30),
    scenarios=("category_misuse",),
)
def category_misuse(
    merchant_terminal_days: pl.LazyFrame,
    merchants: pl.LazyFrame,
    *,
    min_shift_percent: int = 50,
    min_spread_multiple: float = 3.0,
    min_peers: int = 2,
    min_sales: int = 50,
) -> pl.LazyFrame:
    """Discount- and charity-class merchants whose sales profile (amounts, hours, channels)
    lies ``min_shift_percent`` % or more of the way from their category's to another's, and
    ``min_spread_multiple`` times the world's typical merchant-to-category distance from
    their own (categories of ``min_peers`` other merchants or more; merchants of
    ``min_sales`` sales or more)."""
    profiles = _merchant_profiles(merchant_terminal_days, merchants, min_sales)
    # A category's profile is that of its standard-class merchants where it has min_peers of
    # them: misuse hides among the discount and charity classes, so they are not its measure.
    # A category without enough (charity) is measured by all its merchants.
    standard = (pl.col("fee_class") == "standard").cast(pl.Int64)
    sums = profiles.group_by("category").agg(
        pl.len().alias("members"),
        standard.sum().alias("standard_members"),
        *(pl.col(f).sum().alias(f"sum_{f}") for f in PROFILE),
        *((pl.col(f) * standard).sum().alias(f"standard_sum_{f}") for f in PROFILE),
    )
    by_standard = pl.col("standard_members") - standard >= min_peers
    # each merchant's own category without it (leave one out), and how far it lies from it
    own = profiles.join(sums, on="category", how="inner").with_columns(
        pl.when(by_standard)
        .then(pl.col("standard_members") - standard)
        .otherwise(pl.col("members") - 1)
        .alias("peers"),
        *(
            pl.when(by_standard)
            .then(
                (pl.col(f"standard_sum_{f}") - pl.col(f) * standard)
                / (pl.col("standard_members") - standard)
            )
            .otherwise((pl.col(f"sum_{f}") - pl.col(f)) / (pl.col("members") - 1))
            .alias(f"own_{f}")
            for f in PROFILE
        ),
    )
    # one scale per feature: the spread of standard-class merchants about their category, pooled
    # (floored: a feature every merchant shares the same way says nothing)
    scale = own.filter((pl.col("peers") > 0) & (pl.col("fee_class") == "standard")).select(
        *(
            (pl.col(f) - pl.col(f"own_{f}"))
            .pow(2)
            .mean()
            .sqrt()
            .clip(lower_bound=1e-6)
            .alias(f"scale_{f}")
            for f in PROFILE
        )
    )
    own = own.join(scale, how="cross").with_columns(
        *(
            ((pl.col(f) - pl.col(f"own_{f}")) / pl.col(f"scale_{f}")).fill_nan(0.0).alias(f"v_{f}")
            for f in PROFILE
        )
    )
    own = own.with_columns(
        pl.sum_horizontal([pl.col(f"v_{f}").pow(2) for f in PROFILE]).sqrt().alias("distance")
    )
    typical = own.filter(
        (pl.col("peers") >= min_peers) & (pl.col("fee_class") == "standard")
    ).select(pl.col("distance").median().alias("typical"))
    centres = sums.filter(pl.col("members") >= min_peers).select(
        pl.col("category").alias("other"),
        *(
            pl.when(pl.col("standard_members") >= min_peers)
            .then(pl.col(f"standard_sum_{f}") / pl.col("standard_members"))
            .otherwise(pl.col(f"sum_{f}") / pl.col("members"))
            .alias(f"other_{f}")
            for f in PROFILE
        ),
    )
    delta = {f: (pl.col(f"other_{f}") - pl.col(f"own_{f}")) / pl.col(f"scale_{f}") for f in PROFILE}
    length2 = pl.sum_horizontal([d.pow(2) for d in delta.values()])
    dot = pl.sum_horizontal([pl.col(f"v_{f}") * delta[f] for f in PROFILE])
    candidates = (
        own.filter(
            pl.col("fee_class").is_in(["discount", "charity"]) & (pl.col("peers") >= min_peers)
        )
        .join(centres, how="cross")
        .filter(pl.col("other") != pl.col("category"))
        .join(typical, how="cross")
        .with_columns((dot / length2).alias("shift"), length2.sqrt().alias("gap"))
        .with_columns((pl.col("shift") * pl.col("gap")).alias("along"))
        .filter(
            (pl.col("shift") * 100 >= min_shift_percent)
            & (pl.col("along") >= min_spread_multiple * pl.col("typical"))
        )
        .sort("merchant_id", "shift", descending=[False, True])
        .unique("merchant_id", keep="first", maintain_order=True)
    )
    window = merchant_terminal_days.select(
        pl.col("day").min().alias("first_day"), pl.col("day").max().alias("last_day")
    )
    shift_percent = (pl.col("shift") * 100).round(0).cast(pl.Int64)
    return to_findings(
        candidates.join(window, how="cross").with_columns(
            _day_start("first_day").alias("window_start"),
            _day_end("last_day").alias("window_end"),
            shift_percent.alias("shift_percent"),
        ),
        rule="category_misuse",
        family=FAMILY,
        entity_type="merchant",
        severity="medium",
        score=(0.5 + 0.5 * pl.col("shift")).clip(0.5, 1.0).round(4),
        summary=CATEGORY_MISUSE.expr(
            merchant_id="merchant_id",
            fee_class="fee_class",
            category="category",
            behaves_as="other",
            shift="shift_percent",
            sales="sale_count",
            min_shift=pl.lit(min_shift_percent),
        ),
        evidence={
            "fee_class": pl.col("fee_class"),
            "category": pl.col("category"),
            "behaves_as": pl.col("other"),
            "shift_percent": pl.col("shift_percent"),
            "distance": (pl.col("along") / pl.col("typical")).round(2),
            "sales": pl.col("sale_count"),
            "min_shift_percent": pl.lit(min_shift_percent),
            "min_spread_multiple": pl.lit(min_spread_multiple),
        },
        entity_id="merchant_id",
    )


# -- dormant terminal surge -------------------------------------------------------------------

DORMANT_SURGE: Final = Sentence(
    en="Terminal {terminal_id} of merchant {merchant_id} was silent {silent_days} days and then "
    "made {daily} sales a day from {wake_day} ({amount} a day), {jump} times its {before} "
    "before and in the busiest tenth of {category} terminal-days (from {top})",
    zh="商户 {merchant_id} 的终端 {terminal_id} 沉寂 {silent_days} 天后，"
    "自 {wake_day} 起日均消费 {daily} 笔（日均 {amount}），为此前日均 {before} 笔的 {jump} 倍，"
    "进入{category}终端日交易量前十分之一（{top} 笔起）",
    fields={
        "terminal_id": Value(),
        "merchant_id": Value(),
        "silent_days": Value(NUMBER),
        "daily": Value(NUMBER),
        "amount": Money(),
        "wake_day": Value(DAY),
        "jump": Value(NUMBER),
        "before": Value(NUMBER),
        "category": Words(CATEGORY_WORDS),
        "top": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="terminal_id",
    lookback=timedelta(days=60),
    scenarios=("dormant_surge",),
)
def dormant_surge(
    merchant_terminal_days: pl.LazyFrame,
    merchants: pl.LazyFrame,
    *,
    min_silent_days: int = 30,
    min_jump: int = 3,
    top_percent: int = 10,
    surge_days: int = 7,
    min_peers: int = 3,
) -> pl.LazyFrame:
    """Terminals back after ``min_silent_days`` or more without a sale whose sales a day
    (the median of the ``surge_days`` days from their return) reach the busiest
    ``top_percent`` % of their category's terminal-days and ``min_jump`` times their own
    before the silence (categories of ``min_peers`` other terminals or more).

    Volume is counted in sales, not money: a category's money per day is swayed by a few
    merchants' large tickets, its number of sales far less."""
    days = (
        merchant_terminal_days.filter(pl.col("sale_count") > 0)
        .select(
            pl.col("terminal_id").cast(pl.String),
            pl.col("merchant_id").cast(pl.String),
            "day",
            "sale_count",
            "sale_amount_fen",
        )
        .join(_categories(merchants).drop("fee_class"), on="merchant_id", how="inner")
    )
    top = days.group_by("category").agg(
        pl.col("terminal_id").n_unique().alias("terminals"),
        pl.col("sale_count").quantile(1 - top_percent / 100, "linear").alias("top_sales"),
    )
    wakes = (
        days.sort("terminal_id", "day")
        .with_columns(pl.col("day").shift(1).over("terminal_id").alias("last_before"))
        .with_columns(
            ((pl.col("day") - pl.col("last_before")).dt.total_days() - 1).alias("silent_days")
        )
        .filter(pl.col("silent_days") >= min_silent_days)
        .select("terminal_id", pl.col("day").alias("wake_day"), "last_before", "silent_days")
    )
    paired = days.join(wakes, on="terminal_id", how="inner")
    offset = (pl.col("day") - pl.col("wake_day")).dt.total_days()
    before = (
        paired.filter(offset < 0)
        .filter((pl.col("last_before") - pl.col("day")).dt.total_days() < surge_days * 2)
        .group_by("terminal_id", "wake_day")
        .agg(pl.col("sale_count").mean().alias("before_sales"))
    )
    after = (
        paired.filter((offset >= 0) & (offset < surge_days))
        .group_by("terminal_id", "wake_day")
        .agg(
            pl.col("merchant_id").first(),
            pl.col("category").first(),
            pl.col("silent_days").first(),
            pl.col("sale_count").median().alias("daily_sales"),
            pl.col("sale_amount_fen").median().alias("daily_fen"),
            pl.col("day").max().alias("last_day"),
        )
    )
    hits = (
        after.join(before, on=["terminal_id", "wake_day"], how="inner")
        .join(top, on="category", how="inner")
        .filter(
            (pl.col("terminals") - 1 >= min_peers)
            & (pl.col("daily_sales") >= pl.col("top_sales"))
            & (pl.col("daily_sales") >= min_jump * pl.col("before_sales"))
        )
        .with_columns(
            (pl.col("daily_sales") / pl.col("before_sales")).round(0).cast(pl.Int64).alias("jump"),
            pl.col("daily_sales").round(0).cast(pl.Int64),
            pl.col("daily_fen").round(0).cast(pl.Int64),
            pl.col("before_sales").round(0).cast(pl.Int64),
            pl.col("top_sales").round(0).cast(pl.Int64),
            _day_start("wake_day").alias("window_start"),
            _day_end("last_day").alias("window_end"),
        )
    )
    return to_findings(
        hits,
        rule="dormant_surge",
        family=FAMILY,
        entity_type="terminal",
        severity="medium",
        score=(0.5 + 0.05 * pl.col("jump")).clip(0.5, 1.0),
        summary=DORMANT_SURGE.expr(
            terminal_id="terminal_id",
            merchant_id="merchant_id",
            silent_days="silent_days",
            daily="daily_sales",
            amount="daily_fen",
            wake_day=pl.col("wake_day").cast(pl.String),
            jump="jump",
            before="before_sales",
            category="category",
            top="top_sales",
        ),
        evidence={
            "silent_days": pl.col("silent_days"),
            "wake_day": pl.col("wake_day").cast(pl.String),
            "daily_sales": pl.col("daily_sales"),
            "daily_fen": pl.col("daily_fen"),
            "before_sales": pl.col("before_sales"),
            "jump": pl.col("jump"),
            "category": pl.col("category"),
            "top_sales": pl.col("top_sales"),
            "min_silent_days": pl.lit(min_silent_days),
            "min_jump": pl.lit(min_jump),
            "top_percent": pl.lit(top_percent),
        },
        entity_id="terminal_id",
    )


# -- invented amounts (Benford's first two digits) ------------------------------------------

# Every approved sale's first two digits (of its amount in fen, 10 fen or more), counted per
# merchant and day.
MERCHANT_DIGIT_DAYS_SQL: Final = """
SELECT
    CAST(t.merchant_id AS VARCHAR) AS merchant_id,
    CAST(t.ts AS DATE) AS day,
    CAST(LEFT(CAST(t.amount_fen AS VARCHAR), 2) AS INTEGER) AS digit,
    CAST(COUNT(*) AS BIGINT) AS n
FROM transactions AS t
WHERE t.kind = 'sale' AND t.status = 'approved' AND t.amount_fen >= 10
GROUP BY CAST(t.merchant_id AS VARCHAR), CAST(t.ts AS DATE),
    CAST(LEFT(CAST(t.amount_fen AS VARCHAR), 2) AS INTEGER)
"""
# invented_amounts adds each merchant's digit counts up over the days and reads the first and
# last day of the frame: the kept days read as one row per merchant and digit (on the pair's
# first day) and one empty row per merchant on its last day.
MERCHANT_DIGIT_DAYS_ROLLED_UP: Final = """
SELECT merchant_id, min(day) AS day, digit, CAST(SUM(n) AS BIGINT) AS n
FROM {kept} GROUP BY merchant_id, digit
UNION ALL
SELECT merchant_id, max(day) AS day, min(digit) AS digit, CAST(0 AS BIGINT) AS n
FROM {kept} GROUP BY merchant_id
"""
merchant_digit_days = derived_query(
    "merchant_digit_days",
    sql=MERCHANT_DIGIT_DAYS_SQL,
    source="transactions",
    time_column="day",
    per_day=True,
    rolled_up=MERCHANT_DIGIT_DAYS_ROLLED_UP,
)
merchant_digit_days.__doc__ = """Each merchant's approved sales by day and by the first two
digits of their amount (``MERCHANT_DIGIT_DAYS_SQL``): ``merchant_id``, ``day``, ``digit``
(10-99), ``n``."""

FIRST_TWO: Final = pl.LazyFrame(
    {"digit": list(range(10, 100))}, schema={"digit": pl.Int32}
).with_columns((1.0 + 1.0 / pl.col("digit").cast(pl.Float64)).log10().alias("benford"))
# The spread of a median of several merchants' shares against that of their pooled mean
# (pi / 2 for a normal sample): the reference's own noise, read as fewer amounts.
MEDIAN_EFFICIENCY: Final = 2.0 / math.pi
SPIKES_SHOWN: Final = 5
SPIKE_Z: Final = 1.96
# The round sums people keep under, as first two digits: 20, 50 and 100 (the 1-2-5 series of
# limits and banknotes; 100 stands for 10 of the next power too).
ROUND_PAIRS: Final = (20, 50, 100)


def under_round(under_percent: float) -> pl.Expr:
    """Whether a digit pair lies at most ``under_percent`` % under a round sum of
    ``ROUND_PAIRS`` (18-19, 45-49 and 90-99 at 10 %)."""
    digit = pl.col("digit").cast(pl.Float64)
    return pl.any_horizontal(
        [(digit < r) & (digit >= r * (1 - under_percent / 100)) for r in ROUND_PAIRS]
    )


INVENTED_AMOUNTS: Final = Sentence(
    en="Merchant {merchant_id}'s {amounts} sales from {first_day} to {last_day} do not follow "
    "the first two digits of Benford's law (MAD {mad}) nor those of other {category} "
    "merchants (MAD {peer_mad}): too many amounts begin with {spikes}, {under}% of the excess "
    "just under round sums, as amounts typed by hand to stay under a limit do",
    zh="商户 {merchant_id} 于 {first_day} 至 {last_day} 的 {amounts} 笔消费金额，前两位数字既不符合"
    "本福特定律（平均绝对偏差 {mad}），也不同于其他{category}商户（平均绝对偏差 {peer_mad}）："
    "以 {spikes} 开头的金额过多，超出部分的 {under}% 略低于整数金额，"
    "与为避开限额而手工录入的金额相符",
    fields={
        "merchant_id": Value(),
        "amounts": Value(NUMBER),
        "first_day": Value(DAY),
        "last_day": Value(DAY),
        "mad": Value(r"\d+\.\d+"),
        "category": Words(CATEGORY_WORDS),
        "peer_mad": Value(r"\d+\.\d+"),
        "spikes": Value(r"\d{2}(?:, \d{2})*"),
        "under": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="merchant",
    partition_key="merchant_id",
    lookback=timedelta(days=30),
    scenarios=("invented_amounts",),
)
def invented_amounts(
    merchant_digit_days: pl.LazyFrame,
    merchants: pl.LazyFrame,
    *,
    min_amounts: int = 1_000,
    min_peers: int = 2,
    max_mad: float = 0.0022,
    min_z: float = 5.0,
    under_percent: float = 10.0,
    min_under_percent: float = 50.0,
) -> pl.LazyFrame:
    """Merchants whose sales' first two digits depart both from Benford's law and from the
    other merchants of their category: a mean absolute deviation (MAD) from Benford's above
    ``max_mad`` (Nigrini's bound of nonconformity), and a chi-square against the category's
    profile (the median share of each digit pair among its merchants) ``min_z`` standard
    deviations out; and ``min_under_percent`` % or more of the excess amounts (the shares
    found above the category's) in digit pairs at most ``under_percent`` % under a round sum
    of 20, 50 or 100, where amounts typed to stay under a limit gather. Merchants of
    ``min_amounts`` amounts or more, in categories with ``min_peers`` such other merchants;
    Benford's curve alone is no measure of one merchant, whose prices and round sums shape its
    digits, and a merchant selling like another trade departs from its category's digits
    without gathering under round sums."""
    counts = merchant_digit_days.group_by("merchant_id", "digit").agg(pl.col("n").sum())
    sizes = (
        counts.group_by("merchant_id")
        .agg(pl.col("n").sum().alias("amounts"))
        .filter(pl.col("amounts") >= min_amounts)
        .join(_categories(merchants), on="merchant_id", how="inner")
    )
    grid = (
        sizes.join(FIRST_TWO, how="cross")
        .join(counts, on=["merchant_id", "digit"], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .with_columns((pl.col("n") / pl.col("amounts")).alias("share"))
    )
    # the category's profile: each digit pair's median share among its merchants, as shares
    members = sizes.group_by("category").agg(
        pl.len().alias("members"), pl.col("amounts").sum().alias("category_amounts")
    )
    profile = (
        grid.group_by("category", "digit")
        .agg(pl.col("share").median().alias("median"))
        .with_columns(
            (pl.col("median") / pl.col("median").sum().over("category")).alias("expected")
        )
    )
    n = pl.col("amounts")
    # the peers' amounts, read at the median's efficiency: the reference is noisy too
    peers_amounts = (pl.col("category_amounts") - n) * MEDIAN_EFFICIENCY
    gap = pl.col("share") - pl.col("expected")
    z = ((gap.abs() - 1 / (2 * n)).clip(lower_bound=0.0)) / (
        pl.col("expected") * (1 - pl.col("expected")) / n
    ).sqrt()
    judged = (
        grid.join(members, on="category", how="inner")
        .filter(pl.col("members") - 1 >= min_peers)
        .join(profile, on=["category", "digit"], how="inner")
        .with_columns(
            z.alias("z"),
            pl.when(pl.col("expected") > 0)
            .then(gap.pow(2) / (pl.col("expected") * (1 / n + 1 / peers_amounts)))
            .otherwise(0.0)
            .alias("chi_part"),
        )
    )
    spikes = (
        judged.filter((pl.col("share") > pl.col("expected")) & (pl.col("z") > SPIKE_Z))
        .sort(["merchant_id", "z", "digit"], descending=[False, True, False])
        .group_by("merchant_id", maintain_order=True)
        .agg(pl.col("digit").head(SPIKES_SHOWN).cast(pl.String).alias("spike_digits"))
        .with_columns(pl.col("spike_digits").list.join(", ").alias("spikes"))
    )
    degrees = (pl.col("cells") - 1).cast(pl.Float64)
    per_merchant = (
        judged.group_by("merchant_id", "category", "amounts")
        .agg(
            (pl.col("share") - pl.col("benford")).abs().mean().alias("mad"),
            gap.abs().mean().alias("peer_mad"),
            pl.col("chi_part").sum().alias("chi_square"),
            (pl.col("expected") > 0).sum().alias("cells"),
            (gap.clip(lower_bound=0.0) * under_round(under_percent).cast(pl.Float64))
            .sum()
            .alias("under_excess"),
            gap.clip(lower_bound=0.0).sum().alias("excess"),
        )
        .with_columns(
            # Wilson and Hilferty: the chi-square as a standard normal deviate
            (
                ((pl.col("chi_square") / degrees).pow(1 / 3) - (1 - 2 / (9 * degrees)))
                / (2 / (9 * degrees)).sqrt()
            ).alias("chi_z")
        )
        .with_columns((100 * pl.col("under_excess") / pl.col("excess")).alias("under_share"))
        .filter(
            (pl.col("mad") > max_mad)
            & (pl.col("chi_z") >= min_z)
            & (pl.col("under_share") >= min_under_percent)
        )
        .join(spikes, on="merchant_id", how="inner")
    )
    window = merchant_digit_days.select(
        pl.col("day").min().alias("first_day"), pl.col("day").max().alias("last_day")
    )
    return to_findings(
        per_merchant.join(window, how="cross").with_columns(
            _day_start("first_day").alias("window_start"),
            _day_end("last_day").alias("window_end"),
            pl.format("{}", pl.col("mad").round(4)).alias("mad_text"),
            pl.format("{}", pl.col("peer_mad").round(4)).alias("peer_mad_text"),
        ),
        rule="invented_amounts",
        family=FAMILY,
        entity_type="merchant",
        severity="low",
        score=(0.3 + 0.05 * pl.col("chi_z") / min_z).clip(0.3, 0.5).round(4),
        summary=INVENTED_AMOUNTS.expr(
            merchant_id="merchant_id",
            amounts="amounts",
            first_day="first_day",
            last_day="last_day",
            mad="mad_text",
            category="category",
            peer_mad="peer_mad_text",
            spikes="spikes",
            under=pl.col("under_share").round(0).cast(pl.Int64),
        ),
        evidence={
            "category": pl.col("category"),
            "amounts": pl.col("amounts"),
            "mad": pl.col("mad").round(5),
            "peer_mad": pl.col("peer_mad").round(5),
            "chi_square": pl.col("chi_square").round(1),
            "chi_z": pl.col("chi_z").round(1),
            "spikes": pl.col("spikes"),
            "under_round_percent": pl.col("under_share").round(0).cast(pl.Int64),
            "max_mad": pl.lit(max_mad),
            "min_z": pl.lit(min_z),
            "min_under_percent": pl.lit(min_under_percent),
        },
        entity_id="merchant_id",
    )


SENTENCES: Final[dict[str, Sentence]] = {
    "cash_out_sales": CASH_OUT_SALES,
    "category_misuse": CATEGORY_MISUSE,
    "dormant_surge": DORMANT_SURGE,
    "invented_amounts": INVENTED_AMOUNTS,
}
