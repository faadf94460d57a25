"""A daily ranking of operator-days and merchant-days for an analyst's budget.

The rules in :mod:`posaudit.detect` each test one named condition, and an attacker who knows
the policy stays under it: fewer refunds than a burst counts, spread over hours and terminals,
in busy hours (docs/scenarios.md, "Evasion levels"). What such an attacker cannot hide is that
the day is unlike the operator's own days and unlike its colleagues' days. An analyst with a
budget reads the top of one ranked list a day; this module builds that list.

Three layers, each usable on its own from a notebook:

- :func:`operator_day_ranking_features`: the columns of
  :func:`posaudit.score.operators.operator_day_features` (counts, the 28-day repeat-card
  context, ratios to the merchant's median operator-day of the week) and the features below.
- :func:`merchant_day_features`: the same summed per merchant and day, with the login
  attempts no operator can be named for (a number that does not exist) and the merchant's
  refunds against its own past days.
- :func:`daily_anomaly_scores`: every entity-day with its unsupervised score, the day's rank
  and the three features that raised it most.

:func:`supervised_scores` adds, where labels exist, a gradient-boosted model's score trained
on earlier days only (:func:`time_split`); :mod:`posaudit.ranking_evaluation` measures both.

Features added to the operator-day
----------------------------------
Against the operator's own history (earlier days only, so a day's features never read later
data): ``unusual_hour_share``, the share of the day's transactions and logins in clock hours
that held under 5 % of the operator's earlier activity (from 20 earlier events on);
``unusual_weekday``, 1 when the operator works on a weekday it worked on under a quarter of
the earlier weeks it was active (from 14 earlier active days on); ``refund_count_vs_own``,
``event_count_vs_own`` and ``wrong_pin_count_vs_own``, log1p of the day's count minus log1p
of the operator's mean over its active days in the 28 days before. Against its peers: the
``*_vs_median`` ratios of :mod:`posaudit.score.operators` (the merchant's median
operator-day of the week, else the category's).

Velocity: ``refunds_1h_peak`` and ``refunds_3h_peak``, the most refunds in any 60 or 180
minutes; ``terminals_per_hour_peak``, the most distinct terminals in one clock hour;
``foreign_terminal_events`` and ``foreign_terminal_share``, activity on a terminal other than
the operator's own (its login used at a sibling terminal); ``new_terminal_events``, activity on
a terminal the operator never worked on an earlier day, once it has 7 earlier active days (a
clerk who often covers a sibling terminal has worked there before; a borrowed login has not).

Sequences: ``refunds_after_wrong_pin``, refunds within a shift (8 hours) after the day's first
wrong PIN or lockout of the operator; ``lockout_reset_refund_count``, those among them made
after the lock was lifted by an administrator or the service desk or the PIN was reset (a
lockout or a run of wrong PINs, a reset, then refunds: an account takeover's shape);
``stranger_card_refunds``, refunds to a card that never paid at the merchant before, nor
any other card of its account (the same ``account_ref``: a reissued card) when it has one;
``round_refund_count``, partial refunds of a round amount (whole 100 CNY);
``non_return_refund_count``, refunds that are not a customer's return
(:func:`posaudit.detect.refunds.customer_return`: to the paying card or its account, no more
than the sale, of a sale of an earlier day), so a burst spread under the rule's count per
window still shows as the day's own takings going back out; and from
:mod:`posaudit.score.operators` the refunds clustering on a few cards across days
(``repeat_card_refund_count``, ``refunds_to_repeat_cards_28d``).

Why a sum of surprisals
-----------------------
The unsupervised score of an entity-day is the sum, over the scored features, of
``ln(n / r)`` where ``n`` is the number of entity-days that day and ``r`` how many of them
have a value at least as high (its empirical upper-tail probability's surprisal). It is the
rank form of the histogram-based outlier score (HBOS, Goldstein and Dengel 2012): each feature
contributes how rare it is to be that high today. It was chosen over the Isolation Forest of
:mod:`posaudit.score.operators`, and over a robust z-score sum, because

- the features are zero-inflated counts: a median absolute deviation of 0 makes a z-score
  infinite or needs an arbitrary floor, while a tail probability treats "one of 3 operators
  with a wrong PIN today" and "one of 3,000" as what they are;
- only *more* counts (an operator doing less than usual is no audit concern): a one-sided tail
  does that, a forest isolates low values too;
- it needs no fit and no sample, is the same on every engine, and a day's ranking reads only
  that day's rows and earlier days (the baselines), so it ranks the new day the night it ends;
- each term is one feature's share of the score: the top features an analyst reads are the
  score's own decomposition, not a post-hoc attribution.

Its known weakness, features that say the same thing counted twice, is met by scoring one view
of each behaviour (:data:`SCORED_OPERATOR_FEATURES`): the refund count against peers and
against the operator's own past, not also the refund amount and rate. Counting each family of
behaviour once (its rarest feature only) was measured too, on the worlds of docs/detection.md:
it ranked evading refund bursts, whose evidence is several moderately rare refund features
together, lower (budget recall 0.24 to 0.07 on average at evasion 0.5) and gained nothing
elsewhere, so the plain sum stays (docs/detection.md, "Ranking for a daily budget").
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final, Literal

import polars as pl

from posaudit.detect.logins import PERSON_UNLOCKS
from posaudit.detect.refunds import approved_refunds, customer_return, with_account_ref
from posaudit.score.operators import operator_day_features

EntityKind = Literal["operator", "merchant"]

SHIFT: Final = timedelta(hours=8)  # a shift: a takeover's refunds follow its login within it
HISTORY_DAYS: Final = 28  # the operator's own look-back, as in posaudit.score.operators
UNUSUAL_HOUR_SHARE: Final = 0.05  # under 1 hour in 20 of its earlier activity (judgement)
MIN_HOUR_HISTORY: Final = 20  # earlier events before an hour profile means anything
UNUSUAL_WEEKDAY_SHARE: Final = 0.25  # worked on under 1 in 4 of its earlier weeks
MIN_WEEKDAY_HISTORY: Final = 14  # earlier active days before a weekday profile means anything
MIN_TERMINAL_HISTORY: Final = 7  # earlier active days before a terminal counts as new to it
ROUND_FEN: Final = 10_000  # 100 CNY: the round amounts of cash-out refunds
EXPLAINED: Final = 3  # features named per entity-day

# New operator-day features (beside those of operator_day_features).
RANKING_FEATURES: Final = (
    "unusual_hour_share",
    "unusual_weekday",
    "refund_count_vs_own",
    "event_count_vs_own",
    "wrong_pin_count_vs_own",
    "refunds_1h_peak",
    "refunds_3h_peak",
    "terminals_per_hour_peak",
    "foreign_terminal_events",
    "foreign_terminal_share",
    "new_terminal_events",
    "refunds_after_wrong_pin",
    "lockout_reset_refund_count",
    "stranger_card_refunds",
    "round_refund_count",
    "non_return_refund_count",
)
# What the unsupervised operator-day score sums over: one view of each behaviour.
SCORED_OPERATOR_FEATURES: Final = (
    "refund_count_vs_median",
    "refund_count_vs_own",
    "refunds_3h_peak",
    "repeat_card_refund_count",
    "refunds_to_repeat_cards_28d",
    "stranger_card_refunds",
    "round_refund_count",
    "non_return_refund_count",
    "refunds_after_wrong_pin",
    "lockout_reset_refund_count",
    "wrong_pin_count_vs_own",
    "lockout_count",
    "void_count_vs_median",
    "foreign_terminal_share",
    "new_terminal_events",
    "terminals_per_hour_peak",
    "unusual_hour_share",
    "unusual_weekday",
    "off_hours_share",
)
MERCHANT_SUMS: Final = (
    "sale_count",
    "refund_count",
    "refund_amount_fen",
    "void_count",
    "wrong_pin_count",
    "lockout_count",
    "repeat_card_refund_count",
    "stranger_card_refunds",
    "round_refund_count",
    "refunds_after_wrong_pin",
    "lockout_reset_refund_count",
    "foreign_terminal_events",
    "new_terminal_events",
)
MERCHANT_PEAKS: Final = (
    "refunds_3h_peak",
    "terminals_per_hour_peak",
    "unusual_hour_share",
    "refunds_to_repeat_cards_28d",
)
MERCHANT_FEATURES: Final = (
    *MERCHANT_SUMS,
    *(f"{f}_max" for f in MERCHANT_PEAKS),
    "operator_count",
    "refund_rate",
    "refund_count_vs_own",
    "unknown_operator_logins",
    "failed_operator_numbers",
)
SCORED_MERCHANT_FEATURES: Final = (
    "refund_count_vs_own",
    "refund_rate",
    "refunds_3h_peak_max",
    "refunds_to_repeat_cards_28d_max",
    "stranger_card_refunds",
    "round_refund_count",
    "refunds_after_wrong_pin",
    "lockout_count",
    "wrong_pin_count",
    "foreign_terminal_events",
    "new_terminal_events",
    "terminals_per_hour_peak_max",
    "unusual_hour_share_max",
    "unknown_operator_logins",
    "failed_operator_numbers",
)
KEYS: Final[dict[str, tuple[str, ...]]] = {
    "operator": ("operator_id", "day"),
    "merchant": ("merchant_id", "day"),
}


def _own_vs(count: str, *, by: str) -> pl.Expr:
    """log1p(count) - log1p(mean count over the entity's active days in the 28 days before);
    0 without earlier days (no history is no evidence)."""
    prior = (
        pl.col(count)
        .cast(pl.Float64)
        .rolling_mean_by("day", window_size=f"{HISTORY_DAYS}d", closed="left")
        .over(by)
    )
    return (pl.col(count).cast(pl.Float64).log1p() - prior.log1p()).fill_null(0.0)


def _events(transactions: pl.LazyFrame, login_events: pl.LazyFrame) -> pl.LazyFrame:
    """Every transaction and login attempt of a known operator: who, where, when."""
    columns = (
        pl.col("operator_id").cast(pl.String),
        pl.col("terminal_id").cast(pl.String),
        "ts",
    )
    return pl.concat(
        [
            transactions.select(*columns),
            login_events.filter(pl.col("operator_id").is_not_null()).select(*columns),
        ]
    ).with_columns(pl.col("ts").dt.date().alias("day"), pl.col("ts").dt.hour().alias("hour"))


def _hour_features(events: pl.LazyFrame, operators: pl.LazyFrame) -> pl.LazyFrame:
    """Per operator-day: terminals per hour, foreign-terminal and new-terminal activity,
    unusual hours."""
    home = operators.select(
        pl.col("operator_id").cast(pl.String), pl.col("terminal_id").cast(pl.String).alias("home")
    )
    # a terminal the operator never worked on an earlier day, once it has a history
    terminal_days = (
        events.group_by("operator_id", "terminal_id", "day")
        .agg(pl.len().alias("events"))
        .with_columns(
            (pl.col("day") == pl.col("day").min().over("operator_id", "terminal_id")).alias(
                "is_new"
            ),
            (pl.col("day").rank(method="dense").over("operator_id") - 1).alias("earlier_days"),
        )
        .group_by("operator_id", "day")
        .agg(
            pl.col("events")
            .filter(pl.col("is_new") & (pl.col("earlier_days") >= MIN_TERMINAL_HISTORY))
            .sum()
            .cast(pl.UInt32)
            .alias("new_terminal_events")
        )
    )
    hours = (
        events.join(home, on="operator_id", how="left")
        .group_by("operator_id", "day", "hour")
        .agg(
            pl.len().alias("events"),
            pl.col("terminal_id").n_unique().alias("terminals"),
            (pl.col("terminal_id") != pl.col("home")).fill_null(False).sum().alias("foreign"),
        )
        .with_columns(
            # earlier days' events in this clock hour and in all hours
            (pl.col("events").cum_sum().over("operator_id", "hour", order_by="day"))
            .sub(pl.col("events"))
            .alias("prior_hour_events"),
        )
    )
    days = (
        hours.group_by("operator_id", "day")
        .agg(pl.col("events").sum().alias("day_events"))
        .with_columns(
            (pl.col("day_events").cum_sum().over("operator_id", order_by="day"))
            .sub(pl.col("day_events"))
            .alias("prior_events")
        )
    )
    unusual = (pl.col("prior_events") >= MIN_HOUR_HISTORY) & (
        pl.col("prior_hour_events") < UNUSUAL_HOUR_SHARE * pl.col("prior_events")
    )
    return (
        hours.join(days, on=["operator_id", "day"])
        .group_by("operator_id", "day")
        .agg(
            pl.col("events").sum().alias("event_count"),
            pl.col("terminals").max().alias("terminals_per_hour_peak"),
            pl.col("foreign").sum().alias("foreign_terminal_events"),
            (pl.col("events").filter(unusual).sum() / pl.col("events").sum()).alias(
                "unusual_hour_share"
            ),
        )
        .with_columns(pl.col("foreign_terminal_events").cast(pl.UInt32))
        .join(terminal_days, on=["operator_id", "day"], how="left")
    )


def _weekday_feature(days: pl.LazyFrame) -> pl.LazyFrame:
    """Per operator-day: 1 when the operator rarely worked this weekday before."""
    weekday = pl.col("day").dt.weekday()
    earlier_days = pl.int_range(pl.len()).over("operator_id", order_by="day")
    same_weekday = pl.int_range(pl.len()).over("operator_id", weekday, order_by="day")
    weeks = ((pl.col("day") - pl.col("day").min().over("operator_id")).dt.total_days() // 7) + 1
    rare = (earlier_days >= MIN_WEEKDAY_HISTORY) & (same_weekday < UNUSUAL_WEEKDAY_SHARE * weeks)
    return days.select("operator_id", "day", rare.cast(pl.UInt8).alias("unusual_weekday"))


def _refund_features(
    transactions: pl.LazyFrame, lockouts: pl.LazyFrame, pin_events: pl.LazyFrame, login_events
) -> pl.LazyFrame:
    """Per operator-day with refunds: peaks, sequences after wrong PINs, stranger and round
    refunds."""
    refunds = (
        approved_refunds(transactions)
        .filter(pl.col("operator_id").is_not_null())
        .select(
            "txn_id",
            "ts",
            "merchant_id",
            "operator_id",
            "amount_fen",
            "card_token",
            "account_ref",
            "sale_amount_fen",
            customer_return().alias("is_customer_return"),
        )
        .with_columns(pl.col("ts").dt.date().alias("day"))
    )
    paid = with_account_ref(transactions).filter(
        (pl.col("kind") == "sale") & (pl.col("status") == "approved")
    )
    first_paid = (
        paid.filter(pl.col("card_token").is_not_null())
        .group_by(pl.col("merchant_id").cast(pl.String), pl.col("card_token").cast(pl.String))
        .agg(pl.col("ts").min().alias("first_paid_at"))
    )
    # a reissued card's account paid before even when the new card did not
    account_first_paid = (
        paid.filter(pl.col("account_ref").is_not_null())
        .group_by(pl.col("merchant_id").cast(pl.String), pl.col("account_ref").cast(pl.String))
        .agg(pl.col("ts").min().alias("account_first_paid_at"))
    )
    wrong = pl.concat(
        [
            login_events.filter(
                (pl.col("outcome") == "wrong_pin") & pl.col("operator_id").is_not_null()
            ).select(pl.col("operator_id").cast(pl.String), "ts"),
            lockouts.select(pl.col("operator_id").cast(pl.String), pl.col("locked_at").alias("ts")),
        ]
    )
    trouble = wrong.group_by("operator_id", pl.col("ts").dt.date().alias("day")).agg(
        pl.col("ts").min().alias("trouble_at")
    )
    resets = pl.concat(
        [
            lockouts.filter(
                pl.col("unlock_method").cast(pl.String).is_in(PERSON_UNLOCKS)
                & pl.col("unlocked_at").is_not_null()
            ).select(pl.col("operator_id").cast(pl.String), pl.col("unlocked_at").alias("ts")),
            pin_events.filter(pl.col("kind").cast(pl.String) == "reset").select(
                pl.col("operator_id").cast(pl.String), "ts"
            ),
        ]
    )
    # the first reset of the day after the day's first trouble
    reset_after = (
        resets.with_columns(pl.col("ts").dt.date().alias("day"))
        .join(trouble, on=["operator_id", "day"])
        .filter(pl.col("ts") >= pl.col("trouble_at"))
        .group_by("operator_id", "day")
        .agg(pl.col("ts").min().alias("reset_at"))
    )
    in_shift = (pl.col("ts") > pl.col("trouble_at")) & (
        pl.col("ts") <= pl.col("trouble_at") + SHIFT
    )
    after_reset = in_shift & (pl.col("ts") > pl.col("reset_at"))
    one = pl.col("txn_id").is_not_null().cast(pl.UInt32)
    return (
        refunds.join(first_paid, on=["merchant_id", "card_token"], how="left")
        .join(account_first_paid, on=["merchant_id", "account_ref"], how="left")
        .join(trouble, on=["operator_id", "day"], how="left")
        .join(reset_after, on=["operator_id", "day"], how="left")
        .sort("operator_id", "ts")
        .with_columns(
            one.rolling_sum_by("ts", window_size="1h").over("operator_id").alias("in_1h"),
            one.rolling_sum_by("ts", window_size="3h").over("operator_id").alias("in_3h"),
        )
        .group_by("operator_id", "day")
        .agg(
            pl.col("in_1h").max().cast(pl.UInt32).alias("refunds_1h_peak"),
            pl.col("in_3h").max().cast(pl.UInt32).alias("refunds_3h_peak"),
            in_shift.fill_null(False).sum().alias("refunds_after_wrong_pin"),
            after_reset.fill_null(False).sum().alias("lockout_reset_refund_count"),
            (
                pl.col("card_token").is_not_null()
                & (pl.col("first_paid_at").is_null() | (pl.col("first_paid_at") >= pl.col("ts")))
                & (
                    pl.col("account_first_paid_at").is_null()
                    | (pl.col("account_first_paid_at") >= pl.col("ts"))
                )
            )
            .sum()
            .alias("stranger_card_refunds"),
            (
                (pl.col("amount_fen") % ROUND_FEN == 0)
                & (pl.col("amount_fen") < pl.col("sale_amount_fen"))
            )
            .fill_null(False)
            .sum()
            .alias("round_refund_count"),
            (~pl.col("is_customer_return")).sum().alias("non_return_refund_count"),
        )
        .with_columns(
            pl.col(c).cast(pl.UInt32)
            for c in (
                "refunds_after_wrong_pin",
                "lockout_reset_refund_count",
                "stranger_card_refunds",
                "round_refund_count",
                "non_return_refund_count",
            )
        )
    )


# The store tables the ranking reads (the evaluation adds ground_truth).
RANKING_TABLES: Final = (
    "transactions",
    "login_events",
    "lockouts",
    "pin_events",
    "operators",
    "merchants",
    "terminals",
)


def ranking_features_of(tables: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    """:func:`operator_day_ranking_features` of the store's tables by name."""
    return operator_day_ranking_features(
        *(tables[name] for name in RANKING_TABLES if name != "terminals")
    )


def operator_day_ranking_features(
    transactions: pl.LazyFrame,
    login_events: pl.LazyFrame,
    lockouts: pl.LazyFrame,
    pin_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    merchants: pl.LazyFrame,
) -> pl.LazyFrame:
    """One row per acting operator and day: :func:`operator_day_features`, the operator's
    ``merchant_id``, and :data:`RANKING_FEATURES` (module docstring). Counts absent on a day
    are 0; list columns of evidence ids are left out. ``event_count``: the operator's
    transactions and login attempts that day."""
    base = operator_day_features(transactions, login_events, lockouts, operators, merchants)
    base = base.select(pl.exclude(pl.List(pl.String)))
    events = _events(transactions, login_events)
    zero_filled = [c for c in RANKING_FEATURES if not c.endswith("_vs_own")]
    return (
        base.join(_hour_features(events, operators), on=["operator_id", "day"], how="left")
        .join(
            _refund_features(transactions, lockouts, pin_events, login_events),
            on=["operator_id", "day"],
            how="left",
        )
        .sort("operator_id", "day")
        .pipe(lambda rows: rows.join(_weekday_feature(rows), on=["operator_id", "day"]))
        .with_columns(
            pl.col(c).fill_null(0)
            for c in (*zero_filled, "event_count")
            if c != "foreign_terminal_share"
        )
        .with_columns(
            (pl.col("foreign_terminal_events") / pl.col("event_count").clip(lower_bound=1))
            .clip(upper_bound=1.0)
            .alias("foreign_terminal_share"),
            _own_vs("refund_count", by="operator_id").alias("refund_count_vs_own"),
            _own_vs("event_count", by="operator_id").alias("event_count_vs_own"),
            _own_vs("wrong_pin_count", by="operator_id").alias("wrong_pin_count_vs_own"),
        )
    )


def _unknown_operator_logins(login_events: pl.LazyFrame, terminals: pl.LazyFrame) -> pl.LazyFrame:
    """Per merchant-day: login attempts failing on the operator number, and the distinct
    numbers tried that failed (an enumeration of the operator directory)."""
    failed = ~pl.col("outcome").cast(pl.String).is_in(["success", "network_error"])
    return (
        login_events.join(
            terminals.select(
                pl.col("terminal_id").cast(pl.String), pl.col("merchant_id").cast(pl.String)
            ),
            on="terminal_id",
            how="left",
        )
        .filter(failed)
        .group_by("merchant_id", pl.col("ts").dt.date().alias("day"))
        .agg(
            (pl.col("outcome").cast(pl.String) == "unknown_operator")
            .sum()
            .cast(pl.UInt32)
            .alias("unknown_operator_logins"),
            pl.col("operator_no").n_unique().cast(pl.UInt32).alias("failed_operator_numbers"),
        )
    )


def merchant_day_features(
    operator_days: pl.LazyFrame, login_events: pl.LazyFrame, terminals: pl.LazyFrame
) -> pl.LazyFrame:
    """One row per merchant and day with an acting operator: :data:`MERCHANT_SUMS` summed over
    its operator-days (:func:`operator_day_ranking_features`), the highest of
    :data:`MERCHANT_PEAKS` (``<feature>_max``), ``operator_count``, ``refund_rate`` (refunds
    per sale), ``refund_count_vs_own`` (against its own 28 days before), and the failed
    logins of :func:`_unknown_operator_logins`."""
    return (
        operator_days.group_by("merchant_id", "day")
        .agg(
            *(pl.col(c).fill_null(0).sum().cast(pl.Int64) for c in MERCHANT_SUMS),
            *(pl.col(c).fill_null(0).max().alias(f"{c}_max") for c in MERCHANT_PEAKS),
            pl.len().alias("operator_count"),
        )
        .join(
            _unknown_operator_logins(login_events, terminals),
            on=["merchant_id", "day"],
            how="left",
        )
        .sort("merchant_id", "day")
        .with_columns(
            pl.col("unknown_operator_logins", "failed_operator_numbers").fill_null(0),
            (pl.col("refund_count") / pl.col("sale_count").clip(lower_bound=1)).alias(
                "refund_rate"
            ),
            _own_vs("refund_count", by="merchant_id").alias("refund_count_vs_own"),
        )
    )


def daily_anomaly_scores(
    entity_days: pl.LazyFrame,
    *,
    features: tuple[str, ...],
    explained: int = EXPLAINED,
) -> pl.LazyFrame:
    """Every entity-day with ``anomaly_score``, the sum over ``features`` of ln(n / r) (n the
    day's entity-days, r how many of them have the feature at least as high), ``rank`` within
    the day (1 the most anomalous; ties broken by the entity's key), ``day_entities`` (n) and
    ``top_feature_1..explained``: the features that added most (null past those adding 0)
    and ``top_value_1..explained`` their values. Rows come sorted by day and rank.

    Only higher is rarer: a value at or below the day's lowest adds 0. Null counts as 0.

    >>> days = pl.LazyFrame({"operator_id": ["a", "b", "c", "d"], "day": 1,
    ...     "refunds": [0, 0, 0, 5], "lockouts": [0, 1, 0, 1]})
    >>> s = daily_anomaly_scores(days, features=("refunds", "lockouts"), explained=1).collect()
    >>> s.select("operator_id", pl.col("anomaly_score").round(3), "rank", "top_feature_1").rows()
    ... # doctest: +NORMALIZE_WHITESPACE
    [('d', 2.079, 1, 'refunds'), ('b', 0.693, 2, 'lockouts'),
     ('a', 0.0, 3, None), ('c', 0.0, 4, None)]
    """
    n = pl.len().over("day").cast(pl.Float64)
    terms = [
        (n / pl.col(f).fill_null(0).rank(method="max", descending=True).over("day"))
        .log()
        .alias(f"_term_{f}")
        for f in features
    ]
    key = next(c for c in entity_days.collect_schema().names() if c.endswith("_id"))
    term_list = pl.concat_list([pl.col(f"_term_{f}") for f in features])
    top = [
        pl.when(pl.col("_top_value").list.get(i, null_on_oob=True) > 0)
        .then(pl.col("_top_name").list.get(i, null_on_oob=True))
        .alias(f"top_feature_{i + 1}")
        for i in range(explained)
    ]
    order = pl.col("_values").list.eval(pl.element().arg_sort(descending=True, nulls_last=True))
    return (
        entity_days.with_columns(terms)
        .with_columns(
            pl.sum_horizontal(f"_term_{f}" for f in features).alias("anomaly_score"),
            n.cast(pl.UInt32).alias("day_entities"),
            term_list.alias("_values"),
        )
        .with_columns(
            pl.lit(pl.Series([list(features)], dtype=pl.List(pl.String)))
            .list.gather(order)
            .list.head(explained)
            .alias("_top_name"),
            pl.col("_values").list.sort(descending=True).list.head(explained).alias("_top_value"),
            pl.concat_list([pl.col(f).cast(pl.Float64).fill_null(0.0) for f in features])
            .list.gather(order)
            .list.head(explained)
            .alias("_top_raw"),
        )
        .with_columns(top)
        .with_columns(
            pl.when(pl.col(f"top_feature_{i + 1}").is_not_null())
            .then(pl.col("_top_raw").list.get(i, null_on_oob=True))
            .alias(f"top_value_{i + 1}")
            for i in range(explained)
        )
        .sort("day", "anomaly_score", key, descending=[False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over("day").alias("rank"))
        .drop(pl.selectors.starts_with("_"))
    )


def ranked_day(
    tables: dict[str, pl.LazyFrame], *, entity: EntityKind = "operator", day: date | None = None
) -> tuple[pl.DataFrame | None, list[date]]:
    """One day's entity-days ranked by :func:`daily_anomaly_scores` (``day`` None: the latest
    with activity), and every day with activity. ``tables``: the store's transactions,
    login_events, lockouts, pin_events, operators, merchants and terminals. The ranking is
    None when ``day`` has no activity. Features read the day and the days before it only,
    but the data after it is read too (a day's peer medians are its week's)."""
    t = tables
    rows = ranking_features_of(t)
    features: tuple[str, ...] = SCORED_OPERATOR_FEATURES
    if entity == "merchant":
        rows = merchant_day_features(rows, t["login_events"], t["terminals"])
        features = SCORED_MERCHANT_FEATURES
    frame = rows.collect()
    days = sorted(set(frame.get_column("day").to_list()))
    if not days:
        return None, days
    chosen = days[-1] if day is None else day
    if chosen not in days:
        return None, days
    ranked = daily_anomaly_scores(
        frame.lazy().filter(pl.col("day") == chosen), features=features
    ).collect()
    return ranked, days
