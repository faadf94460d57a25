"""Detection quality against the simulator's ground truth (DESIGN.md's evaluation rule).

A finding detects an incident when it names the incident's entity (same entity type and id)
and its window overlaps the incident's. Recall per scenario = incidents detected / incidents.
Precision per rule = findings detecting an incident the rule is credited with / findings, over
findings of severity above 'info': a rule is credited with its own scenarios (``Rule.scenarios``)
and a score (family ``scores``, which ranks rather than tests one condition) with every attack
(:func:`credited_scenarios`); ``precision_any`` credits every incident on the entity. This module
is the only reader of ``ground_truth``.

Incidents labelled ``benign:<kind>`` are the simulator's innocent look-alikes, not attacks:
recall leaves them out, a finding that matches only look-alikes is a false positive in the
precision per rule, and :func:`lookalike_findings` counts the findings on them per kind and
rule (docs/evaluation.md).

Where there is no ground truth (ingested data), the analysts' decisions are the labels:
:func:`precision_from_reviews` gives, over the same findings, precision = decided true /
decided with a 95 % Wilson score interval (docs/evaluation.md).

:func:`alert_volume` measures how many findings a run asks analysts to read: findings per
1,000 operators per day, by severity, over the run's data window.

:func:`evasion_levels` reads, from the scenarios the store's simulations ran, the evasion level
each attack scenario was simulated at, shown beside its recall.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import polars as pl

from posaudit.review.values import DISMISSED, UPHELD

ACCUSING = pl.col("severity") != "info"
ABOVE_LOW = ~pl.col("severity").is_in(["info", "low"])
# The standard normal quantile of 0.975: a two-sided 95 % interval.
Z_95: Final = 1.959963984540054
# The name of the row of all rules together in the precision from reviews.
TOTAL: Final = "all rules"
# The findings' severities, least first (the store's severity_t).
SEVERITIES: Final = ("info", "low", "medium", "high", "critical")
# The rows of the alert volume besides one per severity: the findings that page, and all.
CRITICAL_AND_HIGH: Final = "critical+high"
ALL_SEVERITIES: Final = "all"
SECONDS_PER_DAY: Final = 86_400
# The scenario prefix of an innocent look-alike in ground truth (docs/scenarios.md).
BENIGN_PREFIX: Final = "benign:"
IS_BENIGN = pl.col("scenario").str.starts_with(BENIGN_PREFIX)
# What a scenario's evasion reads as when its store's days were simulated at several levels.
MIXED: Final = "mixed"


def no_labels(store_path: object) -> str:
    """What to say of a store without ground truth: ingested data has no labels."""
    return (
        f"{store_path} holds no ground truth (only a simulated world has labels): "
        "nothing to evaluate against"
    )


def matches(findings: pl.LazyFrame, ground_truth: pl.LazyFrame) -> pl.LazyFrame:
    """Pairs of (finding, incident) where the finding detects the incident."""
    return (
        findings.select(
            "finding_id",
            "rule",
            "severity",
            pl.col("entity_type").cast(pl.String),
            "entity_id",
            "window_start",
            "window_end",
        )
        .join(
            ground_truth.select(
                "incident_id",
                "scenario",
                pl.col("entity_type").cast(pl.String),
                "entity_id",
                "start_ts",
                "end_ts",
            ),
            on=["entity_type", "entity_id"],
        )
        .filter(
            (pl.col("window_start") <= pl.col("end_ts"))
            # an open finding (a state still held) runs on to the end of the data
            & (pl.col("window_end").is_null() | (pl.col("start_ts") <= pl.col("window_end")))
        )
    )


def credited_scenarios() -> pl.LazyFrame:
    """(rule, scenario): the incidents a finding of the rule is right to name.

    A rule is credited with the scenarios it was written for (``Rule.scenarios``): a
    credential-sharing finding on a manager covering two tills is a false alarm even when that
    manager also holds a weak PIN. A score (family ``scores``) ranks operator-days that stand
    out rather than test one condition, so it is credited with every attack scenario, and with
    no condition (a weak PIN is no odd day).
    """
    from posaudit.rules import all_rules
    from posaudit.simulate.scenario import ATTACK_SCENARIOS

    pairs = sorted(
        {
            (rule.name, scenario)
            for rule in all_rules().values()
            for scenario in (
                (*rule.scenarios, *ATTACK_SCENARIOS) if rule.family == "scores" else rule.scenarios
            )
        }
    )
    return pl.LazyFrame(pairs, schema={"rule": pl.String, "scenario": pl.String}, orient="row")


def detecting(
    findings: pl.LazyFrame, ground_truth: pl.LazyFrame, credited: pl.LazyFrame | None
) -> pl.LazyFrame:
    """The ``finding_id`` of each finding that detects an attack or condition it is credited
    with (``credited``: rule, scenario; None credits every one); look-alikes detect nothing."""
    pairs = matches(findings, ground_truth.filter(~IS_BENIGN))
    if credited is not None:
        pairs = pairs.with_columns(pl.col("rule").cast(pl.String)).join(
            credited, on=["rule", "scenario"]
        )
    return pairs.select("finding_id").unique()


def recall_by_scenario(
    findings: pl.LazyFrame,
    ground_truth: pl.LazyFrame,
    *,
    rules_for: dict[str, list[str]] | None = None,
) -> pl.LazyFrame:
    """Per scenario: incidents, incidents detected (by any finding above 'info'), recall.

    With ``rules_for`` (scenario -> the rules written for it) also ``recall_own``: the share
    detected by those rules alone, so that a weak-PIN finding on an operator does not count
    as catching that operator's refund abuse.
    """
    pairs = matches(findings.filter(ACCUSING), ground_truth)
    detected = pairs.select("incident_id").unique().with_columns(pl.lit(True).alias("detected"))
    out = ground_truth.select("incident_id", "scenario").join(
        detected, on="incident_id", how="left"
    )
    aggs = [
        pl.len().alias("incidents"),
        pl.col("detected").fill_null(False).sum().alias("detected"),
    ]
    if rules_for is not None:
        own_rules = pl.LazyFrame(
            [(s, r) for s, rules in rules_for.items() for r in rules],
            schema=["scenario", "rule"],
            orient="row",
        )
        own = pairs.join(own_rules, on=["scenario", "rule"]).select("incident_id").unique()
        out = out.join(own.with_columns(pl.lit(True).alias("own")), on="incident_id", how="left")
        aggs.append(pl.col("own").fill_null(False).sum().alias("detected_own"))
    result = (
        out.group_by("scenario")
        .agg(aggs)
        .with_columns((pl.col("detected") / pl.col("incidents")).alias("recall"))
    )
    if rules_for is not None:
        result = result.with_columns(
            (pl.col("detected_own") / pl.col("incidents")).alias("recall_own")
        )
    return result.sort("scenario")


def precision_by_rule(
    findings: pl.LazyFrame,
    ground_truth: pl.LazyFrame,
    *,
    credited: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Per rule, over findings above 'info': ``findings``; ``true_positives``, those detecting
    an incident the rule is credited with (``credited``, :func:`credited_scenarios`; None
    credits every incident) and ``precision``; ``true_positives_any`` and ``precision_any``,
    crediting every attack or condition on the entity; and ``on_lookalikes``, the findings that
    match an innocent look-alike and detect no incident at all."""
    accusing = findings.filter(ACCUSING)
    hits = detecting(accusing, ground_truth, credited)
    any_hits = detecting(accusing, ground_truth, None)
    benign = matches(accusing, ground_truth.filter(IS_BENIGN)).select("finding_id").unique()
    return (
        accusing.select("finding_id", "rule")
        .join(hits.with_columns(pl.lit(True).alias("hit")), on="finding_id", how="left")
        .join(any_hits.with_columns(pl.lit(True).alias("any")), on="finding_id", how="left")
        .join(benign.with_columns(pl.lit(True).alias("benign")), on="finding_id", how="left")
        .group_by("rule")
        .agg(
            pl.len().alias("findings"),
            pl.col("hit").fill_null(False).sum().alias("true_positives"),
            pl.col("any").fill_null(False).sum().alias("true_positives_any"),
            (pl.col("benign").fill_null(False) & pl.col("any").is_null())
            .sum()
            .alias("on_lookalikes"),
        )
        .with_columns(
            (pl.col("true_positives") / pl.col("findings")).alias("precision"),
            (pl.col("true_positives_any") / pl.col("findings")).alias("precision_any"),
        )
        .select(
            "rule",
            "findings",
            "true_positives",
            "precision",
            "true_positives_any",
            "precision_any",
            "on_lookalikes",
        )
        .sort("rule")
    )


def lookalike_findings(
    findings: pl.LazyFrame,
    ground_truth: pl.LazyFrame,
    *,
    credited: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Per look-alike kind and rule: the false positives on the kind's incidents, by severity.

    A false positive here is a finding above 'info' that matches an incident of the kind and
    detects no attack or condition; with ``credited`` (:func:`credited_scenarios`) none its
    rule is credited with: a refund-burst finding on a return wave is a false positive even if
    the clerk also has a weak PIN, a weak-PIN finding there is not. One row per kind and rule
    (``rule`` null for a kind no finding matched): ``kind``, ``incidents`` (of the kind),
    ``incidents_flagged`` (matched by such a finding of the rule), ``findings`` and one count
    per severity above 'info'.
    """
    benign = ground_truth.filter(IS_BENIGN).with_columns(
        pl.col("scenario").str.strip_prefix(BENIGN_PREFIX).alias("kind")
    )
    incidents = benign.group_by("kind").agg(pl.len().alias("incidents"))
    accusing = findings.filter(ACCUSING)
    false = accusing.join(detecting(accusing, ground_truth, credited), on="finding_id", how="anti")
    pairs = matches(false, benign).with_columns(
        pl.col("scenario").str.strip_prefix(BENIGN_PREFIX).alias("kind"),
        pl.col("severity").cast(pl.String),
    )
    per_rule = (
        pairs.group_by("kind", "rule")
        .agg(
            pl.col("incident_id").n_unique().cast(pl.Int64).alias("incidents_flagged"),
            pl.col("finding_id").n_unique().cast(pl.Int64).alias("findings"),
            *(
                pl.col("finding_id")
                .filter(pl.col("severity") == severity)
                .n_unique()
                .cast(pl.Int64)
                .alias(severity)
                for severity in SEVERITIES[1:]
            ),
        )
        .with_columns(pl.col("rule").cast(pl.String))
    )
    return (
        incidents.join(per_rule, on="kind", how="left")
        .with_columns(pl.exclude("kind", "rule", "incidents").fill_null(0))
        .sort("kind", "rule", nulls_last=True)
    )


def lookalike_record(frame: pl.DataFrame) -> dict[str, Any]:
    """The ``lookalikes`` of ``evaluate --json``: kind -> incidents, findings, by rule."""
    record: dict[str, Any] = {}
    for row in frame.iter_rows(named=True):
        kind = record.setdefault(
            row["kind"], {"incidents": row["incidents"], "findings": 0, "by_rule": {}}
        )
        if row["rule"] is None:
            continue
        kind["findings"] += row["findings"]
        kind["by_rule"][row["rule"]] = {
            "findings": row["findings"],
            "incidents_flagged": row["incidents_flagged"],
            "by_severity": {severity: row[severity] for severity in SEVERITIES[1:]},
        }
    return record


def unmatched_above_low(findings: pl.LazyFrame, ground_truth: pl.LazyFrame) -> pl.LazyFrame:
    """Findings of severity medium or more that detect none of their rule's own scenarios
    (:func:`credited_scenarios`, as precision): the false alarms that page. An innocent
    look-alike is no incident to detect, and a refund burst on a clerk with a weak PIN is a
    false alarm all the same."""
    hits = detecting(findings, ground_truth, credited_scenarios())
    return findings.filter(ABOVE_LOW).join(hits, on="finding_id", how="anti")


def evasion_levels(scenario_texts: Iterable[str]) -> dict[str, list[float]]:
    """Per attack scenario, the evasion levels it was simulated at, least first.

    ``scenario_texts``: the scenario TOML each of the store's simulations kept (``--evasion``
    and ``--append`` included, docs/scenarios.md). A scenario that names no level ran at 0, as
    every scenario did before levels existed. No texts (an ingested store): no levels.

    >>> levels = evasion_levels(["[scenarios.refund_burst]\\nevasion = 0.5", ""])
    >>> levels["refund_burst"], levels["late_refund"]
    ([0.0, 0.5], [0.0])
    """
    from posaudit.simulate.scenario import ATTACK_SCENARIOS

    levels: dict[str, set[float]] = {}
    for text in scenario_texts:
        scenarios = tomllib.loads(text).get("scenarios", {})
        for name in ATTACK_SCENARIOS:
            level = float(scenarios.get(name, {}).get("evasion", 0.0))
            levels.setdefault(name, set()).add(level)
    return {name: sorted(found) for name, found in levels.items()}


def evasion_label(levels: list[float]) -> float | str | None:
    """One scenario's evasion level as ``evaluate`` reports it: the level, :data:`MIXED` when
    its days ran at several, None when it has none (a condition, or an ingested store).

    >>> evasion_label([0.5]), evasion_label([0.0, 1.0]), evasion_label([])
    (0.5, 'mixed', None)
    """
    if not levels:
        return None
    return levels[0] if len(levels) == 1 else MIXED


@dataclass
class Evaluation:
    recall: pl.DataFrame
    precision: pl.DataFrame
    unmatched_above_low: int
    operators: int
    lookalikes: pl.DataFrame | None = None
    merchants: int = 0
    # family -> its unmatched findings above low (families without any left out)
    unmatched_by_family: dict[str, int] = field(default_factory=dict)
    # scenario -> the evasion levels it was simulated at (evasion_levels); empty when ingested
    evasion: dict[str, list[float]] = field(default_factory=dict)

    def evasion_of(self, scenario: str) -> float | str | None:
        return evasion_label(self.evasion.get(scenario, []))

    @property
    def unmatched_per_1000_operators(self) -> float:
        return 1000 * self.unmatched_above_low / self.operators if self.operators else 0.0

    @property
    def unmatched_per_1000_merchants(self) -> float:
        return 1000 * self.unmatched_above_low / self.merchants if self.merchants else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "recall": [
                row
                | {
                    "evasion": self.evasion_of(row["scenario"]),
                    "evasion_levels": self.evasion.get(row["scenario"], []),
                }
                for row in self.recall.to_dicts()
            ],
            "precision": self.precision.to_dicts(),
            "unmatched_above_low": self.unmatched_above_low,
            "operators": self.operators,
            "unmatched_above_low_per_1000_operators": round(self.unmatched_per_1000_operators, 3),
            "merchants": self.merchants,
            "unmatched_above_low_per_1000_merchants": round(self.unmatched_per_1000_merchants, 3),
            "unmatched_above_low_by_family": self.unmatched_by_family,
            "lookalikes": {} if self.lookalikes is None else lookalike_record(self.lookalikes),
        }


def evaluate(
    findings: pl.LazyFrame,
    ground_truth: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    scenario_texts: Iterable[str] = (),
) -> Evaluation:
    """Recall per scenario, precision per rule and the false-alarm rate of one run's findings;
    with ``scenario_texts`` (the store's simulations' scenarios) each scenario's evasion level."""
    from posaudit.rules import all_rules

    rules_for: dict[str, list[str]] = {}
    for rule in all_rules().values():
        for scenario in rule.scenarios:
            rules_for.setdefault(scenario, []).append(rule.name)
    attacks = ground_truth.filter(~IS_BENIGN)  # recall is of attacks (and conditions) only
    credited = credited_scenarios()
    families = {rule.name: rule.family for rule in all_rules().values()}
    recall, precision, unmatched, n_ops, benign = pl.collect_all(
        [
            recall_by_scenario(findings, attacks, rules_for=rules_for),
            precision_by_rule(findings, ground_truth, credited=credited),
            unmatched_above_low(findings, ground_truth)
            .group_by(pl.col("rule").replace_strict(families, default="other").alias("family"))
            .len()
            .sort("family"),
            operators.select(
                pl.len(),
                (
                    pl.col("merchant_id").n_unique()
                    if "merchant_id" in operators.collect_schema()
                    else pl.lit(0)
                ).alias("merchants"),
            ),
            lookalike_findings(findings, ground_truth, credited=credited),
        ]
    )
    by_family = {str(family): int(n) for family, n in unmatched.iter_rows()}
    return Evaluation(
        recall,
        precision,
        sum(by_family.values()),
        int(n_ops.item(0, "len")),
        lookalikes=benign,
        evasion=evasion_levels(scenario_texts),
        merchants=int(n_ops.item(0, "merchants")),
        unmatched_by_family=by_family,
    )


def wilson_interval(successes: pl.Expr, trials: pl.Expr, *, z: float = Z_95) -> list[pl.Expr]:
    """The Wilson score interval of a proportion, as two expressions (``low``, ``high``).

    With p = successes / n: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n); null when
    n is 0. Unlike p ± z·sqrt(p(1-p)/n) it stays within [0, 1] and is not zero-wide at
    p = 0 or 1, which matters for the few decisions a rule may have.

    >>> frame = pl.DataFrame({"true": [8, 0], "decided": [10, 0]})
    >>> low, high = wilson_interval(pl.col("true"), pl.col("decided"))
    >>> frame.select(low.round(4), high.round(4)).rows()
    [(0.4902, 0.9433), (None, None)]
    """
    n = trials.cast(pl.Float64)
    p = successes.cast(pl.Float64) / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * (p * (1 - p) / n + z2 / (4 * n * n)).sqrt() / (1 + z2 / n)
    valid = trials > 0
    return [
        pl.when(valid).then((centre - half).clip(0.0, 1.0)).alias("low"),
        pl.when(valid).then((centre + half).clip(0.0, 1.0)).alias("high"),
    ]


def current_decisions(reviews: pl.LazyFrame) -> pl.LazyFrame:
    """Each reviewed finding's decision now: that of its latest review (null: undecided)."""
    return (
        reviews.select("review_id", "finding_id", pl.col("decision").cast(pl.String))
        .sort("review_id")
        .group_by("finding_id")
        .agg(pl.col("decision").last())
    )


def precision_from_reviews(findings: pl.LazyFrame, reviews: pl.LazyFrame) -> pl.LazyFrame:
    """Per rule, over findings above 'info': findings, decided, decided true and false, the
    undecided share, precision = decided true / decided and its 95 % Wilson interval; then
    the row of all rules together (``rule`` = :data:`TOTAL`)."""
    decided = (
        findings.filter(ACCUSING)
        .select("finding_id", "rule")
        .join(current_decisions(reviews), on="finding_id", how="left")
    )
    counts = [
        pl.len().alias("findings"),
        pl.col("decision").is_not_null().sum().alias("decided"),
        pl.col("decision").is_in(UPHELD).sum().alias("decided_true"),
        pl.col("decision").is_in(DISMISSED).sum().alias("decided_false"),
    ]
    per_rule = decided.group_by("rule").agg(counts).sort("rule")
    total = decided.select(pl.lit(TOTAL).alias("rule"), *counts)
    low, high = wilson_interval(pl.col("decided_true"), pl.col("decided"))
    return pl.concat([per_rule, total]).with_columns(
        (1 - pl.col("decided") / pl.col("findings")).alias("undecided_share"),
        pl.when(pl.col("decided") > 0)
        .then(pl.col("decided_true") / pl.col("decided"))
        .alias("precision"),
        low.alias("precision_low"),
        high.alias("precision_high"),
    )


def active_operators(
    operators: pl.LazyFrame, *, data_from: datetime, data_to: datetime
) -> pl.LazyFrame:
    """The operators that existed at some time in ``[data_from, data_to]``: created by its end
    and not disabled before its start."""
    return operators.filter(
        (pl.col("created_at") <= data_to)
        & (pl.col("disabled_at").is_null() | (pl.col("disabled_at") >= data_from))
    )


def alert_volume(
    findings: pl.LazyFrame,
    operators: pl.LazyFrame,
    *,
    data_from: datetime | None,
    data_to: datetime | None,
) -> pl.LazyFrame:
    """Findings per 1,000 operators per day, by severity, over a run's data window.

    One row per severity (least first, every severity even without findings), then
    ``critical+high`` and ``all``: ``severity``, ``findings``, ``operators`` (those active in
    the window, :func:`active_operators`), ``days`` (the window's length, data_to - data_from,
    in days of 86,400 s) and ``per_1000_operators_per_day`` = 1000 x findings / operators /
    days; null when there are no active operators, the window has no length, or there is no
    window (``data_from`` None: a run over no events).

    >>> findings = pl.LazyFrame({"severity": ["critical", "critical", "high", "info"]})
    >>> operators = pl.LazyFrame(
    ...     {
    ...         "created_at": [datetime(2026, 1, 1)] * 4,
    ...         "disabled_at": [None, None, None, datetime(2026, 2, 1)],
    ...     }
    ... )
    >>> volume = alert_volume(
    ...     findings, operators, data_from=datetime(2026, 3, 1), data_to=datetime(2026, 3, 5)
    ... ).collect()
    >>> volume.select("severity", "findings", "per_1000_operators_per_day").rows()
    ... # doctest: +NORMALIZE_WHITESPACE
    [('info', 1, 83.33333333333333), ('low', 0, 0.0), ('medium', 0, 0.0),
     ('high', 1, 83.33333333333333), ('critical', 2, 166.66666666666666),
     ('critical+high', 3, 250.0), ('all', 4, 333.3333333333333)]
    """
    if data_from is None or data_to is None:
        active = operators.clear()
        days = 0.0
    else:
        active = active_operators(operators, data_from=data_from, data_to=data_to)
        days = (data_to - data_from).total_seconds() / SECONDS_PER_DAY
    severity = pl.col("severity").cast(pl.String)
    counts = findings.select(
        *(severity.eq(s).sum().cast(pl.Int64).alias(s) for s in SEVERITIES),
        severity.is_in(["critical", "high"]).sum().cast(pl.Int64).alias(CRITICAL_AND_HIGH),
        pl.len().cast(pl.Int64).alias(ALL_SEVERITIES),
    ).unpivot(variable_name="severity", value_name="findings")
    return (
        counts.join(active.select(pl.len().cast(pl.Int64).alias("operators")), how="cross")
        .with_columns(pl.lit(days, dtype=pl.Float64).alias("days"))
        .with_columns(
            pl.when((pl.col("operators") > 0) & (pl.col("days") > 0))
            .then(1000 * pl.col("findings") / pl.col("operators") / pl.col("days"))
            .alias("per_1000_operators_per_day")
        )
        .sort(pl.col("severity").cast(pl.Enum([*SEVERITIES, CRITICAL_AND_HIGH, ALL_SEVERITIES])))
    )


def alert_volume_record(volume: pl.DataFrame) -> dict[str, Any]:
    """The ``alert_volume`` of ``evaluate --json``: one collected :func:`alert_volume`.

    >>> findings = pl.LazyFrame({"severity": ["high"]})
    >>> operators = pl.LazyFrame({"created_at": [datetime(2026, 1, 1)], "disabled_at": [None]})
    >>> window = {"data_from": datetime(2026, 3, 1), "data_to": datetime(2026, 3, 3)}
    >>> record = alert_volume_record(alert_volume(findings, operators, **window).collect())
    >>> record["days"], record["operators"], record["per_1000_operators_per_day"]["high"]
    (2.0, 1, 500.0)
    """
    rows = volume.rows_by_key("severity", named=True, unique=True)
    first = volume.row(0, named=True)
    rate = "per_1000_operators_per_day"
    return {
        "operators": first["operators"],
        "days": round(first["days"], 4),
        "findings": {severity: row["findings"] for severity, row in rows.items()},
        rate: {
            severity: None if row[rate] is None else round(row[rate], 3)
            for severity, row in rows.items()
        },
    }
