"""Keys placed block by block: a repeat in this ingest is quarantined, a key the store held
is a duplicate, exactly, whatever the hashes and wherever the blocks are cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posaudit.ingest import keys as keys_module
from posaudit.ingest import sources
from posaudit.ingest.load import ingest_files
from posaudit.ingest.mapping import load_mapping
from posaudit.pins import pin_digester
from tests.ingest.ingest_kit import query, txn, write_world

# X1 and X2 twice, X3 three times, across lines far enough apart for several blocks
LINES = [txn(f"X{n}", amount=str(100 * i + n)) for i, n in enumerate([1, 2, 3, 1, 4, 3, 2, 3, 5])]


def _load(db: Path, folder: Path) -> dict[str, object]:
    summary = ingest_files(db, load_mapping("contract"), [folder], digester=pin_digester())
    return summary.to_record()


def _outcome(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    loaded = query(db, "SELECT txn_id, amount_fen FROM transactions ORDER BY 1, 2").rows()
    quarantined = query(
        db, "SELECT source_line, reason, detail FROM quarantine ORDER BY source_line"
    ).rows()
    return loaded, quarantined


@pytest.mark.parametrize("hashes", ["real", "all collide"])
@pytest.mark.parametrize("block", [1 << 20, 40])
def test_repeats_and_stored_keys_are_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashes: str, block: int
) -> None:
    monkeypatch.setattr(sources, "_BLOCK_BYTES", block)
    if hashes == "all collide":
        # every key shares one hash: only the store's confirmation tells them apart
        monkeypatch.setattr(
            keys_module, "_hashes", lambda keys: np.zeros(keys.len(), dtype=np.uint64)
        )
    db = tmp_path / "s.duckdb"
    first = _load(db, write_world(tmp_path / "a", LINES))
    assert (first["rows_loaded"], first["rows_quarantined"]) == (
        2 + 2 + 3 + 5,
        4,
    )  # the world's dimensions and 5 keys
    loaded, quarantined = _outcome(db)
    # the first of each key, in the order read, is the one kept
    assert loaded == [("X1", 1), ("X2", 102), ("X3", 203), ("X4", 404), ("X5", 805)]
    assert [(line, reason) for line, reason, _ in quarantined] == [
        (5, "duplicate_in_file"),
        (7, "duplicate_in_file"),
        (8, "duplicate_in_file"),
        (9, "duplicate_in_file"),
    ]
    assert quarantined[0][2] == "txn_id 'X1' came before in this ingest"
    # a second export overlapping the first: X5 and X1 are held already (duplicates, not
    # quarantined), X6 is new, and the second X6 and the second X5 came before in this ingest
    again = [txn("X5"), txn("X6"), txn("X1"), txn("X6"), txn("X5")]
    folder = write_world(tmp_path / "b", again)
    (folder / "merchants.csv").unlink()
    (folder / "terminals.csv").unlink()
    (folder / "operators.csv").unlink()
    second = _load(db, folder)
    (report,) = second["per_file"]  # type: ignore[misc]
    assert (report["rows_loaded"], report["rows_duplicate"], report["rows_quarantined"]) == (
        1,
        2,
        2,
    )
    lines = query(
        db, "SELECT source_line FROM quarantine WHERE ingest_id = 'ingest-00002' ORDER BY 1"
    )
    assert lines["source_line"].to_list() == [5, 6]
    assert query(db, "SELECT count(*) AS n FROM transactions")["n"][0] == 6


def test_a_hash_set_finds_its_members_in_either_array() -> None:
    held = keys_module.HashSet(np.arange(0, 1000, 10, dtype=np.uint64))
    held.add(np.array([1], np.uint64))
    held.add(np.array([5, 15, 5, 2**64 - 1], np.uint64))
    assert (held.large.size, held.small.size) == (100, 5)  # the new ones wait in the small
    probe = np.array([2**64 - 1, 1, 5, 15, 20, 21, 0, 999], np.uint64)
    found = [True, True, True, True, True, False, True, False]
    assert held.holds(probe).tolist() == found
    held.add(np.arange(1001, 1030, dtype=np.uint64))  # a quarter of the large: merged
    assert (held.large.size, held.small.size) == (134, 0)
    assert held.holds(probe).tolist() == found
    assert keys_module.HashSet().holds(probe).tolist() == [False] * 8
