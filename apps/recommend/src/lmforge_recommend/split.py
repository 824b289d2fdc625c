"""Splits: a ``ua.test``-like temporal split, and a held-out item set for cold start.

``leave_last_n`` keeps each user's last ``n`` ratings by time for testing. Equal timestamps are
common (a user rates a page of films in one second), so ties are broken by item id: among equal
times the larger id counts as later. The same function carves a validation set out of a training
file (each user's previous ``n`` ratings), so settings are chosen without looking at the test file.
When the test ratings do not follow the training ones in time (MovieLens ``ua.test`` is cut in
``u.data``'s file order, not by time), ``leave_random_n`` gives a carve-out of the same kind.
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
    return _leave_n(ratings, ratings.timestamps, n, min_history, f"last {n}")


def leave_random_n(ratings: Ratings, n: int = 10, min_history: int = 1, seed: int = 0) -> tuple[Ratings, Ratings]:
    """Like ``leave_last_n``, but each user's ``n`` test ratings are drawn at random (seeded), whatever their time."""
    key = np.random.default_rng(seed).permutation(len(ratings))
    return _leave_n(ratings, key, n, min_history, f"random {n}")


def carve(ratings: Ratings, kind: str, n: int = 10, seed: int = 0) -> tuple[Ratings, Ratings]:
    """A validation carve-out of a training file: ``kind`` ``"last"`` (by time) or ``"random"``."""
    if kind == "last":
        return leave_last_n(ratings, n)
    if kind == "random":
        return leave_random_n(ratings, n, seed=seed)
    raise DataError(f"unknown validation carve-out {kind!r}; use 'last' or 'random'")


def is_temporal(train: Ratings, test: Ratings, share: float = 0.9) -> bool:
    """Whether ``test`` follows ``train`` in time: for at least ``share`` of the test users, no test rating predates
    their training ratings. This reads timestamps only, never which items were rated."""
    last = {}
    for user, stamp in zip(train.users.tolist(), train.timestamps.tolist()):
        last[user] = max(stamp, last.get(user, stamp))
    first = {}
    for user, stamp in zip(test.users.tolist(), test.timestamps.tolist()):
        first[user] = min(stamp, first.get(user, stamp))
    users = [u for u in first if u in last]
    return bool(users) and sum(first[u] >= last[u] for u in users) >= share * len(users)


def _leave_n(ratings: Ratings, key: np.ndarray, n: int, min_history: int, what: str) -> tuple[Ratings, Ratings]:
    if n <= 0 or min_history < 0:
        raise DataError(f"leave-n splits need n >= 1 and min_history >= 0, got n={n}, min_history={min_history}")
    order = np.lexsort((ratings.items, key, ratings.users))  # by user, then key, then item id
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
    return ratings.subset(~is_test, f"{ratings.source} (train part)"), ratings.subset(is_test, f"{ratings.source} ({what})")


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
