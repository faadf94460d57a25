"""06-ingested-data: what `posaudit ingest` brought into the store, what it refused, and how
completely the data covers each terminal's days.

A store loaded from exports has no ground truth, so nothing says which of its findings are
real. What an analyst can check is the data itself: which files it came from (each known by
the fingerprint of its bytes), how many rows each file gave and how many were quarantined and
why, and whether every terminal reported on every day. A row left in quarantine, or a terminal
silent for a day, is an event the audit did not see. The tables ``ingested_files`` and
``quarantine`` are read through the store like any other; the raw rows of the quarantine hold
card numbers already masked at the door.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from posaudit.notebook.session import Audit
from posaudit.store.catalogue import EVENT_TIME_COLUMNS, INGEST_TABLES

# The quarantine's reason codes in words (docs/ingest.md, "Validation and the quarantine").
REASONS: Final[dict[str, str]] = {
    "bad_row": "the row does not split into the header's fields",
    "bad_timestamp": "a date or time that does not parse",
    "bad_amount": "an amount that is not yuan with two decimals",
    "bad_number": "an integer column holding something else",
    "bad_digest": "a PIN digest that is not 64 hex digits",
    "unknown_value": "a word the value map does not know",
    "missing_value": "a required column left empty",
    "out_of_range": "a value outside the data contract's range",
    "unknown_merchant": "a merchant the store does not hold",
    "unknown_terminal": "a terminal the store does not hold",
    "unknown_operator": "an operator the store does not hold",
    "duplicate_in_file": "the same key a second time in the files",
}
# Sample rows shown per reason: enough to see the pattern of a reason, few enough to read.
SAMPLE_ROWS_PER_REASON: Final = 3
# The event tables that name their terminal: a PIN event belongs to an operator, not a terminal.
TERMINAL_EVENT_TABLES: Final = ("login_events", "lockouts", "transactions")
# Hex digits of a fingerprint shown: enough to tell files apart and find one in ingested_files.
FINGERPRINT_SHOWN: Final = 12


def has_ingested_data(audit: Audit) -> bool:
    """Whether ``posaudit ingest`` ever wrote into the store (a simulated world: False)."""
    names = ", ".join(f"'{t}'" for t in INGEST_TABLES)
    tables = audit.sql(
        f"SELECT count(*) AS n FROM information_schema.tables WHERE table_name IN ({names})"
    ).item()
    return (
        tables == len(INGEST_TABLES)
        and audit.sql("SELECT count(*) AS n FROM ingested_files").item() > 0
    )


def ingested_files(audit: Audit) -> pl.DataFrame:
    """One row per file ingested, oldest first: its rows read, loaded, duplicate, quarantined.

    ``file`` is the file's name without its folder; ``fingerprint`` the first hex digits of its
    SHA-256. Rows read = loaded + duplicate + quarantined, for every file.
    """
    if not has_ingested_data(audit):
        return pl.DataFrame(
            schema={
                "ingest_id": pl.String,
                "file": pl.String,
                "fingerprint": pl.String,
                "table": pl.String,
                "rows_read": pl.Int64,
                "rows_loaded": pl.Int64,
                "rows_duplicate": pl.Int64,
                "rows_quarantined": pl.Int64,
                "cards_in_clear": pl.Int64,
                "mapping": pl.String,
                "ingested_at": pl.Datetime("us"),
            }
        )
    return audit.sql(
        "SELECT ingest_id, regexp_extract(file_name, '[^/\\\\]*$') AS file, "
        f'left(fingerprint, {FINGERPRINT_SHOWN}) AS fingerprint, target_table AS "table", '
        "rows_read, rows_loaded, rows_duplicate, rows_quarantined, cards_in_clear, mapping, "
        "ingested_at FROM ingested_files ORDER BY ingested_at, ingest_id, file_name"
    )


def quarantine_reasons(audit: Audit) -> pl.DataFrame:
    """Quarantined rows by reason and table, most first, with the reason in words."""
    if not has_ingested_data(audit):
        return pl.DataFrame(
            schema={"reason": pl.String, "what": pl.String, "table": pl.String, "rows": pl.Int64}
        )
    return (
        audit.sql(
            'SELECT reason, target_table AS "table", count(*) AS rows FROM quarantine '
            'GROUP BY ALL ORDER BY rows DESC, reason, "table"'
        )
        .with_columns(pl.col("reason").replace_strict(REASONS, default="").alias("what"))
        .select("reason", "what", "table", "rows")
    )


def quarantined_rows(audit: Audit, *, per_reason: int = SAMPLE_ROWS_PER_REASON) -> pl.DataFrame:
    """The first ``per_reason`` quarantined rows of each reason, by file and line.

    ``raw_row`` is the source row as JSON, as the store keeps it: card numbers were masked
    before it was written, and a notebook table escapes it as text.
    """
    if not has_ingested_data(audit):
        return pl.DataFrame(
            schema={
                "reason": pl.String,
                "file": pl.String,
                "line": pl.Int64,
                "detail": pl.String,
                "raw_row": pl.String,
            }
        )
    return audit.sql(
        "SELECT reason, regexp_extract(file_name, '[^/\\\\]*$') AS file, source_line AS line, "
        "detail, raw_row FROM quarantine "
        "QUALIFY row_number() OVER (PARTITION BY reason ORDER BY file_name, source_line) <= "
        f"{int(per_reason)} ORDER BY reason, file_name, source_line"
    )


def coverage(audit: Audit) -> pl.DataFrame:
    """Events per terminal and day (logins, lockouts and transactions together), every day
    of the data window for every terminal, 0 where it reported nothing.

    ``is_silent``: a full day without any event (the first and last day of the data are
    partial: a terminal quiet on them may simply not have started or finished its day).
    """
    events = " UNION ALL ".join(
        f"SELECT terminal_id, CAST({column} AS DATE) AS day FROM {table}"
        for table in TERMINAL_EVENT_TABLES
        for column in (EVENT_TIME_COLUMNS[table],)
    )
    counted = audit.sql(f"SELECT terminal_id, day, count(*) AS events FROM ({events}) GROUP BY ALL")
    data_from, data_to = audit.data_window
    days = pl.date_range(data_from.date(), data_to.date(), "1d", eager=True).alias("day")
    terminals = audit.sql("SELECT terminal_id FROM terminals ORDER BY terminal_id")
    return (
        terminals.join(days.to_frame(), how="cross")
        .join(counted, on=["terminal_id", "day"], how="left")
        .with_columns(pl.col("events").fill_null(0))
        .with_columns(
            (
                (pl.col("events") == 0)
                & pl.col("day").is_between(days.min(), days.max(), closed="none")
            ).alias("is_silent")
        )
        .sort("terminal_id", "day")
    )


def coverage_by_terminal(coverage: pl.DataFrame) -> pl.DataFrame:
    """Per terminal of :func:`coverage`: days with events and silent full days, most silent
    days first."""
    return (
        coverage.group_by("terminal_id")
        .agg(
            pl.col("events").sum(),
            (pl.col("events") > 0).sum().cast(pl.Int64).alias("days_with_events"),
            pl.col("is_silent").sum().cast(pl.Int64).alias("silent_days"),
            pl.col("day").filter(pl.col("events") > 0).min().alias("first_day"),
            pl.col("day").filter(pl.col("events") > 0).max().alias("last_day"),
        )
        .sort(["silent_days", "events", "terminal_id"], descending=[True, False, False])
    )


def ingest_headline(audit: Audit) -> str:
    """What came in, in two sentences (Markdown): files, rows, and where the rows went."""
    files = ingested_files(audit)
    if files.height == 0:
        return (
            f"Nothing was ingested into **{audit.db}**: its data was simulated "
            "(`posaudit simulate`), so there are no files and no quarantine to show. The "
            "coverage below applies to any store."
        )
    ingests = files.get_column("ingest_id").n_unique()
    mappings = ", ".join(sorted(set(files.get_column("mapping"))))
    read, loaded, duplicate, quarantined = (
        int(files.get_column(c).sum())
        for c in ("rows_read", "rows_loaded", "rows_duplicate", "rows_quarantined")
    )
    return (
        f"**{audit.db}** was loaded from {files.height:,} files by {ingests:,} "
        f"`posaudit ingest` command{'s' if ingests > 1 else ''} (mapping {mappings}): "
        f"{read:,} rows read, {loaded:,} loaded, {duplicate:,} already in the store and "
        f"{quarantined:,} quarantined.\n\n"
        "The store holds no ground truth: nothing says which findings are real, so the "
        "notebooks measure no detection rate. What can be checked is the data itself, below."
    )
