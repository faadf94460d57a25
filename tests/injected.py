"""Events small simulated worlds lack, added to a store so that every rule has findings to
compare in the tests that hold two engines or two kinds of run equal."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import duckdb

# Lockout storms come from enumerations on the few terminals that lock after 3 failures:
# small worlds have none.
STORM_MINUTES = (0, 20)  # two operators of one terminal locked out 20 minutes apart


def add_lockout_storm(path: Path) -> None:
    """A lockout storm at noon of the store's last day, with the next lockout ids (as the
    simulator numbers them, so later appends continue after them)."""
    con = duckdb.connect(str(path))
    try:
        (last_day,) = con.execute("SELECT max(ts)::DATE FROM transactions").fetchone()  # type: ignore[misc]
        (next_id,) = con.execute(
            "SELECT coalesce(max(CAST(substr(lockout_id, 2) AS BIGINT)), -1) + 1 FROM lockouts"
        ).fetchone()  # type: ignore[misc]
        first_terminal = "(SELECT min(terminal_id) FROM operators)"
        operators = con.execute(
            "SELECT terminal_id, operator_id FROM operators "
            f"WHERE terminal_id = {first_terminal} ORDER BY operator_id LIMIT 2"
        ).fetchall()
        noon = datetime.combine(last_day, time(12))
        rows = []
        for i, ((terminal, operator), minutes) in enumerate(
            zip(operators, STORM_MINUTES, strict=True)
        ):
            locked_at = noon + timedelta(minutes=minutes)
            unlocked_at = locked_at + timedelta(minutes=30)
            rows.append((f"K{next_id + i}", terminal, operator, locked_at, unlocked_at))
        con.executemany("INSERT INTO lockouts VALUES (?, ?, ?, ?, ?, 'timeout')", rows)
    finally:
        con.close()


def add_merchant_typologies(path: Path) -> None:
    """A dormant terminal's surge and a misusing discount-class merchant, which a 21-day world
    of 20 merchants lacks (a month of silence does not fit in it, and it may hold no
    discount-class merchant in a category with peers).

    The first terminal of the category with the most terminals (after the one with the most
    merchants) gets two quiet days 40 days before the data (the silence) and 4,000 extra
    sales on each of its first 7 days, and on day 10 four credit sales of 9,980 CNY by two
    cards at 02:00 (cash-out); the last merchant of the category with the most merchants
    becomes discount-class and sells, three times over, what the merchant of another category
    with the largest tickets sells (跳码).
    """
    con = duckdb.connect(str(path))
    try:
        (first_day,) = con.execute("SELECT min(ts)::DATE FROM transactions").fetchone()  # type: ignore[misc]
        (category,) = con.execute(
            "SELECT category FROM merchants GROUP BY category ORDER BY count(*) DESC, category "
            "LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        # 跳码: the category's last merchant, made discount-class, sells only what the merchant
        # with the largest tickets elsewhere sells (its own transactions replaced by those)
        (misuser,) = con.execute(
            "SELECT max(merchant_id) FROM merchants WHERE category = ?", [category]
        ).fetchone()  # type: ignore[misc]
        (source,) = con.execute(
            "SELECT s.merchant_id FROM transactions AS s JOIN merchants AS m USING (merchant_id) "
            "WHERE m.category <> ? AND s.kind = 'sale' "
            "GROUP BY s.merchant_id ORDER BY avg(s.amount_fen) DESC, s.merchant_id LIMIT 1",
            [category],
        ).fetchone()  # type: ignore[misc]
        (till, clerk) = con.execute(
            "SELECT min(terminal_id), min(operator_id) FROM operators WHERE merchant_id = ?",
            [misuser],
        ).fetchone()  # type: ignore[misc]
        con.execute("DELETE FROM transactions WHERE merchant_id = ?", [misuser])
        con.execute(
            "INSERT INTO transactions SELECT 'Y' || CAST(9200000 + row_number() OVER () "
            "AS VARCHAR), t.ts + to_minutes(r.k), ?, ?, ?, t.kind, t.channel, t.amount_fen, "
            "t.fee_fen, t.card_token, NULL, NULL, t.trace_no, t.batch_no, t.status, NULL "
            "FROM transactions AS t, range(3) AS r(k) "
            "WHERE t.kind = 'sale' AND t.status = 'approved' AND t.merchant_id = ?",
            [till, misuser, clerk, source],
        )
        con.execute("UPDATE merchants SET fee_class = 'discount' WHERE merchant_id = ?", [misuser])
        (terminal,) = con.execute(
            "SELECT min(t.terminal_id) FROM terminals AS t JOIN merchants AS m USING (merchant_id) "
            "WHERE m.category <> ? GROUP BY m.category ORDER BY count(*) DESC, m.category LIMIT 1",
            [category],
        ).fetchone()  # type: ignore[misc]
        (operator,) = con.execute(
            "SELECT min(operator_id) FROM operators WHERE terminal_id = ?", [terminal]
        ).fetchone()  # type: ignore[misc]
        insert = (
            "INSERT INTO transactions SELECT 'Y' || CAST(? + i AS VARCHAR), ts, ?, "
            "(SELECT merchant_id FROM terminals WHERE terminal_id = ?), ?, 'sale', channel, "
            "amount, 0, 'C' || CAST(i AS VARCHAR), NULL, NULL, CAST(i % 900000 AS INTEGER), "
            "0, 'approved', NULL FROM ("
        )
        con.execute(
            insert + "SELECT i, ? + to_days(CAST(i AS INTEGER) % 2 - 40) + INTERVAL 12 HOUR AS ts, "
            "'wechat_qr' AS channel, 3000 AS amount FROM range(2) AS r(i))",
            [9_000_000, terminal, terminal, operator, first_day],
        )
        # the surge: the terminal's own sales of its first week, 30 times over
        con.execute(
            "INSERT INTO transactions SELECT 'Y' || CAST(9100000 + row_number() OVER () "
            "AS VARCHAR), t.ts + to_seconds(r.k), t.terminal_id, t.merchant_id, t.operator_id, "
            "t.kind, t.channel, t.amount_fen, t.fee_fen, t.card_token, NULL, NULL, t.trace_no, "
            "t.batch_no, t.status, NULL FROM transactions AS t, range(1, 31) AS r(k) "
            "WHERE t.kind = 'sale' AND t.status = 'approved' AND t.terminal_id = ? "
            "AND t.ts < ? + INTERVAL 7 DAY",
            [terminal, first_day],
        )
        con.execute(
            "INSERT INTO transactions SELECT 'Y' || CAST(9300000 + i AS VARCHAR), "
            "? + INTERVAL 10 DAY + INTERVAL 2 HOUR + to_minutes(CAST(i AS BIGINT) * 6), ?, "
            "(SELECT merchant_id FROM terminals WHERE terminal_id = ?), ?, 'sale', "
            "'credit_card', 998000, 0, 'C9' || CAST(i % 2 AS VARCHAR), NULL, NULL, "
            "CAST(900000 + i AS INTEGER), 0, 'approved', NULL FROM range(4) AS r(i)",
            [first_day, terminal, terminal, operator],
        )
    finally:
        con.close()


def add_invented_amounts(path: Path) -> None:
    """A merchant typing amounts by hand: the merchant with the most sales in a category of
    three or more merchants has two of every five of its sales that were never refunded or
    voided typed a few whole yuan under 50 or 100 CNY (47-49, 95-99) instead, which no sample
    world of 20 merchants is sure to hold. Its records, trace numbers and batches stay."""
    con = duckdb.connect(str(path))
    try:
        (merchant,) = con.execute(
            "SELECT t.merchant_id FROM transactions AS t JOIN merchants AS m USING (merchant_id) "
            "WHERE t.kind = 'sale' AND t.status = 'approved' AND m.category IN ("
            "  SELECT category FROM merchants GROUP BY category HAVING count(*) >= 3) "
            "GROUP BY t.merchant_id ORDER BY count(*) DESC, t.merchant_id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        con.execute(
            "UPDATE transactions AS t SET amount_fen = [4700, 4800, 4900, 9500, 9800, 9900]"
            "[1 + c.n % 6] FROM ("
            "  SELECT txn_id, row_number() OVER (ORDER BY txn_id) AS n FROM transactions "
            "  WHERE merchant_id = ? AND kind = 'sale' AND status = 'approved' AND txn_id NOT IN "
            "    (SELECT original_txn_id FROM transactions WHERE original_txn_id IS NOT NULL)"
            ") AS c WHERE t.txn_id = c.txn_id AND c.n % 5 < 2",
            [merchant],
        )
    finally:
        con.close()
