"""The bucketed Parquet export the Spark engine reads, and its manifest.

A bucketed export is :meth:`Store.export_parquet` with ``buckets``: the tables detection reads
carry a ``bucket`` column (the merchant's bucket, computed once at write time) and are
Hive-partitioned ``<table>/bucket=K/``, events in time order; ``transactions`` also carry
``card_bucket`` for rules keyed by card. ``_posaudit_export.json`` beside the tables, written
last, says what the export holds: bucket count, data window, row counts, the PIN-key
fingerprint and the data fingerprint of the store it came from. A folder without it is not
a (complete) bucketed export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from posaudit import __version__
from posaudit.atomic import written_folder
from posaudit.run.plan import data_fingerprint, data_window
from posaudit.store import Store, StoreError
from posaudit.store.catalogue import BUCKETED_TABLES

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
        data_from, data_to = data_window(store)
        if data_from is None:
            msg = f"{store.path} holds no events: simulate or load data before running the audit"
            raise ExportError(msg)
        store.export_parquet(staging, buckets=buckets)
        rows = {t: int(store.query(f"SELECT count(*) FROM {t}")[0][0]) for t in BUCKETED_TABLES}  # type: ignore[call-overload]
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "buckets": buckets,
            "bucket_columns": {"merchant": "bucket", "card": "card_bucket"},
            "data_from": data_from.isoformat(),
            "data_to": data_to.isoformat(),
            "rows": rows,
            "pin_key_fingerprint": store.meta().get("pin_key_fingerprint")
            or pin_digester().fingerprint,
            "fingerprint": data_fingerprint(store, data_to),
            "cross_merchant_rows": cross_merchant_rows(store),
            "code_version": __version__,
            "exported_at": datetime.now().isoformat(timespec="seconds"),
            "store": str(store.path),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return read_export(out_dir)


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
    stored = store.meta().get("pin_key_fingerprint")
    if stored != export.pin_key_fingerprint:
        msg = f"the export in {export.root} was made under another PIN key than {store.path}"
        raise ExportError(msg)
