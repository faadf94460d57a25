"""Sales patterns: sales cut up, cards tested, sales voided after the customer has gone.

A sale is the ordinary event of a terminal's day, so abuse of sales hides among millions of
honest ones. Each rule here looks for a sequence an honest till does not produce:

- ``split_sales``: one purchase cut into several sales on the same card, swiped back to back
  at one till, to keep each under a limit (拆单). A customer who comes back later to buy
  something else has left the till in between.
- ``card_testing``: a burst of declined sales from many different cards, at amounts far
  below what the terminal usually takes: someone checking which stolen card numbers work.
  An issuer that cannot be reached declines customers' normal purchases instead.
- ``void_abuse``: a clerk who, at the end of the batch, voids several sales made long before,
  after the customers have gone, and keeps what they paid. An honest void corrects a mistake
  within minutes; a sale corrected at closing is rung up again at once on the same card.

Every rule reads few rows: the store finds the sales on cards that came back to a terminal
(:func:`~posaudit.detect.sale_queries.card_repeats`) and the declines and voids with the
sales on their cards (:func:`~posaudit.detect.sale_queries.declines_and_voids`) where the
transactions lie, one pass each, and the takings of the terminal-days with declines
(:func:`declining_terminal_days`); each rule cuts its candidates from them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.detect.findings import to_findings
from posaudit.detect.registry import derived_query, rule
from posaudit.detect.sale_queries import (
    CANDIDATE_GAP_MINUTES,
    declined_sales,
    split_sale_candidates,
    void_sales,
)
from posaudit.detect.sentences import (
    DECIMAL,
    MINUTE,
    NUMBER,
    Money,
    Operator,
    Sentence,
    Value,
)

FAMILY: Final = "sales"
MAX_EVIDENCE_IDS: Final = 20


def _minute(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%d %H:%M")


def _ids(column: str) -> pl.Expr:
    """Event ids for evidence, in time order, capped so evidence stays readable."""
    return pl.col(column).sort_by("ts").head(MAX_EVIDENCE_IDS)


def _runs(frame: pl.LazyFrame, keys: list[str], max_gap: timedelta) -> pl.LazyFrame:
    """``frame`` with ``run_id``: events of the same ``keys`` no more than ``max_gap`` apart
    in a row form one run."""
    return (
        frame.sort(*keys, "ts", "txn_id")
        .with_columns(
            ((pl.col("ts") - pl.col("ts").shift(1)).over(keys) > max_gap)
            .fill_null(True)
            .alias("is_new_run")
        )
        .with_columns(pl.col("is_new_run").cum_sum().over(keys).alias("run_id"))
    )


def _with_operator_no(frame: pl.LazyFrame, operators: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``operator_no`` (the number people know), falling back to the operator id."""
    numbers = operators.select(
        pl.col("operator_id").cast(pl.String), pl.col("operator_no").cast(pl.String)
    ).unique(subset="operator_id", keep="any")
    return frame.join(numbers, on="operator_id", how="left").with_columns(
        pl.coalesce("operator_no", "operator_id").alias("operator_no")
    )


# --- split sales ----------------------------------------------------------------------------

SPLIT_SALES: Final = Sentence(
    en="terminal {terminal_id} took {sales} sales totalling {amount} on one card in {span} "
    "minutes from {start}, the largest {largest}; {min_sales} sales on one card at most "
    "{max_gap_minutes} minutes apart make a split purchase",
    zh="终端 {terminal_id} 自 {start} 起的 {span} 分钟内用同一张卡完成销售 {sales} 笔，合计 "
    "{amount}，单笔最大 {largest}；同一张卡连续 {min_sales} 笔、间隔不超过 {max_gap_minutes} "
    "分钟即为拆单",
    fields={
        "terminal_id": Value(),
        "sales": Value(NUMBER),
        "amount": Money(),
        "span": Value(DECIMAL),
        "start": Value(MINUTE),
        "largest": Money(),
        "min_sales": Value(NUMBER),
        "max_gap_minutes": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="terminal_id",
    lookback=timedelta(days=1),
    scenarios=("split_sales",),
)
def split_sales(
    card_repeats: pl.LazyFrame,
    *,
    min_sales: int = 3,  # a purchase cut in two is a customer paying twice as often as a split
    # measured on simulated worlds (seeds 1-3): no natural run of 3 sales on one card at one
    # terminal with gaps of at most 5 minutes; injected splits hold 3-6 sales
    max_gap_minutes: int = 5,  # the swipes of one checkout come seconds to minutes apart; a
    # customer who comes back (10-40 minutes in the simulated look-alike) has left the till
    min_piece_percent: int = 50,  # pieces cut to stay under one limit are alike; a basket of
    # different goods bought one by one is not (a 1,990 and a 7,990 CNY item)
) -> pl.LazyFrame:
    """Terminals that take several sales on one card in a row within minutes: a split purchase.

    A purchase over a card's or the till's limit on one sale is cut into several sales on
    the same card, swiped one after the other at the same till (拆单), hiding a large
    purchase (often a cash-out) from the limit and from the checks on large sales. The sales
    of one card at one terminal, each at most ``max_gap_minutes`` after the one before, form
    a run; a run of ``min_sales`` or more whose smallest sale is at least ``min_piece_percent``
    of its largest is a finding on the terminal: a purchase cut to stay under one limit comes
    in pieces alike in size, a customer buying different goods one by one pays unlike amounts.
    A customer who comes back later for something else has left the till in between: the gap
    splits the run. The
    sales of one run are of one day (a run across midnight is cut there: the store looks only
    at terminal-days on which a card came back, so as not to order every sale it holds).

    Parameters
    ----------
    min_sales
        Sales on one card in a run that make a split purchase.
    max_gap_minutes
        Longest gap between two sales of one run (at most 60: the candidates' reach).
    min_piece_percent
        The smallest sale of a run as a share of its largest, at least (percent).
    """
    max_gap = timedelta(minutes=min(max_gap_minutes, CANDIDATE_GAP_MINUTES))
    return (
        split_sale_candidates(card_repeats)
        .select(
            pl.col("txn_id").cast(pl.String),
            pl.col("ts").cast(pl.Datetime("us")),
            pl.col("terminal_id").cast(pl.String),
            pl.col("merchant_id").cast(pl.String),
            pl.col("operator_id").cast(pl.String),
            pl.col("amount_fen").cast(pl.Int64),
            pl.col("card_token").cast(pl.String),
        )
        .pipe(_runs, ["terminal_id", "card_token"], max_gap)
        .group_by("terminal_id", "card_token", "run_id")
        .agg(
            pl.col("merchant_id").first(),
            pl.len().alias("sales"),
            pl.col("amount_fen").sum().alias("amount_fen"),
            pl.col("amount_fen").max().alias("largest_fen"),
            pl.col("amount_fen").min().alias("smallest_fen"),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            _ids("txn_id").alias("sale_txn_ids"),
            pl.col("operator_id").unique().sort().alias("operator_ids"),
        )
        .filter(
            (pl.col("sales") >= min_sales)
            & (pl.col("smallest_fen") * 100 >= pl.col("largest_fen") * min_piece_percent)
        )
        .with_columns(
            ((pl.col("window_end") - pl.col("window_start")).dt.total_seconds() / 60)
            .round(1)
            .alias("span_minutes")
        )
        .pipe(
            to_findings,
            rule="split_sales",
            family=FAMILY,
            entity_type="terminal",
            entity_id="terminal_id",
            severity="medium",
            score=(0.7 + 0.05 * (pl.col("sales") - min_sales)).clip(0.7, 1.0),
            summary=SPLIT_SALES.expr(
                terminal_id="terminal_id",
                sales="sales",
                amount="amount_fen",
                span="span_minutes",
                start=_minute("window_start"),
                largest="largest_fen",
                min_sales=pl.lit(min_sales),
                max_gap_minutes=pl.lit(max_gap_minutes),
            ),
            evidence={
                "sale_txn_ids": pl.col("sale_txn_ids"),
                "card_token": pl.col("card_token"),
                "sales": pl.col("sales"),
                "amount_fen": pl.col("amount_fen"),
                "largest_fen": pl.col("largest_fen"),
                "smallest_fen": pl.col("smallest_fen"),
                "span_minutes": pl.col("span_minutes"),
                "operator_ids": pl.col("operator_ids"),
                "min_sales": pl.lit(min_sales),
                "max_gap_minutes": pl.lit(max_gap_minutes),
                "min_piece_percent": pl.lit(min_piece_percent),
            },
        )
    )


# --- card testing ---------------------------------------------------------------------------

# The approved sales of each terminal-day with two or more declines, hour by hour: the takings
# a burst of declines is compared with, outside the burst's own hours (a tester's cards that
# work are approved at the tester's tiny sums, and on a quiet terminal would make the day's
# average tiny too). Counting per terminal and hour is cheap for the store, and few
# terminal-days decline twice.
DECLINING_TERMINAL_DAYS_SQL: Final = """
SELECT
    CAST(t.terminal_id AS VARCHAR) AS terminal_id,
    CAST(t.ts AS DATE) AS day,
    CAST(EXTRACT(HOUR FROM t.ts) AS BIGINT) AS hour,
    CAST(SUM(CASE WHEN t.status = 'approved' THEN 1 ELSE 0 END) AS BIGINT) AS sale_count,
    CAST(SUM(CASE WHEN t.status = 'approved' THEN t.amount_fen ELSE 0 END) AS BIGINT)
        AS sale_amount_fen
FROM transactions AS t
JOIN (
    SELECT terminal_id, CAST(ts AS DATE) AS day
    FROM transactions
    WHERE kind = 'sale' AND status = 'declined'
    GROUP BY terminal_id, CAST(ts AS DATE)
    HAVING COUNT(*) > 1
) AS d ON t.terminal_id = d.terminal_id AND CAST(t.ts AS DATE) = d.day
WHERE t.kind = 'sale'
GROUP BY t.terminal_id, CAST(t.ts AS DATE), EXTRACT(HOUR FROM t.ts)
"""
declining_terminal_days = derived_query(
    "declining_terminal_days",
    sql=DECLINING_TERMINAL_DAYS_SQL,
    source="transactions",
    time_column="day",
)
declining_terminal_days.__doc__ = """The approved sales of each terminal-day with two or more
declined sales, hour by hour: ``terminal_id``, ``day``, ``hour``, ``sale_count``,
``sale_amount_fen`` (by ``DECLINING_TERMINAL_DAYS_SQL``)."""

CARD_TESTING: Final = Sentence(
    en="terminal {terminal_id} declined {declines} sales from {cards} cards in {span} minutes "
    "from {start}, at a median of {median} against a usual sale of {average} (the week "
    "before and the day's other hours), {retried} of them paid again on the same card; "
    "{min_declines} declines from {min_cards} cards at under {max_amount_share} of the "
    "average sale make card testing",
    zh="终端 {terminal_id} 自 {start} 起的 {span} 分钟内有 {cards} 张卡的 {declines} 笔销售被拒，"
    "金额中位数 {median}，而该终端平时的销售（前一周及当日其他时段）平均为 {average}，"
    "其中 {retried} 笔随后用同一张卡重新付款成功；{min_cards} 张卡被拒 "
    "{min_declines} 笔且金额低于平均销售的 {max_amount_share} 即为测卡",
    fields={
        "terminal_id": Value(),
        "declines": Value(NUMBER),
        "cards": Value(NUMBER),
        "span": Value(DECIMAL),
        "start": Value(MINUTE),
        "median": Money(),
        "average": Money(),
        "retried": Value(NUMBER),
        "min_declines": Value(NUMBER),
        "min_cards": Value(NUMBER),
        "max_amount_share": Value(DECIMAL),
    },
)


def _usual_sale(
    bursts: pl.LazyFrame, hours: pl.LazyFrame, days: pl.LazyFrame, baseline_days: int
) -> pl.LazyFrame:
    """Each burst with the terminal's average approved sale (``average_sale_fen``) over the
    ``baseline_days`` days before the burst's first day and that day's hours the burst does
    not touch; null when the terminal sold nothing then."""
    keyed = bursts.with_columns(
        pl.col("window_start").dt.date().alias("day"),
        pl.col("window_start").dt.hour().cast(pl.Int64).alias("first_hour"),
        # a burst past midnight touches every later hour of its first day
        pl.when(pl.col("window_end").dt.date() > pl.col("window_start").dt.date())
        .then(pl.lit(23, pl.Int64))
        .otherwise(pl.col("window_end").dt.hour().cast(pl.Int64))
        .alias("last_hour"),
    )
    bursts_at = keyed.select("terminal_id", "run_id", "day", "first_hour", "last_hour")
    same_day = (
        bursts_at.join(hours, on=["terminal_id", "day"])
        .filter(~pl.col("hour").is_between("first_hour", "last_hour"))
        .select("terminal_id", "run_id", "sale_count", "sale_amount_fen")
    )
    week_before = (
        bursts_at.join(
            days.select(
                pl.col("terminal_id").cast(pl.String),
                pl.col("day").cast(pl.Date).alias("sale_day"),
                pl.col("sale_count").cast(pl.Int64),
                pl.col("sale_amount_fen").cast(pl.Int64),
            ),
            on="terminal_id",
        )
        .filter(
            (pl.col("sale_day") < pl.col("day"))
            & (pl.col("sale_day") >= pl.col("day") - timedelta(days=baseline_days))
        )
        .select("terminal_id", "run_id", "sale_count", "sale_amount_fen")
    )
    usual = (
        pl.concat([same_day, week_before])
        .group_by("terminal_id", "run_id")
        .agg(pl.col("sale_count").sum(), pl.col("sale_amount_fen").sum())
        .filter(pl.col("sale_count") > 0)
        .select(
            "terminal_id",
            "run_id",
            (pl.col("sale_amount_fen") / pl.col("sale_count"))
            .round(0)
            .cast(pl.Int64)
            .alias("average_sale_fen"),
        )
    )
    return keyed.drop("day", "first_hour", "last_hour").join(
        usual, on=["terminal_id", "run_id"], how="left"
    )


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="terminal_id",
    lookback=timedelta(days=2),  # a burst may cross midnight; the takings of its first day
    scenarios=("card_testing",),
    # the terminal's usual sale: the days before a burst, back from its first day
    reads=lambda thresholds: {
        "merchant_terminal_days": timedelta(days=thresholds["baseline_days"] + 3)
    },
)
def card_testing(
    declines_and_voids: pl.LazyFrame,
    declining_terminal_days: pl.LazyFrame,
    merchant_terminal_days: pl.LazyFrame,
    *,
    min_declines: int = 8,  # measured on simulated worlds (seeds 1-3): at most 3 natural
    # declines in a row at one terminal within 10-minute gaps; injected tests hold 14-57
    min_cards: int = 6,  # a customer whose card fails tries again with it; a tester moves on
    max_gap_minutes: int = 10,  # a tester types the next number in seconds to minutes
    max_amount_share: float = 0.25,  # testers try the smallest sums: measured, the median
    # declined amount of an injected test is under 0.1 of the terminal's average sale
    max_retried_share: float = 0.5,  # a declined customer pays again; a tester drops the card
    retry_minutes: int = 30,  # paying again comes within minutes of the decline
    baseline_days: int = 7,  # the terminal's usual sale: a week, every weekday once
) -> pl.LazyFrame:
    """Terminals with a burst of declined sales from many cards at tiny amounts: card testing.

    Whoever holds a list of stolen card numbers checks which still work by small purchases
    at a terminal: most are declined (expired, blocked, no funds), each from another card,
    one after the other. Declines of one terminal at most ``max_gap_minutes`` apart form a
    burst; a burst of ``min_declines`` or more from ``min_cards`` or more cards whose median
    amount is under ``max_amount_share`` of the terminal's usual sale, and of which at most
    ``max_retried_share`` were paid again on the same card at the terminal within
    ``retry_minutes``, is a finding. An issuer that cannot be reached for a
    while declines a run of customers too, but at what they usually pay, and they pay again
    once it answers.

    The usual sale is the terminal's average approved sale over the ``baseline_days`` days
    before the burst's day and that day's hours the burst does not touch: a tester's cards
    that work are approved at the tester's tiny sums, and on a quiet terminal would drag the
    burst's own hours down with them. A terminal that sold nothing then has no usual sale,
    and its bursts count at any amount.

    Parameters
    ----------
    min_declines
        Declined sales in a burst.
    min_cards
        Distinct cards among them.
    max_gap_minutes
        Longest gap between two declines of one burst.
    max_amount_share
        Largest median declined amount, as a share of the terminal's average approved sale.
    max_retried_share
        Largest share of the burst's declines paid again on the same card.
    retry_minutes
        How soon after a decline an approved sale on the same card is paying again.
    baseline_days
        Days before a burst whose approved sales make the terminal's usual sale.
    """
    hours = declining_terminal_days.select(
        pl.col("terminal_id").cast(pl.String),
        pl.col("day").cast(pl.Date),
        pl.col("hour").cast(pl.Int64),
        pl.col("sale_count").cast(pl.Int64),
        pl.col("sale_amount_fen").cast(pl.Int64),
    )
    rows = declined_sales(declines_and_voids).select(
        pl.col("txn_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us")),
        pl.col("terminal_id").cast(pl.String),
        pl.col("merchant_id").cast(pl.String),
        pl.col("amount_fen").cast(pl.Int64),
        pl.col("card_token").cast(pl.String),
        pl.col("status").cast(pl.String),
        pl.col("failure_reason").cast(pl.String),
    )
    declines = rows.filter(pl.col("status") == "declined")
    retried = (
        declines.select("txn_id", "ts", "terminal_id", "card_token")
        .join(
            rows.filter(pl.col("status") == "approved").select(
                "terminal_id", "card_token", pl.col("ts").alias("paid_ts")
            ),
            on=["terminal_id", "card_token"],
        )
        .filter(
            (pl.col("paid_ts") > pl.col("ts"))
            & (pl.col("paid_ts") <= pl.col("ts") + timedelta(minutes=retry_minutes))
        )
        .select("txn_id")
        .unique()
        .with_columns(pl.lit(True).alias("is_retried"))
    )
    return (
        declines.join(retried, on="txn_id", how="left")
        .with_columns(pl.col("is_retried").fill_null(False))
        .pipe(_runs, ["terminal_id"], timedelta(minutes=max_gap_minutes))
        .group_by("terminal_id", "run_id")
        .agg(
            pl.col("merchant_id").first(),
            pl.len().alias("declines"),
            pl.col("card_token").n_unique().alias("cards"),
            pl.col("is_retried").sum().alias("retried"),
            pl.col("amount_fen").median().round(0).cast(pl.Int64).alias("median_amount_fen"),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            _ids("txn_id").alias("declined_txn_ids"),
            pl.col("failure_reason").drop_nulls().unique().sort().alias("failure_reasons"),
        )
        .filter(
            (pl.col("declines") >= min_declines)
            & (pl.col("cards") >= min_cards)
            & (pl.col("retried") <= max_retried_share * pl.col("declines"))
        )
        .pipe(_usual_sale, hours, merchant_terminal_days, baseline_days)
        .filter(
            (pl.col("median_amount_fen") < max_amount_share * pl.col("average_sale_fen"))
            | pl.col("average_sale_fen").is_null()
        )
        .with_columns(
            ((pl.col("window_end") - pl.col("window_start")).dt.total_seconds() / 60)
            .round(1)
            .alias("span_minutes")
        )
        .pipe(
            to_findings,
            rule="card_testing",
            family=FAMILY,
            entity_type="terminal",
            entity_id="terminal_id",
            severity="medium",
            score=(0.7 + 0.01 * (pl.col("declines") - min_declines)).clip(0.7, 1.0),
            summary=CARD_TESTING.expr(
                terminal_id="terminal_id",
                declines="declines",
                cards="cards",
                span="span_minutes",
                start=_minute("window_start"),
                median="median_amount_fen",
                average=pl.col("average_sale_fen").fill_null(0),
                retried="retried",
                min_declines=pl.lit(min_declines),
                min_cards=pl.lit(min_cards),
                max_amount_share=pl.lit(float(max_amount_share)),
            ),
            evidence={
                "declined_txn_ids": pl.col("declined_txn_ids"),
                "declines": pl.col("declines"),
                "cards": pl.col("cards"),
                "retried": pl.col("retried"),
                "median_amount_fen": pl.col("median_amount_fen"),
                "average_sale_fen": pl.col("average_sale_fen"),
                "span_minutes": pl.col("span_minutes"),
                "decline_reasons": pl.col("failure_reasons"),
                "min_declines": pl.lit(min_declines),
                "min_cards": pl.lit(min_cards),
                "max_gap_minutes": pl.lit(max_gap_minutes),
                "max_amount_share": pl.lit(float(max_amount_share)),
                "max_retried_share": pl.lit(float(max_retried_share)),
                "retry_minutes": pl.lit(retry_minutes),
                "baseline_days": pl.lit(baseline_days),
            },
        )
    )


# --- void abuse -----------------------------------------------------------------------------

VOID_ABUSE: Final = Sentence(
    en="{operator} at terminal {terminal_id} voided {voids} sales totalling {voided} between "
    "{start} and {end}, each {delay} minutes or more after the sale and none rung up again; "
    "the merchant's other operators made {peer_voids} such voids that day",
    zh="终端 {terminal_id} 的{operator}于 {start} 至 {end} 撤销销售 {voids} 笔，合计 {voided}，"
    "每笔均在原销售 {delay} 分钟以上之后撤销且未重新收款；该商户其他操作员当日此类撤销 "
    "{peer_voids} 笔",
    fields={
        "operator": Operator(terminal="terminal_id"),
        "terminal_id": Value(),
        "voids": Value(NUMBER),
        "voided": Money(),
        "start": Value(MINUTE),
        "end": Value(MINUTE),
        "delay": Value(NUMBER),
        "peer_voids": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="merchant_id",
    lookback=timedelta(days=2),  # the voided sale, made earlier that day (or the day before)
    scenarios=("void_abuse",),
)
def void_abuse(
    declines_and_voids: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    late_void_minutes: int = 30,  # measured on simulated worlds (seeds 1-3): every natural void
    # comes within 10 minutes of its sale, while the customer is still at the till
    min_late_voids: int = 2,  # one late void is a mistake found late; two in a day is a habit
    correction_minutes: int = 10,  # a sale voided to be corrected is rung up again at once
) -> pl.LazyFrame:
    """Operators who void several sales long after they were made, more than their peers.

    A void cancels a sale in the batch; an honest one corrects a mistake while the customer
    is still at the till, minutes after the sale. A clerk who takes cash and voids the sale
    after the customer has gone (at the end of the batch, hours later) keeps the cash and
    leaves the till's books balanced. A void at least ``late_void_minutes`` after its sale,
    not followed within ``correction_minutes`` by a sale on the same card at the same
    terminal (a correction rung up again), is late; an operator with ``min_late_voids`` or
    more late voids in a day, more than any other operator of the merchant that day, is a
    finding.

    Parameters
    ----------
    late_void_minutes
        Shortest time from a sale to its void that makes the void late.
    min_late_voids
        Late voids of one operator in a day.
    correction_minutes
        A sale on the same card this soon after a void makes the void a correction.
    """
    rows = void_sales(declines_and_voids).select(
        pl.col("txn_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us")),
        pl.col("kind").cast(pl.String),
        pl.col("terminal_id").cast(pl.String),
        pl.col("merchant_id").cast(pl.String),
        pl.col("operator_id").cast(pl.String),
        pl.col("amount_fen").cast(pl.Int64),
        pl.col("card_token").cast(pl.String),
        pl.col("original_txn_id").cast(pl.String),
    )
    sales = rows.filter(pl.col("kind") == "sale")
    voids = rows.filter((pl.col("kind") == "void") & pl.col("operator_id").is_not_null()).join(
        sales.select(
            pl.col("txn_id").alias("original_txn_id"),
            pl.col("ts").alias("sale_ts"),
            pl.col("merchant_id").alias("sale_merchant_id"),
        ),
        on="original_txn_id",
        how="inner",
    )
    voids = voids.filter(pl.col("sale_merchant_id") == pl.col("merchant_id")).filter(
        pl.col("ts") - pl.col("sale_ts") >= timedelta(minutes=late_void_minutes)
    )
    corrected = (
        voids.select("txn_id", "ts", "terminal_id", "card_token", "original_txn_id")
        .join(
            sales.select(
                "terminal_id",
                "card_token",
                pl.col("txn_id").alias("again_txn_id"),
                pl.col("ts").alias("again_ts"),
            ),
            on=["terminal_id", "card_token"],
        )
        .filter(
            (pl.col("again_txn_id") != pl.col("original_txn_id"))
            & (pl.col("again_ts") >= pl.col("ts"))
            & (pl.col("again_ts") <= pl.col("ts") + timedelta(minutes=correction_minutes))
        )
        .select("txn_id")
        .unique()
    )
    late = (
        voids.join(corrected, on="txn_id", how="anti")
        .with_columns(
            pl.col("ts").dt.date().alias("day"),
            ((pl.col("ts") - pl.col("sale_ts")).dt.total_minutes()).alias("delay_minutes"),
        )
        .group_by("merchant_id", "operator_id", "day")
        .agg(
            pl.len().alias("voids"),
            pl.col("amount_fen").sum().alias("voided_fen"),
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            pl.col("delay_minutes").min().alias("shortest_delay_minutes"),
            _ids("txn_id").alias("void_txn_ids"),
            pl.col("terminal_id").sort_by("ts").first().alias("terminal_id"),
            pl.col("terminal_id").unique().sort().alias("terminal_ids"),
        )
    )
    peers = late.select(
        "merchant_id",
        "day",
        pl.col("operator_id").alias("peer_operator_id"),
        pl.col("voids").alias("peer_voids"),
    )
    most_by_peers = (
        late.select("merchant_id", "operator_id", "day")
        .join(peers, on=["merchant_id", "day"])
        .filter(pl.col("peer_operator_id") != pl.col("operator_id"))
        .group_by("merchant_id", "operator_id", "day")
        .agg(
            pl.col("peer_voids").max().alias("most_by_a_peer"),
            pl.col("peer_voids").sum().alias("peer_late_voids"),
        )
    )
    return (
        late.join(most_by_peers, on=["merchant_id", "operator_id", "day"], how="left")
        .with_columns(pl.col("most_by_a_peer", "peer_late_voids").fill_null(0))
        .filter((pl.col("voids") >= min_late_voids) & (pl.col("voids") > pl.col("most_by_a_peer")))
        .pipe(_with_operator_no, operators)
        .pipe(
            to_findings,
            rule="void_abuse",
            family=FAMILY,
            entity_type="operator",
            entity_id="operator_id",
            severity="medium",
            score=(0.7 + 0.05 * (pl.col("voids") - min_late_voids)).clip(0.7, 1.0),
            summary=VOID_ABUSE.expr(
                operator="operator_no",
                terminal_id="terminal_id",
                voids="voids",
                voided="voided_fen",
                start=_minute("window_start"),
                end=_minute("window_end"),
                delay=pl.lit(late_void_minutes),
                peer_voids="peer_late_voids",
            ),
            evidence={
                "void_txn_ids": pl.col("void_txn_ids"),
                "voids": pl.col("voids"),
                "voided_fen": pl.col("voided_fen"),
                "shortest_delay_minutes": pl.col("shortest_delay_minutes"),
                "peer_late_voids": pl.col("peer_late_voids"),
                "terminal_ids": pl.col("terminal_ids"),
                "late_void_minutes": pl.lit(late_void_minutes),
                "min_late_voids": pl.lit(min_late_voids),
                "correction_minutes": pl.lit(correction_minutes),
            },
        )
    )


# Each rule's sentence, by rule name: what the report writes each finding's sentence from.
SENTENCES: Final[dict[str, Sentence]] = {
    "split_sales": SPLIT_SALES,
    "card_testing": CARD_TESTING,
    "void_abuse": VOID_ABUSE,
}
