"""How well the daily ranking (:mod:`posaudit.score.ranking`) spends an analyst's budget.

Measured as in the Fraud Detection Handbook (Le Borgne et al., "Reproducible Machine Learning
for Credit Card Fraud Detection", chapters 4 and 5), per entity kind (operator-days,
merchant-days) and per score (the unsupervised surprisal sum, the supervised model):

- **precision@k per day**: of the day's k top-ranked entity-days, the share labelled an attack
  (over min(k, the day's entity-days)), averaged over the days; for k = 100 and for k = 1 % of
  the day's entity-days (at least one);
- **average precision** over all entity-days of the days measured (the area under the
  precision-recall curve, ``sklearn.metrics.average_precision_score``);
- **recall within the budget, per scenario**: an incident is caught when one of its
  operator-days or merchant-days is in the top 1 % of that day's ranking of its kind.

Labels (:func:`incident_entity_days`): an operator-day is an attack when an attack incident of
ground truth (a scenario of ``ATTACK_SCENARIOS``: not a condition such as a weak PIN, not a
``benign:`` look-alike, which are negatives) overlaps the day and names the operator, one of its
transactions, or its terminal while it tried to log in there; a merchant-day when such an
incident's operator, transaction or terminal belongs to the merchant. Where there is no ground
truth, the analysts' decisions are the labels (:func:`review_entity_days`).

The supervised model is validated in time (:func:`time_split`): trained on the earlier days,
tested on the later ones with a gap between (never a random split, which would let the model
learn an incident from its own other days). Both scores are compared on the same test days.

Like :mod:`posaudit.evaluate`, this module reads ``ground_truth``; detection never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import polars as pl

from posaudit.evaluate import ABOVE_LOW, BENIGN_PREFIX, matches
from posaudit.review.values import DISMISSED, UPHELD
from posaudit.score.ranking import (
    KEYS,
    RANKING_TABLES,
    SCORED_MERCHANT_FEATURES,
    SCORED_OPERATOR_FEATURES,
    EntityKind,
    daily_anomaly_scores,
    merchant_day_features,
    ranking_features_of,
)

# What the unsupervised score sums over, per entity kind (posaudit.score.ranking).
SCORING: dict[str, Any] = {
    "operator": SCORED_OPERATOR_FEATURES,
    "merchant": SCORED_MERCHANT_FEATURES,
}
TOP_K: Final = 100  # an investigator's day, as in the Handbook's card precision top-100
BUDGET_SHARE: Final = 0.01  # the budget: 1 % of the day's entity-days
TEST_SHARE: Final = 0.4  # the later share of the days held out to test
GAP_DAYS: Final = 1
# A finding on a window this short is about an event; longer ones are standing conditions.
EVENT_WINDOW: Final = timedelta(days=2)
FLAG_PARTS = 1  # days between the last training day and the first test day
MIN_TRAIN_DAYS: Final = 3
# The budgets recall is measured within: each score's top 1 % per day, on every day or on the
# test days, as ranked or after the entity-days the rules raised (after_rules).
BUDGETS: Final = (
    "unsupervised",
    "unsupervised_after_rules",
    "unsupervised_test",
    "supervised_test",
    "supervised_after_rules_test",
)
SCORES: Final = ("unsupervised", "supervised")
# The supervised model: small, regularised trees; a judgement, not tuned on any world.
MODEL_PARAMETERS: Final[dict[str, Any]] = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


def budget_size(entities: int, *, share: float = BUDGET_SHARE) -> int:
    """Entity-days an analyst reads of a day with ``entities``: ``share`` of them, at least 1.

    >>> budget_size(40), budget_size(250), budget_size(0)
    (1, 3, 0)
    """
    return min(entities, max(1, math.ceil(share * entities))) if entities else 0


def daily_rank(frame: pl.LazyFrame, score: str, key: str) -> pl.LazyFrame:
    """Add ``rank`` (1 = highest ``score`` of its day; ties by ``key``) and ``day_entities``."""
    return frame.sort(
        "day", score, key, descending=[False, True, False], nulls_last=True
    ).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over("day").alias("rank"),
        pl.len().over("day").cast(pl.UInt32).alias("day_entities"),
    )


def precision_at_k_per_day(
    ranked: pl.LazyFrame, *, label: str = "is_attack", k: int | None = None, share: float = 0.0
) -> pl.LazyFrame:
    """Per day: ``k`` (``k`` given, else :func:`budget_size` of the day with ``share``), the
    attacks among the top ``k`` ranks (``hits``) and ``precision`` = hits / min(k, day's
    entity-days). ``ranked`` carries ``day``, ``rank``, ``day_entities`` and ``label``.

    >>> ranked = pl.LazyFrame({"day": [1, 1, 1, 2, 2], "rank": [1, 2, 3, 1, 2],
    ...     "day_entities": [3, 3, 3, 2, 2], "is_attack": [True, False, True, False, True]})
    >>> precision_at_k_per_day(ranked, k=2).collect().rows()
    [(1, 2, 1, 0.5), (2, 2, 1, 0.5)]
    """
    size = pl.lit(k) if k is not None else pl.lit(share) * pl.col("day_entities")
    k_day = (
        pl.min_horizontal(pl.col("day_entities"), size.ceil().clip(lower_bound=1))
        .cast(pl.UInt32)
        .alias("k")
    )
    return (
        ranked.with_columns(k_day)
        .group_by("day")
        .agg(
            pl.col("k").first(),
            (pl.col(label) & (pl.col("rank") <= pl.col("k"))).sum().cast(pl.UInt32).alias("hits"),
        )
        .with_columns((pl.col("hits") / pl.col("k")).alias("precision"))
        .sort("day")
    )


def average_precision(labels: pl.Series, scores: pl.Series) -> float | None:
    """Average precision of ``scores`` for ``labels`` (None without any attack).

    >>> average_precision(pl.Series([True, False, True]), pl.Series([0.9, 0.8, 0.1]))
    0.8333333333333333
    """
    if not labels.any():
        return None
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels.to_numpy(), scores.fill_null(0.0).to_numpy()))


def time_split(
    days: list[date], *, test_share: float = TEST_SHARE, gap_days: int = GAP_DAYS
) -> tuple[list[date], list[date]]:
    """The training days and the test days of ``days``: the last ``test_share`` of the
    calendar span is tested, the ``gap_days`` before it are left out, the rest trains. Every
    training day is more than ``gap_days`` before every test day. Raises ValueError when
    fewer than ``MIN_TRAIN_DAYS`` days remain to train on.

    >>> d = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]
    >>> train, test = time_split(d)
    >>> (train[0].day, train[-1].day, test[0].day, test[-1].day)
    (1, 5, 7, 10)
    """
    distinct = sorted(set(days))
    if not distinct:
        msg = "no days to split"
        raise ValueError(msg)
    span = (distinct[-1] - distinct[0]).days + 1
    first_test = distinct[-1] - timedelta(days=max(1, round(test_share * span)) - 1)
    last_train = first_test - timedelta(days=gap_days + 1)
    train = [d for d in distinct if d <= last_train]
    test = [d for d in distinct if d >= first_test]
    if len(train) < MIN_TRAIN_DAYS:
        msg = (
            f"{span} days leave {len(train)} to train on before a {gap_days}-day gap; "
            f"at least {MIN_TRAIN_DAYS} are needed"
        )
        raise ValueError(msg)
    return train, test


def model_features(frame: pl.DataFrame, kind: EntityKind) -> list[str]:
    """The numeric columns a supervised model reads: every feature, not the keys or ranks."""
    skip = {*KEYS[kind], "rank", "day_entities", "is_attack"}
    return [
        name
        for name, dtype in frame.schema.items()
        if name not in skip and (dtype.is_numeric() or dtype == pl.Boolean)
    ]


def supervised_scores(
    frame: pl.DataFrame,
    *,
    kind: EntityKind,
    train_days: list[date],
    test_days: list[date],
    label: str = "is_attack",
) -> pl.DataFrame | None:
    """The ``test_days`` rows of ``frame`` with ``supervised_score``: the probability of an
    attack by a HistGradientBoostingClassifier fitted on the ``train_days`` rows only. None
    when the training days hold no attack or no other row (nothing to learn)."""
    train = frame.filter(pl.col("day").is_in(train_days))
    # a column with no value on the training days teaches nothing (and cannot be binned)
    features = [
        f for f in model_features(frame, kind) if train.get_column(f).null_count() < train.height
    ]
    test = frame.filter(pl.col("day").is_in(test_days))
    y = train.get_column(label).to_numpy()
    if test.height == 0 or y.all() or not y.any():
        return None
    from sklearn.ensemble import HistGradientBoostingClassifier

    def matrix(rows: pl.DataFrame) -> np.ndarray:
        x = rows.select(pl.col(features).cast(pl.Float64)).to_numpy()
        return np.where(np.isfinite(x), x, np.nan)

    model = HistGradientBoostingClassifier(**MODEL_PARAMETERS).fit(matrix(train), y)
    return test.with_columns(pl.Series("supervised_score", model.predict_proba(matrix(test))[:, 1]))


def incident_entity_days(
    ground_truth: pl.LazyFrame,
    transactions: pl.LazyFrame,
    login_events: pl.LazyFrame,
    operators: pl.LazyFrame,
    terminals: pl.LazyFrame,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The attack incidents' operator-days and merchant-days: two frames of ``incident_id``,
    ``scenario``, the entity's id and ``day`` (module docstring)."""
    from posaudit.simulate.scenario import ATTACK_SCENARIOS

    attacks = ground_truth.filter(
        pl.col("scenario").is_in(ATTACK_SCENARIOS)
        & ~pl.col("scenario").str.starts_with(BENIGN_PREFIX)
    ).with_columns(pl.col("entity_type").cast(pl.String))
    columns = ("incident_id", "scenario", "operator_id", "day")
    by_operator = (
        attacks.filter(pl.col("entity_type") == "operator")
        .with_columns(
            pl.col("entity_id").alias("operator_id"),
            pl.date_ranges(pl.col("start_ts").dt.date(), pl.col("end_ts").dt.date()).alias("day"),
        )
        .explode("day")
        .select(columns)
    )
    by_transaction = (
        attacks.filter(pl.col("entity_type") == "transaction")
        .join(
            transactions.select(
                pl.col("txn_id").cast(pl.String).alias("entity_id"),
                pl.col("operator_id").cast(pl.String),
                pl.col("ts").dt.date().alias("day"),
            ),
            on="entity_id",
        )
        .select(columns)
    )
    by_terminal = (
        attacks.filter(pl.col("entity_type") == "terminal")
        .join(
            login_events.filter(pl.col("operator_id").is_not_null()).select(
                pl.col("terminal_id").cast(pl.String).alias("entity_id"),
                pl.col("operator_id").cast(pl.String),
                "ts",
            ),
            on="entity_id",
        )
        .filter(pl.col("ts").is_between(pl.col("start_ts"), pl.col("end_ts")))
        .with_columns(pl.col("ts").dt.date().alias("day"))
        .select(columns)
        .unique()
    )
    operator_days = pl.concat([by_operator, by_transaction, by_terminal]).unique()
    merchant_of = operators.select(
        pl.col("operator_id").cast(pl.String), pl.col("merchant_id").cast(pl.String)
    )
    terminal_merchant = (
        attacks.filter(pl.col("entity_type") == "terminal")
        .join(
            terminals.select(
                pl.col("terminal_id").cast(pl.String).alias("entity_id"),
                pl.col("merchant_id").cast(pl.String),
            ),
            on="entity_id",
        )
        .with_columns(
            pl.date_ranges(pl.col("start_ts").dt.date(), pl.col("end_ts").dt.date()).alias("day")
        )
        .explode("day")
        .select("incident_id", "scenario", "merchant_id", "day")
    )
    merchant_days = pl.concat(
        [
            operator_days.join(merchant_of, on="operator_id").select(
                "incident_id", "scenario", "merchant_id", "day"
            ),
            terminal_merchant,
        ]
    ).unique()
    return operator_days, merchant_days


def review_entity_days(findings: pl.LazyFrame, reviews: pl.LazyFrame) -> pl.LazyFrame:
    """Labels from the analysts where there is no ground truth: per operator-day named by a
    decided finding on an operator, ``is_attack`` True when some decision on it upheld the
    finding, False when all dismissed it (``posaudit.evaluate.current_decisions``)."""
    from posaudit.evaluate import current_decisions

    # an open finding (a state still held) runs to the latest time the findings reach
    latest = pl.max_horizontal(pl.col("window_start").max(), pl.col("window_end").max())
    decided = (
        findings.filter(pl.col("entity_type").cast(pl.String) == "operator")
        .with_columns(pl.col("window_end").fill_null(latest))
        .select(
            "finding_id",
            pl.col("entity_id").alias("operator_id"),
            pl.date_ranges(pl.col("window_start").dt.date(), pl.col("window_end").dt.date()).alias(
                "day"
            ),
        )
        .join(current_decisions(reviews), on="finding_id")
        .filter(pl.col("decision").is_in([*UPHELD, *DISMISSED]))
        .explode("day")
    )
    return decided.group_by("operator_id", "day").agg(
        pl.col("decision").is_in(UPHELD).any().alias("is_attack")
    )


def rule_flagged_days(
    findings: pl.LazyFrame, transactions: pl.LazyFrame, operators: pl.LazyFrame
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The operator-days and merchant-days a rule already put before the analyst: named by a
    finding of severity medium or above on an event (a window of at most
    ``EVENT_WINDOW``; a standing condition such as a weak PIN spans months and says nothing
    of one day), on the operator or on one of its transactions."""
    events = findings.filter(
        ABOVE_LOW & (pl.col("window_end") - pl.col("window_start") <= EVENT_WINDOW)
    ).with_columns(pl.col("entity_type").cast(pl.String))
    on_operator = (
        events.filter(pl.col("entity_type") == "operator")
        .select(
            pl.col("entity_id").alias("operator_id"),
            pl.date_ranges(pl.col("window_start").dt.date(), pl.col("window_end").dt.date()).alias(
                "day"
            ),
        )
        .explode("day")
    )
    on_transaction = (
        events.filter(pl.col("entity_type") == "transaction")
        .select(pl.col("entity_id").alias("txn_id"))
        .join(
            transactions.select(
                pl.col("txn_id").cast(pl.String),
                pl.col("operator_id").cast(pl.String),
                pl.col("ts").dt.date().alias("day"),
            ),
            on="txn_id",
        )
        .select("operator_id", "day")
    )
    operator_days = pl.concat([on_operator, on_transaction]).unique()
    merchant_days = (
        on_operator.join(
            operators.select(
                pl.col("operator_id").cast(pl.String), pl.col("merchant_id").cast(pl.String)
            ),
            on="operator_id",
        )
        .select("merchant_id", "day")
        .unique()
    )
    return operator_days, merchant_days


def after_rules(
    ranked: pl.DataFrame, flagged: pl.DataFrame, *, score: str, key: str
) -> pl.DataFrame:
    """``ranked`` re-ranked with the entity-days in ``flagged`` last: the analyst's budget
    goes to what the rules did not raise. ``day_entities`` stays the day's count, so the
    budget is the same size."""
    marked = ranked.join(
        flagged.with_columns(pl.lit(True).alias("_flagged")), on=[key, "day"], how="left"
    ).with_columns(pl.when(pl.col("_flagged").is_null()).then(pl.col(score)).alias(score))
    return (
        daily_rank(marked.drop("rank", "day_entities", "_flagged").lazy(), score, key)
        .collect()
        .with_columns(pl.col(score).fill_null(float("-inf")))
    )


@dataclass
class RankingEvaluation:
    """What :func:`evaluate_ranking` measured; :meth:`to_dict` is ``evaluate --json``'s
    ``ranking``."""

    days: int
    train_days: list[date]
    test_days: list[date]
    # kind -> score -> {"precision_at_100", "precision_at_1pct", "average_precision", ...}
    scores: dict[str, dict[str, dict[str, Any]]]
    # one row per scenario: incidents, by rules (medium+), by each score's budget, the union
    recall: pl.DataFrame
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_share": BUDGET_SHARE,
            "top_k": TOP_K,
            "days": self.days,
            "train_days": [d.isoformat() for d in self.train_days],
            "test_days": [d.isoformat() for d in self.test_days],
            "gap_days": GAP_DAYS,
            "scores": self.scores,
            "recall": self.recall.to_dicts(),
            "note": self.note,
        }


def _metrics(ranked: pl.DataFrame, score: str) -> dict[str, Any]:
    at_100 = precision_at_k_per_day(ranked.lazy(), k=TOP_K).collect()
    at_share = precision_at_k_per_day(ranked.lazy(), share=BUDGET_SHARE).collect()

    def mean(frame: pl.DataFrame) -> float | None:
        value = frame.get_column("precision").mean()
        return None if value is None else round(float(value), 4)  # type: ignore[arg-type]

    ap = average_precision(ranked.get_column("is_attack"), ranked.get_column(score))
    return {
        "precision_at_100": mean(at_100),
        "precision_at_1pct": mean(at_share),
        "average_precision": None if ap is None else round(ap, 4),
        "entity_days": ranked.height,
        "attacks": int(ranked.get_column("is_attack").sum()),
    }


def in_budget(ranked: pl.DataFrame) -> pl.DataFrame:
    """The entity-days within their day's budget (:func:`budget_size`)."""
    size = (pl.col("day_entities") * BUDGET_SHARE).ceil().clip(lower_bound=1)
    return ranked.filter(pl.col("rank") <= size)


def caught_incidents(
    budget: dict[str, pl.DataFrame], pairs: dict[str, pl.DataFrame]
) -> pl.DataFrame:
    """The incidents (``incident_id``) with an entity-day of either kind in that kind's
    budget. ``budget``: kind -> its entity-days within budget (:func:`in_budget`);
    ``pairs``: kind -> the incidents' entity-days (:func:`incident_entity_days`)."""
    caught = [
        pairs[kind]
        .join(budget[kind].select(*KEYS[kind]), on=list(KEYS[kind]))
        .select("incident_id")
        for kind in ("operator", "merchant")
    ]
    return pl.concat(caught).unique()


def evaluate_ranking(
    tables: dict[str, pl.LazyFrame], findings: pl.LazyFrame, *, test_share: float = TEST_SHARE
) -> RankingEvaluation:
    """Both scores' precision within the budget and per-scenario recall within it, beside the
    rules' (findings of severity medium or above) and the union. ``tables``: the store's
    transactions, login_events, lockouts, pin_events, operators, merchants, terminals and
    ground_truth. The unsupervised score is measured on every day and on the test days; the
    supervised only on the test days, which the model never saw."""
    t = tables
    operator_days = ranking_features_of(t).collect()
    merchant_days = merchant_day_features(
        operator_days.lazy(), t["login_events"], t["terminals"]
    ).collect()
    op_pairs, merchant_pairs = (
        frame.collect()
        for frame in incident_entity_days(
            t["ground_truth"], t["transactions"], t["login_events"], t["operators"], t["terminals"]
        )
    )
    pairs = {"operator": op_pairs, "merchant": merchant_pairs}
    features = SCORING
    frames = {"operator": operator_days, "merchant": merchant_days}
    all_days = sorted(set(operator_days.get_column("day").to_list()))
    note = None
    try:
        train_days, test_days = time_split(all_days, test_share=test_share)
    except ValueError as error:
        train_days, test_days, note = [], [], f"no supervised model: {error}"
    flagged = dict(
        zip(
            ("operator", "merchant"),
            pl.collect_all(rule_flagged_days(findings, t["transactions"], t["operators"])),
            strict=True,
        )
    )
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    budget: dict[str, dict[str, pl.DataFrame]] = {name: {} for name in BUDGETS}
    for kind in ("operator", "merchant"):
        key = KEYS[kind][0]
        positive = (
            pairs[kind].select(*KEYS[kind]).unique().with_columns(pl.lit(True).alias("is_attack"))
        )
        ranked = (
            daily_anomaly_scores(frames[kind].lazy(), features=features[kind])
            .join(positive.lazy(), on=list(KEYS[kind]), how="left")
            .with_columns(pl.col("is_attack").fill_null(False))
            .collect()
        )
        residual = after_rules(ranked, flagged[kind], score="anomaly_score", key=key)
        on_test = pl.col("day").is_in(test_days)
        test = ranked.filter(on_test)
        scores[kind] = {
            "unsupervised_all_days": _metrics(ranked, "anomaly_score"),
            "unsupervised": _metrics(test, "anomaly_score") if test.height else {},
            "supervised": {},
        }
        budget["unsupervised"][kind] = in_budget(ranked)
        budget["unsupervised_after_rules"][kind] = in_budget(residual)
        budget["unsupervised_test"][kind] = budget["unsupervised"][kind].filter(on_test)
        supervised = (
            supervised_scores(
                ranked.drop("rank", "day_entities"),
                kind=kind,
                train_days=train_days,
                test_days=test_days,
            )
            if test_days
            else None
        )
        if supervised is None:
            budget["supervised_test"][kind] = ranked.clear()
            budget["supervised_after_rules_test"][kind] = ranked.clear()
            note = note or "no supervised model: the training days hold no attack"
            continue
        ranked_supervised = daily_rank(supervised.lazy(), "supervised_score", key).collect()
        scores[kind]["supervised"] = _metrics(ranked_supervised, "supervised_score")
        budget["supervised_test"][kind] = in_budget(ranked_supervised)
        budget["supervised_after_rules_test"][kind] = in_budget(
            after_rules(ranked_supervised, flagged[kind], score="supervised_score", key=key)
        )
    recall = _recall_table(t["ground_truth"], findings, pairs, budget, test_days=test_days)
    return RankingEvaluation(
        days=len(all_days),
        train_days=train_days,
        test_days=test_days,
        scores=scores,
        recall=recall,
        note=note,
    )


def _recall_table(
    ground_truth: pl.LazyFrame,
    findings: pl.LazyFrame,
    pairs: dict[str, pl.DataFrame],
    budget: dict[str, dict[str, pl.DataFrame]],
    *,
    test_days: list[date],
) -> pl.DataFrame:
    """Per attack scenario: ``incidents``; recall by the rules at medium or above
    (``rules``), within the unsupervised budget (``unsupervised``), by either (``union``);
    and over the incidents that start on a test day (``test_incidents``), the same for both
    scores (``*_test``)."""
    from posaudit.simulate.scenario import ATTACK_SCENARIOS

    attacks = (
        ground_truth.filter(pl.col("scenario").is_in(ATTACK_SCENARIOS))
        .select("incident_id", "scenario", pl.col("start_ts").dt.date().alias("first_day"))
        .collect()
    )
    by_rules = (
        matches(findings.filter(ABOVE_LOW), ground_truth).select("incident_id").unique().collect()
    )
    caught = {"rules": by_rules} | {
        name: caught_incidents(kinds, pairs) for name, kinds in budget.items()
    }
    flags = attacks.with_columns(
        *(
            pl.col("incident_id").is_in(frame.get_column("incident_id").implode()).alias(name)
            for name, frame in caught.items()
        ),
        pl.col("first_day").is_in(test_days).alias("on_test_day"),
    )
    test = pl.col("on_test_day")
    return (
        flags.group_by("scenario")
        .agg(
            pl.len().alias("incidents"),
            pl.col("rules").mean().alias("rules"),
            pl.col("unsupervised").mean().alias("unsupervised"),
            (pl.col("rules") | pl.col("unsupervised")).mean().alias("union"),
            pl.col("unsupervised_after_rules").mean().alias("unsupervised_after_rules"),
            (pl.col("rules") | pl.col("unsupervised_after_rules"))
            .mean()
            .alias("union_after_rules"),
            test.sum().alias("test_incidents"),
            pl.col("rules").filter(test).mean().alias("rules_test"),
            pl.col("unsupervised_test").filter(test).mean().alias("unsupervised_test"),
            pl.col("supervised_test").filter(test).mean().alias("supervised_test"),
            (pl.col("rules") | pl.col("supervised_after_rules_test"))
            .filter(test)
            .mean()
            .alias("union_supervised_after_rules_test"),
        )
        .with_columns(pl.col("test_incidents").cast(pl.Int64), pl.col("incidents").cast(pl.Int64))
        .sort("scenario")
    )


def store_tables(store: Any) -> dict[str, pl.LazyFrame]:
    """The tables :func:`evaluate_ranking` reads, from an open store."""
    return {name: store.scan(name) for name in (*RANKING_TABLES, "ground_truth")}
