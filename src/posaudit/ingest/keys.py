"""The natural keys of one table during an ingest: which rows of a block came before in this
ingest (quarantined as ``duplicate_in_file``) and which the store held before it began
(duplicates, not loaded again).

A block is checked in time proportional to the block, not to the table: each key is hashed to
64 bits and looked up in sorted arrays, the hashes of the keys this ingest has placed and of
those the table held when it began. A hash that hits is only a candidate: the store confirms
it by the key itself, so two keys sharing a hash are never taken for one another. Hits are
rare in a clean export (each is a real repeat), so the store is asked little.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import polars as pl

from posaudit.store import Store
from posaudit.store.catalogue import key_column

LATER: Final = "later"
STORED: Final = "stored"
# The keys the table held when the ingest began (only made when it held any), and the keys of
# this ingest found among them: temporary, dropped with the ingest.
_BEFORE: Final = "posaudit_ingest_before"
_REPEATED: Final = "posaudit_ingest_repeated"
_SEED: Final = 0x5EED


def _hashes(keys: pl.Series) -> np.ndarray:
    return keys.hash(seed=_SEED).to_numpy()


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` (sorted ascending) is in ``sorted_set`` (sorted ascending):
    sorted queries walk the set in order, which keeps its pages in the cache."""
    if sorted_set.size == 0 or values.size == 0:
        return np.zeros(values.size, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[at] == values


def _merged(sorted_set: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The union of two sorted arrays, sorted (a repeated value may stay twice)."""
    both = np.concatenate([sorted_set, values])
    # a stable sort of two sorted runs is one merge of them (Timsort finds the runs)
    both.sort(kind="stable")
    return both


class HashSet:
    """A set of 64-bit hashes in two sorted arrays: new hashes join the small one, which is
    merged into the large one once it holds a quarter as many; adding a block costs the block
    and the small array, not the whole set."""

    def __init__(self, values: np.ndarray | None = None) -> None:
        self.large = np.unique(values) if values is not None else np.empty(0, np.uint64)
        self.small = np.empty(0, np.uint64)

    def __len__(self) -> int:
        return int(self.large.size + self.small.size)

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Whether each value is in the set, in the values' order."""
        if len(self) == 0:
            return np.zeros(values.size, dtype=bool)
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        found = _member(ordered, self.large) | _member(ordered, self.small)
        held = np.empty(values.size, dtype=bool)
        held[order] = found
        return held

    def add(self, values: np.ndarray) -> None:
        self.small = _merged(self.small, np.sort(values))
        if self.small.size * 4 > self.large.size:
            self.large = _merged(self.large, self.small)
            self.small = np.empty(0, np.uint64)


class TableKeys:
    """The keys of ``table`` an ingest has seen, block after block, in the order read."""

    def __init__(self, store: Store, table: str, *, flush: Callable[[], None]) -> None:
        self.store = store
        # the store's writes of the blocks before, made on another thread, are waited for
        # before the store is asked
        self.flush = flush
        self.table = table
        self.key = f'"{key_column(table)}"'
        self.seen = HashSet()
        held = store.query(f"SELECT count(*) FROM {table}")[0][0]
        self.before = bool(held)
        if self.before:
            store.execute(
                f"CREATE TEMP TABLE {_BEFORE} AS SELECT DISTINCT {self.key} AS k FROM {table}"
            )
            self.stored = HashSet(_hashes(store.frame(f"SELECT k FROM {_BEFORE}")["k"]))
            store.execute(f"CREATE TEMP TABLE {_REPEATED} (k VARCHAR)")
        else:
            self.stored = HashSet()

    def fates(self, keys: pl.Series, clean: pl.Series) -> pl.Series:
        """For each row of a block: ``later`` when its key came before in this ingest,
        ``stored`` when the table held it before the ingest, null when it is to be loaded;
        null for a row that is not ``clean`` (it has a reason already and does not count).

        The block's rows are in the order read; each row passed as loaded must be in the
        table before the next block is asked about.
        """
        rows = pl.DataFrame({"k": keys.cast(pl.String), "clean": clean}).with_row_index("i")
        mine = rows.filter("clean")
        first = mine["k"].is_first_distinct()
        hashes = _hashes(mine["k"])
        mine = mine.with_columns(
            first=first,
            seen=pl.Series(self.seen.holds(hashes)),
            held=pl.Series(self.stored.holds(hashes)),
        )
        came = self._confirm_later(mine.filter(pl.col("first") & pl.col("seen"))["k"])
        mine = mine.with_columns(later=~pl.col("first") | pl.col("k").is_in(came.implode()))
        held = self._confirm_stored(mine.filter(~pl.col("later") & pl.col("held"))["k"])
        mine = mine.with_columns(stored=~pl.col("later") & pl.col("k").is_in(held.implode()))
        if held.len() and self.before:
            self.flush()
            self.store.frame_with(
                f"INSERT INTO {_REPEATED} SELECT k FROM held", held=held.to_frame("k")
            )
        placed = ~mine["later"].to_numpy()
        self.seen.add(hashes[placed])
        fate = mine.select(
            "i",
            pl.when("later").then(pl.lit(LATER)).when("stored").then(pl.lit(STORED)).alias("fate"),
        )
        return rows.select("i").join(fate, on="i", how="left", maintain_order="left")["fate"]

    def _confirm_later(self, candidates: pl.Series) -> pl.Series:
        """The candidates a row placed before in this ingest holds: loaded (in the table, not
        among the keys it held before) or found stored."""
        if candidates.len() == 0:
            return candidates
        self.flush()
        table, key = self.table, self.key
        sql = f"SELECT k FROM candidates WHERE k IN (SELECT {key} FROM {table})"
        if self.before:
            sql = (
                f"SELECT k FROM candidates WHERE (k IN (SELECT {key} FROM {table}) "
                f"AND k NOT IN (SELECT k FROM {_BEFORE})) OR k IN (SELECT k FROM {_REPEATED})"
            )
        return self.store.frame_with(sql, candidates=candidates.to_frame("k"))["k"]

    def _confirm_stored(self, candidates: pl.Series) -> pl.Series:
        if candidates.len() == 0 or not self.before:
            return candidates.clear()
        self.flush()
        sql = f"SELECT k FROM candidates WHERE k IN (SELECT k FROM {_BEFORE})"
        return self.store.frame_with(sql, candidates=candidates.to_frame("k"))["k"]

    def close(self) -> None:
        """Drop the temporary tables (inside the ingest's transaction)."""
        if self.before:
            self.store.execute(f"DROP TABLE {_BEFORE}")
            self.store.execute(f"DROP TABLE {_REPEATED}")
