"""A bucketed export brought up to date with its store: appended, rewritten from a late day,
merged, and left as it was by an update that stops half way (no Spark needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from posaudit.spark import export as export_module
from posaudit.spark.export import (
    JOURNAL_PREFIX,
    BucketedExport,
    ExportError,
    bring_up_to_date,
    check_whole,
    export_buckets,
    read_export,
)
from posaudit.store import Store, read_parquet_table
from posaudit.store.catalogue import BUCKETED_TABLES, key_column
from tests.pipeline.pipeline_kit import append_days
from tests.spark.spark_kit import copy_store, wrong_pins_loaded_late

BUCKETS = 3


@pytest.fixture
def exported(sample_store: Path, tmp_path: Path) -> tuple[Path, BucketedExport]:
    """A copy of the sample store and its export as it was before the store gained a day."""
    db = copy_store(sample_store, tmp_path / "store.duckdb")
    store = Store.open(db, read_only=True)
    try:
        export = export_buckets(store, tmp_path / "export", buckets=BUCKETS)
    finally:
        store.close()
    return db, export


def _rows(source: Store | Path, table: str) -> pl.DataFrame:
    """A table's rows in key order: from the store, or from an export (its columns dropped)."""
    if isinstance(source, Store):
        frame = source.frame(f"SELECT * FROM {table}")
    else:
        frame = read_parquet_table(source, table).collect()
        frame = frame.drop("bucket", "card_bucket", strict=False)
    return frame.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String)).sort(
        key_column(table)
    )


def assert_export_holds_the_store(db: Path, root: Path) -> None:
    store = Store.open(db, read_only=True)
    try:
        for table in BUCKETED_TABLES:
            want = _rows(store, table)
            got = _rows(root, table).select(want.columns).cast(want.schema)  # type: ignore[arg-type]
            assert got.equals(want), table
    finally:
        store.close()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _update(db: Path, export: BucketedExport) -> BucketedExport:
    store = Store.open(db, read_only=True)
    try:
        return bring_up_to_date(export, store)
    finally:
        store.close()


def test_new_days_are_written_as_a_new_generation(
    exported: tuple[Path, BucketedExport],
) -> None:
    db, export = exported
    append_days(db, days=2)
    updated = _update(db, export)
    assert updated.generation == 1 and updated.data_to > export.data_to
    assert_export_holds_the_store(db, export.root)
    # a night's events reach back into the day before: its files are written again, the
    # rows before it kept; the next night leaves the settled history's files as they are
    before = _files(export.root)
    kept = [name for name in before if "/g1_settled" in name]
    assert kept
    append_days(db)
    updated = _update(db, updated)
    assert updated.generation == 2
    assert_export_holds_the_store(db, export.root)
    after = _files(export.root)
    assert all(after.get(name) == before[name] for name in kept)
    # an export already current is left as it is
    assert _update(db, updated).generation == 2
    assert _files(export.root) == after


def test_events_loaded_late_rewrite_the_files_from_their_day(
    exported: tuple[Path, BucketedExport],
) -> None:
    db, export = exported
    append_days(db)
    export = _update(db, export)
    wrong_pins_loaded_late(db, days_in=4)
    append_days(db)
    updated = _update(db, export)
    assert updated.generation == 2
    assert_export_holds_the_store(db, export.root)
    assert not list(export.root.glob(f"{JOURNAL_PREFIX}*"))


def test_a_bucket_of_many_files_is_merged_into_one(
    exported: tuple[Path, BucketedExport], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, export = exported
    monkeypatch.setattr(export_module, "MAX_FILES_PER_BUCKET", 1)
    append_days(db)
    export = _update(db, export)  # two files per bucket now: the next update merges them
    append_days(db)
    _update(db, export)
    assert_export_holds_the_store(db, export.root)
    for bucket in (export.root / "transactions").glob("bucket=*"):
        nightly = [f for f in bucket.glob("*.parquet") if not f.stem.endswith("_settled")]
        assert len(nightly) <= 2, nightly  # the last days' rows merged, the new day


def test_an_update_stopped_before_its_manifest_leaves_the_export_as_it_was(
    exported: tuple[Path, BucketedExport], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, export = exported
    append_days(db)
    export = _update(db, export)
    before = _files(export.root)
    wrong_pins_loaded_late(db, days_in=4)
    append_days(db)

    def stop(*_args: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(export_module, "_write_manifest", stop)
    with pytest.raises(OSError, match="No space left"):
        _update(db, export)
    assert _files(export.root) == before
    monkeypatch.undo()
    assert _update(db, export).generation == 2
    assert_export_holds_the_store(db, export.root)


def test_a_killed_update_is_undone_by_the_next_and_refused_by_a_reader(
    exported: tuple[Path, BucketedExport], tmp_path: Path
) -> None:
    """What a SIGKILL between moving files and writing the manifest leaves: a journal."""
    db, export = exported
    append_days(db)
    export = _update(db, export)
    before = _files(export.root)
    # the update's work is done in a copy, and its journal and moved files put in place
    copy = tmp_path / "copy"
    shutil.copytree(export.root, copy)
    wrong_pins_loaded_late(db, days_in=4)
    append_days(db)
    _update(db, read_export(copy))
    journal = export.root / f"{JOURNAL_PREFIX}2" / "replaced"
    for name in set(before) - set(_files(copy)):
        (journal / name).parent.mkdir(parents=True, exist_ok=True)
        (export.root / name).rename(journal / name)
    for name in set(_files(copy)) - set(before):
        if "/g2_" in name:
            (export.root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(copy / name, export.root / name)
    with pytest.raises(ExportError, match="was interrupted: run again with --db"):
        check_whole(read_export(export.root))
    export_module.recover(export.root, read_export(export.root).generation)
    assert _files(export.root) == before
    assert _update(db, read_export(export.root)).generation == 2
    assert_export_holds_the_store(db, export.root)
