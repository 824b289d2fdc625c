"""Ranking metrics under the fixed protocol: rank every item a user has not rated in training.

Gains are binary (every test item is relevant, whatever its rating); the ideal DCG at k sums the
first ``min(k, #relevant)`` discounts. HR@k is the share of users with at least one relevant item
in their top k; coverage is the share of candidate items that appear in at least one top-10 list.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Scores (B, I) for a batch of user rows (B,)."""


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None, candidates: np.ndarray | None = None) -> np.ndarray:
    """Columns (B, k) of the ``k`` highest scores per row, best first.

    Args:
        scores: Scores (B, I); not modified.
        k: List length (at most the number of candidates).
        exclude: Binary (B, I) matrix of items to leave out (the training history).
        candidates: Boolean (I,) mask of the items that may be ranked; all by default.
    """
    scores = np.array(scores, dtype=np.float32)
    if exclude is not None:
        rows, cols = exclude.nonzero()
        scores[rows, cols] = -np.inf
    if candidates is not None:
        scores[:, ~candidates] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (B, k), unordered
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ndcg_curve(ranked: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """NDCG@k for k = 1..K, averaged over users: ``ranked`` (U, K) columns, ``relevant`` binary (U, I)."""
    hits = _hits(ranked, relevant)  # (U, K)
    discounts = 1.0 / np.log2(np.arange(2, ranked.shape[1] + 2))  # (K,)
    dcg = np.cumsum(hits * discounts, axis=1)
    counts = np.diff(relevant.indptr)  # (U,)
    ideal_prefix = np.cumsum(discounts)
    ks = np.arange(1, ranked.shape[1] + 1)
    ideal = ideal_prefix[np.minimum(counts[:, None], ks[None, :]) - 1]  # (U, K)
    return (dcg / ideal).mean(axis=0)


def hit_rate(ranked: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> float:
    """Share of users with a relevant item in their top ``k``."""
    return float(_hits(ranked[:, :k], relevant).any(axis=1).mean())


def coverage(ranked: np.ndarray, n_candidates: int, k: int = 10) -> float:
    """Share of the ``n_candidates`` items that appear in some top-``k`` list."""
    return len(np.unique(ranked[:, :k])) / n_candidates


def evaluate(score: ScoreFn, rows: np.ndarray, relevant: sp.csr_matrix, seen: sp.csr_matrix, k: int = 20,
             candidates: np.ndarray | None = None, batch: int = 256) -> dict[str, float | list[float]]:
    """Rank for every test user and score the lists.

    Args:
        score: The model's scoring function.
        rows: Training rows of the test users (T,).
        relevant: Binary (T, I) relevant items; users with none are left out.
        seen: Binary (U, I) training history, excluded from the ranking.
        k: Longest list scored (the NDCG curve runs 1..k).
        candidates: Boolean (I,) mask of rankable items (all by default).
        batch: Users scored at a time.

    Returns:
        ``ndcg10``, ``hr10``, ``coverage`` and ``ndcg_curve`` (NDCG@1..k).
    """
    keep = np.diff(relevant.indptr) > 0
    rows, relevant = rows[keep], relevant[keep]
    ranked = np.concatenate([top_k(score(rows[s:s + batch]), k, seen[rows[s:s + batch]], candidates)
                             for s in range(0, len(rows), batch)])
    curve = ndcg_curve(ranked, relevant)
    n_candidates = int(candidates.sum()) if candidates is not None else seen.shape[1]
    return {"ndcg10": float(curve[9]), "hr10": hit_rate(ranked, relevant), "coverage": coverage(ranked, n_candidates),
            "users": int(len(rows)), "ndcg_curve": [float(x) for x in curve]}


def _hits(ranked: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    rows = np.repeat(np.arange(ranked.shape[0]), ranked.shape[1])
    return np.asarray(relevant[rows, ranked.ravel()]).reshape(ranked.shape) > 0
