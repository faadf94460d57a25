"""Fees and completeness: fees the fee table does not give, records doubled, records missing.

An acquirer's books rest on the terminals' records being complete and priced right. Each rule
here checks one of them against what the data itself says, without a threshold learnt from
anyone's behaviour:

- ``fee_mismatches``: every approved sale's fee recomputed from the fee table
  (:mod:`posaudit.detect.fees`, docs/domain.md) and the merchant's fee class, exact to the fen;
  any difference is a finding per merchant and day, named by the line of the table it looks
  like (the discount rate on a standard merchant, the debit cap on a credit card, a charity
  charged). The sum of the differences is the fee leakage the report shows.
- ``duplicate_transactions``: an approved sale that repeats the terminal's previous sale on the
  same card for the same amount within seconds, itself approved: the record doubled or
  replayed with a new trace number. A sale retried after a decline is a customer's second try,
  not a double.
- ``trace_gaps``: trace numbers missing between two records of one batch of a terminal (the
  counter goes up by one per record and wraps after 999,999): records deleted after the
  terminal numbered them.
- ``batch_total_mismatches``: a batch whose records do not add up to the total the terminal
  counted when it settled it: approved records or amounts missing, or added.

The heavy part of each rule is one SQL query (``derived_query``) the store runs where the
records lie, returning only the exceptions (or one row per batch): the rules never read all
approved sales.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.detect import fees
from posaudit.detect.findings import to_findings
from posaudit.detect.registry import derived_query, rule
from posaudit.detect.sale_queries import repeated_sales
from posaudit.detect.sentences import DAY, MINUTE, NUMBER, Count, Money, Sentence, Value, Words

FAMILY: Final = "ledger"
MAX_EVIDENCE_IDS: Final = 10

# -- fees --------------------------------------------------------------------------------------

_RATE = fees.rate_sql("t.channel", "m.fee_class", "m.discount_rate_bp")
# The store puts its own WITH before a query: sub-queries, not common table expressions.
FEE_DIFFERENCES_SQL: Final = f"""
SELECT
    CAST(txn_id AS VARCHAR) AS txn_id,
    ts,
    CAST(merchant_id AS VARCHAR) AS merchant_id,
    CAST(terminal_id AS VARCHAR) AS terminal_id,
    CAST(kind AS VARCHAR) AS kind,
    CAST(channel AS VARCHAR) AS channel,
    CAST(fee_class AS VARCHAR) AS fee_class,
    amount_fen,
    fee_fen,
    expected_fen
FROM (
    SELECT *, CASE WHEN kind = 'void' THEN -unsigned_fen ELSE unsigned_fen END AS expected_fen
    FROM (
        SELECT *,
            CASE WHEN status <> 'approved' OR (kind <> 'sale' AND kind <> 'void') THEN 0
                WHEN channel = 'debit_card' AND table_fee_fen > {fees.DEBIT_CAP_FEN}
                    THEN {fees.DEBIT_CAP_FEN}
                ELSE table_fee_fen END AS unsigned_fen
        FROM (
            SELECT *, {fees.fee_sql("amount_fen", "rate_bp")} AS table_fee_fen
            FROM (
                SELECT t.txn_id, t.ts, t.merchant_id, t.terminal_id, t.kind, t.channel,
                    t.status, t.amount_fen, t.fee_fen, m.fee_class, {_RATE} AS rate_bp
                FROM transactions AS t JOIN merchants AS m ON t.merchant_id = m.merchant_id
            ) AS priced
        ) AS tabled
    ) AS unsigned
) AS expected
WHERE fee_fen <> expected_fen
"""
fee_differences = derived_query(
    "fee_differences",
    sql=FEE_DIFFERENCES_SQL,
    source="transactions",
    joined=("merchants",),
    time_column="ts",
)
fee_differences.__doc__ = """The records whose fee is not the fee table's (by
``FEE_DIFFERENCES_SQL``): ``txn_id``, ``ts``, ``merchant_id``, ``terminal_id``, ``kind``,
``channel``, ``fee_class``, ``amount_fen``, ``fee_fen`` (charged) and ``expected_fen``."""

# What a wrong fee looks like: the line of the fee table it was taken from (docs/domain.md).
FEE_KINDS: Final[dict[str, tuple[str, str]]] = {
    "charity_charged": ("a charity charged", "向慈善商户收费"),
    "cap_on_credit": ("the debit cap on a credit card", "信用卡套用借记卡封顶"),
    "discount_rate_on_standard": (
        "the discount rate on a standard merchant",
        "标准商户套用优惠费率",
    ),
    "other": ("a fee outside the table", "费率表以外的手续费"),
}


def fee_kind() -> pl.Expr:
    """Which line of the fee table a wrong fee was taken from, as far as the record tells."""
    amount, charged = pl.col("amount_fen"), pl.col("fee_fen").abs()
    debit = pl.col("channel") == "debit_card"
    at_discount = pl.any_horizontal(
        [
            pl.when(debit)
            .then(
                ((amount * bp + fees.HALF) // fees.BP_DENOMINATOR).clip(
                    upper_bound=fees.DEBIT_CAP_FEN
                )
            )
            .otherwise((amount * bp + fees.HALF) // fees.BP_DENOMINATOR)
            == charged
            for bp in range(fees.DISCOUNT_RATE_BP[0], fees.DISCOUNT_RATE_BP[1] + 1)
        ]
    )
    return (
        pl.when((pl.col("fee_class") == "charity") & (charged > 0))
        .then(pl.lit("charity_charged"))
        .when(
            (pl.col("channel") == "credit_card")
            & (charged == fees.DEBIT_CAP_FEN)
            & (pl.col("expected_fen").abs() > fees.DEBIT_CAP_FEN)
        )
        .then(pl.lit("cap_on_credit"))
        .when((pl.col("fee_class") == "standard") & at_discount)
        .then(pl.lit("discount_rate_on_standard"))
        .otherwise(pl.lit("other"))
    )


FEE_MISMATCHES: Final = Sentence(
    en="merchant {merchant_id} was billed {charged} in fees on {day} for {records} the fee "
    "table prices at {expected}, a difference of {difference} ({kind})",
    zh="商户 {merchant_id} 于 {day} 有 {records} 笔交易按费率表应收手续费 {expected}，实收 "
    "{charged}，差额 {difference}（{kind}）",
    fields={
        "merchant_id": Value(),
        "charged": Money(),
        "day": Value(DAY),
        "records": Count("record", "records"),
        "expected": Money(),
        "difference": Money(),
        "kind": Words(FEE_KINDS),
    },
)


@rule(
    family=FAMILY,
    entity_type="merchant",
    partition_key="merchant_id",
    lookback=timedelta(days=1),
    scenarios=("fee_misapplied",),
)
def fee_mismatches(
    fee_differences: pl.LazyFrame,
    *,
    min_difference_fen: int = 1,  # the fee table is exact to the fen: any fen is a difference
) -> pl.LazyFrame:
    """Merchant-days billed fees the fee table and the merchant's fee class do not give.

    Every approved sale's fee is recomputed from the fee table (docs/domain.md: the rate of the
    channel or of the merchant's discount class, half up to the fen, the debit cap, nothing for
    a charity) and every void's as minus its sale's; refunds, transfers and declined or failed
    records carry none. A merchant-day with records off by at least ``min_difference_fen`` is a
    finding; its ``difference_fen`` (expected minus charged: fees not collected, or, negative,
    collected over the table) adds up to the report's fee leakage.

    Parameters
    ----------
    min_difference_fen
        The smallest difference of one record that counts.
    """
    differing = fee_differences.filter(
        (pl.col("fee_fen") - pl.col("expected_fen")).abs() >= min_difference_fen
    ).with_columns(fee_kind().alias("fee_kind"), pl.col("ts").dt.date().alias("day"))
    per_day = (
        differing.group_by("merchant_id", "day")
        .agg(
            pl.col("ts").min().alias("window_start"),
            pl.col("ts").max().alias("window_end"),
            pl.len().alias("records"),
            pl.col("fee_fen").sum().alias("charged_fen"),
            pl.col("expected_fen").sum().alias("expected_fen"),
            pl.col("fee_kind").mode().sort().first().alias("fee_kind"),
            pl.col("fee_class").first().alias("fee_class"),
            pl.col("txn_id").sort_by("ts", "txn_id").head(MAX_EVIDENCE_IDS).alias("txn_ids"),
        )
        .with_columns((pl.col("expected_fen") - pl.col("charged_fen")).alias("difference_fen"))
    )
    return per_day.with_columns(pl.col("merchant_id").alias("entity_id")).pipe(
        to_findings,
        rule="fee_mismatches",
        family=FAMILY,
        entity_type="merchant",
        severity="medium",
        score=(0.5 + pl.col("difference_fen").abs() / 20_000).clip(0.5, 1.0),
        summary=FEE_MISMATCHES.expr(
            merchant_id="merchant_id",
            charged="charged_fen",
            day=pl.col("day").cast(pl.String),
            records="records",
            expected="expected_fen",
            difference="difference_fen",
            kind="fee_kind",
        ),
        evidence={
            "day": pl.col("day").cast(pl.String),
            "fee_kind": pl.col("fee_kind"),
            "fee_class": pl.col("fee_class"),
            "records": pl.col("records"),
            "charged_fen": pl.col("charged_fen"),
            "expected_fen": pl.col("expected_fen"),
            "difference_fen": pl.col("difference_fen"),
            "txn_ids": pl.col("txn_ids"),
            "min_difference_fen": pl.lit(min_difference_fen),
        },
    )


# -- duplicated records --------------------------------------------------------------------------

DUPLICATE_TRANSACTIONS: Final = Sentence(
    en="sale {txn} of {amount} at terminal {terminal_id} on {at} repeats sale {original} on "
    "the same card {gap} earlier",
    zh="终端 {terminal_id} 于 {at} 的交易 {txn}（{amount}）与 {gap} 秒前同一张卡、同一金额的"
    "交易 {original} 重复",
    fields={
        "txn": Value(),
        "amount": Money(),
        "terminal_id": Value(),
        "at": Value(MINUTE),
        "original": Value(),
        "gap": Count("second", "seconds"),
    },
)


@rule(
    family=FAMILY,
    entity_type="transaction",
    partition_key="merchant_id",
    lookback=timedelta(days=1),
    scenarios=("duplicate_transactions",),
)
def duplicate_transactions(
    card_repeats: pl.LazyFrame,
    *,
    max_gap_seconds: int = 60,  # a card is tapped or inserted again at most a minute later
) -> pl.LazyFrame:
    """Approved sales that repeat the terminal's previous approved sale on the same card, for
    the same amount, within seconds: the record doubled, or replayed with a new trace number.

    A customer who buys the same thing again comes back minutes later, not seconds; a sale
    tried again after a decline follows a declined record, so it is no repeat of an approved
    one. The later sale is the finding; the evidence names the earlier one.

    Parameters
    ----------
    max_gap_seconds
        The longest time between the two sales that counts as one sale recorded twice.
    """
    return (
        repeated_sales(card_repeats)
        .filter(pl.col("gap_seconds") <= max_gap_seconds)
        .with_columns(
            pl.col("txn_id").alias("entity_id"),
            pl.col("ts").alias("window_start"),
            pl.col("ts").alias("window_end"),
            pl.col("gap_seconds").round(0).cast(pl.Int64).alias("gap"),
        )
        .pipe(
            to_findings,
            rule="duplicate_transactions",
            family=FAMILY,
            entity_type="transaction",
            severity="medium",
            score=(1.0 - pl.col("gap_seconds") / (2 * max_gap_seconds)).clip(0.5, 1.0),
            summary=DUPLICATE_TRANSACTIONS.expr(
                txn="txn_id",
                amount="amount_fen",
                terminal_id="terminal_id",
                at=pl.col("ts").dt.strftime("%Y-%m-%d %H:%M"),
                original="previous_txn_id",
                gap="gap",
            ),
            evidence={
                "txn_id": pl.col("txn_id"),
                "duplicate_of_txn_id": pl.col("previous_txn_id"),
                "terminal_id": pl.col("terminal_id"),
                "operator_id": pl.col("operator_id"),
                "sale_amount_fen": pl.col("amount_fen"),
                "card_token": pl.col("card_token"),
                "gap_seconds": pl.col("gap_seconds"),
                "trace_no": pl.col("trace_no"),
                "previous_trace_no": pl.col("previous_trace_no"),
                "max_gap_seconds": pl.lit(max_gap_seconds),
            },
        )
    )


# -- trace numbers and batch totals ----------------------------------------------------------------

# Trace numbers are counted per batch too: the numbers a batch spans against its records. A
# batch that wraps past the largest number holds numbers of both halves of the range, far
# apart; HALF_TRACE splits them (six-digit trace numbers, docs/domain.md).
HALF_TRACE: Final = 500_000
BATCH_SUMS_SQL: Final = f"""
SELECT
    CAST(terminal_id AS VARCHAR) AS terminal_id,
    CAST(merchant_id AS VARCHAR) AS merchant_id,
    batch_no,
    MIN(ts) AS first_ts,
    MAX(ts) AS last_ts,
    COUNT(*) AS record_count,
    MIN(trace_no) AS min_trace_no,
    MAX(trace_no) AS max_trace_no,
    MAX(CASE WHEN trace_no < {HALF_TRACE} THEN trace_no END) AS max_low_trace_no,
    MIN(CASE WHEN trace_no >= {HALF_TRACE} THEN trace_no END) AS min_high_trace_no,
    CAST(SUM(CASE WHEN status = 'approved' THEN 1 ELSE 0 END) AS BIGINT) AS txn_count,
    CAST(SUM(CASE WHEN status = 'approved' AND kind = 'sale' THEN amount_fen ELSE 0 END)
        AS BIGINT) AS sale_amount_fen,
    CAST(SUM(CASE WHEN status = 'approved' AND kind = 'void' THEN amount_fen ELSE 0 END)
        AS BIGINT) AS void_amount_fen,
    CAST(SUM(CASE WHEN status = 'approved' AND kind = 'refund' THEN amount_fen ELSE 0 END)
        AS BIGINT) AS refund_amount_fen,
    CAST(SUM(fee_fen) AS BIGINT) AS fee_fen
FROM transactions
WHERE batch_no IS NOT NULL
GROUP BY terminal_id, merchant_id, batch_no
"""
batch_sums = derived_query(
    "batch_sums",
    sql=BATCH_SUMS_SQL,
    source="transactions",
    time_column="last_ts",
)
batch_sums.__doc__ = """Each terminal batch as its records add up (by ``BATCH_SUMS_SQL``): its
records and the trace numbers they span, the approved records, their sale, void and refund
amounts, and the fees."""

TRACE_GAPS: Final = Sentence(
    en="terminal {terminal_id} lacks {missing} in batch {batch_no} between {start} and {end}",
    zh="终端 {terminal_id} 的批次 {batch_no} 在 {start} 至 {end} 之间缺少 {missing} 个流水号",
    fields={
        "terminal_id": Value(),
        "missing": Count("trace number", "trace numbers"),
        "batch_no": Value(NUMBER),
        "start": Value(MINUTE),
        "end": Value(MINUTE),
    },
)


def traces_spanned(*, max_trace_no: int) -> pl.Expr:
    """How many trace numbers a batch spans, from its first to its last, wrap-aware: a batch
    holding numbers near both ends of the range wrapped past ``max_trace_no`` to 1."""
    wrapped = (
        pl.col("max_low_trace_no").is_not_null()
        & pl.col("min_high_trace_no").is_not_null()
        & (pl.col("max_trace_no") - pl.col("min_trace_no") > max_trace_no // 2)
    )
    return (
        pl.when(wrapped)
        .then(max_trace_no - pl.col("min_high_trace_no") + 1 + pl.col("max_low_trace_no"))
        .otherwise(pl.col("max_trace_no") - pl.col("min_trace_no") + 1)
    )


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="merchant_id",
    lookback=timedelta(days=1),
    scenarios=("deleted_records",),
)
def trace_gaps(
    batch_sums: pl.LazyFrame,
    *,
    max_trace_no: int = 999_999,  # six-digit trace numbers: after 999,999 comes 1
    max_missing: int = 100,  # a larger jump is a counter set anew, not records deleted
) -> pl.LazyFrame:
    """Terminal batches whose trace numbers skip: records numbered by the terminal that never
    reached the store, or were deleted from it.

    A terminal numbers every record, approved or not, one up from the last, and wraps to 1
    after ``max_trace_no``; inside one batch the numbers run without a gap, so a batch spans
    as many numbers as it has records. The numbers it spans beyond its records are missing
    (wrap-aware); more than ``max_missing`` is a counter set anew in the batch (re-initialised
    terminals start a new batch), and is left out. One finding per batch.

    Parameters
    ----------
    max_trace_no
        The terminal's largest trace number, after which it starts at 1 again.
    max_missing
        The most numbers a batch may miss and still count as deleted records.
    """
    missing = traces_spanned(max_trace_no=max_trace_no) - pl.col("record_count")
    return (
        batch_sums.with_columns(missing.alias("missing_traces"))
        .filter((pl.col("missing_traces") >= 1) & (pl.col("missing_traces") <= max_missing))
        .with_columns(
            pl.col("terminal_id").alias("entity_id"),
            pl.col("first_ts").alias("window_start"),
            pl.col("last_ts").alias("window_end"),
        )
        .pipe(
            to_findings,
            rule="trace_gaps",
            family=FAMILY,
            entity_type="terminal",
            severity="medium",
            score=(0.6 + 0.1 * pl.col("missing_traces")).clip(0.6, 1.0),
            summary=TRACE_GAPS.expr(
                terminal_id="terminal_id",
                missing="missing_traces",
                batch_no="batch_no",
                start=pl.col("window_start").dt.strftime("%Y-%m-%d %H:%M"),
                end=pl.col("window_end").dt.strftime("%Y-%m-%d %H:%M"),
            ),
            evidence={
                "terminal_id": pl.col("terminal_id"),
                "batch_no": pl.col("batch_no"),
                "missing_traces": pl.col("missing_traces"),
                "records": pl.col("record_count"),
                "lowest_trace_no": pl.col("min_trace_no"),
                "highest_trace_no": pl.col("max_trace_no"),
                "max_missing": pl.lit(max_missing),
            },
        )
    )


BATCH_TOTAL_MISMATCHES: Final = Sentence(
    en="batch {batch_no} of terminal {terminal_id} counted {counted} and {counted_sales} of "
    "sales when it settled; its records hold {recorded} and {recorded_sales}",
    zh="终端 {terminal_id} 的批次 {batch_no} 结算时汇总为 {counted} 笔已批准交易、消费 "
    "{counted_sales}，而记录中为 {recorded} 笔、消费 {recorded_sales}",
    fields={
        "batch_no": Value(NUMBER),
        "terminal_id": Value(),
        "counted": Count("approved record", "approved records"),
        "counted_sales": Money(),
        "recorded": Count("approved record", "approved records"),
        "recorded_sales": Money(),
    },
)
_SUMS: Final = ("txn_count", "sale_amount_fen", "void_amount_fen", "refund_amount_fen", "fee_fen")


@rule(
    family=FAMILY,
    entity_type="terminal",
    partition_key="merchant_id",
    lookback=timedelta(days=1),
    scenarios=("deleted_records",),
)
def batch_total_mismatches(
    batch_totals: pl.LazyFrame,
    batch_sums: pl.LazyFrame,
    *,
    tolerance_fen: int = 0,  # a terminal's total is exact: any fen is a difference
    max_settle_hours: int = 24,  # a batch settles within the day after its last record
) -> pl.LazyFrame:
    """Terminal batches whose records do not add up to the total the terminal counted when it
    settled the batch: approved records or amounts missing from the store, or added to it.

    The count of approved records, the sale, void and refund amounts and the fees of each
    batch are compared with the batch's own total; a count that differs, or an amount off by
    more than ``tolerance_fen``, is a finding. A batch whose every record is missing leaves
    nothing to compare with and is not found here.

    A total is compared with the records of its number that it can have counted: settled no
    earlier than the batch's first record and at most ``max_settle_hours`` after its last. A
    terminal whose batch counter was set anew uses a number again; the old batch's total is
    not this one's.

    Parameters
    ----------
    tolerance_fen
        The largest difference of an amount that still adds up.
    max_settle_hours
        The longest a batch stays open after its last record before the terminal settles it.
    """
    totals = batch_totals.select(
        pl.col("terminal_id").cast(pl.String),
        pl.col("batch_no").cast(pl.Int64),
        pl.col("settled_at").cast(pl.Datetime("us")),
        *(pl.col(c).cast(pl.Int64).alias(f"counted_{c}") for c in _SUMS),
    )
    sums = batch_sums.with_columns(
        pl.col("terminal_id").cast(pl.String),
        pl.col("batch_no").cast(pl.Int64),
        *(pl.col(c).cast(pl.Int64) for c in _SUMS),
    )
    joined = sums.join(totals, on=["terminal_id", "batch_no"], how="inner").filter(
        (pl.col("settled_at") >= pl.col("first_ts"))
        & (pl.col("settled_at") <= pl.col("last_ts") + pl.duration(hours=max_settle_hours))
    )
    off = pl.col("txn_count") != pl.col("counted_txn_count")
    for column in _SUMS[1:]:
        off = off | ((pl.col(column) - pl.col(f"counted_{column}")).abs() > tolerance_fen)
    return (
        joined.filter(off)
        .with_columns(
            pl.col("terminal_id").alias("entity_id"),
            pl.col("first_ts").alias("window_start"),
            # the batch's last records may be the missing ones: it ends when it settled
            pl.max_horizontal("last_ts", "settled_at").alias("window_end"),
        )
        .pipe(
            to_findings,
            rule="batch_total_mismatches",
            family=FAMILY,
            entity_type="terminal",
            severity="medium",
            score=0.8,
            summary=BATCH_TOTAL_MISMATCHES.expr(
                batch_no="batch_no",
                terminal_id="terminal_id",
                counted="counted_txn_count",
                counted_sales="counted_sale_amount_fen",
                recorded="txn_count",
                recorded_sales="sale_amount_fen",
            ),
            evidence={
                "terminal_id": pl.col("terminal_id"),
                "batch_no": pl.col("batch_no"),
                "counted_records": pl.col("counted_txn_count"),
                "recorded_records": pl.col("txn_count"),
                "counted_sale_amount_fen": pl.col("counted_sale_amount_fen"),
                "recorded_sale_amount_fen": pl.col("sale_amount_fen"),
                "missing_sale_amount_fen": pl.col("counted_sale_amount_fen")
                - pl.col("sale_amount_fen"),
                "missing_fee_fen": pl.col("counted_fee_fen") - pl.col("fee_fen"),
                "tolerance_fen": pl.lit(tolerance_fen),
            },
        )
    )


SENTENCES: Final[dict[str, Sentence]] = {
    "fee_mismatches": FEE_MISMATCHES,
    "duplicate_transactions": DUPLICATE_TRANSACTIONS,
    "trace_gaps": TRACE_GAPS,
    "batch_total_mismatches": BATCH_TOTAL_MISMATCHES,
}
RULE_NAMES: Final = tuple(SENTENCES)
