"""Splits: a ``ua.test``-like temporal split, and a held-out item set for cold start.

``leave_last_n`` keeps each user's last ``n`` ratings by time for testing. Equal timestamps are
common (a user rates a page of films in one second), so ties are broken by item id: among equal
times the larger id counts as later. The same function carves a validation set out of a training
file (each user's previous ``n`` ratings), so settings are chosen without looking at the test file.
"""

from __future__ import annotations

import logging

import numpy as np
from lmforge.errors import DataError

from lmforge_recommend.data import Ratings

log = logging.getLogger("lmforge.recommend")


def leave_last_n(ratings: Ratings, n: int = 10, min_history: int = 1) -> tuple[Ratings, Ratings]:
    """Each user's last ``n`` ratings (by timestamp, then item id) as the test part, the rest as training.

    Args:
        ratings: All ratings.
        n: Test ratings per user.
        min_history: Training ratings a user must keep; users with fewer than ``n + min_history``
            ratings stay wholly in training (they are counted in the log).

    Returns:
        ``(train, test)``.
    """
    if n <= 0 or min_history < 0:
        raise DataError(f"leave_last_n needs n >= 1 and min_history >= 0, got n={n}, min_history={min_history}")
    order = np.lexsort((ratings.items, ratings.timestamps, ratings.users))  # by user, then time, then item id
    users = ratings.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    ends = np.repeat(starts + counts, counts)
    from_end = ends - np.arange(len(users))  # 1 for a user's last rating
    eligible = np.repeat(counts >= n + min_history, counts)
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[order] = eligible & (from_end <= n)
    kept = int((counts < n + min_history).sum())
    if kept:
        log.info("%s: %d users with fewer than %d ratings kept wholly in training", ratings.source, kept, n + min_history)
    return ratings.subset(~is_test, f"{ratings.source} (train part)"), ratings.subset(is_test, f"{ratings.source} (last {n})")


def holdout_items(ratings: Ratings, fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """A seeded ``fraction`` of the item ids rated in ``ratings`` (sorted), to hold out as cold items."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the cold-start item fraction must lie in (0, 1), got {fraction}")
    items = np.unique(ratings.items)
    count = max(1, round(fraction * len(items)))
    return np.sort(np.random.default_rng(seed).choice(items, size=count, replace=False))


def without_items(ratings: Ratings, items: np.ndarray) -> tuple[Ratings, Ratings]:
    """``ratings`` split into those of items not in ``items`` and those of items in it."""
    cold = np.isin(ratings.items, items)
    return ratings.subset(~cold), ratings.subset(cold, f"{ratings.source} (held-out items)")


def concat(*parts: Ratings) -> Ratings:
    """Several rating sets as one (no duplicate check)."""
    return Ratings(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("users", "items", "ratings", "timestamps")),
                   source=" + ".join(p.source for p in parts))
