"""Seeded random streams and exact-count draws that keep prevalence independent of size."""

from __future__ import annotations

import zlib

import numpy as np

_STREAMS = ("world", "pins", "day", "fraud", "refunds")


def stream(seed: int, name: str, *keys: int) -> np.random.Generator:
    """An independent generator per (seed, stream name, keys): days and streams never share."""
    tag = zlib.crc32(name.encode())
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, tag, *keys])


def exact_count(share: float, n: int) -> int:
    """The whole number of items nearest to ``share * n`` (half to even)."""
    return int(round(share * n))


def exact_mask(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A boolean mask with exactly ``round(share * n)`` true values at random places."""
    mask = np.zeros(n, dtype=bool)
    k = min(exact_count(share, n), n)
    if k:
        mask[rng.choice(n, size=k, replace=False)] = True
    return mask


def stratified_choice(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    """``n`` category draws whose counts match ``n * p`` to within one (systematic sampling)."""
    cum = np.cumsum(p / p.sum())
    u = (rng.random() + np.arange(n)) / n
    draws = np.searchsorted(cum, u, side="right")
    draws = np.minimum(draws, p.size - 1)
    return rng.permutation(draws)


def choice_rows(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One category per row from per-row cumulative probabilities ``cum`` (n, k)."""
    u = rng.random(cum.shape[0])
    return np.minimum((u[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)
