"""Opening, validating, reading and writing the DuckDB store."""

from __future__ import annotations

import functools
import os
import queue
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Final

import duckdb
import polars as pl
import pyarrow as pa

from posaudit.store import lock
from posaudit.store.catalogue import (
    CATALOGUE,
    EVENT_TIME_COLUMNS,
    INGEST_TABLES,
    LATER_TABLES,
    REQUIRED_TABLES,
    REVIEW_TABLES,
    TABLE_NAMES,
    UPGRADE_TABLES,
    MerchantLink,
    TableFacts,
)
from posaudit.store.errors import StoreError, StoreLockedError

SCHEMA_VERSION: Final = "4"
# How a store of an older schema version becomes the next version, in place: what a store
# holds (an ingested one cannot be made again) is kept, and only columns and tables are added.
# The tables a version brought (the catalogue's ``added_in``) are made from schema.sql as well.
# :meth:`Store.open` for writing runs the steps, under the writer lock, in one transaction.
_UPGRADES: Final = MappingProxyType(
    {
        # 2: a transaction carries its card's account reference (PAR), null in the rows before
        "1": (
            "ALTER TABLE transactions ADD COLUMN account_ref VARCHAR",
            # a run's kept refunds frame predates the column: the next run computes it again
            "DROP TABLE IF EXISTS kept_refunds",
            "DELETE FROM posaudit_meta WHERE key = 'refunds.state_run_id'",
        ),
        # 3: operator management events and the terminals' batch totals (tables only)
        "2": (),
        # 4: a finding on a state still held (a PIN) is open: it has no window_end. The PIN
        # findings of earlier runs end at their data's last day: the next run is a full one
        # (without the previous run's fingerprint, posaudit.run.plan)
        "3": (
            "ALTER TABLE findings ALTER COLUMN window_end DROP NOT NULL",
            "DELETE FROM posaudit_meta WHERE key = 'pipeline.fingerprint'",
        ),
    }
)
APPLICATION: Final = "posaudit"
DB_ENV: Final = "POSAUDIT_DB"
DEFAULT_DB: Final = "data/posaudit.duckdb"
WRITE_MEMORY_LIMIT: Final = "1GB"


def default_db_path() -> Path:
    """``$POSAUDIT_DB`` if set, else ``data/posaudit.duckdb``."""
    return Path(os.environ.get(DB_ENV, DEFAULT_DB))


def _schema_sql() -> str:
    return files("posaudit.store").joinpath("schema.sql").read_text(encoding="utf-8")


# DuckDB's messages for a file it could not read or write: 'Could not write file "PATH": CAUSE'.
_DUCKDB_FILE_ERROR: Final = re.compile(
    r'(?:file|from file) "(?P<path>[^"]+)"(?::|,)? (?P<cause>.+)$'
)


_IO_WORDS: Final = ("Could not write", "Could not read", "Cannot open file", "Could not open")


def _io_cause(text: str) -> bool:
    """Whether a DuckDB message says a file could not be read, written or opened (a commit
    that fails on a full disk arrives as a TransactionException saying so)."""
    return any(words in text for words in _IO_WORDS)


def environment_error(exc: BaseException) -> StoreError | None:
    """A StoreError with one line for DuckDB's refusals by the environment (a full or
    read-only file system, a file cut short), or None for any other error."""
    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, duckdb.Error):
        return None
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    found = _DUCKDB_FILE_ERROR.search(text)
    file_io = found is not None and _io_cause(text)
    if not (file_io or isinstance(exc, duckdb.IOException | duckdb.FatalException)):
        return None
    if found is None or not file_io:
        return StoreError(text)
    path, cause = found["path"], found["cause"].strip()
    if "Could not read enough bytes" in text:
        return StoreError(f"{path} is a damaged posaudit store (cut short): {cause}")
    return StoreError(f"cannot use {path}: {cause}")


STAGING_SUFFIX: Final = ".staging"
# A DuckDB file starts with its headers (one 4 KiB file header, two database headers), then
# its blocks: a file shorter than that was cut short (a copy that ran out of space, say).
_DUCKDB_HEADER_BYTES: Final = 3 * 4096


def _file_kind(path: Path) -> str | None:
    """What is at ``path`` (following links): None when nothing, else 'a file', 'a folder',
    'a FIFO'..."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    kinds = (
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _check_whole(path: Path, con: duckdb.DuckDBPyConnection) -> None:
    """Raise StoreError when the file is too short to hold the blocks its header says are used.

    Free blocks at the end may be cut off by DuckDB itself, so only the used ones count: a
    cut that removes used blocks (half the file, say) is caught here, before any is read.
    """
    if path.with_name(path.name + ".wal").exists():
        return  # blocks in the log are not in the file yet
    rows = con.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size() LIMIT 1"
    ).fetchall()
    if not rows or rows[0][0] is None:
        return
    block_size, blocks = int(rows[0][0]), int(rows[0][1])
    expected = _DUCKDB_HEADER_BYTES + block_size * blocks
    actual = path.stat().st_size
    if actual < expected:
        msg = (
            f"{path} is a damaged posaudit store: the file is {actual:,} bytes, its blocks in use "
            f"need {expected:,} (cut short, perhaps by a full disk or an interrupted copy)"
        )
        raise StoreError(msg)


def _remove_database_files(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


# Columns the review trail gained after it first shipped (docs/review.md), with their types.
_REVIEW_COLUMNS_ADDED: Final = {
    "case_id": "VARCHAR",
    "evidence_events": "BIGINT",
    "request_id": "VARCHAR",
}


def _check_store_file(path: Path) -> None:
    """Raise StoreError unless ``path`` is a regular file (a store to open)."""
    try:
        kind = _file_kind(path)
    except OSError as exc:
        msg = f"cannot open the store {path}: {exc.strerror or exc}"
        raise StoreError(msg) from None
    if kind is None:
        msg = f"no store at {path}: create one with `posaudit simulate --db {path}`"
        raise StoreError(msg)
    if kind == "a folder":
        msg = f"{path} is a folder, not a store file"
        raise StoreError(msg)
    if kind != "a file":
        # DuckDB would wait forever on a FIFO's writer, or read a device
        msg = f"{path} is {kind}, not a store file"
        raise StoreError(msg)


_TABLE_DEFINITION: Final = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\);", re.S)
_COLUMN_DEFINITION: Final = re.compile(r"^\s*([a-z_]\w*) (\w+)")
_TYPE_DEFINITION: Final = re.compile(r"CREATE TYPE (\w+) AS ENUM \(.*?\);", re.S)


def _added_in(version: int) -> tuple[str, ...]:
    """The statements of ``schema.sql`` that make the tables schema ``version`` brought, and
    the types only they use: an upgrade creates them as a new store has them."""
    schema = _schema_sql()
    tables = {t for t in UPGRADE_TABLES if CATALOGUE[t].added_in == version}
    bodies = {name: m.group(0) for m in _TABLE_DEFINITION.finditer(schema) for name in [m[1]]}
    older = "\n".join(body for name, body in bodies.items() if name not in tables)
    types = [
        m.group(0)
        for m in _TYPE_DEFINITION.finditer(schema)
        if not re.search(rf"\b{m[1]}\b", older)
        and any(re.search(rf"\b{m[1]}\b", bodies[t]) for t in tables)
    ]
    return (*types, *(bodies[t] for t in sorted(tables)))


def _views_as_upgraded(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The views that read a store of an older schema version, opened read-only, as this
    version: each table lacking columns of ``schema.sql`` read with them, null, in their
    order (temporary: they live in the connection, never in the file)."""
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    views = []
    for table, body in _TABLE_DEFINITION.findall(_schema_sql()):
        held = {
            str(r[0])
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                "AND schema_name = 'main' AND table_name = ?",
                [database, table],
            ).fetchall()
        }
        wanted = [m.groups() for m in map(_COLUMN_DEFINITION.match, body.splitlines()) if m]
        if not held and table in UPGRADE_TABLES:
            # a table a later version brought reads empty; its own enum types may not exist yet
            known = {
                str(r[0]) for r in con.execute("SELECT type_name FROM duckdb_types()").fetchall()
            }
            columns = ", ".join(
                f'CAST(NULL AS {kind if kind in known else "VARCHAR"}) AS "{name}"'
                for name, kind in wanted
            )
            views.append(f"CREATE TEMP VIEW {table} AS SELECT {columns} WHERE false")
            continue
        if not held or all(name in held for name, _ in wanted):
            continue
        columns = ", ".join(
            f'"{name}"' if name in held else f'CAST(NULL AS {kind}) AS "{name}"'
            for name, kind in wanted
        )
        views.append(f'CREATE TEMP VIEW {table} AS SELECT {columns} FROM "{database}".main.{table}')
    return tuple(views)


class Store:
    """A posaudit DuckDB file.

    Use :meth:`open` for an existing store and :meth:`create` for a new one; both validate
    the file and raise :class:`StoreError` with one clear line when it cannot be used.
    """

    def __init__(
        self,
        path: Path,
        connection: duckdb.DuckDBPyConnection,
        *,
        read_only: bool,
        locked: Path | None = None,
        views: tuple[str, ...] = (),
    ):
        self.path = path
        self.read_only = read_only
        self._con = connection
        # the store whose writer lock this object let go of when closed (None: it holds none)
        self._locked = locked
        # a read-only store of an older version: the views that read it as this version's
        self._views = views
        for view in views:
            connection.execute(view)

    # -- opening ---------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            # posaudit reports progress itself: DuckDB's own bar would land in logs and pipes
            # (inside Jupyter DuckDB refuses the setting without ipywidgets, and draws no bar)
            with suppress(duckdb.InvalidInputException):
                con.execute("SET enable_progress_bar = false")
            return con
        except duckdb.IOException as exc:
            text = str(exc).splitlines()[0]
            if "lock" in text.lower():
                msg = f"{path} is in use by another posaudit process (the store is locked)"
                raise StoreLockedError(msg) from exc
            msg = f"{path} is not a DuckDB database: {text}"
            raise StoreError(msg) from exc
        except duckdb.Error as exc:
            msg = f"cannot open {path}: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from exc

    @classmethod
    def check_new_path(cls, path: Path) -> None:
        """Raise StoreError if a store cannot be created at ``path``; writes nothing."""
        try:
            if not path.parent.is_dir():
                msg = f"cannot create the store {path}: folder {path.parent} does not exist"
                raise StoreError(msg)
            # the store's staged copy and its log are named after it: each must fit too
            longest = os.fsencode(path.name + STAGING_SUFFIX + ".wal")
            limit = os.pathconf(path.parent, "PC_NAME_MAX")
            if len(longest) > limit:
                msg = (
                    f"cannot create the store {path}: its name is "
                    f"{len(os.fsencode(path.name))} bytes, and with "
                    f"{STAGING_SUFFIX + '.wal'!r} passes the file system's limit of {limit}"
                )
                raise StoreError(msg)
            kind = _file_kind(path)
        except OSError as exc:
            cause = exc.strerror or str(exc)
            msg = f"cannot create the store {path}: {cause}"
            raise StoreError(msg) from None
        if kind == "a folder":
            msg = f"cannot create the store {path}: it is a folder"
            raise StoreError(msg)
        if kind not in (None, "a file"):
            msg = f"cannot create the store {path}: it is {kind}, not a regular file"
            raise StoreError(msg)

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False, purpose: str = "write") -> Store:
        """Open an existing posaudit store, checking that it is one and of this version.

        Opened for writing, the store's writer lock (:mod:`posaudit.store.lock`) is held
        until :meth:`close`: another writer is refused at once with StoreLockedError.
        ``purpose`` says in the lock file what the writer does. A store of an older schema
        version is upgraded in place when opened for writing; opened read-only, it is read
        as this version, the columns it lacks null.
        """
        path = Path(path)
        _check_store_file(path)
        if not read_only:
            lock.acquire(path, purpose=purpose)
        views: tuple[str, ...] = ()
        try:
            con = cls._connect(path, read_only=read_only)
            try:
                version = cls._validate(path, con)
                if version != SCHEMA_VERSION and read_only:
                    views = _views_as_upgraded(con)
                elif version != SCHEMA_VERSION:
                    cls._upgrade(path, con, version)
            except BaseException:
                con.close()
                raise
        except BaseException:
            if not read_only:
                lock.release(path)
            raise
        return cls(path, con, read_only=read_only, locked=None if read_only else path, views=views)

    @classmethod
    @contextmanager
    def staged(
        cls, path: Path | str, *, append: bool, purpose: str | None = None
    ) -> Iterator[Store]:
        """Write a new store, or more into an existing one, through a staged copy.

        The block writes into ``<path>.staging`` (a copy of the store when appending) and may
        commit as often as it likes; only when it completes does the copy replace ``path``,
        in one rename. A failure, or a kill at any moment, leaves ``path`` as it was.
        """
        path = Path(path)
        staging = path.with_name(path.name + STAGING_SUFFIX)
        if not append:
            cls.check_new_path(path)
        # the writer lock of the store, from before it is read until the copy is renamed over it
        default = "simulate --append" if append else "simulate"
        lock.acquire(path, purpose=purpose or default)
        version = SCHEMA_VERSION
        try:
            if append:  # validate before copying
                _check_store_file(path)
                con = cls._connect(path, read_only=True)
                try:
                    version = cls._validate(path, con)
                finally:
                    con.close()
            elif path.exists():
                msg = f"{path} already exists"
                raise StoreError(msg)
            # with the lock held, a copy already there is a dead writer's: never read, removed
            _remove_database_files(staging)
            try:
                if append:
                    shutil.copyfile(path, staging)
                con = cls._connect(staging, read_only=False)
                if append and version != SCHEMA_VERSION:
                    try:
                        cls._upgrade(path, con, version)
                    except BaseException:
                        con.close()
                        raise
            except BaseException:
                _remove_database_files(staging)
                raise
            # a bounded buffer pool keeps a long simulation's memory flat
            con.execute(f"SET memory_limit = '{WRITE_MEMORY_LIMIT}'")
            store = cls(staging, con, read_only=False)
            try:
                yield store
                store.execute("CHECKPOINT")
                store.close()
                os.replace(staging, path)
            except BaseException as exc:
                with suppress(Exception):  # after a fatal write error the connection is gone
                    store.close()
                _remove_database_files(staging)
                problem = environment_error(exc) if isinstance(exc, Exception) else None
                if problem is not None:
                    raise problem from exc
                raise
        finally:
            lock.release(path)

    @classmethod
    def from_parquet(
        cls, root: Path, path: Path, *, code_version: str, pin_key_fingerprint: str
    ) -> Path:
        """A new store at ``path`` holding a Parquet export (e.g. ``data_samples/world``)
        whose PINs were digested under the key of ``pin_key_fingerprint``."""
        with cls.staged(path, append=False) as store:
            store.initialise(pin_key_fingerprint=pin_key_fingerprint, code_version=code_version)
            for table in TABLE_NAMES:
                if table == "posaudit_meta" or not (root / table).exists():
                    continue
                columns = store.frame(f"SELECT * FROM {table} LIMIT 0").columns
                rows = read_parquet_table(root, table).collect()
                if rows.height:
                    # an export of an older store lacks the later columns: they load null
                    store.append(table, rows.select(c for c in columns if c in rows.columns))
        return path

    @staticmethod
    def _validate(path: Path, con: duckdb.DuckDBPyConnection) -> str:
        """Check the store and return its schema version: this one, or one it upgrades from."""
        try:
            return Store._validate_contents(path, con)
        except duckdb.Error as exc:
            msg = f"{path} is a damaged posaudit store: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from exc

    @staticmethod
    def _validate_contents(path: Path, con: duckdb.DuckDBPyConnection) -> str:
        _check_whole(path, con)
        names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "posaudit_meta" not in names:
            what = (
                "an empty DuckDB database" if not names else "a DuckDB database of another schema"
            )
            msg = f"{path} is {what}, not a posaudit store (no posaudit_meta table)"
            raise StoreError(msg)
        meta = dict(con.execute("SELECT key, value FROM posaudit_meta").fetchall())
        if meta.get("application") != APPLICATION:
            msg = (
                f"{path} is not a posaudit store (posaudit_meta names {meta.get('application')!r})"
            )
            raise StoreError(msg)
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION and version not in _UPGRADES:
            msg = (
                f"{path} has store schema version {version}, this posaudit reads version "
                f"{SCHEMA_VERSION} and upgrades versions {', '.join(_UPGRADES)}: open it with "
                "the posaudit that made it, or rebuild it with `posaudit simulate`"
            )
            raise StoreError(msg)
        # the ingest and review tables came later: a store made before them is whole without them
        brought = [t for t in UPGRADE_TABLES if CATALOGUE[t].added_in <= int(version or 0)]
        missing = [t for t in (*REQUIRED_TABLES, *brought) if t not in names]
        if missing:
            msg = f"{path} is a damaged posaudit store: missing tables {', '.join(missing)}"
            raise StoreError(msg)
        return str(version)

    @staticmethod
    def _upgrade(path: Path, con: duckdb.DuckDBPyConnection, version: str) -> None:
        """Upgrade a store of schema ``version`` to this one, in one transaction; the caller
        holds the writer lock."""
        start = version
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                while version != SCHEMA_VERSION:
                    for step in (*_UPGRADES[version], *_added_in(int(version) + 1)):
                        con.execute(step)
                    version = str(int(version) + 1)
                con.execute(
                    "UPDATE posaudit_meta SET value = ? WHERE key = 'schema_version'", [version]
                )
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except duckdb.Error as exc:
            msg = (
                f"cannot upgrade {path} from store schema version {start} to "
                f"{SCHEMA_VERSION}: {str(exc).splitlines()[0]}"
            )
            raise StoreError(msg) from exc

    def initialise(self, *, pin_key_fingerprint: str, code_version: str) -> None:
        """Create every table of the schema and the metadata rows in a new, empty file."""
        self._con.execute(_schema_sql())
        rows = [
            ("application", APPLICATION),
            ("schema_version", SCHEMA_VERSION),
            ("created_at", datetime.now().isoformat(timespec="seconds")),
            ("created_by", code_version),
            ("pin_key_fingerprint", pin_key_fingerprint),
        ]
        self._con.executemany("INSERT INTO posaudit_meta VALUES (?, ?)", rows)

    def close(self) -> None:
        """Close the connection and let go of the writer lock it held, if any."""
        try:
            self._con.close()
        finally:
            if self._locked is not None:
                lock.release(self._locked)
                self._locked = None

    @contextmanager
    def cursor(self) -> Iterator[Store]:
        """The store through a second connection to the same database, for reading on
        another thread while this one reads too (DuckDB runs the two queries at once)."""
        cursor = self._con.cursor()
        try:
            yield Store(self.path, cursor, read_only=self.read_only, views=self._views)
        finally:
            cursor.close()

    # -- metadata --------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self._con.execute("SELECT key, value FROM posaudit_meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        """Set one metadata value (inside the caller's transaction, if any)."""
        self._con.execute("INSERT OR REPLACE INTO posaudit_meta VALUES (?, ?)", [key, value])

    def forget_meta(self, key: str) -> None:
        """Remove one metadata value (inside the caller's transaction, if any)."""
        self._con.execute("DELETE FROM posaudit_meta WHERE key = ?", [key])

    def check_pin_key(self, fingerprint: str) -> None:
        """Raise StoreError when the store's PINs were digested under another key."""
        stored = self.meta().get("pin_key_fingerprint")
        if stored != fingerprint:
            msg = (
                f"{self.path} was written with another PIN key than the one set in "
                "$POSAUDIT_PIN_KEY (fingerprints differ); set the store's key"
            )
            raise StoreError(msg)

    # -- reading ---------------------------------------------------------------------------
    def scan(self, table: str, *, where: str | None = None) -> pl.LazyFrame:
        """A table as a LazyFrame (materialised from DuckDB through Arrow)."""
        return self.read(table, where=where).lazy()

    def read(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: str | Sequence[str] | None = None,
        params: Mapping[str, object] | None = None,
    ) -> pl.DataFrame:
        """Rows of a table (``where``: a SQL condition, with named ``$`` values ``params``),
        only ``columns`` when given.

        ``where`` may be several conditions that select disjoint rows: each is read on its
        own and the rows stacked, which DuckDB runs much faster than one condition joining
        them with OR when one holds a sub-query. Strings cross to Polars as Arrow string
        views, Polars' own layout, so they are not copied on the way; ENUM columns arrive as
        Categorical.
        """
        if table not in TABLE_NAMES:
            msg = f"unknown table {table!r}"
            raise StoreError(msg)
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        conditions = [where] if isinstance(where, str) else list(where or [])
        query = (
            " UNION ALL ".join(f"SELECT {selected} FROM {table} WHERE {c}" for c in conditions)
            or f"SELECT {selected} FROM {table}"
        )
        self._con.execute("SET produce_arrow_string_view = true")
        try:
            return self._con.sql(query, params=dict(params) if params else None).pl()
        finally:
            self._con.execute("RESET produce_arrow_string_view")

    def read_query(self, sql: str, *, over: Mapping[str, str | None]) -> pl.DataFrame:
        """The result of a query over tables, each cut to the rows of its condition.

        ``over`` maps each table the query names to a SQL condition (None: every row); the
        query sees the cut tables under their own names. Strings arrive as in :meth:`read`.
        """
        unknown = sorted(set(over) - set(TABLE_NAMES))
        if unknown:
            msg = f"unknown table {unknown[0]!r}"
            raise StoreError(msg)
        # NOT MATERIALIZED: DuckDB would otherwise copy a cut the query names twice (a table
        # and a subquery over it) whole, every column, before running the query (measured:
        # 0.5 s and a copy of the table per query over ten million transactions).
        cuts = ", ".join(
            f"{t} AS NOT MATERIALIZED "
            f"(SELECT * FROM {self._stored(t)}{'' if c is None else f' WHERE {c}'})"
            for t, c in over.items()
        )
        self._con.execute("SET produce_arrow_string_view = true")
        try:
            return self._con.sql(f"WITH {cuts} {sql}").pl()
        finally:
            self._con.execute("RESET produce_arrow_string_view")

    def _stored(self, table: str) -> str:
        """The table's name, qualified past a query's own name for it: the stored table, or
        the view that reads a store of an older version as this one."""
        viewed = any(v.startswith(f"CREATE TEMP VIEW {table} ") for v in self._views)
        return f"temp.main.{table}" if viewed else f"main.{table}"

    def schema(self, table: str) -> pl.Schema:
        """A table's columns as Polars sees them when read."""
        return self.read(table, where="false").schema

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
        """Rows of a SQL query, for small look-ups (counts, maxima, metadata)."""
        return self._con.execute(sql, params or []).fetchall()

    def release_cache(self) -> None:
        """Let go of the table blocks DuckDB keeps cached from earlier queries.

        DuckDB keeps every block it read until its memory limit presses, so a query that
        scans a column across the whole history keeps it in memory for the rest of the
        process. Lowering the limit to nothing evicts what no query holds; the limit is then
        set back. Call it only when no other cursor of the store is running a query: one
        would fail for want of memory.
        """
        shown = "SELECT current_setting('memory_limit')"
        (limit,) = self._con.execute(shown).fetchone()  # type: ignore[misc]
        try:
            with suppress(duckdb.Error):  # what a transaction holds cannot be evicted: keep it
                self._con.execute("SET memory_limit = '1MB'")
        finally:
            # the default to the byte; a limit set here, as it reads (to a tenth of its unit)
            self._con.execute("RESET memory_limit")
            if self._con.execute(shown).fetchone() != (limit,):
                self._con.execute(f"SET memory_limit = '{limit}'")

    def frame(self, sql: str, params: Mapping[str, object] | None = None) -> pl.DataFrame:
        """The result of a SQL query as a Polars DataFrame (``params``: named ``$`` values)."""
        return self._con.sql(sql, params=dict(params) if params else None).pl()

    def frame_with(self, sql: str, **frames: pl.DataFrame) -> pl.DataFrame:
        """The result of a SQL query that also reads ``frames``, each under its keyword's name
        (an empty frame when the statement returns no rows)."""
        for name, frame in frames.items():
            self._con.register(name, frame.to_arrow())
        try:
            result = self._con.sql(sql)
            return result.pl() if result is not None else pl.DataFrame()
        finally:
            for name in frames:
                self._con.unregister(name)

    def row_counts(self) -> dict[str, int]:
        """Rows per table; a table the store predates counts 0."""
        return {
            t: int(self.query(f"SELECT count(*) FROM {t}")[0][0]) if self.has_table(t) else 0  # type: ignore[call-overload]
            for t in TABLE_NAMES
        }

    def ensure_ingest_tables(self) -> None:
        """Create the ingest tables a store made before them lacks (inside the caller's
        transaction, if any). Only tables are added: older posaudit still reads the store."""
        self._create_missing(INGEST_TABLES)

    def ensure_review_tables(self) -> None:
        """Create the review trail (and its ENUM types) a store made before it lacks (inside
        the caller's transaction, if any). Older posaudit still reads the store.

        A trail made before cases and queued decisions gains their columns, NULL in its
        rows, and may then hold reviews of a case (no finding)."""
        self._create_missing(REVIEW_TABLES)
        have = {
            str(r[0])
            for r in self.query(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'finding_reviews'"
            )
        }
        for column, kind in _REVIEW_COLUMNS_ADDED.items():
            if column not in have:
                self._con.execute(f"ALTER TABLE finding_reviews ADD COLUMN {column} {kind}")
        if "case_id" not in have:
            self._con.execute("ALTER TABLE finding_reviews ALTER COLUMN finding_id DROP NOT NULL")

    def _create_missing(self, tables: Sequence[str]) -> None:
        schema = _schema_sql()
        for table in tables:
            if self.has_table(table):
                continue
            found = re.search(rf"CREATE TABLE {table} \(.*?\n\);", schema, re.S)
            assert found is not None, table  # schema.sql and the catalogue agree (tested)
            for type_name in sorted(set(re.findall(r"\b(\w+_t)\b", found.group(0)))):
                made = re.search(rf"CREATE TYPE {type_name} AS ENUM \(.*?\);", schema, re.S)
                assert made is not None, type_name
                self._con.execute(made.group(0).replace("CREATE TYPE", "CREATE TYPE IF NOT EXISTS"))
            self._con.execute(found.group(0))

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes in the block commit together or not at all."""
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def append(self, table: str, data: pa.Table | pl.DataFrame) -> None:
        """Append rows whose columns are named and ordered as the table's."""
        arrow = data.to_arrow() if isinstance(data, pl.DataFrame) else data
        columns = ", ".join(f'"{c}"' for c in arrow.column_names)
        self._con.register("_posaudit_chunk", arrow)
        try:
            self._con.execute(f"INSERT INTO {table} ({columns}) SELECT * FROM _posaudit_chunk")
        finally:
            self._con.unregister("_posaudit_chunk")

    def has_table(self, table: str) -> bool:
        """Whether the store holds a table of that name (the run's own state included)."""
        rows = self._con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
            [table],
        ).fetchall()
        return bool(rows[0][0])

    def create_table_like(self, table: str, frame: pl.DataFrame) -> None:
        """Create ``table`` with the columns of ``frame`` (no rows), for the run's own state."""
        self._con.register("_posaudit_shape", frame.head(0).to_arrow())
        try:
            self._con.execute(f"CREATE TABLE {table} AS SELECT * FROM _posaudit_shape")
        finally:
            self._con.unregister("_posaudit_shape")

    def execute(self, sql: str, params: list[object] | None = None) -> None:
        self._con.execute(sql, params or [])

    @contextmanager
    def background_writer(self, *, depth: int = 2) -> Iterator[BackgroundWriter]:
        """A writer thread that appends chunks while the caller builds the next ones."""
        writer = BackgroundWriter(self, depth=depth)
        try:
            yield writer
        finally:
            writer.close()

    # -- export ----------------------------------------------------------------------------
    def export_parquet(
        self, out_dir: Path, *, partitioned: bool = True, buckets: int | None = None
    ) -> list[str]:
        """Write every table as Parquet under ``out_dir/<table>/``, rows in key order.

        Event tables are Hive-partitioned by event date (``date=YYYY-MM-DD``) unless
        ``partitioned`` is false, which writes one file per table (small samples).

        With ``buckets``, the tables detection reads (the catalogue's ``BUCKETED_TABLES``) also
        carry a ``bucket`` column, computed here once: ``md5_number_lower(merchant_id) %
        buckets`` of the row's merchant (reached as the catalogue's ``merchant`` link says where
        the table has no ``merchant_id``), and are Hive-partitioned by it (``bucket=K/``), so
        one bucket holds every row of every merchant, terminal and operator it covers; event
        rows are in time order within a bucket, so a reader of a time window skips the other
        row groups.
        ``transactions`` also carry ``card_bucket`` (the same hash of ``card_token``, rows
        without a card in the bucket of the empty string) for rules keyed by card. In
        Python, ``int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "little")``
        modulo ``buckets`` gives the same bucket. Returns the tables written.
        """
        if buckets is not None and buckets < 1:
            msg = f"the bucket count must be at least 1, got {buckets}"
            raise StoreError(msg)
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._export_parquet(out_dir, partitioned=partitioned, buckets=buckets)
        except duckdb.Error as exc:
            msg = f"cannot export {self.path}: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from exc

    def export_bucket_rows(
        self,
        out_dir: Path,
        tables: Mapping[str, datetime | None],
        *,
        buckets: int,
        pattern: str,
    ) -> None:
        """Write the bucketed tables ``tables`` as :meth:`export_parquet` does with
        ``buckets``, into ``out_dir/<table>/bucket=K/`` as files named by ``pattern`` (DuckDB's
        ``FILENAME_PATTERN``): each event table's rows from its time on (all when None), each
        table without an event time whole. What brings a bucketed export up to date."""
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for table, since in tables.items():
                facts = CATALOGUE[table]
                assert facts.merchant is not None, table
                self._con.execute(
                    _bucketed_copy(
                        facts,
                        facts.merchant,
                        out_dir / table,
                        buckets,
                        since=since,
                        pattern=pattern,
                    )
                )
        except duckdb.Error as exc:
            msg = f"cannot export {self.path}: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from exc

    def _export_parquet(
        self, out_dir: Path, *, partitioned: bool, buckets: int | None
    ) -> list[str]:
        written = []
        for facts in CATALOGUE.values():
            if facts.kind == "meta":  # the store's own settings stay with the store
                continue
            if facts.name in LATER_TABLES and not self.has_table(facts.name):
                continue  # a store made before the table existed has nothing to export there
            table, key, column = facts.name, facts.key, facts.time_column
            target = out_dir / table
            if buckets is not None and facts.merchant is not None:
                self._con.execute(_bucketed_copy(facts, facts.merchant, target, buckets))
            elif partitioned and column is not None:
                self._con.execute(
                    f"COPY (SELECT *, CAST({column} AS DATE) AS date FROM {table} ORDER BY {key}) "
                    f"TO '{target}' (FORMAT parquet, PARTITION_BY (date), OVERWRITE_OR_IGNORE)"
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                part = target / "part-0.parquet"
                self._con.execute(
                    f"COPY (SELECT * FROM {table} ORDER BY {key}) TO '{part}' (FORMAT parquet)"
                )
            if not any(target.rglob("*.parquet")):
                # A partitioned COPY of no rows writes no file, and a reader then cannot tell
                # the table's columns (an ingested store has no batch totals): one empty file.
                folder = target / "bucket=0" if buckets is not None and facts.merchant else target
                folder.mkdir(parents=True, exist_ok=True)
                extra = ", CAST(NULL AS INTEGER) AS card_bucket" if table == "transactions" else ""
                if partitioned and column is not None and buckets is None:
                    extra = f", CAST({column} AS DATE) AS date"
                self._con.execute(
                    f"COPY (SELECT *{extra} FROM {table} LIMIT 0) TO "
                    f"'{folder / 'part-0.parquet'}' (FORMAT parquet)"
                )
            written.append(table)
        return written


def _bucketed_copy(
    facts: TableFacts,
    via: MerchantLink,
    target: Path,
    buckets: int,
    *,
    since: datetime | None = None,
    pattern: str | None = None,
) -> str:
    """The COPY statement writing a table with its bucket column(s), partitioned by bucket;
    ``via`` is how the table's rows reach their merchant. ``since``: only the events from
    that time on; ``pattern``: the files' names (DuckDB's ``FILENAME_PATTERN``).

    The merchant's bucket is hashed once per merchant (or terminal, or operator) and joined
    to the rows: hashing every event row costs more than the rest of the export.
    """

    def bucket_of(value: str) -> str:
        return f"CAST(md5_number_lower(coalesce({value}, '')) % {buckets} AS INTEGER)"

    table, column, source = facts.name, via.column, via.table
    keys = (
        f"SELECT k, {bucket_of('merchant_id')} AS bucket FROM "
        f"(SELECT DISTINCT {column} AS k, merchant_id FROM {source})"
    )
    columns = [f"coalesce(b.bucket, {bucket_of('NULL')}) AS bucket"]
    if table == "transactions":
        columns.append(f"{bucket_of('t.card_token')} AS card_bucket")
    order = ["bucket", f"t.{facts.key}"]
    if facts.time_column is not None:
        order.insert(1, f"t.{facts.time_column}")
    where = ""
    if since is not None and facts.time_column is not None:
        where = f" WHERE t.{facts.time_column} >= TIMESTAMP '{since.isoformat(sep=' ')}'"
    rows = (
        f"SELECT t.*, {', '.join(columns)} FROM {table} t LEFT JOIN ({keys}) b "
        f"ON b.k = t.{column}{where} ORDER BY {', '.join(order)}"
    )
    options = "FORMAT parquet, PARTITION_BY (bucket), OVERWRITE_OR_IGNORE"
    if pattern is not None:
        options += f", FILENAME_PATTERN '{pattern}'"
    return f"COPY ({rows}) TO '{target}' ({options})"


def read_parquet_table(root: Path, table: str) -> pl.LazyFrame:
    """A table from a Parquet export made by :meth:`Store.export_parquet` (either layout).

    A table without rows has no files in a partitioned export (and none in an export made
    before the table existed): it reads as an empty frame of the store's columns."""
    if not any((root / table).glob("**/*.parquet")):
        return empty_table(table).lazy()
    frame = pl.scan_parquet(root / table / "**" / "*.parquet", hive_partitioning=True)
    return frame.drop("date", strict=False) if table in EVENT_TIME_COLUMNS else frame


@functools.cache
def _empty_tables() -> dict[str, pl.DataFrame]:
    con = duckdb.connect()
    try:
        con.execute(_schema_sql())
        return {table: con.sql(f"SELECT * FROM {table} LIMIT 0").pl() for table in TABLE_NAMES}
    finally:
        con.close()


def empty_table(table: str) -> pl.DataFrame:
    """Table ``table`` of ``schema.sql`` without rows: its columns and their types."""
    return _empty_tables()[table]


class BackgroundWriter:
    """Appends queued chunks on a second thread; DuckDB releases the GIL while it writes.

    The store's connection is not to be used by two threads at once: the caller reads or
    writes it itself only after :meth:`flush`.
    """

    def __init__(self, store: Store, *, depth: int):
        self._store = store
        self._queue: queue.Queue[tuple[str, pa.Table] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.busy_seconds = 0.0  # time spent writing, for benchmarks
        self.wait_seconds = 0.0  # time the producer waited for a free slot
        self._thread = threading.Thread(target=self._run, name="posaudit-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is not None:
                    continue
                table, data = item
                began = time.perf_counter()
                try:
                    self._store.append(table, data)
                    self.busy_seconds += time.perf_counter() - began
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc
            finally:
                self._queue.task_done()

    def put(self, table: str, data: pa.Table | pl.DataFrame) -> None:
        if self._error is not None:
            raise self._error
        arrow = data.to_arrow() if isinstance(data, pl.DataFrame) else data
        if arrow.num_rows:
            began = time.perf_counter()
            self._queue.put((table, arrow))
            self.wait_seconds += time.perf_counter() - began

    def flush(self) -> None:
        """Wait until every chunk put so far is written: the store may then be read (or
        written) on the caller's thread, the writer being idle."""
        self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
