"""00-start-here: what the store holds, whether the data can be trusted, what the run found.

Data quality comes first because every finding rests on it: a day with half the usual
transactions, a terminal that stopped reporting, or a gap in a terminal's trace numbers (each
transaction takes the next number, so a gap is a record that never reached the store) are
missing data, and missing data hides fraud as well as it fakes it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from posaudit.notebook.session import Audit, by_severity
from posaudit.store.catalogue import EVENT_TABLES, EVENT_TIME_COLUMNS, table_facts

# The store's tables shown to an analyst, in the order the story needs them: who, what
# happened, what the audit found. The store's bookkeeping (simulations, settings) is left out.
SHOWN_TABLES: Final = (
    "merchants",
    "terminals",
    "operators",
    "login_events",
    "lockouts",
    "pin_events",
    "transactions",
    "findings",
    "pipeline_runs",
    "ground_truth",
)
EVENT_LABELS: Final[dict[str, str]] = {
    "login_events": "logins",
    "lockouts": "lockouts",
    "pin_events": "PIN events",
    "transactions": "transactions",
    # schema 3's event tables
    "operator_events": "operator events",
    "batch_totals": "batch totals",
}
# A day with less than this share of its table's median day is a low day: data may be missing.
LOW_DAY_SHARE: Final = 0.5
# Tables with fewer events on a median day are too sparse for a low day to mean anything.
MIN_MEDIAN_EVENTS: Final = 20
# A terminal whose latest event is this far behind the store's latest event has gone quiet.
QUIET_HOURS: Final = 24


def store_contents(audit: Audit) -> pl.DataFrame:
    """One row per table: rows, and for event tables the first and last event time.

    The ground truth is left out when it is empty (a store loaded from exports has none): an
    empty table of labels would read as "no incident", when it means "nothing is known".
    """
    parts = []
    labelled = audit.sql("SELECT count(*) AS n FROM ground_truth").item() > 0
    for table in SHOWN_TABLES:
        if table == "ground_truth" and not labelled:
            continue
        facts = table_facts(table)
        note, column = facts.holds, facts.time_column
        span = f"min({column}), max({column})" if column else "NULL::TIMESTAMP, NULL::TIMESTAMP"
        parts.append(
            f"SELECT '{table}' AS table_name, '{note}' AS holds, count(*) AS rows, {span} FROM "
            f"{table}"
        )
    frame = audit.sql(" UNION ALL ".join(parts))
    return (
        frame.rename({frame.columns[3]: "first_event_at", frame.columns[4]: "last_event_at"})
        .with_columns(
            pl.col("table_name")
            .replace_strict({t: i for i, t in enumerate(SHOWN_TABLES)}, return_dtype=pl.Int64)
            .alias("_order")
        )
        .sort("_order")
        .drop("_order")
    )


def headline(audit: Audit) -> str:
    """Two sentences on what the store holds and what the chosen run found (Markdown)."""
    data_from, data_to = audit.data_window
    counts = audit.sql(
        "SELECT (SELECT count(*) FROM merchants), (SELECT count(*) FROM terminals), "
        "(SELECT count(*) FROM operators), "
        + " + ".join(f"(SELECT count(*) FROM {table})" for table in EVENT_TABLES)
    ).row(0)
    days = round((data_to - data_from).total_seconds() / 86_400)
    findings = audit.findings()
    new = int(findings.get_column("is_new").sum())
    resolved = audit.resolved_findings().height
    accusing = findings.filter(pl.col("severity") != "info").height
    previous = audit.previous_run_id
    run = audit.run
    since = (
        f"{new:,} of them new since {previous} and {resolved:,} resolved"
        if previous
        else "all of them new: this is the store's first run"
    )
    return (
        f"**{audit.db}** holds {days} days of activity, {data_from:%Y-%m-%d %H:%M} to "
        f"{data_to:%Y-%m-%d %H:%M}, from {counts[0]:,} merchants, {counts[1]:,} terminals and "
        f"{counts[2]:,} operators: {counts[3]:,} events.\n\n"
        f"Run **{audit.run_id}** ({run['started_at']:%Y-%m-%d %H:%M}, "
        f"{run['seconds'] or 0:.1f} s) holds "
        f"{findings.height:,} findings, {accusing:,} above *info*; {since}."
    )


def daily_volumes(audit: Audit) -> pl.DataFrame:
    """Events per full day and table, with ``is_low`` for days under half the table's median day.

    Columns: day (datetime at midnight), table_name, label, events, median_events, is_low.
    Only the days wholly inside the data window count (its first and last days are partial);
    a table too sparse to judge (a median day under ``MIN_MEDIAN_EVENTS``, as PIN events) has
    no low days.
    """
    parts = [
        f"SELECT '{table}' AS table_name, date_trunc('day', {column}) AS day, count(*) AS events "
        f"FROM {table} GROUP BY ALL"
        for table, column in EVENT_TIME_COLUMNS.items()
    ]
    volumes = audit.sql(" UNION ALL ".join(parts)).with_columns(
        pl.col("day").cast(pl.Datetime("us"))
    )
    grid = pl.DataFrame(full_days(audit)).join(
        pl.DataFrame({"table_name": list(EVENT_TIME_COLUMNS)}), how="cross"
    )
    return (
        grid.join(volumes, on=["table_name", "day"], how="left")
        .with_columns(pl.col("events").fill_null(0))
        .with_columns(pl.col("events").median().over("table_name").alias("median_events"))
        .with_columns(
            (
                (pl.col("median_events") >= MIN_MEDIAN_EVENTS)
                & (pl.col("events") < LOW_DAY_SHARE * pl.col("median_events"))
            )
            .fill_null(False)
            .alias("is_low"),
            pl.col("table_name").replace_strict(EVENT_LABELS).alias("label"),
        )
        .select("day", "table_name", "label", "events", "median_events", "is_low")
        .sort("table_name", "day")
    )


def full_days(audit: Audit) -> pl.Series:
    """Midnights of the days wholly inside the data window (not its partial first and last days)."""
    data_from, data_to = audit.data_window
    first = pl.Series([data_from]).dt.truncate("1d").item()
    if first < data_from:
        first += timedelta(days=1)
    last = pl.Series([data_to]).dt.truncate("1d").item() - timedelta(days=1)
    if last < first:
        return pl.Series("day", [], dtype=pl.Datetime("us"))
    return pl.datetime_range(first, last, "1d", eager=True, time_unit="us").alias("day")


def terminal_activity(audit: Audit) -> pl.DataFrame:
    """Per terminal: its last event, how many hours before the store's end, and its silent days.

    A silent day is a whole day of the data window, after the terminal's installation, with no
    login and no transaction on it. Terminals with most silent days first, then most behind.
    """
    _, data_to = audit.data_window
    events = (
        "SELECT terminal_id, ts FROM login_events "
        "UNION ALL SELECT terminal_id, ts FROM transactions"
    )
    active = audit.sql(
        f"SELECT DISTINCT terminal_id, date_trunc('day', ts) AS day FROM ({events})"
    ).with_columns(pl.col("day").cast(pl.Datetime("us")))
    last = audit.sql(f"SELECT terminal_id, max(ts) AS last_event_at FROM ({events}) GROUP BY ALL")
    terminals = audit.table("terminals").select(
        "terminal_id", "merchant_id", "model", "installed_at"
    )
    silent = (
        terminals.join(pl.DataFrame(full_days(audit)), how="cross")
        .filter(pl.col("day") >= pl.col("installed_at").dt.truncate("1d"))
        .join(active, on=["terminal_id", "day"], how="anti")
        .group_by("terminal_id")
        .agg(pl.len().alias("silent_days"), pl.col("day").min().alias("first_silent_day"))
    )
    return (
        terminals.join(last, on="terminal_id", how="left")
        .join(silent, on="terminal_id", how="left")
        .with_columns(
            pl.col("silent_days").fill_null(0).cast(pl.Int64),
            ((pl.lit(data_to) - pl.col("last_event_at")).dt.total_minutes() / 60)
            .round(1)
            .alias("hours_behind"),
        )
        .select(
            "terminal_id",
            "merchant_id",
            "model",
            "last_event_at",
            "hours_behind",
            "silent_days",
            "first_silent_day",
        )
        .sort(
            ["silent_days", "hours_behind", "terminal_id"],
            descending=[True, True, False],
            nulls_last=False,
        )
    )


def quiet_terminals(activity: pl.DataFrame, *, quiet_hours: float = QUIET_HOURS) -> pl.DataFrame:
    """Terminals behind by ``quiet_hours`` or more, or with a silent day, or never heard from."""
    return activity.filter(
        pl.col("last_event_at").is_null()
        | (pl.col("hours_behind") >= quiet_hours)
        | (pl.col("silent_days") > 0)
    )


def trace_number_gaps(transactions: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Breaks in each terminal's trace numbers: missing numbers and numbers used twice.

    Each transaction on a terminal takes the next trace number, so in trace order every step
    is +1. A larger step means records that never reached the store (``missing`` numbers); a
    step of 0 is a number used twice. Columns: terminal_id, merchant_id, kind ('gap' or
    'duplicate'), after_trace_no, trace_no, missing, after_ts, ts.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = pl.DataFrame({"terminal_id": "T1", "merchant_id": "M1", "trace_no": [1, 2, 5, 5],
    ...     "ts": [datetime(2026, 9, 1, h) for h in (8, 9, 10, 11)]})
    >>> trace_number_gaps(t).select("kind", "after_trace_no", "trace_no", "missing").rows()
    [('gap', 2, 5, 2), ('duplicate', 5, 5, 0)]
    """
    return (
        transactions.lazy()
        .select("terminal_id", "merchant_id", "trace_no", "ts")
        .sort("terminal_id", "trace_no", "ts")
        .with_columns(
            pl.col("trace_no").shift(1).over("terminal_id").alias("after_trace_no"),
            pl.col("ts").shift(1).over("terminal_id").alias("after_ts"),
        )
        .with_columns((pl.col("trace_no") - pl.col("after_trace_no")).alias("step"))
        .filter(pl.col("step").is_not_null() & (pl.col("step") != 1))
        .with_columns(
            pl.when(pl.col("step") == 0)
            .then(pl.lit("duplicate"))
            .otherwise(pl.lit("gap"))
            .alias("kind"),
            (pl.col("step") - 1).clip(lower_bound=0).alias("missing"),
        )
        .select(
            "terminal_id",
            "merchant_id",
            "kind",
            "after_trace_no",
            "trace_no",
            "missing",
            "after_ts",
            "ts",
        )
        .collect()
    )


def trace_gaps(audit: Audit) -> pl.DataFrame:
    """:func:`trace_number_gaps` over the store's transactions, computed by the store.

    The same steps in the store's SQL: only the breaks reach Python. Reading every transaction
    into Polars to sort it took 14 s and 2 GB on a 10 M-event store (docs/benchmarks.md).
    """
    steps = audit.sql(
        "SELECT terminal_id, merchant_id, after_trace_no, trace_no, after_ts, ts FROM ("
        "SELECT terminal_id, merchant_id, trace_no, ts, "
        "lag(trace_no) OVER w AS after_trace_no, lag(ts) OVER w AS after_ts FROM transactions "
        "WINDOW w AS (PARTITION BY terminal_id ORDER BY trace_no, ts)) "
        "WHERE after_trace_no IS NOT NULL AND trace_no - after_trace_no <> 1 "
        "ORDER BY terminal_id, trace_no, ts"
    )
    step = pl.col("trace_no") - pl.col("after_trace_no")
    return steps.select(
        "terminal_id",
        "merchant_id",
        pl.when(step == 0).then(pl.lit("duplicate")).otherwise(pl.lit("gap")).alias("kind"),
        "after_trace_no",
        "trace_no",
        (step - 1).clip(lower_bound=0).alias("missing"),
        "after_ts",
        "ts",
    )


def data_quality(
    *, volumes: pl.DataFrame, activity: pl.DataFrame, gaps: pl.DataFrame
) -> pl.DataFrame:
    """The checks at a glance: one row per check with its result and a verdict."""
    low = volumes.filter(pl.col("is_low"))
    quiet = quiet_terminals(activity)
    missing = int(gaps.filter(pl.col("kind") == "gap").get_column("missing").sum())
    duplicates = gaps.filter(pl.col("kind") == "duplicate").height
    checks = [
        (
            "days with under half the usual events",
            low.height,
            ", ".join(f"{r['label']} {r['day']:%m-%d}" for r in low.head(6).iter_rows(named=True)),
        ),
        (
            "terminals quiet for a day or more",
            quiet.height,
            ", ".join(quiet.get_column("terminal_id").head(6)),
        ),
        (
            "trace numbers missing (records never stored)",
            missing,
            ", ".join(
                sorted(set(gaps.filter(pl.col("kind") == "gap").get_column("terminal_id").head(6)))
            ),
        ),
        (
            "trace numbers used twice",
            duplicates,
            ", ".join(
                sorted(
                    set(
                        gaps.filter(pl.col("kind") == "duplicate").get_column("terminal_id").head(6)
                    )
                )
            ),
        ),
    ]
    return pl.DataFrame(
        {
            "check": [c[0] for c in checks],
            "count": [c[1] for c in checks],
            "verdict": ["ok" if c[1] == 0 else "look" for c in checks],
            "examples": [c[2] for c in checks],
        }
    )


def run_history(audit: Audit) -> pl.DataFrame:
    """Every run, oldest first, with whether its policy differs from the successful run before."""
    previous = audit.succeeded_runs.select(
        "run_id", pl.col("policy_hash").shift(1).alias("previous_policy_hash")
    )
    return (
        audit.runs.join(previous, on="run_id", how="left")
        .with_columns(
            pl.col("policy_hash").str.slice(0, 10).alias("policy"),
            (pl.col("policy_hash") != pl.col("previous_policy_hash")).alias("policy_changed"),
            (pl.col("run_id") == audit.run_id).alias("shown_here"),
        )
        .select(
            "run_id",
            "started_at",
            "status",
            "mode",
            "seconds",
            "rows_read",
            "findings_total",
            "findings_new",
            "findings_resolved",
            "policy",
            "policy_changed",
            "code_version",
            "shown_here",
        )
    )


def findings_by_family(audit: Audit) -> pl.DataFrame:
    """The run's findings counted by family and severity, with how many are new."""
    return (
        audit.findings()
        .group_by("family", "severity", "severity_rank")
        .agg(pl.len().alias("findings"), pl.col("is_new").sum().alias("new"))
        .sort(["family", "severity_rank"], descending=[False, True])
    )


def run_changes(audit: Audit) -> pl.DataFrame:
    """What is new in the run and what it resolved: one row per finding, most severe first.

    Columns: change ('new' or 'resolved'), rule, family, severity, score, entity_type,
    entity_id, window_start, summary, finding_id.
    """
    columns = [
        "change",
        "rule",
        "family",
        "severity",
        "score",
        "entity_type",
        "entity_id",
        "window_start",
        "summary",
        "finding_id",
    ]
    new = audit.findings().filter(pl.col("is_new")).with_columns(pl.lit("new").alias("change"))
    resolved = audit.resolved_findings().with_columns(pl.lit("resolved").alias("change"))
    return by_severity(pl.concat([new.select(columns), resolved.select(columns)])).drop(
        "severity_rank"
    )


def changes_by_rule(changes: pl.DataFrame) -> pl.DataFrame:
    """New and resolved findings counted per rule (resolved negative, for a diverging chart)."""
    return (
        changes.group_by("rule", "family", "change")
        .agg(pl.len().cast(pl.Int64).alias("findings"))
        .with_columns(
            pl.when(pl.col("change") == "resolved")
            .then(-pl.col("findings"))
            .otherwise(pl.col("findings"))
            .alias("signed")
        )
        .sort("rule", "change")
    )


def policy_changes(audit: Audit) -> pl.DataFrame:
    """Settings that differ between the previous successful run's policy and this run's."""
    previous = audit.previous_run_id
    schema = {"rule": pl.String, "setting": pl.String, "before": pl.String, "now": pl.String}
    if previous is None:
        return pl.DataFrame(schema=schema)
    before = audit.policy(previous).get("rules", {})
    now = audit.policy().get("rules", {})
    rows = [
        (rule, key, _shown(before.get(rule, {}).get(key)), _shown(now.get(rule, {}).get(key)))
        for rule in sorted(set(before) | set(now))
        for key in sorted(set(before.get(rule, {})) | set(now.get(rule, {})))
        if before.get(rule, {}).get(key) != now.get(rule, {}).get(key)
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def _shown(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)
