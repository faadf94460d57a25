"""The bucketed Parquet export the Spark engine reads, and its manifest.

A bucketed export is :meth:`Store.export_parquet` with ``buckets``: the tables detection reads
carry a ``bucket`` column (the merchant's bucket, computed once at write time) and are
Hive-partitioned ``<table>/bucket=K/``, events in time order; ``transactions`` also carry
``card_bucket`` for rules keyed by card. ``_posaudit_export.json`` beside the tables, written
last, says what the export holds: bucket count, data window, row counts, the PIN-key
fingerprint and the data fingerprint of the store it came from. A folder without it is not
a (complete) bucketed export.

An export is brought up to date with its store (:func:`bring_up_to_date`) rather than made
again: the events from the earliest changed day on are written per bucket as files of a new
generation (``g<N>_*.parquet``), replacing the files that held such days, the dimension
tables are written again whole, and the manifest, written last, names the generation. An
update works through a journal folder (see below): the next update finishes or undoes an
interrupted one, and a reader refuses the export until then.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import polars as pl

from posaudit import __version__
from posaudit.atomic import written_file, written_folder
from posaudit.run.plan import changed_days, data_fingerprint, data_window
from posaudit.store import Store, StoreError
from posaudit.store.catalogue import BUCKETED_TABLES, EVENT_TIME_COLUMNS, key_column

MANIFEST: Final = "_posaudit_export.json"
FORMAT: Final = "posaudit-bucketed-export"
FORMAT_VERSION: Final = 1
# Buckets of a new export when the cluster's size is unknown (Spark Connect); see
# docs/scale-out.md for sizing.
DEFAULT_BUCKETS: Final = 64


class ExportError(StoreError):
    """A bucketed export that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class BucketedExport:
    """A bucketed export on disk, as its manifest describes it."""

    root: Path
    buckets: int
    data_from: datetime
    data_to: datetime
    rows: dict[str, int]
    pin_key_fingerprint: str
    fingerprint: dict[str, Any]
    cross_merchant_rows: int
    code_version: str
    exported_at: str
    generation: int = 0  # how many updates appended to it (see bring_up_to_date)

    @property
    def window(self) -> tuple[datetime, datetime]:
        return self.data_from, self.data_to

    def table_path(self, table: str) -> Path:
        return self.root / table


def cross_merchant_rows(store: Store) -> int:
    """Events whose operator works for another merchant than the event's terminal.

    Merchant buckets hold every row of a terminal, an operator and a merchant together only
    when an operator's logins, lockouts and transactions happen at its own merchant's
    terminals, as the data contract has it; the Spark engine refuses an export where not.
    """
    checks = (
        "SELECT count(*) FROM login_events e JOIN terminals t ON t.terminal_id = e.terminal_id "
        "JOIN operators o ON o.operator_id = e.operator_id WHERE o.merchant_id <> t.merchant_id",
        "SELECT count(*) FROM lockouts e JOIN terminals t ON t.terminal_id = e.terminal_id "
        "JOIN operators o ON o.operator_id = e.operator_id WHERE o.merchant_id <> t.merchant_id",
        "SELECT count(*) FROM transactions e JOIN operators o ON o.operator_id = e.operator_id "
        "WHERE o.merchant_id <> e.merchant_id",
        "SELECT count(*) FROM operators o JOIN terminals t ON t.terminal_id = o.terminal_id "
        "WHERE o.merchant_id <> t.merchant_id",
    )
    return sum(int(store.query(sql)[0][0]) for sql in checks)  # type: ignore[call-overload]


def export_buckets(
    store: Store, out_dir: Path, *, buckets: int = DEFAULT_BUCKETS
) -> BucketedExport:
    """Write ``store`` as a bucketed export into ``out_dir`` (new, or an empty folder).

    The export is written into a sibling folder and renamed into place when complete
    (:func:`posaudit.atomic.written_folder`), so a failed or killed export leaves no folder
    that looks like one.
    """
    if buckets < 1:
        msg = f"--buckets must be at least 1, got {buckets}"
        raise ExportError(msg)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        msg = f"{out_dir} must be a new or empty folder to export into"
        raise ExportError(msg)
    if not out_dir.parent.is_dir():
        msg = f"cannot export to {out_dir}: folder {out_dir.parent} does not exist"
        raise ExportError(msg)
    from posaudit.pins import pin_digester

    with written_folder(out_dir) as staging:
        if data_window(store)[0] is None:
            msg = f"{store.path} holds no events: simulate or load data before running the audit"
            raise ExportError(msg)
        store.export_parquet(staging, buckets=buckets)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "buckets": buckets,
            "bucket_columns": {"merchant": "bucket", "card": "card_bucket"},
            **_store_facts(store),
            "pin_key_fingerprint": store.meta().get("pin_key_fingerprint")
            or pin_digester().fingerprint,
            "exported_at": datetime.now().isoformat(timespec="seconds"),
            "store": str(store.path),
            "generation": 0,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return read_export(out_dir)


def _store_facts(store: Store) -> dict[str, Any]:
    """What a manifest says of the store's data as it is exported: its window, rows per
    table, data fingerprint, the events no merchant bucket can hold, the code's version."""
    data_from, data_to = data_window(store)
    return {
        "data_from": data_from.isoformat(),
        "data_to": data_to.isoformat(),
        "rows": {
            t: int(store.query(f"SELECT count(*) FROM {t}")[0][0])  # type: ignore[call-overload]
            for t in BUCKETED_TABLES
        },
        "fingerprint": data_fingerprint(store, data_to),
        "cross_merchant_rows": cross_merchant_rows(store),
        "code_version": __version__,
    }


def read_export(root: Path) -> BucketedExport:
    """The bucketed export at ``root``; raises ExportError with one line when it is not one."""
    if not root.exists():
        msg = f"no bucketed export at {root}"
        raise ExportError(msg)
    if not root.is_dir():
        msg = f"{root} is a file, not a bucketed export folder"
        raise ExportError(msg)
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = (
            f"{root} is not a bucketed posaudit export (no {MANIFEST}): give an empty folder "
            "and --db to export the store into it"
        )
        raise ExportError(msg) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"cannot read {path}: {str(exc).splitlines()[0]}"
        raise ExportError(msg) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        msg = f"{path} is not a posaudit export manifest"
        raise ExportError(msg)
    if manifest.get("version") != FORMAT_VERSION:
        version = manifest.get("version")
        msg = f"{path} has export format version {version}, this posaudit reads {FORMAT_VERSION}"
        raise ExportError(msg)
    missing = [t for t in BUCKETED_TABLES if not (root / t).is_dir()]
    if missing:
        msg = f"{root} is an incomplete export: no folder for {', '.join(missing)}"
        raise ExportError(msg)
    try:
        return BucketedExport(
            root=root,
            buckets=int(manifest["buckets"]),
            data_from=datetime.fromisoformat(manifest["data_from"]),
            data_to=datetime.fromisoformat(manifest["data_to"]),
            rows={str(k): int(v) for k, v in manifest["rows"].items()},
            pin_key_fingerprint=str(manifest["pin_key_fingerprint"]),
            fingerprint=dict(manifest["fingerprint"]),
            cross_merchant_rows=int(manifest["cross_merchant_rows"]),
            code_version=str(manifest["code_version"]),
            exported_at=str(manifest["exported_at"]),
            generation=int(manifest.get("generation", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{path} is damaged: {type(exc).__name__}: {exc}"
        raise ExportError(msg) from None


def check_export_matches(export: BucketedExport, store: Store) -> None:
    """Raise ExportError when ``export`` does not hold the store's current data."""
    if (
        data_fingerprint(store, export.data_to) != export.fingerprint
        or data_window(store) != export.window
    ):
        msg = (
            f"the export in {export.root} (made {export.exported_at}) is not of the current data "
            f"of {store.path}: remove it, or give an empty --parquet folder to export again"
        )
        raise ExportError(msg)
    check_pin_key(export, store)


def check_pin_key(export: BucketedExport, store: Store) -> None:
    """Raise ExportError when ``export`` was made under another PIN key than ``store``."""
    if store.meta().get("pin_key_fingerprint") != export.pin_key_fingerprint:
        msg = f"the export in {export.root} was made under another PIN key than {store.path}"
        raise ExportError(msg)


# -- bringing an export up to date ---------------------------------------------------------
#
# An update of generation N works in a journal folder, ``.update-g<N>``: it writes the new
# files under ``new/``, then moves each file (and dimension folder) it replaces into
# ``replaced/`` and the new ones into place, then writes the manifest naming generation N,
# then removes the journal. Whatever stops it, the next update finds the journal: before the
# manifest named N, it puts the replaced files back and removes the new ones (the export is
# as it was); after, it only removes the journal. A reader refuses an export with a journal.

_GENERATION = re.compile(r"^g(\d+)_\w+\.parquet$")
JOURNAL_PREFIX: Final = ".update-g"
# A bucket's files of a table are merged into one when an update finds more than this many
# (one per night otherwise: many small files slow every reader).
MAX_FILES_PER_BUCKET: Final = 16
# An update writes the rows it keeps of the last days before its changed day apart from the
# older ones: a night's events reach back a day or so, and the next update then rewrites only
# the file of those days, never the one of the history.
RECENT: Final = timedelta(days=7)


def _journals(root: Path) -> list[Path]:
    return sorted(root.glob(f"{JOURNAL_PREFIX}*"))


def _generation_of(file: Path) -> int:
    found = _GENERATION.match(file.name)
    return int(found.group(1)) if found else 0


def check_whole(export: BucketedExport) -> None:
    """Raise ExportError when an interrupted update left the export half done."""
    if _journals(export.root):
        msg = (
            f"an update of the export in {export.root} was interrupted: run again with --db "
            "and the store to finish it"
        )
        raise ExportError(msg)


def recover(root: Path, generation: int) -> None:
    """Finish what an interrupted update left (see above): undo it, or remove its journal
    when the manifest (at ``generation``) already names it."""
    for journal in _journals(root):
        done = int(journal.name.removeprefix(JOURNAL_PREFIX)) <= generation
        replaced = journal / "replaced"
        if not done:
            for table in BUCKETED_TABLES:
                for file in (root / table).glob("bucket=*/*.parquet"):
                    if _generation_of(file) > generation:
                        file.unlink()
            for folder in sorted(replaced.glob("*")) if replaced.is_dir() else []:
                if folder.name not in EVENT_TIME_COLUMNS:  # a dimension table, whole
                    shutil.rmtree(root / folder.name, ignore_errors=True)
                    folder.rename(root / folder.name)
                    continue
                for file in folder.glob("bucket=*/*.parquet"):
                    target = root / folder.name / file.parent.name
                    target.mkdir(parents=True, exist_ok=True)
                    os.replace(file, target / file.name)
        shutil.rmtree(journal)


def _is_history(file: Path) -> bool:
    """Whether ``file`` holds a bucket's history: the first export's, or settled rows."""
    return _GENERATION.match(file.name) is None or file.stem.endswith("_settled")


def _latest_time(file: Path, column: str) -> datetime | None:
    """The latest value of ``column`` in a Parquet file, from its statistics (read when a
    row group has none)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(file).metadata
    index = meta.schema.names.index(column)
    latest = None
    for group in range(meta.num_row_groups):
        column_meta = meta.row_group(group).column(index)
        stats = column_meta.statistics
        if stats is None or not stats.has_min_max:
            value = pl.scan_parquet(file).select(pl.col(column).max()).collect().item()
        else:
            value = stats.max
        if value is not None and (latest is None or value > latest):
            latest = value
    return latest


def bring_up_to_date(export: BucketedExport, store: Store) -> BucketedExport:
    """``export`` holding the store's current data, by writing only what changed.

    The events from the earliest day whose events changed (loaded late or removed, as the
    fingerprint's counts per day tell) are written again from the store, and the later ones
    appended: per bucket, files of a new generation replace those holding such days, the
    rows before kept. The dimension tables are written again whole, the manifest last (see
    the journal above). An export already current is returned as it is.
    """
    root = export.root
    recover(root, export.generation)
    now = data_fingerprint(store, export.data_to)
    if data_window(store) == export.window and now == export.fingerprint:
        return export
    days = [day for day, _ in changed_days(now["events"], export.fingerprint["events"])]
    changed = datetime.fromisoformat(min(days)) if days else None
    generation = export.generation + 1
    journal = root / f"{JOURNAL_PREFIX}{generation}"
    new, replaced = journal / "new", journal / "replaced"
    # each event table: from when its rows are written from the store, and the files replaced
    since: dict[str, datetime | None] = {}
    rewrite: dict[Path, datetime | None] = {}
    for table in BUCKETED_TABLES:
        column = EVENT_TIME_COLUMNS.get(table)
        if column is None:
            since[table] = None
            continue
        files = sorted((root / table).glob("bucket=*/*.parquet"))
        ends = {file: _latest_time(file, column) for file in files}
        end = max((e for e in ends.values() if e is not None), default=None)
        if changed is not None and end is not None and end >= changed:
            since[table] = changed
            rewrite |= {f: changed for f, e in ends.items() if e is not None and e >= changed}
        else:
            since[table] = end + timedelta(microseconds=1) if end is not None else None
        by_bucket: dict[str, list[Path]] = {}
        for file in files:
            by_bucket.setdefault(file.parent.name, []).append(file)
        for bucket_files in by_bucket.values():
            if len(bucket_files) > MAX_FILES_PER_BUCKET:
                # the nights' small files, merged; a file of settled history stays as it is
                small = [f for f in bucket_files if not _is_history(f)]
                rewrite |= {f: rewrite.get(f) for f in small}
    done = False
    try:
        store.export_bucket_rows(new, since, buckets=export.buckets, pattern=f"g{generation}_{{i}}")
        _kept_rows(root, new, rewrite, since, generation)
        # the commit: replaced files aside, new ones in place, the manifest last
        for file in rewrite:
            aside = replaced / file.relative_to(root)
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, aside)
        for table in BUCKETED_TABLES:
            if table not in EVENT_TIME_COLUMNS:
                replaced.mkdir(parents=True, exist_ok=True)
                (root / table).rename(replaced / table)
                (new / table).rename(root / table)
                continue
            for file in sorted((new / table).glob("bucket=*/*.parquet")):
                folder = root / table / file.parent.name
                folder.mkdir(exist_ok=True)
                os.replace(file, folder / file.name)
        _write_manifest(root, store, generation)
        done = True
    finally:
        if done:
            shutil.rmtree(journal, ignore_errors=True)
        else:
            recover(root, export.generation)
    return read_export(root)


def _kept_rows(
    root: Path,
    new: Path,
    rewrite: dict[Path, datetime | None],
    since: dict[str, datetime | None],
    generation: int,
) -> None:
    """Write into ``new`` the rows each replaced file keeps: those before the time its table
    is written again from (all of them when the file is only merged with its bucket's)."""
    by_folder: dict[Path, list[Path]] = {}
    for file in rewrite:
        by_folder.setdefault(file.parent, []).append(file)
    for folder, files in sorted(by_folder.items()):
        table = folder.parent.name
        column = EVENT_TIME_COLUMNS[table]
        cut = since[table] if any(rewrite[f] is not None for f in files) else None
        rows = pl.scan_parquet(sorted(files), hive_partitioning=False)
        if cut is not None:
            rows = rows.filter(pl.col(column) < cut)
        kept = rows.sort(column, key_column(table)).collect()
        target = new / table / folder.name
        target.mkdir(parents=True, exist_ok=True)
        # the rows of the last days apart, so that the next nights rewrite only those
        recent = kept.filter(pl.col(column) >= cut - RECENT) if cut is not None else kept.clear()
        settled = kept.filter(pl.col(column) < cut - RECENT) if cut is not None else kept
        for part, name in ((settled, "settled"), (recent, "kept")):
            if part.height:
                part.write_parquet(target / f"g{generation}_{name}.parquet")


def _write_manifest(root: Path, store: Store, generation: int) -> None:
    """The manifest of the export as it now holds the store's data, written whole."""
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    manifest |= {
        **_store_facts(store),
        "updated_at": datetime.now().isoformat(timespec="seconds"),
        "generation": generation,
    }
    with written_file(root / MANIFEST) as part:
        part.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
