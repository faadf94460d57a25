"""Detecting: every rule's findings over its inputs, collected together, one per finding id.

Rules are pure (LazyFrames in, a findings LazyFrame out); here they meet their inputs. Both
engines detect through this module: the local engine over the tables it read, the Spark
engine once per bucket (:func:`findings_for_tables`) and for the rules it runs on the driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Final

import polars as pl

from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.policy import Policy
from posaudit.detect.registry import DERIVED_INPUTS, DERIVED_TABLES, Rule, with_derived_tables
from posaudit.pins import PinDigester
from posaudit.run.inputs import derived_inputs
from posaudit.run.plan import POPULATION_FAMILIES, RuleScope, full_scopes
from posaudit.score.operators import preload_model

# Rules collected at once (see collect_findings): more than two measured slower on 2 cores.
COLLECT_THREADS: Final = 2


def shaped_findings(frame: pl.LazyFrame) -> pl.LazyFrame:
    """A rule's findings in the findings schema's columns, order and types."""
    return frame.select(FINDINGS_SCHEMA.names()).cast(dict(FINDINGS_SCHEMA))  # type: ignore[arg-type]


def rule_findings(
    rules: list[Rule],
    inputs: Mapping[str, Mapping[str, pl.LazyFrame]],
    derived: Mapping[str, pl.LazyFrame],
    policy: Policy,
    scopes: Mapping[str, RuleScope],
) -> list[pl.LazyFrame]:
    """One findings LazyFrame per rule, cut to the findings the rule re-decides; none collected."""
    frames = []
    for r in rules:
        tables = {**inputs[r.name], **derived}
        entities = scopes[r.name].entities
        if entities is not None:
            tables = of_entities(tables, scopes[r.name].entity_key, entities)
        frame = shaped_findings(r(tables, **(r.parameters | policy.parameters(r.name))))
        if entities is not None:
            frame = frame.filter(entity_column(scopes[r.name].entity_key).is_in(sorted(entities)))
        recheck_from = scopes[r.name].recheck_from
        if recheck_from is not None:
            frame = frame.filter(
                pl.col("window_end").is_null() | (pl.col("window_end") >= recheck_from)
            )
        frames.append(frame)
    return frames


def entity_column(key: str) -> pl.Expr:
    """The findings column holding a rule's partition key ``key``."""
    return pl.col("merchant_id") if key == "merchant_id" else pl.col("entity_id")


def of_entities(
    tables: Mapping[str, pl.LazyFrame], key: str, entities: frozenset[str]
) -> dict[str, pl.LazyFrame]:
    """``tables`` cut to the rows of ``entities``, in each table holding the column ``key``
    (a table without it, such as the PIN events of a merchant's operators, is joined to one
    that has it by the rule)."""
    wanted = pl.Series(sorted(entities), dtype=pl.String).implode()
    return {
        name: frame.filter(pl.col(key).cast(pl.String).is_in(wanted))
        if key in frame.collect_schema()
        else frame
        for name, frame in tables.items()
    }


def collect(frame: pl.LazyFrame) -> pl.DataFrame:
    """``frame`` collected by Polars' default (streaming) engine, and again by its in-memory
    engine should the streaming one panic.

    Polars 2.1's streaming engine now and then panics inside a string expression of a
    finding's summary (``assertion failed: i < self.len()``, polars-arrow's
    ``binview/mod.rs``), seen a few times in a hundred incremental runs, never the same run
    twice, never under the in-memory engine. A plan reads only frames already in memory and
    writes nothing, so running it again is safe and gives what it would have given.
    """
    try:
        return frame.collect()
    except pl.exceptions.PanicException:
        return frame.collect(engine="in-memory")


def collect_findings(rules: list[Rule], frames: list[pl.LazyFrame]) -> list[pl.DataFrame]:
    """Collect each rule's findings, two rules at a time, the population rules first.

    One rule's plan rarely keeps two cores busy, and ``pl.collect_all`` ran the rules one
    after another (measured: 5.1 s for what two threads collect in 3.5 s on a 10 M-event
    store). The anomaly score is the longest and runs while the others share the other core.
    """
    order = sorted(range(len(frames)), key=lambda i: rules[i].family not in POPULATION_FAMILIES)
    with ThreadPoolExecutor(COLLECT_THREADS, thread_name_prefix="posaudit-rule") as pool:
        if any(r.family == "scores" for r in rules):
            # the model's library loads while the other rules run (measured: 0.6 s less)
            preload_model()
        done = dict(zip(order, pool.map(lambda i: collect(frames[i]), order), strict=True))
    return [done[i] for i in range(len(frames))]


def findings_by_rule(
    rules: list[Rule],
    inputs: Mapping[str, Mapping[str, pl.LazyFrame]],
    derived: Mapping[str, pl.LazyFrame],
    policy: Policy,
    scopes: Mapping[str, RuleScope],
) -> dict[str, pl.DataFrame]:
    """Each rule's findings, collected (:func:`rule_findings`, :func:`collect_findings`)."""
    frames = collect_findings(rules, rule_findings(rules, inputs, derived, policy, scopes))
    return dict(zip([r.name for r in rules], frames, strict=True))


def findings_for_tables(
    rules: list[Rule],
    tables: Mapping[str, pl.LazyFrame],
    policy: Policy,
    *,
    window: tuple[datetime, datetime],
    digester: PinDigester,
    scoped: tuple[Mapping[str, RuleScope], Mapping[str, Mapping[str, pl.LazyFrame]]] | None = None,
) -> pl.DataFrame:
    """All findings of ``rules`` over ``tables`` (store tables by name), one per finding id.

    The whole detection step without the store: derived inputs, every rule over all the
    rows given, the findings schema. An engine that splits the data into buckets (each
    holding every row of the partitions it covers) calls this once per bucket. With
    ``scoped`` (an incremental run's scopes, and each rule's tables read and cut to its
    scope: :func:`posaudit.run.read.inputs_from_frames`), each rule re-decides only what its
    scope says, as the local engine's run does over the store.
    """
    operators = (
        tables["operators"].collect()
        if "operators" in tables
        else pl.DataFrame({"operator_no": []}, schema={"operator_no": pl.String})
    )
    derived = derived_inputs(rules, operators, window=window, digester=digester)
    inputs: Mapping[str, Mapping[str, pl.LazyFrame]]
    scopes: Mapping[str, RuleScope]
    if scoped is None:
        shared = {n for r in rules for n in r.inputs if n in DERIVED_TABLES}
        tables = {
            **tables,
            **{
                n: f.collect().lazy()
                for n, f in with_derived_tables(shared, dict(tables)).items()
                if n in shared
            },
        }
        inputs = {r.name: {n: tables[n] for n in set(r.inputs) - DERIVED_INPUTS} for r in rules}
        scopes = full_scopes(rules, "all rows given")
    else:
        scopes, inputs = scoped
    frames = collect_findings(rules, rule_findings(rules, inputs, derived, policy, scopes))
    if not frames:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    return one_per_finding_id(pl.concat(frames))


def one_per_finding_id(findings: pl.DataFrame) -> pl.DataFrame:
    """One finding per id, the same one on every run: the strongest, then the latest-ending.

    Two hits of a rule on one entity with the same window start share an id; which of them
    a parallel collect returns first varies, so the choice is made here, by content.
    """
    return (
        findings.sort(
            ["finding_id", "score", "window_end", "summary", "evidence"],
            descending=[False, True, True, False, False],
        )
        .unique("finding_id", keep="first", maintain_order=True)
        .sort("family", "rule", "window_start", "finding_id")
    )


def outside_lookback(rule: Rule, scope: RuleScope, findings: pl.DataFrame) -> bool:
    """True when a windowed rule produced a finding its look-back cannot vouch for."""
    if scope.read_from is None or findings.is_empty():
        return False
    too_long = (pl.col("window_end") - pl.col("window_start")) > rule.lookback
    return bool(
        findings.select((too_long | (pl.col("window_start") < scope.read_from)).any()).item()
    )
