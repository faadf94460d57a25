"""Which rules run per bucket, and the work of one bucket. Pure Polars: no Spark here.

Every terminal and operator belongs to one merchant, so a merchant bucket holds every row of
every ``terminal_id``, ``operator_id`` and ``merchant_id`` partition it covers: rules with
those partition keys run per merchant bucket. A rule keyed by ``card_token`` (a card across
merchants) runs per card bucket, over the rows of the tables that carry the card
(``transactions``, bucketed by ``card_bucket``) with the small dimension tables whole; one that
also reads an event table without a card cannot be bucketed and runs on the driver over all
the data, like the population scores (family ``scores``: a model ranks every operator-day
against all others).

The bucket's work is :func:`posaudit.run.detect.findings_for_tables` over the bucket's rows:
the same code path as the local engine, with the whole store's data window. In an
incremental run the job carries the run's plan, and each rule reads and re-decides in the
bucket what it reads and re-decides in the store on the local engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

import polars as pl

from posaudit.detect import registry
from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.policy import Policy
from posaudit.detect.registry import DERIVED_INPUTS, Rule
from posaudit.pins import PinDigester
from posaudit.rules import all_rules
from posaudit.run.detect import findings_for_tables
from posaudit.run.plan import POPULATION_FAMILIES, RuleScope
from posaudit.run.read import inputs_from_frames
from posaudit.store.catalogue import DIMENSION_TABLES

Scheme = Literal["merchant", "card"]

# Partition keys whose partitions a merchant bucket holds whole.
MERCHANT_KEYS: Final = frozenset({"terminal_id", "operator_id", "merchant_id"})
# The bucket column of each scheme, and the event tables that carry it.
BUCKET_COLUMN: Final[dict[Scheme, str]] = {"merchant": "bucket", "card": "card_bucket"}
CARD_TABLES: Final = frozenset({"transactions"})
# Columns the export adds, never passed to a rule.
EXPORT_COLUMNS: Final = ("bucket", "card_bucket", "date")


def store_tables(rules: Iterable[Rule]) -> list[str]:
    """The store tables ``rules`` read, derived tables replaced by their source tables."""
    derived = getattr(registry, "DERIVED_TABLES", {})
    names: set[str] = set()
    for r in rules:
        for name in set(r.inputs) - DERIVED_INPUTS:
            names.update(derived[name].sources if name in derived else (name,))
    return sorted(names)


@dataclass(frozen=True)
class Placement:
    """Where each rule runs: per merchant bucket, per card bucket, or on the driver."""

    merchant: tuple[str, ...]
    card: tuple[str, ...]
    driver: tuple[str, ...]
    why_driver: dict[str, str]

    def by_scheme(self) -> dict[Scheme, tuple[str, ...]]:
        return {"merchant": self.merchant, "card": self.card}


def place_rules(rules: Iterable[Rule]) -> Placement:
    """Assign each rule to a bucket scheme from its partition key and inputs."""
    merchant, card, driver, why = [], [], [], {}
    for r in rules:
        events = set(store_tables([r])) - set(DIMENSION_TABLES)
        if r.family in POPULATION_FAMILIES:
            driver.append(r.name)
            why[r.name] = "ranks the whole population"
        elif r.partition_key in MERCHANT_KEYS:
            merchant.append(r.name)
        elif r.partition_key == "card_token" and events <= CARD_TABLES:
            card.append(r.name)
        else:
            driver.append(r.name)
            why[r.name] = (
                f"keyed by {r.partition_key} but reads {', '.join(sorted(events - CARD_TABLES))}"
            )
    return Placement(tuple(merchant), tuple(card), tuple(driver), why)


def table_schemas(root: Path, tables: Iterable[str]) -> dict[str, pl.Schema]:
    """Each export table's columns as a rule sees them (the export's own columns dropped)."""
    out = {}
    for table in tables:
        schema = scan_table(root, table).collect_schema()
        out[table] = pl.Schema({n: t for n, t in schema.items() if n not in EXPORT_COLUMNS})
    return out


def scan_table(root: Path, table: str, *, bucket: int | None = None) -> pl.LazyFrame:
    """A table of the export, or one merchant bucket of it, with the export's columns."""
    folder = root / table if bucket is None else root / table / f"bucket={bucket}"
    return pl.scan_parquet(folder / "**" / "*.parquet", hive_partitioning=True)


@dataclass(frozen=True)
class BucketJob:
    """Everything one bucket's work needs; pickled once and shipped to the executors.

    ``digester`` is the deployment's PIN digester: executors digest the candidate PINs of
    the exclusion list with it, so it pickles, and a local key travels inside the task (see
    docs/scale-out.md on securing the cluster's traffic).
    ``also``: more work on each bucket's tables once read (the anomaly score's first stage),
    called with the bucket and its tables; it must pickle.
    """

    root: str
    scheme: Scheme
    rules: tuple[str, ...]
    schemas: dict[str, pl.Schema]
    policy: Policy
    window: tuple[datetime, datetime]
    digester: PinDigester
    buckets: int
    also: Callable[[int, Mapping[str, pl.LazyFrame]], object] | None = None
    # an incremental run's plan: what each rule reads and re-decides (None: everything)
    scopes: Mapping[str, RuleScope] | None = None

    @property
    def bucket_column(self) -> str:
        return BUCKET_COLUMN[self.scheme]

    def bucketed(self, table: str) -> bool:
        """Whether ``table`` is split by this job's buckets (else every bucket sees it whole)."""
        return self.scheme == "merchant" or table in CARD_TABLES

    def shaped(self, table: str, frame: pl.DataFrame) -> pl.LazyFrame:
        """``frame`` with exactly the table's columns and types, as the local engine gives them.

        One chunk per column: Polars 2.1 can panic on string columns of many chunks (one per
        Parquet file or Arrow batch) in the operator score's string expressions.
        """
        schema = self.schemas[table]
        columns = [pl.col(name).cast(dtype) for name, dtype in schema.items()]
        return frame.select(columns).rechunk().lazy()

    def read(self, table: str, bucket: int) -> pl.LazyFrame:
        """One bucket of ``table`` from the export (the shard strategy's read)."""
        root = Path(self.root)
        if self.scheme == "merchant":
            if not (root / table / f"bucket={bucket}").is_dir():
                return pl.LazyFrame(schema=self.schemas[table])
            frame = scan_table(root, table, bucket=bucket)
        elif table in CARD_TABLES:
            frame = scan_table(root, table).filter(pl.col(self.bucket_column) == bucket)
        else:
            frame = scan_table(root, table)
        return self.shaped(table, frame.collect())

    def findings(self, tables: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
        """The findings of this job's rules over one bucket's tables."""
        rules = [all_rules()[name] for name in self.rules]
        scoped = None
        if self.scopes is not None:
            scopes = {n: self.scopes[n] for n in self.rules}
            scoped = (scopes, inputs_from_frames(rules, tables, scopes))
        return findings_for_tables(
            rules,
            dict(tables),
            self.policy,
            window=self.window,
            digester=self.digester,
            scoped=scoped,
        ).select(FINDINGS_SCHEMA.names())

    def bucket_findings(self, bucket: int, tables: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
        """The rules over bucket ``bucket``'s tables, and this job's other work on them."""
        if self.also is not None:
            self.also(bucket, tables)
        return self.findings(tables)

    def shard_findings(self, bucket: int) -> pl.DataFrame:
        """Read bucket ``bucket`` from the export and run the rules over it."""
        return self.bucket_findings(
            bucket, {table: self.read(table, bucket) for table in self.schemas}
        )


def local_bucket_findings(job: BucketJob) -> pl.DataFrame:
    """Every bucket of ``job`` run one after another in this process (tests, no Spark)."""
    frames = [job.shard_findings(b) for b in range(job.buckets)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=FINDINGS_SCHEMA)
