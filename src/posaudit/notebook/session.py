"""A store and one of its runs, as the notebooks read them: read-only, query by query.

A notebook starts with :func:`open_audit` and passes the :class:`Audit` it returns to every
call. The store is opened read-only for each query and closed right after, so an analyst can
never change it, and a notebook left open never keeps the scheduled ``posaudit run`` from
writing the next run.

A run's findings are read from the ``findings`` table, which keeps each finding once with the
first run that produced it, the latest, and the run that resolved it: a finding was part of
run R when it first appeared at or before R and was not resolved by R. (A finding that was
resolved and later reappeared counts as present in between; the table keeps no more.)
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from posaudit.config import ConfigError, merge_settings
from posaudit.detect.findings import SEVERITY_RANK
from posaudit.detect.policy import default_policy_text
from posaudit.store import Store, default_db_path

RUN_COLUMNS: Final = (
    "run_id, started_at, finished_at, status, mode, engine, data_from, data_to, rows_read, "
    "findings_total, findings_new, findings_seen, findings_resolved, policy_hash, policy_toml, "
    "code_version, seconds, error"
)


class AuditError(ValueError):
    """A store, run or finding a notebook cannot show; the message is one line for the analyst."""


# What a notebook never reads: the PIN digests and the run's kept state (which holds digests).
DIGEST_COLUMNS: Final = ("pin_digest",)
_SECRET_NAMES: Final = re.compile(r"pin_digest|\bkept_\w*", re.IGNORECASE)


def _without_digests(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop(DIGEST_COLUMNS, strict=False)


@contextmanager
def read_only(db: Path) -> Iterator[Store]:
    """The store opened read-only for the duration of the block."""
    store = Store.open(db, read_only=True)
    try:
        yield store
    finally:
        store.close()


def plain_strings(frame: pl.DataFrame) -> pl.DataFrame:
    """Categorical and enum columns as strings: charts and joins want plain values."""
    return frame.with_columns(
        pl.col(name).cast(pl.String)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Categorical | pl.Enum)
    )


def store_path(db: str | Path | None = None) -> Path:
    """The store a notebook reads: ``db``, else ``$POSAUDIT_DB``, else ``data/posaudit.duckdb``.

    A relative path that does not exist here is also looked for in the folders above the
    working directory, so a notebook whose kernel runs in ``notebooks/`` finds ``data/``.
    """
    path = Path(db).expanduser() if db is not None and str(db) != "" else default_db_path()
    if path.is_absolute() or path.exists():
        return path
    for parent in Path.cwd().parents:
        if (parent / path).exists():
            return parent / path
    return path


class Audit:
    """One store and one of its successful runs, read-only.

    Parameters
    ----------
    db
        The store file.
    run_id
        The run the notebooks show.
    runs
        Every row of ``pipeline_runs``, oldest first.
    """

    def __init__(self, db: Path, run_id: str, runs: pl.DataFrame):
        self.db = db
        self.run_id = run_id
        self.runs = runs
        self._tables: dict[str, pl.DataFrame] = {}
        self._window: tuple[datetime, datetime] | None = None

    def __repr__(self) -> str:
        return f"Audit(db={str(self.db)!r}, run_id={self.run_id!r})"

    def _repr_markdown_(self) -> str:
        run = self.run
        data_from, data_to = self.data_window
        return (
            f"Store **{self.db}** (read-only), run **{self.run_id}** of "
            f"{run['started_at']:%Y-%m-%d %H:%M} "
            f"with {run['findings_total'] or 0:,} findings; data from "
            f"{data_from:%Y-%m-%d %H:%M} to {data_to:%Y-%m-%d %H:%M}."
        )

    # -- reading -------------------------------------------------------------------------
    def sql(self, query: str) -> pl.DataFrame:
        """A SQL query on the store (opened read-only for this query) as a Polars frame.

        PIN digests stay out of a notebook: a query that names the digest column or what a
        run keeps for the next (the ``kept_`` tables) is refused, and a digest column that a
        ``SELECT *`` brings is dropped.
        """
        guarded = _SECRET_NAMES.search(query)
        if guarded:
            msg = (
                f"the notebooks do not read {guarded.group(0)!r}: PIN digests stay with the "
                "scheduled runs"
            )
            raise AuditError(msg)
        with read_only(self.db) as store:
            return _without_digests(plain_strings(store.frame(query)))

    def reread(self) -> None:
        """Forget the tables read so far: the next read sees what runs and reviews wrote since."""
        self._tables.clear()
        self._window = None

    def table(self, name: str) -> pl.DataFrame:
        """A whole table, read once per :class:`Audit` and kept in memory (no PIN digest)."""
        if name not in self._tables:
            with read_only(self.db) as store:
                self._tables[name] = _without_digests(plain_strings(store.scan(name).collect()))
        return self._tables[name]

    # -- runs ----------------------------------------------------------------------------
    @property
    def succeeded_runs(self) -> pl.DataFrame:
        return self.runs.filter(pl.col("status") == "succeeded")

    @property
    def run(self) -> dict[str, Any]:
        """The chosen run's ``pipeline_runs`` row."""
        return self.runs.filter(pl.col("run_id") == self.run_id).row(0, named=True)

    @property
    def previous_run_id(self) -> str | None:
        """The successful run before the chosen one, if any."""
        ids = self.succeeded_runs.get_column("run_id").to_list()
        position = ids.index(self.run_id)
        return ids[position - 1] if position > 0 else None

    def run_position(self) -> dict[str, int]:
        """Each run's place in time, oldest 0."""
        return {run_id: i for i, run_id in enumerate(self.runs.get_column("run_id").to_list())}

    def policy(self, run_id: str | None = None) -> dict[str, Any]:
        """A run's effective policy settings: the built-in default with the run's file over it."""
        row = self.runs.filter(pl.col("run_id") == (run_id or self.run_id))
        text = row.item(0, "policy_toml") if row.height else None
        settings = tomllib.loads(default_policy_text())
        if not text:
            return settings
        override = tomllib.loads(text)
        merged = copy.deepcopy(settings)
        try:
            merge_settings(merged, override, source=f"policy of {run_id or self.run_id}")
        except ConfigError:
            # written by another posaudit version: its own settings are all there is
            return override
        return merged

    def setting(self, rule: str, key: str, run_id: str | None = None) -> Any:
        """One threshold of one rule in a run's policy (``None`` when the rule has no such key)."""
        return self.policy(run_id).get("rules", {}).get(rule, {}).get(key)

    # -- the data ------------------------------------------------------------------------
    @property
    def data_window(self) -> tuple[datetime, datetime]:
        """The first and last event time in the store (logins and transactions): the audit's now."""
        if self._window is None:
            row = self.sql(
                "SELECT min(lo) AS data_from, max(hi) AS data_to FROM ("
                "SELECT min(ts) AS lo, max(ts) AS hi FROM login_events UNION ALL "
                "SELECT min(ts), max(ts) FROM transactions)"
            ).row(0)
            if row[0] is None:
                msg = f"{self.db} holds no logins or transactions"
                raise AuditError(msg)
            self._window = (row[0], row[1])
        return self._window

    # -- findings ------------------------------------------------------------------------
    def all_findings(self) -> pl.DataFrame:
        """Every finding the store keeps, with its evidence as JSON text."""
        return self.table("findings")

    def findings(self, run_id: str | None = None) -> pl.DataFrame:
        """The findings of a run, most severe first, with ``is_new`` (first seen in that run).

        Also ``severity_rank`` (info 0 ... critical 4) for sorting and filtering.
        """
        run = run_id or self.run_id
        position = self.run_position()
        here = position[run]
        first = pl.col("first_run_id").replace_strict(position, default=None, return_dtype=pl.Int64)
        resolved = pl.col("resolved_run_id").replace_strict(
            position, default=None, return_dtype=pl.Int64
        )
        return by_severity(
            self.all_findings()
            .filter((first <= here) & (resolved.is_null() | (resolved > here)))
            .with_columns((pl.col("first_run_id") == run).alias("is_new"))
        )

    def resolved_findings(self, run_id: str | None = None) -> pl.DataFrame:
        """Findings of the run before that this run no longer found."""
        run = run_id or self.run_id
        return by_severity(self.all_findings().filter(pl.col("resolved_run_id") == run))

    def finding(self, finding_id: str) -> dict[str, Any]:
        """One finding by id (any run), as a dict; raises AuditError naming the id."""
        rows = self.all_findings().filter(pl.col("finding_id") == finding_id)
        if rows.height == 0:
            msg = f"no finding {finding_id!r} in {self.db}"
            raise AuditError(msg)
        return rows.row(0, named=True)


def by_severity(findings: pl.DataFrame) -> pl.DataFrame:
    """Findings most severe first, then strongest, then earliest; adds ``severity_rank``.

    Examples
    --------
    >>> from datetime import datetime
    >>> found = pl.DataFrame({"finding_id": ["F1", "F2", "F3"], "severity": ["low", "high", "high"],
    ...     "score": [0.9, 0.5, 0.5], "window_start": [datetime(2026, 9, d) for d in (1, 3, 2)]})
    >>> by_severity(found).get_column("finding_id").to_list()
    ['F3', 'F2', 'F1']
    """
    return findings.with_columns(
        pl.col("severity")
        .replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8)
        .alias("severity_rank")
    ).sort(
        ["severity_rank", "score", "window_start", "finding_id"],
        descending=[True, True, False, False],
    )


def first_per(frame: pl.DataFrame, column: str, n: int) -> pl.DataFrame:
    """The first ``n`` rows of each value of ``column``, in the frame's order.

    Examples
    --------
    >>> frame = pl.DataFrame({"rule": ["a", "b", "a", "a", "b"], "n": [1, 2, 3, 4, 5]})
    >>> first_per(frame, "rule", 2).get_column("n").to_list()
    [1, 2, 3, 5]
    """
    return frame.filter(pl.int_range(pl.len()).over(column) < n)


def open_audit(db: str | Path | None = None, run_id: str | None = None) -> Audit:
    """The store at ``db`` (see :func:`store_path`) and its run ``run_id`` (default: the latest).

    Raises :class:`posaudit.store.StoreError` when the file is no usable store, and
    :class:`AuditError` when it holds no successful run or not the one asked for.
    """
    path = store_path(db)
    with read_only(path) as store:
        runs = plain_strings(
            store.frame(f"SELECT {RUN_COLUMNS} FROM pipeline_runs ORDER BY started_at, run_id")
        )
    succeeded = runs.filter(pl.col("status") == "succeeded").get_column("run_id").to_list()
    if not succeeded:
        msg = f"{path} has no successful audit run yet: run `posaudit run --db {path}` first"
        raise AuditError(msg)
    if run_id is None or run_id == "":
        run_id = succeeded[-1]
    elif run_id not in succeeded:
        msg = f"no successful run {run_id!r} in {path} (its runs: {', '.join(succeeded)})"
        raise AuditError(msg)
    return Audit(path, run_id, runs)


def setup() -> None:
    """Make a notebook ready: offline Altair charts in the posaudit theme, readable tables."""
    from posaudit.notebook import render
    from posaudit.notebook.style import enable_theme

    render.enable()
    enable_theme()
    pl.Config.set_tbl_rows(20)
    pl.Config.set_fmt_str_lengths(120)
    pl.Config.set_tbl_hide_dataframe_shape(True)
