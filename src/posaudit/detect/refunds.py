"""Refund abuse: refunds that return money the merchant never took, or return it to the wrong place.

A refund is the one terminal operation that moves money *out* of the merchant's account, so it
is where a dishonest clerk, or someone who has taken over a clerk's login, cashes out. A
legitimate refund goes back to the card that paid, for no more than the sale took, within the
acquirer's refund window, by an operator trusted with refunds, during opening hours, and is
rare (1-3 % of sales, hours to two weeks after the sale). Each rule here looks for one break
of that pattern:

- per refund: no original sale (``refunds_without_sale``), more than the sale
  (``refunds_over_sale``), to another card (``refunds_to_other_card``), by an operator without
  refund permission (``refunds_without_permission``), after the refund window
  (``late_refunds``);
- per operator: refunds outside opening hours (``off_hours_refunds``), many refunds in a short
  time (``refund_bursts``), partial refunds of round amounts, the signature of cash-out
  (``round_amount_refunds``), and refunds to other cards right after a suspicious login, the
  signature of an account takeover (``refunds_after_suspicious_login``).

Only approved refunds are candidates: the terminal refuses most bad refunds itself (they show
as ``failed``), and a refused refund moved no money. A refund's original sale is the approved
sale of the same merchant named by ``original_txn_id`` and made no later than the refund; a
refund naming anything else has no sale. The rules share one frame, :func:`approved_refunds`:
the few approved refunds with their sales, which a run computes once.

"The card that paid" is the paying cardholder's account where the data can tell: a card
reissued (expired, lost, upgraded) has a new card token, but its network's Payment Account
Reference (``account_ref``, kept as a keyed token) stays with the account. A refund to
another card of the same account goes back to the customer who paid
(:func:`refund_to_payer`); where either side has no account reference, only the same card
token counts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.detect.findings import Severity, to_findings
from posaudit.detect.pins import _stamp
from posaudit.detect.registry import derived_table, rule
from posaudit.detect.sentences import (
    CLOCK,
    DECIMAL,
    MINUTE,
    NAME,
    NUMBER,
    Clause,
    Kind,
    Money,
    Operator,
    Sentence,
    Value,
    Words,
)

FAMILY: Final = "refunds"
# A finding on one refund depends on that refund, its sale and the other refunds of the sale.
# The shared frame reaches those through original_txn_id whatever their age (its ``linked``
# rows), so the rules judging one refund at a time look back one day only.
REFUND_LOOKBACK: Final = timedelta(days=1)
# How far back the changes of operators' rights are read: all of them.
RIGHTS_HISTORY: Final = timedelta(days=36_500)
MAX_EVIDENCE_IDS: Final = 20
SECONDS_PER_DAY: Final = 86_400
# Merchants open around the clock store closes_at as 23:59:59; read that as midnight.
LAST_SECOND_OF_DAY: Final = SECONDS_PER_DAY - 1

REFUND_COLUMNS: Final = (
    "txn_id",
    "ts",
    "terminal_id",
    "merchant_id",
    "operator_id",
    "amount_fen",
    "card_token",
    "account_ref",
    "original_txn_id",
)


# --- shared steps -------------------------------------------------------------------------


def with_account_ref(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """``transactions`` with an ``account_ref`` column: null in every row when the frame has
    none (an export without account references, a frame made before the column)."""
    if "account_ref" in transactions.collect_schema().names():
        return transactions
    return transactions.with_columns(pl.lit(None, pl.String).alias("account_ref"))


def refund_to_payer() -> pl.Expr:
    """Whether an approved refund goes back to whoever paid its sale: to the card token that
    paid (or wallet, or cash: no token on either side), or to another card of the same
    account, the same ``account_ref`` as the sale's (a reissued card). Null account
    references tell nothing: without them only the same token counts.

    Reads ``card_token``, ``sale_card_token``, ``account_ref`` and ``sale_account_ref`` of
    :func:`approved_refunds`. Every rule that asks whether a refund went to the paying card
    asks it through this expression.

    >>> frame = pl.DataFrame({"card_token": ["c1", "c2", "c2"], "sale_card_token": "c1",
    ...     "account_ref": ["a", "a", None], "sale_account_ref": "a"})
    >>> frame.select(refund_to_payer()).to_series().to_list()
    [True, True, False]
    """
    same_card = pl.col("card_token").eq_missing(pl.col("sale_card_token"))
    same_account = (pl.col("account_ref") == pl.col("sale_account_ref")).fill_null(False)
    return same_card | same_account


def _approved_refunds(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """The approved refunds, the only ones that moved money, with the columns rules read."""
    return transactions.filter(
        (pl.col("kind") == "refund") & (pl.col("status") == "approved")
    ).select(
        *(pl.col(c).cast(pl.String) for c in REFUND_COLUMNS if c not in ("ts", "amount_fen")),
        pl.col("ts").cast(pl.Datetime("us")),
        pl.col("amount_fen").cast(pl.Int64),
    )


def _refunds_with_sales(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """Approved refunds with their original sale: ``sale_ts``, ``sale_amount_fen``,
    ``sale_card_token``, ``sale_account_ref`` (null when the refund has no sale) and
    ``has_sale``.

    The refunds are few, so the sales are cut down to those the refunds name before the join.
    """
    transactions = with_account_ref(transactions)
    refunds = _approved_refunds(transactions)
    sales = (
        transactions.filter((pl.col("kind") == "sale") & (pl.col("status") == "approved"))
        .select(
            pl.col("txn_id").cast(pl.String).alias("original_txn_id"),
            pl.col("merchant_id").cast(pl.String),
            pl.col("ts").cast(pl.Datetime("us")).alias("sale_ts"),
            pl.col("amount_fen").cast(pl.Int64).alias("sale_amount_fen"),
            pl.col("card_token").cast(pl.String).alias("sale_card_token"),
            pl.col("account_ref").cast(pl.String).alias("sale_account_ref"),
        )
        .join(refunds.select("original_txn_id").unique(), on="original_txn_id", how="semi")
        # a txn_id is unique in the store; keep one row even if a feed repeats a sale
        .unique(subset=["original_txn_id", "merchant_id"], keep="any")
    )
    matched = pl.col("sale_ts").is_not_null() & (pl.col("sale_ts") <= pl.col("ts"))
    return (
        refunds.join(sales, on=["original_txn_id", "merchant_id"], how="left")
        .with_columns(matched.alias("has_sale"))
        .with_columns(
            pl.when(pl.col("has_sale")).then(pl.col(c)).alias(c)
            for c in ("sale_ts", "sale_amount_fen", "sale_card_token", "sale_account_ref")
        )
    )


@derived_table(
    source="transactions",
    rows={"kind": ("refund",), "status": ("approved",)},
    linked=("original_txn_id", "txn_id"),
)
def approved_refunds(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """The approved refunds with their original sale, the frame every refund rule starts from.

    Columns: the refund's ``txn_id``, ``ts``, ``terminal_id``, ``merchant_id``,
    ``operator_id``, ``amount_fen``, ``card_token``, ``account_ref`` and ``original_txn_id``,
    then its sale's ``sale_ts``, ``sale_amount_fen``, ``sale_card_token`` and
    ``sale_account_ref`` (null without one) and ``has_sale``. It needs only the approved
    refunds and the rows they name, so a run reads just those. Rows come in time order (then
    by id) whatever order the transactions came in, so evidence that lists refunds in time
    order is the same from any reader.
    """
    return _refunds_with_sales(transactions).sort("ts", "txn_id")


def _with_operator_no(frame: pl.LazyFrame, operators: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``operator_no`` (the number people know), falling back to the operator id."""
    numbers = operators.select(
        pl.col("operator_id").cast(pl.String), pl.col("operator_no").cast(pl.String)
    ).unique(subset="operator_id", keep="any")
    return frame.join(numbers, on="operator_id", how="left").with_columns(
        pl.coalesce("operator_no", "operator_id").alias("operator_no")
    )


def _minute(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%d %H:%M")


def _ids(column: str) -> pl.Expr:
    """Event ids for evidence, in time order, capped so evidence stays readable."""
    return pl.col(column).sort_by("ts").head(MAX_EVIDENCE_IDS)


# A sentence on one refund opens with the refund: 'refund X of 523.00 CNY on 2026-03-04 14:02
# at terminal T by operator 03'; in Chinese the refund is the subject ('…办理的退款 X') or, before
# a clause of its own, what the operator did ('…办理了退款 X').
_REFUND_EN: Final = "refund {refund} of {amount} on {at} at terminal {terminal_id} by {operator}"
_REFUND_ZH: Final = "{operator}于 {at} 在终端 {terminal_id} 办理的退款 {refund}（{amount}）"
_REFUND_MADE_ZH: Final = "{operator}于 {at} 在终端 {terminal_id} 办理了退款 {refund}（{amount}）"
_REFUND_FIELDS: Final[dict[str, Kind]] = {
    "refund": Value(),
    "amount": Money(),
    "at": Value(MINUTE),
    "terminal_id": Value(),
    "operator": Operator(terminal="terminal_id"),
}
# A sentence on an operator's refunds opens with the operator and the terminal of the first.
_WHO_EN: Final = "{operator} at terminal {terminal_id}"
_WHO_ZH: Final = "终端 {terminal_id} 的{operator}"
_WHO_FIELDS: Final[dict[str, Kind]] = {
    "operator": Operator(terminal="terminal_id"),
    "terminal_id": Value(),
}
# How a lockout was lifted, as the store names it.
UNLOCK_WORDS: Final[dict[str, tuple[str, str]]] = {
    "timeout": ("timeout", "超时自动解除"),
    "admin": ("admin", "由管理员解除"),
    "service_desk": ("service_desk", "由服务台解除"),
    "nobody": ("nobody", "未解除"),
}


def _refund() -> dict[str, pl.Expr | str]:
    """The values of the fields a sentence on one refund opens with."""
    return {
        "refund": "txn_id",
        "amount": "amount_fen",
        "at": _minute("ts"),
        "terminal_id": "terminal_id",
        "operator": "operator_no",
    }


def _who() -> dict[str, pl.Expr | str]:
    """The values of the fields a sentence on an operator's refunds opens with."""
    return {"operator": "operator_no", "terminal_id": "terminal_id"}


def _transaction_findings(
    frame: pl.LazyFrame,
    *,
    rule_name: str,
    severity: Severity,
    score: float | pl.Expr,
    summary: pl.Expr,
    evidence: dict[str, pl.Expr],
) -> pl.LazyFrame:
    """One finding per refund: the refund itself is the entity and its time the window."""
    return frame.with_columns(
        pl.col("txn_id").alias("entity_id"),
        pl.col("ts").alias("window_start"),
        pl.col("ts").alias("window_end"),
    ).pipe(
        to_findings,
        rule=rule_name,
        family=FAMILY,
        entity_type="transaction",
        severity=severity,
        score=score,
        summary=summary,
        evidence={
            "refund_txn_id": pl.col("txn_id"),
            "amount_fen": pl.col("amount_fen"),
            "operator_id": pl.col("operator_id"),
            "terminal_id": pl.col("terminal_id"),
            "original_txn_id": pl.col("original_txn_id"),
            **evidence,
        },
    )


def _dense_runs(
    events: pl.LazyFrame, *, min_events: int, window: timedelta, by: str = "operator_id"
) -> pl.LazyFrame:
    """The events of ``by`` that lie in some span of ``window`` holding ``min_events`` or more,
    with ``run_id`` numbering each maximal run of such events per ``by`` value.

    The k-th event closes a dense span when the event k-1 places before it (in time order) is
    no more than ``window`` earlier; every event of such a span is kept. Consecutive kept
    events more than ``window`` apart start a new run (no dense span has a gap that long).
    """
    k = max(min_events, 1)
    gap = pl.col("ts") - pl.col("ts").shift(1).over(by)
    closes_span = (pl.col("ts") - pl.col("ts").shift(k - 1).over(by)) <= window
    return (
        events.sort(by, "ts", "txn_id")
        .with_columns(closes_span.fill_null(False).alias("closes_span"))
        # an event is in a dense span when one of itself and the k-1 events after it closes one
        .with_columns(
            pl.col("closes_span")
            .reverse()
            .rolling_max(window_size=k, min_samples=1)
            .reverse()
            .over(by)
            .alias("in_span")
        )
        .with_columns(
            (
                pl.col("in_span")
                & (
                    ~pl.col("in_span").shift(1).over(by).fill_null(False)
                    | (gap > window).fill_null(True)
                )
            )
            .cast(pl.Int64)
            .cum_sum()
            .over(by)
            .alias("run_id")
        )
        .filter(pl.col("in_span"))
    )


# --- per refund ---------------------------------------------------------------------------


REFUNDS_WITHOUT_SALE: Final = Sentence(
    en=_REFUND_EN + " {sale}",
    zh=_REFUND_ZH + "{sale}",
    fields={
        **_REFUND_FIELDS,
        "sale": Clause(
            {
                "named": (
                    "names sale {original}, which this merchant never took",
                    "所引用的原交易 {original} 并非本商户完成的交易",
                ),
                "none": ("names no original sale", "未引用任何原交易"),
            }
        ),
        "original": Value(),
    },
)


@rule(
    family=FAMILY,
    entity_type="transaction",
    partition_key="merchant_id",
    lookback=REFUND_LOOKBACK,
    scenarios=("refund_without_sale",),
)
def refunds_without_sale(approved_refunds: pl.LazyFrame, operators: pl.LazyFrame) -> pl.LazyFrame:
    """Approved refunds that name no original sale, or name one that does not exist.

    A terminal refunds by picking the original sale from its records, so a refund with no
    sale behind it returns money the merchant never took: the simplest cash-out, and the one
    a host that fails to check the reference lets through. Declined or failed sales, sales of
    another merchant and sales made after the refund do not count as the refund's sale.
    """
    named = pl.col("original_txn_id").is_not_null()
    return (
        approved_refunds.filter(~pl.col("has_sale"))
        .pipe(_with_operator_no, operators)
        .pipe(
            _transaction_findings,
            rule_name="refunds_without_sale",
            severity="medium",
            score=pl.when(named).then(0.9).otherwise(0.85),
            summary=REFUNDS_WITHOUT_SALE.expr(
                **_refund(),
                sale=pl.when(named).then(pl.lit("named")).otherwise(pl.lit("none")),
                original="original_txn_id",
            ),
            evidence={"original_named": named},
        )
    )


REFUNDS_OVER_SALE: Final = Sentence(
    en=_REFUND_EN + " brought the refunds of sale {original} to {refunded}, {ratio}x the "
    "{sale_amount} it took",
    zh=_REFUND_ZH + "使原交易 {original} 的累计退款达到 {refunded}，"
    "是原交易金额 {sale_amount}的 {ratio} 倍",
    fields={
        **_REFUND_FIELDS,
        "original": Value(),
        "refunded": Money(),
        "ratio": Value(DECIMAL),
        "sale_amount": Money(),
    },
)


@rule(
    family=FAMILY,
    entity_type="transaction",
    partition_key="merchant_id",
    lookback=REFUND_LOOKBACK,
    scenarios=("refund_over_sale",),
)
def refunds_over_sale(
    approved_refunds: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    tolerance_fen: int = 0,  # the acquirer refuses any refund beyond what is left of the sale
) -> pl.LazyFrame:
    """Refunds that, with earlier refunds of the same sale, return more than the sale took.

    The acquirer's refund policy forbids returning more than what is left of a sale; an
    approved refund past that line means the host's check failed or was bypassed, and the
    excess is money paid out of the merchant's account for nothing. The refund that crosses
    the line is reported, once per sale; the evidence counts every approved refund of the
    sale, so refunds after the crossing one are in view without a finding each.

    Parameters
    ----------
    tolerance_fen
        Excess over the sale amount that is still accepted (0: none).
    """
    sale = ("original_txn_id", "merchant_id")
    refunded = pl.col("amount_fen").cum_sum().over(*sale, order_by=["ts", "txn_id"])
    limit = pl.col("sale_amount_fen") + tolerance_fen
    return (
        approved_refunds.filter(pl.col("has_sale"))
        .with_columns(
            refunded.alias("refunded_fen"),
            pl.len().over(*sale).alias("refunds_of_sale"),
            pl.col("amount_fen").sum().over(*sale).alias("sale_refunded_total_fen"),
        )
        .filter(
            (pl.col("refunded_fen") > limit)
            & (pl.col("refunded_fen") - pl.col("amount_fen") <= limit)
        )
        .with_columns((pl.col("refunded_fen") / pl.col("sale_amount_fen")).alias("ratio"))
        .pipe(_with_operator_no, operators)
        .pipe(
            _transaction_findings,
            rule_name="refunds_over_sale",
            severity="medium",
            score=(0.7 + 0.3 * (pl.col("ratio") - 1.0)).clip(0.7, 1.0),
            summary=REFUNDS_OVER_SALE.expr(
                **_refund(),
                original="original_txn_id",
                refunded="refunded_fen",
                ratio=pl.col("ratio").round(2),
                sale_amount="sale_amount_fen",
            ),
            evidence={
                "sale_amount_fen": pl.col("sale_amount_fen"),
                "refunded_fen": pl.col("refunded_fen"),
                "excess_fen": pl.col("refunded_fen") - pl.col("sale_amount_fen"),
                "refunds_of_sale": pl.col("refunds_of_sale"),
                "sale_refunded_total_fen": pl.col("sale_refunded_total_fen"),
                "tolerance_fen": pl.lit(tolerance_fen),
            },
        )
    )


REFUNDS_TO_OTHER_CARD: Final = Sentence(
    en=_REFUND_EN + " went to another card than the one that paid sale {original} of "
    "{sale_amount} on {sale_at}",
    zh=_REFUND_ZH + "退到了另一张卡或钱包，而非支付原交易 {original}（{sale_amount}，{sale_at}）"
    "的那一张",
    fields={
        **_REFUND_FIELDS,
        "original": Value(),
        "sale_amount": Money(),
        "sale_at": Value(MINUTE),
    },
)


@rule(
    family=FAMILY,
    entity_type="transaction",
    partition_key="merchant_id",
    lookback=REFUND_LOOKBACK,
    scenarios=("refund_other_card",),
)
def refunds_to_other_card(approved_refunds: pl.LazyFrame, operators: pl.LazyFrame) -> pl.LazyFrame:
    """Approved refunds paid to another card or wallet than the one that paid the sale.

    A refund goes back to the card that paid; sending it elsewhere turns a refund into a
    transfer from the merchant to whoever holds that card, which is how both dishonest clerks
    and account takeovers cash out. A missing token on one side only counts as different. A
    new card of the paying account (the same account reference: the customer's card was
    reissued) is the customer's own, not another card (:func:`refund_to_payer`).
    """
    return (
        approved_refunds.filter(pl.col("has_sale") & ~refund_to_payer())
        .pipe(_with_operator_no, operators)
        .pipe(
            _transaction_findings,
            rule_name="refunds_to_other_card",
            severity="medium",
            score=0.9,
            summary=REFUNDS_TO_OTHER_CARD.expr(
                **_refund(),
                original="original_txn_id",
                sale_amount="sale_amount_fen",
                sale_at=_minute("sale_ts"),
            ),
            evidence={
                "refund_card_token": pl.col("card_token"),
                "sale_card_token": pl.col("sale_card_token"),
                "sale_amount_fen": pl.col("sale_amount_fen"),
            },
        )
    )


REFUNDS_WITHOUT_PERMISSION: Final = Sentence(
    en=_REFUND_EN + " {why}",
    zh=_REFUND_MADE_ZH + "，{why}",
    fields={
        **_REFUND_FIELDS,
        "why": Clause(
            {
                "no_refund_permission": (
                    "although the operator has no refund permission",
                    "但该操作员没有退款权限",
                ),
                "operator_disabled": (
                    "although the operator was disabled on {disabled_at}",
                    "但该操作员已于 {disabled_at} 被停用",
                ),
                "unknown_operator": (
                    "although no such operator is on record",
                    "但系统中没有该操作员的记录",
                ),
            }
        ),
        "disabled_at": Value(MINUTE),
    },
)


@rule(
    family=FAMILY,
    entity_type="transaction",
    partition_key="operator_id",
    lookback=timedelta(days=1),
    scenarios=("refund_without_permission",),
    # the changes of rights whatever their age: the evidence names the last one before the
    # refund (the table is small)
    reads=lambda _thresholds: {"operator_events": RIGHTS_HISTORY},
)
def refunds_without_permission(
    approved_refunds: pl.LazyFrame, operators: pl.LazyFrame, operator_events: pl.LazyFrame
) -> pl.LazyFrame:
    """Approved refunds by an operator without refund permission at the time (or with no
    operator record, or disabled at the time).

    Refund permission is given only to the staff whose job needs it; a refund by anyone else
    means the terminal's permission check was bypassed or the operator table was tampered
    with, and it is the refund the merchant is least likely to have sanctioned.

    The operators table holds each operator's rights now; ``operator_events`` holds how they
    came to be. A refund's operator held the right at the time unless the first change of the
    refund right after the refund grants it (it was not held before), and did not hold it if
    that change revokes it; with no change since, the right is the table's. The evidence names
    the last change of the right before the refund (when the operator came to be without it),
    which later data cannot change.
    """
    permissions = operators.select(
        pl.col("operator_id").cast(pl.String),
        pl.col("operator_no").cast(pl.String),
        pl.col("can_refund").cast(pl.Boolean),
        pl.col("disabled_at").cast(pl.Datetime("us")),
    ).unique(subset="operator_id", keep="any")
    changes = (
        operator_events.select(
            pl.col("operator_id").cast(pl.String),
            pl.col("ts").cast(pl.Datetime("us")).alias("changed_at"),
            pl.col("kind").cast(pl.String),
            pl.col("permission").cast(pl.String),
        )
        .filter(pl.col("kind").is_in(["granted", "revoked"]) & (pl.col("permission") == "refund"))
        # two changes in one instant: the revoke last, as the operator is left without
        .sort("operator_id", "changed_at", pl.col("kind") == "granted")
        .unique(subset=["operator_id", "changed_at"], keep="first", maintain_order=True)
        .select("operator_id", "changed_at", (pl.col("kind") == "revoked").alias("held_before"))
        .sort("changed_at")
    )
    held = (
        pl.when(pl.col("held_before").is_not_null())
        .then(pl.col("held_before"))
        .otherwise(pl.col("can_refund"))
    )
    reason = (
        pl.when(pl.col("can_refund").is_null())
        .then(pl.lit("unknown_operator"))
        .when(~pl.col("could_refund"))
        .then(pl.lit("no_refund_permission"))
        .otherwise(pl.lit("operator_disabled"))
    )
    return (
        approved_refunds.join(permissions, on="operator_id", how="left")
        .sort("ts")
        .join_asof(
            changes,
            left_on="ts",
            right_on="changed_at",
            by="operator_id",
            strategy="forward",
            allow_exact_matches=False,
            # both sides are sorted by time just above; Polars cannot check it within groups
            check_sortedness=False,
        )
        .with_columns(held.alias("could_refund"))
        .join_asof(
            changes.select("operator_id", pl.col("changed_at").alias("set_at")),
            left_on="ts",
            right_on="set_at",
            by="operator_id",
            strategy="backward",
            check_sortedness=False,
        )
        .filter(
            ~pl.col("could_refund").fill_null(False)
            | (pl.col("disabled_at").is_not_null() & (pl.col("disabled_at") <= pl.col("ts")))
        )
        .with_columns(
            pl.coalesce("operator_no", "operator_id").alias("operator_no"),
            reason.alias("reason"),
        )
        .pipe(
            _transaction_findings,
            rule_name="refunds_without_permission",
            severity="medium",
            score=0.9,
            summary=REFUNDS_WITHOUT_PERMISSION.expr(
                **_refund(), why="reason", disabled_at=_minute("disabled_at")
            ),
            evidence={
                "reason": pl.col("reason"),
                "can_refund": pl.col("could_refund"),
                "right_set_at": _stamp("set_at"),
            },
        )
    )


LATE_REFUNDS: Final = Sentence(
    en=_REFUND_EN + " came {lag_days} days after sale {original} of {sale_amount}; the refund "
    "window is {window_days} days",
    zh=_REFUND_ZH + "距原交易 {original}（{sale_amount}）已过 {lag_days} 天，"
    "超出 {window_days} 天的退款期限",
    fields={
        **_REFUND_FIELDS,
        "lag_days": Value(DECIMAL),
        "original": Value(),
        "sale_amount": Money(),
        "window_days": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="transaction",
    partition_key="merchant_id",
    lookback=REFUND_LOOKBACK,
    scenarios=("late_refund",),
)
def late_refunds(
    approved_refunds: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    refund_window_days: int = 15,  # the acquirer's refund window (docs/scenarios.md)
) -> pl.LazyFrame:
    """Approved refunds made longer after their sale than the acquirer's refund window.

    The acquirer refuses refunds past its window, so an approved one means the check was
    bypassed; and a refund of an old sale is a favourite of cash-out because the customer
    is long gone and nobody disputes it.

    Parameters
    ----------
    refund_window_days
        Days after the sale in which a refund is allowed.
    """
    window = timedelta(days=refund_window_days)
    lag_days = (pl.col("ts") - pl.col("sale_ts")).dt.total_seconds() / SECONDS_PER_DAY
    return (
        approved_refunds.filter(pl.col("has_sale") & ((pl.col("ts") - pl.col("sale_ts")) > window))
        .with_columns(lag_days.alias("lag_days"))
        .pipe(_with_operator_no, operators)
        .pipe(
            _transaction_findings,
            rule_name="late_refunds",
            severity="medium",
            score=(0.5 + 0.5 * (pl.col("lag_days") / refund_window_days - 1.0)).clip(0.5, 1.0),
            summary=LATE_REFUNDS.expr(
                **_refund(),
                lag_days=pl.col("lag_days").round(1),
                original="original_txn_id",
                sale_amount="sale_amount_fen",
                window_days=pl.lit(refund_window_days),
            ),
            evidence={
                "sale_ts": pl.col("sale_ts").dt.strftime("%Y-%m-%dT%H:%M:%S"),
                "lag_days": pl.col("lag_days").round(2),
                "refund_window_days": pl.lit(refund_window_days),
            },
        )
    )


# --- per operator -------------------------------------------------------------------------


def _operator_findings(
    frame: pl.LazyFrame,
    *,
    rule_name: str,
    severity: Severity,
    score: pl.Expr,
    summary: pl.Expr,
    evidence: dict[str, pl.Expr],
) -> pl.LazyFrame:
    return to_findings(
        frame,
        entity_id="operator_id",
        rule=rule_name,
        family=FAMILY,
        entity_type="operator",
        severity=severity,
        score=score,
        summary=summary,
        evidence=evidence,
    )


def _refund_group_aggregates() -> list[pl.Expr]:
    """What every per-operator rule reports about a group of refunds."""
    return [
        pl.col("merchant_id").sort_by("ts").first(),
        pl.col("terminal_id").sort_by("ts").first(),
        pl.col("terminal_id").unique().sort().alias("terminal_ids"),
        pl.col("ts").min().alias("window_start"),
        pl.col("ts").max().alias("window_end"),
        pl.len().alias("refunds"),
        pl.col("amount_fen").sum().alias("refunded_fen"),
        _ids("txn_id").alias("refund_txn_ids"),
    ]


OFF_HOURS_REFUNDS: Final = Sentence(
    en=_WHO_EN + " made {refunds} refunds totalling {refunded} between {start} and {end}, while "
    "the merchant was closed (open {opens}-{closes}), up to {outside} minutes outside hours",
    zh=_WHO_ZH + "于 {start} 至 {end}，即商户打烊期间（营业时间 {opens}-{closes}），办理退款 "
    "{refunds} 笔，合计 {refunded}，最多超出营业时间 {outside} 分钟",
    fields={
        **_WHO_FIELDS,
        "refunds": Value(NUMBER),
        "refunded": Money(),
        "start": Value(MINUTE),
        "end": Value(MINUTE),
        "opens": Value(CLOCK),
        "closes": Value(CLOCK),
        "outside": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="merchant_id",
    lookback=timedelta(days=1),
    scenarios=("off_hours_refunds",),
)
def off_hours_refunds(
    approved_refunds: pl.LazyFrame,
    operators: pl.LazyFrame,
    merchants: pl.LazyFrame,
    *,
    grace_minutes: int = 30,  # staff closing up or opening early; legit refunds stay inside hours
    min_refunds: int = 2,  # one stray refund is a clock or a late customer; two are a pattern
    cluster_gap_minutes: int = 180,  # refunds closer than this belong to one night
) -> pl.LazyFrame:
    """Operators who make several refunds while their merchant is closed.

    Nobody comes back for a refund at 2 a.m.: refunds outside opening hours are made when no
    customer and no colleague is there to see them, which is when cash-out happens. Merchants
    open around the clock are skipped; hours that run past midnight (closes_at before
    opens_at) are read as one span across midnight.

    Parameters
    ----------
    grace_minutes
        Minutes before opening and after closing still counted as opening hours.
    min_refunds
        Off-hours refunds of one operator in one night that make a finding.
    cluster_gap_minutes
        A gap longer than this between two off-hours refunds starts a new night.
    """
    hours = merchants.select(
        pl.col("merchant_id").cast(pl.String),
        pl.col("opens_at").dt.strftime("%H:%M").alias("opens"),
        pl.col("closes_at").dt.strftime("%H:%M").alias("closes"),
        _second_of_day("opens_at").alias("open_s"),
        # 23:59:59 is how the store writes midnight
        pl.when(_second_of_day("closes_at") >= LAST_SECOND_OF_DAY)
        .then(SECONDS_PER_DAY)
        .otherwise(_second_of_day("closes_at"))
        .alias("close_s"),
        pl.col("is_24h").cast(pl.Boolean),
    )
    second = _second_of_day("ts")
    since_close = (second - pl.col("close_s")) % SECONDS_PER_DAY
    until_open = (pl.col("open_s") - second) % SECONDS_PER_DAY
    closed_length = (pl.col("open_s") - pl.col("close_s")) % SECONDS_PER_DAY
    outside_minutes = pl.min_horizontal(since_close, until_open) / 60
    night = (
        (pl.col("ts") - pl.col("ts").shift(1).over("operator_id"))
        > timedelta(minutes=cluster_gap_minutes)
    ).fill_null(True)
    return (
        approved_refunds.join(hours, on="merchant_id", how="inner")
        .filter(~pl.col("is_24h") & (closed_length > 0) & (since_close < closed_length))
        .with_columns(outside_minutes.alias("outside_minutes"))
        .filter(pl.col("outside_minutes") > grace_minutes)
        .sort("operator_id", "ts", "txn_id")
        .with_columns(night.cast(pl.Int64).cum_sum().over("operator_id").alias("night"))
        .group_by("operator_id", "night")
        .agg(
            *_refund_group_aggregates(),
            pl.col("opens").first(),
            pl.col("closes").first(),
            pl.col("outside_minutes").max().alias("max_outside_minutes"),
        )
        .filter(pl.col("refunds") >= min_refunds)
        .pipe(_with_operator_no, operators)
        .pipe(
            _operator_findings,
            rule_name="off_hours_refunds",
            severity="medium",
            score=(0.6 + 0.1 * (pl.col("refunds") - min_refunds)).clip(0.6, 1.0),
            summary=OFF_HOURS_REFUNDS.expr(
                **_who(),
                refunds="refunds",
                refunded="refunded_fen",
                start=_minute("window_start"),
                end=_minute("window_end"),
                opens="opens",
                closes="closes",
                outside=pl.col("max_outside_minutes").round(0).cast(pl.Int64),
            ),
            evidence={
                "refund_txn_ids": pl.col("refund_txn_ids"),
                "refunds": pl.col("refunds"),
                "refunded_fen": pl.col("refunded_fen"),
                "terminal_ids": pl.col("terminal_ids"),
                "opens_at": pl.col("opens"),
                "closes_at": pl.col("closes"),
                "max_outside_minutes": pl.col("max_outside_minutes").round(1),
                "grace_minutes": pl.lit(grace_minutes),
                "min_refunds": pl.lit(min_refunds),
            },
        )
    )


def _second_of_day(column: str) -> pl.Expr:
    # the parts are Int8: widen before multiplying
    c = pl.col(column)
    return (
        c.dt.hour().cast(pl.Int64) * 3600
        + c.dt.minute().cast(pl.Int64) * 60
        + c.dt.second().cast(pl.Int64)
    )


def customer_return() -> pl.Expr:
    """A refund that is a customer bringing goods back: to the card (or wallet, or cash: no
    token on either side) that paid, or a new card of its account (:func:`refund_to_payer`),
    for no more than the sale took, of a sale made on an earlier day than the refund."""
    return (
        pl.col("has_sale")
        & refund_to_payer()
        & (pl.col("amount_fen") <= pl.col("sale_amount_fen"))
        & (pl.col("sale_ts").dt.date() < pl.col("ts").dt.date())
    ).fill_null(False)


REFUND_BURSTS: Final = Sentence(
    en=_WHO_EN + " made {refunds} refunds totalling {refunded} in {span} minutes from {start}; "
    "{min_refunds} within {window_minutes} minutes make a burst",
    zh=_WHO_ZH + "自 {start} 起的 {span} 分钟内办理退款 {refunds} 笔，合计 {refunded}；"
    "{window_minutes} 分钟内达到 {min_refunds} 笔即为集中退款",
    fields={
        **_WHO_FIELDS,
        "refunds": Value(NUMBER),
        "refunded": Money(),
        "span": Value(NUMBER),
        "start": Value(MINUTE),
        "min_refunds": Value(NUMBER),
        "window_minutes": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="operator_id",
    lookback=timedelta(days=1),
    scenarios=("refund_burst",),
)
def refund_bursts(
    approved_refunds: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    min_refunds: int = 8,  # measured on simulated worlds: at most 7 natural refunds per
    # operator-hour in 1,000 merchants x 30 days (6 in 13 operators); injected bursts hold 8-15
    window_minutes: int = 60,
) -> pl.LazyFrame:
    """Operators who make many refunds in a short time.

    Legitimate refunds are 1-3 % of sales and spread over the day, so even a busy operator
    rarely makes more than a few an hour; a burst is someone emptying the merchant's account
    through refunds of earlier sales before anybody notices. Overlapping bursts of one
    operator merge into one finding.

    A customer's return is left out of the count (:func:`customer_return`): a refund to the
    card that paid, of no more than the sale, of a sale made on an earlier day. Returns pile
    up at a month's end or after a holiday, and a wave of them is still each customer bringing
    back what they bought; what a burst empties out is the day's own takings, refunded while
    the customers who paid them have just left.

    Parameters
    ----------
    min_refunds
        Approved refunds within ``window_minutes`` that make a burst.
    window_minutes
        Length of the sliding window.
    """
    window = timedelta(minutes=window_minutes)
    return (
        approved_refunds.filter(~customer_return())
        .pipe(_dense_runs, min_events=min_refunds, window=window)
        .group_by("operator_id", "run_id")
        .agg(*_refund_group_aggregates())
        .with_columns(
            ((pl.col("window_end") - pl.col("window_start")).dt.total_seconds() / 60)
            .round(0)
            .cast(pl.Int64)
            .alias("span_minutes")
        )
        .pipe(_with_operator_no, operators)
        .pipe(
            _operator_findings,
            rule_name="refund_bursts",
            severity="medium",
            score=(0.7 + 0.05 * (pl.col("refunds") - min_refunds)).clip(0.7, 1.0),
            summary=REFUND_BURSTS.expr(
                **_who(),
                refunds="refunds",
                refunded="refunded_fen",
                span="span_minutes",
                start=_minute("window_start"),
                min_refunds=pl.lit(min_refunds),
                window_minutes=pl.lit(window_minutes),
            ),
            evidence={
                "refund_txn_ids": pl.col("refund_txn_ids"),
                "refunds": pl.col("refunds"),
                "refunded_fen": pl.col("refunded_fen"),
                "span_minutes": pl.col("span_minutes"),
                "terminal_ids": pl.col("terminal_ids"),
                "min_refunds": pl.lit(min_refunds),
                "window_minutes": pl.lit(window_minutes),
            },
        )
    )


ROUND_AMOUNT_REFUNDS: Final = Sentence(
    en=_WHO_EN + " made {refunds} partial refunds in round amounts totalling {refunded} between "
    "{start} and {end}",
    zh=_WHO_ZH + "于 {start} 至 {end} 办理整数金额的部分退款 {refunds} 笔，合计 {refunded}",
    fields={
        **_WHO_FIELDS,
        "refunds": Value(NUMBER),
        "refunded": Money(),
        "start": Value(MINUTE),
        "end": Value(MINUTE),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="merchant_id",
    lookback=timedelta(days=2),  # runs of window_hours (12), the sale through the links
    scenarios=("round_amount_refunds",),
)
def round_amount_refunds(
    approved_refunds: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    round_unit_fen: int = 10_000,  # 100 CNY: the banknote cash-out is counted in
    min_amount_fen: int = 20_000,  # 200 CNY: below this a round refund is small change
    min_refunds: int = 3,  # measured on simulated worlds: no natural partial refund is round
    window_hours: int = 12,  # cash-out comes in a few hours; a shift and a half covers it
) -> pl.LazyFrame:
    """Operators who make several partial refunds of round amounts in a few hours: cash-out.

    A clerk who pays a friend (or himself) in cash and books it as a refund onto the friend's
    earlier large purchase refunds round sums of 100 CNY notes; real partial refunds (a
    returned item, a price correction) are never that round. Refunds that return exactly the
    whole sale are left out: hotels take round deposits and refund them in full, which is
    normal. So are partial refunds of a sale that was itself round: a deposit returned less a
    round charge (a night's minibar, a damage fee) is round because the deposit was; the
    cash-out is booked against an ordinary purchase of an uneven amount.

    Parameters
    ----------
    round_unit_fen
        A refund is round when its amount is a multiple of this.
    min_amount_fen
        Smallest round refund that counts.
    min_refunds
        Round partial refunds of one operator within ``window_hours`` that make a finding.
    window_hours
        Length of the sliding window.
    """
    window = timedelta(hours=window_hours)
    full_refund = pl.col("has_sale") & (pl.col("amount_fen") == pl.col("sale_amount_fen"))
    # a round sale is a deposit: what it returns less a round charge is round as a matter of
    # course; the cash-out signature is a round refund of a sale that was not round
    round_sale = (pl.col("has_sale") & (pl.col("sale_amount_fen") % round_unit_fen == 0)).fill_null(
        False
    )
    return (
        approved_refunds.filter(
            (pl.col("amount_fen") % round_unit_fen == 0)
            & (pl.col("amount_fen") >= min_amount_fen)
            & ~full_refund
            & ~round_sale
        )
        .pipe(_dense_runs, min_events=min_refunds, window=window)
        .group_by("operator_id", "run_id")
        .agg(
            *_refund_group_aggregates(),
            pl.col("sale_amount_fen").sum().alias("sales_fen"),
        )
        .pipe(_with_operator_no, operators)
        .pipe(
            _operator_findings,
            rule_name="round_amount_refunds",
            severity="medium",
            score=(0.6 + 0.1 * (pl.col("refunds") - min_refunds)).clip(0.6, 1.0),
            summary=ROUND_AMOUNT_REFUNDS.expr(
                **_who(),
                refunds="refunds",
                refunded="refunded_fen",
                start=_minute("window_start"),
                end=_minute("window_end"),
            ),
            evidence={
                "refund_txn_ids": pl.col("refund_txn_ids"),
                "refunds": pl.col("refunds"),
                "refunded_fen": pl.col("refunded_fen"),
                "terminal_ids": pl.col("terminal_ids"),
                "round_unit_fen": pl.lit(round_unit_fen),
                "min_amount_fen": pl.lit(min_amount_fen),
                "min_refunds": pl.lit(min_refunds),
                "window_hours": pl.lit(window_hours),
            },
        )
    )


# --- after a suspicious login -------------------------------------------------------------

FAILED_OUTCOMES: Final = ("wrong_pin", "locked")


def _suspicious_logins(
    login_events: pl.LazyFrame,
    lockouts: pl.LazyFrame,
    *,
    min_failures: int,
    failure_window: timedelta,
    unlock_window: timedelta,
) -> pl.LazyFrame:
    """Successful logins that come soon after a lockout of the operator, or after
    ``min_failures`` or more wrong or locked attempts on it within ``failure_window``.

    Columns: operator_id, login_event_id, login_ts, lockout_id, locked_at, unlock_method,
    failures (wrong or locked attempts from ``failure_window`` before the lockout, or before
    the login when there was none, up to the login) and first_failure_ts.
    """
    logins = login_events.filter(pl.col("operator_id").is_not_null()).select(
        pl.col("event_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us")),
        pl.col("operator_id").cast(pl.String),
        pl.col("outcome").cast(pl.String),
    )
    failures = (
        logins.filter(pl.col("outcome").is_in(FAILED_OUTCOMES))
        .select("operator_id", pl.col("ts").alias("failure_ts"))
        .sort("operator_id", "failure_ts")
        .with_columns(pl.int_range(pl.len()).over("operator_id").alias("failure_no"))
        .sort("failure_ts")
    )
    released = lockouts.select(
        pl.col("lockout_id").cast(pl.String),
        pl.col("operator_id").cast(pl.String),
        pl.col("locked_at").cast(pl.Datetime("us")),
        pl.col("unlock_method").cast(pl.String),
        pl.coalesce("unlocked_at", "locked_at").cast(pl.Datetime("us")).alias("released_at"),
    ).sort("released_at")
    # Asof joins with `by` cannot check sortedness per group: both sides are sorted on their
    # key explicitly here, hence check_sortedness=False.
    return (
        logins.filter(pl.col("outcome") == "success")
        .select(
            "operator_id",
            pl.col("event_id").alias("login_event_id"),
            pl.col("ts").alias("login_ts"),
        )
        .sort("login_ts")
        .join_asof(
            released,
            left_on="login_ts",
            right_on="released_at",
            strategy="backward",
            tolerance=unlock_window,
            by="operator_id",
            check_sortedness=False,
        )
        .with_columns(
            (pl.coalesce("locked_at", "login_ts") - failure_window).alias("failures_from")
        )
        .join_asof(
            failures.select("operator_id", "failure_ts", pl.col("failure_no").alias("last_no")),
            left_on="login_ts",
            right_on="failure_ts",
            strategy="backward",
            allow_exact_matches=False,
            by="operator_id",
            check_sortedness=False,
        )
        .drop("failure_ts")
        .sort("failures_from")
        .join_asof(
            failures.select(
                "operator_id",
                pl.col("failure_ts").alias("first_failure_ts"),
                pl.col("failure_no").alias("first_no"),
            ),
            left_on="failures_from",
            right_on="first_failure_ts",
            strategy="forward",
            by="operator_id",
            check_sortedness=False,
        )
        .with_columns(
            pl.when(pl.col("first_failure_ts") < pl.col("login_ts"))
            .then(pl.col("last_no") - pl.col("first_no") + 1)
            .otherwise(0)
            .alias("failures"),
        )
        .with_columns(
            pl.when(pl.col("failures") > 0)
            .then(pl.col("first_failure_ts"))
            .alias("first_failure_ts")
        )
        .filter(pl.col("lockout_id").is_not_null() | (pl.col("failures") >= min_failures))
        .select(
            "operator_id",
            "login_event_id",
            "login_ts",
            "lockout_id",
            "locked_at",
            "unlock_method",
            "failures",
            "first_failure_ts",
        )
    )


REFUNDS_AFTER_SUSPICIOUS_LOGIN: Final = Sentence(
    en=_WHO_EN + " logged in on {login_at} after {trigger}, then made {refunds} refunds totalling "
    "{refunded} within {minutes} minutes, {to_other_card} of them to cards that did not pay",
    zh=_WHO_ZH + "在{trigger}之后于 {login_at} 登录，随即在 {minutes} 分钟内办理退款 {refunds} 笔，"
    "合计 {refunded}，其中 {to_other_card} 笔退到了并未付款的卡上",
    fields={
        **_WHO_FIELDS,
        "login_at": Value(MINUTE),
        "trigger": Clause(
            {
                "lockout": (
                    "a lockout on {locked_at} lifted by {unlock}",
                    "{locked_at} 的一次锁定（{unlock}）",
                ),
                "failures": ("{failures} failed attempts", "连续 {failures} 次登录失败"),
            }
        ),
        "locked_at": Value(MINUTE),
        "unlock": Words(UNLOCK_WORDS, other=NAME),
        "failures": Value(NUMBER),
        "refunds": Value(NUMBER),
        "refunded": Money(),
        "minutes": Value(NUMBER),
        "to_other_card": Value(NUMBER),
    },
)


@rule(
    family=FAMILY,
    entity_type="operator",
    partition_key="merchant_id",
    lookback=timedelta(days=30),
    scenarios=("takeover_refund",),
    # A finding ends with its last refund, and everything it rests on (the login, the lockout,
    # the failures) comes before: no later event changes it. Only its refunds, within
    # ``window_minutes`` of the login, need reading from then; the logins and lockouts are
    # read as far back as the look-back (a lockout may be lifted weeks after it began).
    recheck=timedelta(0),
    reads=lambda thresholds: {"approved_refunds": timedelta(minutes=thresholds["window_minutes"])},
)
def refunds_after_suspicious_login(
    approved_refunds: pl.LazyFrame,
    login_events: pl.LazyFrame,
    lockouts: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    min_failures: int = 5,  # above typos (1-2 wrong PINs); policy locks by the 6th (docs/domain.md)
    failure_window_minutes: int = 60,  # a guessing run fits in an hour, 4-40 s an attempt
    unlock_window_minutes: int = 60,  # a login this soon after the unlock follows from the lockout
    window_minutes: int = 60,  # a takeover cashes out within the session it won (40 min injected)
    min_refunds: int = 2,  # one refund in the hour after is what an honest operator may do
    min_refunds_to_other_card: int = 1,  # honest refunds always go back to the paying card
) -> pl.LazyFrame:
    """Operators who, right after a suspicious login, refund money to cards that never paid.

    A suspicious login is a success soon after a lockout of the operator (however it was
    unlocked), or after ``min_failures`` wrong or locked attempts on it within the hour: the
    trace of someone guessing or resetting their way into another person's login. Forgetful
    staff leave the same trace every day (wrong PINs, a lockout, an unlock by the
    administrator or the service desk, a reset, a login) and then work normally, which may
    include a refund. So the rule also asks for what a takeover is for: ``min_refunds`` or
    more approved refunds by that operator within ``window_minutes`` of the login, at least
    ``min_refunds_to_other_card`` of them to a card other than the one that paid the sale (or
    with no sale at all). An honest refund always goes back to the paying card, or to a new
    card of the paying account (:func:`refund_to_payer`).

    Parameters
    ----------
    min_failures
        Wrong or locked attempts within ``failure_window_minutes`` before a login that make
        it suspicious without a lockout.
    failure_window_minutes
        How far before the login (or its lockout) failures count.
    unlock_window_minutes
        Longest time from an unlock (or a lock never lifted) to the login that follows it.
    window_minutes
        How long after the login its refunds count.
    min_refunds
        Approved refunds after the login that make a finding.
    min_refunds_to_other_card
        Of those, refunds to another card than the paying one (or of no sale).
    """
    suspicious = _suspicious_logins(
        login_events,
        lockouts,
        min_failures=min_failures,
        failure_window=timedelta(minutes=failure_window_minutes),
        unlock_window=timedelta(minutes=unlock_window_minutes),
    ).sort("login_ts")
    to_other_card = ~pl.col("has_sale") | ~refund_to_payer()
    return (
        approved_refunds.with_columns(to_other_card.alias("to_other_card"))
        .sort("ts")
        .join_asof(
            suspicious,
            left_on="ts",
            right_on="login_ts",
            by="operator_id",
            strategy="backward",
            tolerance=timedelta(minutes=window_minutes),
            check_sortedness=False,
        )
        .filter(pl.col("login_event_id").is_not_null())
        .group_by("operator_id", "login_event_id")
        .agg(
            *_refund_group_aggregates(),
            pl.col("to_other_card").sum().alias("refunds_to_other_card"),
            *(
                pl.col(c).first()
                for c in (
                    "login_ts",
                    "lockout_id",
                    "locked_at",
                    "unlock_method",
                    "failures",
                    "first_failure_ts",
                )
            ),
        )
        .filter(
            (pl.col("refunds") >= min_refunds)
            & (pl.col("refunds_to_other_card") >= min_refunds_to_other_card)
        )
        .rename({"window_start": "first_refund_ts"})
        .with_columns(
            pl.min_horizontal("first_failure_ts", "locked_at", "login_ts").alias("window_start"),
        )
        .pipe(_with_operator_no, operators)
        .pipe(
            _operator_findings,
            rule_name="refunds_after_suspicious_login",
            # Money leaving through a login its owner may not hold: the one rule that is
            # critical (docs/detection.md#severity).
            severity="critical",
            score=(0.8 + 0.05 * pl.col("refunds_to_other_card")).clip(0.8, 1.0),
            summary=REFUNDS_AFTER_SUSPICIOUS_LOGIN.expr(
                **_who(),
                login_at=_minute("login_ts"),
                trigger=pl.when(pl.col("lockout_id").is_not_null())
                .then(pl.lit("lockout"))
                .otherwise(pl.lit("failures")),
                locked_at=_minute("locked_at"),
                unlock=pl.col("unlock_method").fill_null("nobody"),
                failures="failures",
                refunds="refunds",
                refunded="refunded_fen",
                minutes=((pl.col("window_end") - pl.col("login_ts")).dt.total_seconds() / 60)
                .ceil()
                .cast(pl.Int64),
                to_other_card="refunds_to_other_card",
            ),
            evidence={
                "login_event_id": pl.col("login_event_id"),
                "lockout_id": pl.col("lockout_id"),
                "unlock_method": pl.col("unlock_method"),
                "failures": pl.col("failures"),
                "refund_txn_ids": pl.col("refund_txn_ids"),
                "refunds": pl.col("refunds"),
                "refunds_to_other_card": pl.col("refunds_to_other_card"),
                "refunded_fen": pl.col("refunded_fen"),
                "terminal_ids": pl.col("terminal_ids"),
                "min_failures": pl.lit(min_failures),
                "window_minutes": pl.lit(window_minutes),
                "min_refunds": pl.lit(min_refunds),
                "min_refunds_to_other_card": pl.lit(min_refunds_to_other_card),
            },
        )
    )


# Each rule's sentence, by rule name: what the report writes each finding's sentence from.
SENTENCES: Final[dict[str, Sentence]] = {
    "refunds_without_sale": REFUNDS_WITHOUT_SALE,
    "refunds_over_sale": REFUNDS_OVER_SALE,
    "refunds_to_other_card": REFUNDS_TO_OTHER_CARD,
    "refunds_without_permission": REFUNDS_WITHOUT_PERMISSION,
    "late_refunds": LATE_REFUNDS,
    "off_hours_refunds": OFF_HOURS_REFUNDS,
    "refund_bursts": REFUND_BURSTS,
    "round_amount_refunds": ROUND_AMOUNT_REFUNDS,
    "refunds_after_suspicious_login": REFUNDS_AFTER_SUSPICIOUS_LOGIN,
}
