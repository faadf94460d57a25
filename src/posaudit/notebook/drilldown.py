"""05-finding-drilldown: one finding, its evidence, and everything around it in time.

Given a finding id, the subject is the terminal or operator the finding names (for a refund,
the terminal and operator that made it; for a merchant, its terminals). The timeline holds
that subject's logins, lockouts, PIN events (kind and actor only, never a digest) and
transactions from a little before the finding's window to a little after, plus every event
the evidence names wherever it falls in time, marked so it stands out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from posaudit.notebook import bounds
from posaudit.notebook.session import Audit, AuditError

# Time shown around a finding's window: half its length, within these bounds.
MIN_PADDING: Final = timedelta(minutes=30)
MAX_PADDING: Final = timedelta(hours=12)
# The timeline lane of each transaction kind (the lanes' order: posaudit.notebook.style.LANES).
TXN_LANES: Final[dict[str, str]] = {
    "sale": "sales",
    "refund": "refunds",
    "void": "voids",
    "transfer": "transfers",
}
EVENT_LABELS: Final[dict[str, str]] = {
    "wrong_pin": "wrong PIN",
    "unknown_operator": "unknown operator",
    "locked": "attempt while locked",
    "network_error": "network error",
}
# Above this many events the timeline keeps every event but the ordinary approved sales,
# which it counts per hour instead: the timeline chart's bound.
MAX_EVENTS: Final = bounds.TIMELINE_EVENTS


@dataclass(frozen=True)
class Subject:
    """Who a finding is about, as the timeline selects events."""

    label: str
    terminal_ids: tuple[str, ...]
    operator_ids: tuple[str, ...]
    whole_terminals: bool  # every event on the terminals, not only the operators'


def default_finding_id(audit: Audit) -> str:
    """The run's most severe finding above 'info' (strongest, then earliest): where to start."""
    findings = audit.findings().filter(pl.col("severity") != "info")
    if findings.height == 0:
        findings = audit.findings()
    if findings.height == 0:
        msg = f"run {audit.run_id} of {audit.db} has no findings to drill into"
        raise AuditError(msg)
    return str(findings.item(0, "finding_id"))


def evidence_of(finding: dict[str, Any]) -> dict[str, Any]:
    """A finding's evidence as a dict."""
    return json.loads(finding["evidence"]) if finding.get("evidence") else {}


def evidence_table(finding: dict[str, Any]) -> pl.DataFrame:
    """The evidence as two columns, item and value: lists joined with commas, fen as CNY.

    Examples
    --------
    >>> evidence = '{"refund_amount_fen": 123456, "txn_ids": ["X1", "X2"], "linked": true}'
    >>> finding = {"evidence": evidence}
    >>> evidence_table(finding).rows()
    [('refund_amount_fen', '1,234.56 CNY'), ('txn_ids', 'X1, X2'), ('linked', 'yes')]
    """
    rows = [
        (
            key,
            f"{value / 100:,.2f} CNY"
            if key.endswith("_fen") and isinstance(value, int)
            else _text(value),
        )
        for key, value in evidence_of(finding).items()
    ]
    return pl.DataFrame(rows, schema={"item": pl.String, "value": pl.String}, orient="row")


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    return str(value)


def evidence_ids(finding: dict[str, Any]) -> set[str]:
    """Every string the evidence holds, flattened: among them the ids of the events it names.

    Examples
    --------
    >>> evidence = '{"ids": ["L1", "L2"], "sale": {"txn_id": "X9"}, "n": 3}'
    >>> sorted(evidence_ids({"evidence": evidence}))
    ['L1', 'L2', 'X9']
    """
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(evidence_of(finding))
    return found


def finding_card(audit: Audit, finding_id: str) -> pl.DataFrame:
    """The finding itself as item/value rows: rule, severity, entity, window, runs, summary."""
    f = audit.finding(finding_id)
    rows = [
        ("finding", f["finding_id"]),
        ("rule", f"{f['rule']} ({f['family']})"),
        ("severity", f["severity"]),
        ("score", f"{f['score']:.2f}"),
        (
            "about",
            f"{f['entity_type']} {f['entity_id']}"
            + (f" of merchant {f['merchant_id']}" if f["merchant_id"] else ""),
        ),
        ("window", _window(f["window_start"], f["window_end"])),
        ("first found", f["first_run_id"]),
        ("latest run", f["run_id"]),
        ("status", f["status"] + (f" by {f['resolved_run_id']}" if f["resolved_run_id"] else "")),
        ("summary", f["summary"]),
    ]
    return pl.DataFrame(rows, schema={"item": pl.String, "value": pl.String}, orient="row")


def _quoted(values: set[str] | tuple[str, ...] | list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) or "NULL"


def subject_of(audit: Audit, finding: dict[str, Any]) -> Subject:
    """The terminals and operators a finding is about."""
    kind, entity = finding["entity_type"], finding["entity_id"]
    evidence = evidence_of(finding)
    if kind == "operator":
        home = (
            audit.table("operators")
            .filter(pl.col("operator_id") == entity)
            .get_column("terminal_id")
            .to_list()
        )
        terminals = (
            set(home)
            | set(evidence.get("terminal_ids") or [])
            | {evidence.get("terminal_id") or ""}
        )
        return Subject(
            f"operator {entity}", tuple(sorted(t for t in terminals if t)), (entity,), False
        )
    if kind == "terminal":
        return Subject(f"terminal {entity}", (entity,), (), True)
    if kind == "transaction":
        txn = audit.sql(
            f"SELECT terminal_id, operator_id FROM transactions WHERE txn_id = {_quoted([entity])}"
        )
        if txn.height == 0:
            return Subject(f"transaction {entity}", (), (), False)
        terminal, operator = txn.row(0)
        return Subject(
            f"terminal {terminal} and operator {operator}", (terminal,), (operator,), True
        )
    of_merchant = (
        audit.table("terminals")
        .filter(pl.col("merchant_id") == entity)
        .get_column("terminal_id")
        .to_list()
    )
    return Subject(f"merchant {entity}", tuple(sorted(of_merchant)), (), True)


def _window(start: datetime, end: datetime | None) -> str:
    """A finding's window as the card says it; an open one (a state still held) has no end."""
    if end is None:
        return f"since {start:%Y-%m-%d %H:%M:%S}, still held"
    return f"{start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S}"


def window_end(audit: Audit, finding: dict[str, Any]) -> datetime:
    """The finding's end; for an open one (a state still held), the end of the data."""
    end: datetime | None = finding["window_end"]
    return audit.data_window[1] if end is None else end


def timeline_range(audit: Audit, finding: dict[str, Any]) -> tuple[datetime, datetime]:
    """The finding's window with padding, cut to the data the store holds."""
    start, end = finding["window_start"], window_end(audit, finding)
    padding = min(max((end - start) / 2, MIN_PADDING), MAX_PADDING)
    data_from, data_to = audit.data_window
    low = max(start - padding, data_from - MIN_PADDING)
    high = min(end + padding, data_to + MIN_PADDING)
    if low >= high:  # a window wholly before the data (an old PIN period): show the data's start
        low, high = data_from - MIN_PADDING, min(data_from + MAX_PADDING, data_to)
    return low, high


def timeline_context(audit: Audit, finding_id: str) -> dict[str, Any]:
    """What the timeline chart needs besides the events: the window, the range shown, a title."""
    finding = audit.finding(finding_id)
    shown_from, shown_to = timeline_range(audit, finding)
    return {
        "window_start": finding["window_start"],
        "window_end": window_end(audit, finding),
        "shown_from": shown_from,
        "shown_to": shown_to,
        "title": f"Around the finding: {subject_of(audit, finding).label}",
    }


def timeline(audit: Audit, finding_id: str, *, max_events: int = MAX_EVENTS) -> pl.DataFrame:
    """Every event of the finding's subject around its window, and every event its evidence names.

    Columns: ts, end_ts (lockouts: when unlocked), lane, event, event_id, terminal_id,
    operator_id, amount_cny, detail, in_evidence, in_range (inside :func:`timeline_range`;
    evidence can name events far earlier, as the PIN event that set a PIN held for years),
    events (1, or the sales counted in an hour). Sorted by time.
    """
    finding = audit.finding(finding_id)
    subject = subject_of(audit, finding)
    low, high = timeline_range(audit, finding)
    ids = evidence_ids(finding)
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    span = f"BETWEEN TIMESTAMP '{low:{stamp}}' AND TIMESTAMP '{high:{stamp}}'"
    on_terminals = f"terminal_id IN ({_quoted(subject.terminal_ids)})"
    by_operators = f"operator_id IN ({_quoted(subject.operator_ids)})"
    whose = on_terminals if subject.whole_terminals else by_operators
    named = _quoted(ids)
    frames = [
        audit.sql(
            "SELECT ts, NULL::TIMESTAMP AS end_ts, 'logins' AS lane, outcome::VARCHAR AS "
            "event, event_id, terminal_id, "
            "operator_id, NULL::DOUBLE AS amount_cny, 'operator number ' || operator_no AS detail "
            f"FROM login_events WHERE ({whose} AND ts {span}) OR event_id IN ({named})"
        ),
        audit.sql(
            "SELECT locked_at AS ts, unlocked_at AS end_ts, 'lockouts' AS lane, 'lockout' AS "
            "event, lockout_id AS event_id, "
            "terminal_id, operator_id, NULL::DOUBLE AS amount_cny, "
            "coalesce('unlocked by ' || unlock_method::VARCHAR || ' after ' || "
            "round(date_diff('second', locked_at, unlocked_at) / 60.0, 1)::VARCHAR || ' min', "
            "'still locked') AS detail "
            f"FROM lockouts WHERE ({whose} AND locked_at {span}) OR lockout_id IN ({named})"
        ),
        audit.sql(
            "SELECT p.ts, NULL::TIMESTAMP AS end_ts, 'PIN events' AS lane, 'PIN ' || "
            "p.kind::VARCHAR AS event, p.event_id, "
            "o.terminal_id, p.operator_id, NULL::DOUBLE AS amount_cny, 'by ' || "
            "p.actor::VARCHAR || ' (no PIN shown)' AS detail "
            "FROM pin_events p JOIN operators o USING (operator_id) "
            f"WHERE (p.{by_operators} OR "
            f"o.{on_terminals if subject.whole_terminals else by_operators}) AND p.ts {span} "
            f"OR p.event_id IN ({named})"
        ),
        audit.sql(
            "SELECT ts, NULL::TIMESTAMP AS end_ts, kind::VARCHAR AS lane, status::VARCHAR AS "
            "event, txn_id AS event_id, "
            "terminal_id, operator_id, amount_fen::DOUBLE / 100 AS amount_cny, "
            "channel::VARCHAR || coalesce(', of sale ' || original_txn_id, '') || coalesce(', "
            "' || failure_reason::VARCHAR, '') "
            "AS detail "
            f"FROM transactions WHERE ({whose} AND ts {span}) OR txn_id IN ({named})"
        ),
    ]
    events = (
        pl.concat(
            [
                f.with_columns(
                    pl.col("end_ts").cast(pl.Datetime("us")), pl.col("ts").cast(pl.Datetime("us"))
                )
                for f in frames
            ]
        )
        .with_columns(
            pl.col("lane").replace(TXN_LANES),
            pl.col("event").replace(EVENT_LABELS),
            pl.col("event_id").is_in(list(ids)).alias("in_evidence"),
            pl.lit(1, dtype=pl.Int64).alias("events"),
        )
        .unique("event_id", keep="first")
    )
    if events.height > max_events:
        ordinary = (
            (pl.col("lane") == "sales")
            & ~pl.col("in_evidence")
            & pl.col("event").str.starts_with("approved")
        )
        counted = (
            events.filter(ordinary)
            .group_by(pl.col("ts").dt.truncate("1h"), "terminal_id")
            .agg(pl.len().cast(pl.Int64).alias("events"), pl.col("amount_cny").sum())
            .with_columns(
                pl.lit(None, dtype=pl.Datetime("us")).alias("end_ts"),
                pl.lit("sales").alias("lane"),
                pl.lit("approved (counted per hour)").alias("event"),
                pl.format(
                    "sales {} {}", "terminal_id", pl.col("ts").dt.strftime("%Y-%m-%d %H:00")
                ).alias("event_id"),
                pl.lit(None, dtype=pl.String).alias("operator_id"),
                pl.format("{} approved sales in the hour", "events").alias("detail"),
                pl.lit(False).alias("in_evidence"),
            )
        )
        events = pl.concat([events.filter(~ordinary), counted.select(events.columns)])
    return (
        events.with_columns(pl.col("ts").is_between(low, high).alias("in_range"))
        .sort("ts", "lane", "event_id")
        .select(
            "ts",
            "end_ts",
            "lane",
            "event",
            "event_id",
            "terminal_id",
            "operator_id",
            "amount_cny",
            "detail",
            "in_evidence",
            "in_range",
            "events",
        )
    )


def evidence_events(events: pl.DataFrame) -> pl.DataFrame:
    """The timeline's events the evidence names, in time order."""
    return events.filter(pl.col("in_evidence"))


def related_findings(audit: Audit, finding_id: str) -> pl.DataFrame:
    """The run's other findings on the finding's terminals or operators, most severe first."""
    finding = audit.finding(finding_id)
    subject = subject_of(audit, finding)
    names = set(subject.terminal_ids) | set(subject.operator_ids) | {finding["entity_id"]}
    evidence = pl.col("evidence")
    about = (
        pl.col("entity_id").is_in(list(names))
        | evidence.str.json_path_match("$.operator_id").is_in(list(subject.operator_ids))
        | (
            evidence.str.json_path_match("$.terminal_id").is_in(list(subject.terminal_ids))
            & pl.lit(subject.whole_terminals)
        )
    )
    return (
        audit.findings()
        .filter(about & (pl.col("finding_id") != finding_id))
        .select(
            "finding_id", "rule", "severity", "entity_type", "entity_id", "window_start", "summary"
        )
    )
