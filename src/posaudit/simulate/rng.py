"""Seeded random streams and exact-count draws that keep prevalence independent of size."""

from __future__ import annotations

import zlib

import numpy as np

_STREAMS = ("world", "pins", "day", "fraud", "refunds")


def stream(seed: int, name: str, *keys: int) -> np.random.Generator:
    """An independent generator per (seed, stream name, keys): days and streams never share."""
    tag = zlib.crc32(name.encode())
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, tag, *keys])


def exact_count(share: float, total: int) -> int:
    """The whole number of items nearest to ``share * total`` (half to even)."""
    return round(share * total)


def exact_mask(rng: np.random.Generator, size: int, share: float) -> np.ndarray:
    """A boolean mask with exactly ``round(share * size)`` true values at random places."""
    mask = np.zeros(size, dtype=bool)
    true_count = min(exact_count(share, size), size)
    if true_count:
        mask[rng.choice(size, size=true_count, replace=False)] = True
    return mask


def stratified_choice(rng: np.random.Generator, size: int, probabilities: np.ndarray) -> np.ndarray:
    """``size`` category draws whose counts match ``size * probabilities`` to within one
    (systematic sampling)."""
    cum = np.cumsum(probabilities / probabilities.sum())
    points = (rng.random() + np.arange(size)) / size  # one random offset, evenly spaced
    draws = np.searchsorted(cum, points, side="right")
    draws = np.minimum(draws, probabilities.size - 1)
    return rng.permutation(draws)


def choice_rows(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One category per row from per-row cumulative probabilities ``cum`` (rows, categories)."""
    uniform = rng.random(cum.shape[0])
    return np.minimum((uniform[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)
