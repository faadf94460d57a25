"""The anomaly score's weekly models: fitted once, kept in the store, applied without refitting.

Each calendar week's operator-days are scored by a model of their reference (see
:func:`posaudit.score.operators.week_plan`): the merchants' and categories' median
operator-days, an Isolation Forest fitted on a sample of the reference, each model input's
spread over that sample and the sample's own scores, against which a day's percentile is
read. A model depends only on operator-days before ``depends_until``, so a nightly run keeps
it and scores the new day with it.

The forest is kept as arrays (:class:`ForestArrays`): a nightly run scores a few thousand
operator-days by walking them down the trees in NumPy instead of importing scikit-learn, which
takes longer to import (1.5 s) than such a run takes in all. The walk is scikit-learn's
own arithmetic (``IsolationForest.score_samples``: inputs as float32, ``<=`` at each split,
each tree's leaf depth added in tree order), so both give the same scores to the last bit
(``tests/score``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

_FORMAT: Final = 1  # bumped when the kept form changes; a model of another form is refitted


@dataclass(frozen=True)
class ForestArrays:
    """A fitted Isolation Forest as flat arrays, every tree's nodes one after another.

    ``left`` / ``right``: the next node (global index) when the row's value of ``feature`` is
    at most / above ``threshold``; a leaf points at itself with an infinite threshold, so a
    walk of ``depth`` steps ends on every row's leaf. ``value``: what a row ending on that leaf
    adds to its path length. ``denominator``: trees times the average path length of a tree
    of ``max_samples`` rows.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    denominator: float

    @classmethod
    def of(cls, forest: IsolationForest) -> ForestArrays:
        from sklearn.ensemble._iforest import _average_path_length

        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("feature", "threshold", "left", "right", "value")
        }
        roots, base = [], 0
        for i, estimator in enumerate(forest.estimators_):
            tree = estimator.tree_
            nodes = np.arange(tree.node_count)
            leaf = tree.children_left == -1
            parts["feature"].append(np.where(leaf, 0, tree.feature).astype(np.int64))
            parts["threshold"].append(np.where(leaf, np.inf, tree.threshold).astype(np.float64))
            parts["left"].append(np.where(leaf, nodes, tree.children_left).astype(np.int64) + base)
            right = np.where(leaf, nodes, tree.children_right).astype(np.int64)
            parts["right"].append(right + base)
            # as IsolationForest adds it: depth of the leaf + average path length below it - 1
            parts["value"].append(
                forest._decision_path_lengths[i] + forest._average_path_length_per_tree[i] - 1.0
            )
            roots.append(base)
            base += tree.node_count
        denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])
        return cls(
            **{k: np.concatenate(v) for k, v in parts.items()},
            roots=np.asarray(roots, dtype=np.int64),
            depth=max(e.tree_.max_depth for e in forest.estimators_),
            denominator=float(np.asarray(denominator).reshape(-1)[0]),
        )

    def scores(self, x: np.ndarray) -> np.ndarray:
        """The anomaly score of each row of ``x`` (``-IsolationForest.score_samples``)."""
        n = x.shape[0]
        # scikit-learn's trees compare float32 inputs with float64 thresholds
        flat = np.asfortranarray(x.astype(np.float32).astype(np.float64)).ravel(order="F")
        rows = np.arange(n)
        depths = np.zeros(n)
        for root in self.roots:
            node = np.full(n, root)
            for _ in range(self.depth):
                go_left = flat[self.feature[node] * n + rows] <= self.threshold[node]
                node = np.where(go_left, self.left[node], self.right[node])
            depths += self.value[node]
        if self.denominator == 0:
            return np.ones(n)
        return 2 ** (-np.divide(depths, self.denominator))


def _frame_bytes(frame: pl.DataFrame) -> np.ndarray:
    out = io.BytesIO()
    frame.write_ipc(out)
    return np.frombuffer(out.getvalue(), dtype=np.uint8)


def _bytes_frame(values: np.ndarray) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(values.tobytes()))


@dataclass(frozen=True)
class WeekModel:
    """What scores one calendar week's operator-days.

    ``week``: the week's Monday. ``reference_from`` / ``depends_until``: the operator-days the
    model was made from (``depends_until`` exclusive): any change there makes a new model.
    ``fitted``: the scikit-learn forest when fitted in this process (faster on many rows; the
    same scores as ``forest``).
    """

    week: date
    reference_from: date
    depends_until: date
    features: tuple[str, ...]
    forest: ForestArrays | None
    spread: np.ndarray
    sample_scores: np.ndarray  # sorted
    merchant_medians: pl.DataFrame
    category_medians: pl.DataFrame
    fitted: IsolationForest | None = None
    # the sample's operator-days and scores, when fitted in this process
    sample_rows: pl.DataFrame | None = None

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Each row's anomaly score (0 for every row when the reference was too small)."""
        if self.forest is None or x.shape[0] == 0:
            return np.zeros(x.shape[0])
        if self.fitted is not None:
            return -self.fitted.score_samples(x)
        return self.forest.scores(x)

    def percentiles(self, scores: np.ndarray) -> np.ndarray:
        """The share of the reference sample scoring strictly lower than each score."""
        if self.sample_scores.size == 0:
            return np.zeros(scores.shape[0])
        below = np.searchsorted(self.sample_scores, scores, side="left")
        return below / self.sample_scores.size

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "format": np.asarray([_FORMAT]),
            "days": np.asarray(
                [self.week, self.reference_from, self.depends_until], dtype="datetime64[D]"
            ),
            "features": np.asarray(self.features),
            "spread": self.spread,
            "sample_scores": self.sample_scores,
            "merchant_medians": _frame_bytes(self.merchant_medians),
            "category_medians": _frame_bytes(self.category_medians),
        }
        if self.forest is not None:
            f = self.forest
            arrays |= {
                "feature": f.feature,
                "threshold": f.threshold,
                "left": f.left,
                "right": f.right,
                "value": f.value,
                "roots": f.roots,
                "shape": np.asarray([f.depth]),
                "denominator": np.asarray([f.denominator]),
            }
        out = io.BytesIO()
        np.savez(out, allow_pickle=False, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> WeekModel | None:
        """The model kept as ``data``; None when it was kept in another form."""
        with np.load(io.BytesIO(data), allow_pickle=False) as kept:
            if int(kept["format"][0]) != _FORMAT:
                return None
            week, reference_from, depends_until = (d.item() for d in kept["days"])
            forest = None
            if "feature" in kept:
                forest = ForestArrays(
                    feature=kept["feature"],
                    threshold=kept["threshold"],
                    left=kept["left"],
                    right=kept["right"],
                    value=kept["value"],
                    roots=kept["roots"],
                    depth=int(kept["shape"][0]),
                    denominator=float(kept["denominator"][0]),
                )
            return cls(
                week=week,
                reference_from=reference_from,
                depends_until=depends_until,
                features=tuple(str(f) for f in kept["features"]),
                forest=forest,
                spread=kept["spread"],
                sample_scores=kept["sample_scores"],
                merchant_medians=_bytes_frame(kept["merchant_medians"]),
                category_medians=_bytes_frame(kept["category_medians"]),
            )
