"""The simulated world obeys the domain's rules: fees, trace numbers, lockouts, labels."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from posaudit.store import Store
from posaudit.store.catalogue import DIMENSION_TABLES, EVENT_TABLES
from tests.conftest import SAMPLE_LACKS, build_store


def _frame(path: Path, sql: str) -> pl.DataFrame:
    store = Store.open(path, read_only=True)
    try:
        return store.frame(sql)
    finally:
        store.close()


def test_fees_follow_the_fee_table(sample_store: Path) -> None:
    """Every sale's fee is the fee table's, except at merchants where a fee was misapplied."""
    misapplied = _frame(
        sample_store,
        "SELECT entity_id AS merchant_id, start_ts, end_ts FROM ground_truth "
        "WHERE scenario = 'fee_misapplied'",
    )
    assert misapplied.height > 0
    sales = _frame(
        sample_store,
        "SELECT t.merchant_id, t.ts, t.channel::VARCHAR AS channel, t.amount_fen, t.fee_fen, "
        "m.fee_class::VARCHAR AS fee_class, "
        "m.discount_rate_bp FROM transactions t JOIN merchants m USING (merchant_id) "
        "WHERE t.kind = 'sale' AND t.status = 'approved'",
    )
    base_bp = {
        "debit_card": 50,
        "credit_card": 60,
        "alipay_qr": 38,
        "wechat_qr": 38,
        "unionpay_qr": 38,
    }
    expected = sales.with_columns(
        pl.when(pl.col("fee_class") == "charity")
        .then(0)
        .when(pl.col("fee_class") == "discount")
        .then(pl.col("discount_rate_bp"))
        .otherwise(pl.col("channel").replace_strict(base_bp, return_dtype=pl.Int64))
        .alias("bp")
    ).with_columns(((pl.col("amount_fen") * pl.col("bp") + 5_000) // 10_000).alias("fee"))
    expected = expected.with_columns(
        pl.when(pl.col("channel") == "debit_card")
        .then(pl.min_horizontal("fee", pl.lit(2_000)))
        .otherwise("fee")
        .alias("fee")
    )
    assert sales.height > 10_000
    assert {"standard", "discount", "charity"} <= set(sales.get_column("fee_class").unique())
    mismatched = expected.filter(pl.col("fee") != pl.col("fee_fen"))
    unexplained = mismatched.join(misapplied, on="merchant_id", how="left").filter(
        pl.col("start_ts").is_null() | ~pl.col("ts").is_between("start_ts", "end_ts")
    )
    assert unexplained.height == 0, unexplained.head()
    # each misapplied fee shows in the merchant's sales
    assert set(mismatched.get_column("merchant_id")) == set(misapplied.get_column("merchant_id"))
    # the debit cap binds somewhere in the world
    capped = expected.filter((pl.col("channel") == "debit_card") & (pl.col("fee_fen") == 2_000))
    assert capped.height > 0


def test_no_fee_on_refunds_declines_and_transfers_and_voids_reverse_the_sale(
    sample_store: Path,
) -> None:
    other = _frame(
        sample_store,
        "SELECT kind::VARCHAR AS kind, status::VARCHAR AS status, fee_fen FROM transactions "
        "WHERE kind IN ('refund', 'transfer') OR status <> 'approved'",
    )
    assert other.get_column("fee_fen").abs().sum() == 0
    voids = _frame(
        sample_store,
        "SELECT v.fee_fen AS void_fee, s.fee_fen AS sale_fee, "
        "v.batch_no = s.batch_no AS same_batch "
        "FROM transactions v JOIN transactions s ON v.original_txn_id = s.txn_id "
        "WHERE v.kind = 'void'",
    )
    assert voids.height > 0
    assert (voids.get_column("void_fee") == -voids.get_column("sale_fee")).all()
    assert voids.get_column("same_batch").all()


def test_trace_numbers_increase_by_one_per_terminal(sample_store: Path) -> None:
    """Inside a batch each record's trace number is one up from the terminal's last, wrapping
    from 999,999 to 1, except where records were deleted: a step over them, at a labelled
    terminal, in its labelled window. A new batch may start the counter anew (a terminal
    re-initialised)."""
    steps = _frame(
        sample_store,
        "SELECT terminal_id, lag(ts) OVER w AS after, ts AS before, "
        "batch_no = lag(batch_no) OVER w AS same_batch, "
        "((trace_no - lag(trace_no) OVER w) % 999999 + 999999) % 999999 AS step "
        "FROM transactions WINDOW w AS (PARTITION BY terminal_id ORDER BY ts, trace_no) "
        "QUALIFY step IS NOT NULL",
    )
    deleted = _frame(
        sample_store,
        "SELECT entity_id AS terminal_id, start_ts, end_ts FROM ground_truth "
        "WHERE scenario = 'deleted_records'",
    )
    assert steps.height > 10_000 and deleted.height > 0
    inside = steps.filter("same_batch")
    assert inside.height > 0.9 * steps.height
    skips = inside.filter(pl.col("step") != 1)
    assert (skips.get_column("step") > 1).all(), skips.head()
    # the records deleted between two kept ones fall in the labelled window
    unexplained = skips.join(deleted, on="terminal_id", how="left").filter(
        pl.col("start_ts").is_null()
        | (pl.col("start_ts") > pl.col("before"))
        | (pl.col("end_ts") < pl.col("after"))
    )
    assert unexplained.height == 0, unexplained.head()
    # most batches follow on from the last one's number
    across = steps.filter(~pl.col("same_batch"))
    assert (across.get_column("step") == 1).mean() > 0.9  # type: ignore[operator]


def test_batches_settle_daily(sample_store: Path) -> None:
    per_day = _frame(
        sample_store,
        "SELECT terminal_id, CAST(ts AS DATE) AS day, count(DISTINCT batch_no) AS batches "
        "FROM transactions "
        "WHERE kind = 'sale' GROUP BY ALL",
    )
    assert (per_day.get_column("batches") == 1).all()


def test_lockouts_follow_each_terminals_setting(sample_store: Path) -> None:
    events = _frame(
        sample_store,
        "SELECT terminal_id, operator_id, ts, outcome::VARCHAR AS outcome FROM login_events "
        "WHERE operator_id IS NOT NULL AND outcome IN ('success', 'wrong_pin')",
    )
    lockouts = _frame(
        sample_store, "SELECT terminal_id, operator_id, locked_at, unlocked_at FROM lockouts"
    )
    terminals = _frame(
        sample_store, "SELECT terminal_id, lockout_threshold, lockout_minutes FROM terminals"
    )
    never = set(terminals.filter(pl.col("lockout_threshold").is_null()).get_column("terminal_id"))
    assert not set(lockouts.get_column("terminal_id")) & never
    # Every lockout comes with exactly the threshold-th consecutive wrong PIN. The counter
    # restarts after a success, an unlock, or a quiet spell as long as the lockout itself.
    resets = (
        pl.concat(
            [
                events.select(
                    "terminal_id",
                    "operator_id",
                    "ts",
                    (pl.col("outcome") == "wrong_pin").alias("wrong"),
                ),
                lockouts.select(
                    "terminal_id",
                    "operator_id",
                    pl.col("unlocked_at").alias("ts"),
                    pl.lit(False).alias("wrong"),
                ),
            ]
        )
        .join(terminals, on="terminal_id")
        .sort("terminal_id", "operator_id", "ts")
    )
    quiet = (pl.col("ts") - pl.col("ts").shift(1).over("terminal_id", "operator_id")) > pl.duration(
        minutes=pl.col("lockout_minutes").fill_null(30)
    )
    run = resets.with_columns(
        ((~pl.col("wrong")) | quiet.fill_null(False))
        .cum_sum()
        .over("terminal_id", "operator_id")
        .alias("run")
    )
    run = run.with_columns(
        pl.col("wrong")
        .cast(pl.Int64)
        .cum_sum()
        .over("terminal_id", "operator_id", "run")
        .alias("streak")
    )
    at_lock = lockouts.join(
        run.filter("wrong")
        .rename({"ts": "locked_at"})
        .drop("lockout_threshold", "lockout_minutes"),
        on=["terminal_id", "operator_id", "locked_at"],
        how="left",
    ).join(terminals, on="terminal_id")
    assert at_lock.height > 20
    assert (at_lock.get_column("streak") == at_lock.get_column("lockout_threshold")).all()
    longest = (
        run.filter("wrong")
        .group_by("terminal_id", "operator_id", "run")
        .agg(pl.col("streak").max())
    )
    longest = longest.select("terminal_id", "operator_id", "run", "streak")
    longest = longest.join(terminals.drop("lockout_minutes"), on="terminal_id").filter(
        pl.col("lockout_threshold").is_not_null()
    )
    assert (longest.get_column("streak") <= longest.get_column("lockout_threshold")).all()
    # timeouts last the terminal's minutes
    timed = _frame(
        sample_store,
        "SELECT epoch(l.unlocked_at) - epoch(l.locked_at) AS held, t.lockout_minutes "
        "FROM lockouts l "
        "JOIN terminals t USING (terminal_id) "
        "WHERE l.unlock_method = 'timeout'",
    )
    assert timed.height > 0
    minutes = timed.select((pl.col("held") / 60).round(6) == pl.col("lockout_minutes")).to_series()
    assert minutes.all()


def test_every_ground_truth_entity_exists(sample_store: Path) -> None:
    missing = _frame(
        sample_store,
        """
        SELECT g.scenario, g.entity_type::VARCHAR AS entity_type, g.entity_id FROM ground_truth g
        WHERE (g.entity_type = 'operator'
               AND g.entity_id NOT IN (SELECT operator_id FROM operators))
           OR (g.entity_type = 'terminal'
               AND g.entity_id NOT IN (SELECT terminal_id FROM terminals))
           OR (g.entity_type = 'transaction'
               AND g.entity_id NOT IN (SELECT txn_id FROM transactions))
        """,
    )
    assert missing.height == 0, missing.head()
    windows = _frame(
        sample_store, "SELECT count(*) AS bad FROM ground_truth WHERE end_ts < start_ts"
    )
    assert windows.item() == 0


def test_every_scenario_is_injected_and_labelled(sample_store: Path) -> None:
    from posaudit.simulate.scenario import SCENARIOS

    found = set(
        _frame(sample_store, "SELECT DISTINCT scenario FROM ground_truth").get_column("scenario")
    )
    assert set(SCENARIOS) - found <= SAMPLE_LACKS


def test_a_longer_world_holds_the_merchant_typologies(tmp_path: Path) -> None:
    from posaudit.simulate.merchant_fraud import MERCHANT_SCENARIOS

    path = tmp_path / "long.duckdb"
    build_store(path, merchants=40, days=46, seed=3)
    found = set(_frame(path, "SELECT DISTINCT scenario FROM ground_truth").get_column("scenario"))
    assert set(MERCHANT_SCENARIOS) >= SAMPLE_LACKS
    assert set(MERCHANT_SCENARIOS) <= found


def test_observable_tables_carry_no_label(sample_store: Path) -> None:
    store = Store.open(sample_store, read_only=True)
    try:
        columns = store.frame(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name IN "
            f"{(*DIMENSION_TABLES, *EVENT_TABLES)}"
        )
    finally:
        store.close()
    names = set(columns.get_column("column_name"))
    assert not {
        n for n in names if any(w in n for w in ("fraud", "scenario", "incident", "label", "truth"))
    }


def test_behaviour_is_realistic_not_uniform(sample_store: Path) -> None:
    hours = _frame(
        sample_store,
        "SELECT hour(ts) AS h, count(*) AS n "
        "FROM transactions t JOIN merchants m USING (merchant_id) "
        "WHERE kind = 'sale' AND m.category = 'restaurant' GROUP BY ALL",
    )
    by_hour = dict(hours.iter_rows())
    # lunch and dinner peaks, a quiet afternoon, nothing before opening
    assert by_hour.get(12, 0) > 2 * by_hour.get(15, 0)
    assert by_hour.get(19, 0) > 2 * by_hour.get(15, 0)
    assert sum(by_hour.get(h, 0) for h in range(0, 9)) == 0
    refund_share = _frame(
        sample_store,
        "SELECT count(*) FILTER (kind = 'refund') / count(*) FILTER (kind = 'sale') AS share "
        "FROM transactions",
    ).item()
    assert 0.01 <= refund_share <= 0.04
    channels = _frame(
        sample_store, "SELECT DISTINCT channel::VARCHAR AS c FROM transactions"
    ).get_column("c")
    assert set(channels) == {
        "debit_card",
        "credit_card",
        "alipay_qr",
        "wechat_qr",
        "unionpay_qr",
        "account",
    }
