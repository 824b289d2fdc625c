"""The k-shot protocol's draws: k examples per class from a seed, and seeded evaluation subsets."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("lmforge.prompting")


def draw_k_shot(targets: np.ndarray, k: int, seed: int, num_labels: int | None = None) -> np.ndarray:
    """Indices of ``k`` examples of every class, drawn with ``seed``.

    The draw for a smaller ``k`` is the start of the draw for a larger one with the same seed,
    so ``k = 8`` examples are among the ``k = 16`` ones. A class with fewer than ``k``
    examples gives all it has.

    Args:
        targets: Encoded label of every candidate example.
        k: Examples per class.
        seed: Seed of the draw.
        num_labels: Number of classes (the largest target + 1 when absent).

    Returns:
        Sorted indices into ``targets``.
    """
    num_labels = int(targets.max()) + 1 if num_labels is None and len(targets) else (num_labels or 0)
    rng = np.random.default_rng(seed)
    picks, short = [], []
    for c in range(num_labels):
        members = np.flatnonzero(targets == c)
        members = members[rng.permutation(len(members))]
        if len(members) < k:
            short.append(c)
        picks.append(members[:k])
    if short:
        log.warning("k-shot draw: %d class(es) have fewer than k=%d examples and give all they have", len(short), k)
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


def eval_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``limit`` of ``n`` examples (all when ``limit`` is None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])
