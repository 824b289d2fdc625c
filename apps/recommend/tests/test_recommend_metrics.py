"""NDCG, HR and coverage on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lmforge_recommend.metrics import coverage, evaluate, hit_rate, ndcg_curve, top_k


def relevant(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for r, items in enumerate(rows):
        dense[r, items] = 1
    return sp.csr_matrix(dense)


def test_ndcg_hand_computed() -> None:
    ranked = np.array([[3, 0, 1], [2, 4, 0]])  # user 0: hit at rank 2; user 1: hits at ranks 1 and 3
    rel = relevant([[0], [2, 0]], 5)
    curve = ndcg_curve(ranked, rel)
    d = 1 / np.log2(np.arange(2, 5))  # discounts of ranks 1..3
    user0 = [0.0, d[1] / d[0], d[1] / d[0]]
    user1 = [1.0, d[0] / (d[0] + d[1]), (d[0] + d[2]) / (d[0] + d[1])]
    assert curve == pytest.approx((np.array(user0) + np.array(user1)) / 2)


def test_ideal_dcg_uses_min_k_and_relevant_count() -> None:
    ranked = np.array([[0, 1]])
    rel = relevant([[0, 1, 2, 3]], 5)  # four relevant, both slots hit: perfect at k = 1 and 2
    assert ndcg_curve(ranked, rel) == pytest.approx([1.0, 1.0])


def test_hit_rate_and_coverage() -> None:
    ranked = np.array([[3, 0, 1], [2, 4, 0]])
    rel = relevant([[1], [3]], 5)
    assert hit_rate(ranked, rel, k=2) == 0.0
    assert hit_rate(ranked, rel, k=3) == 0.5
    assert coverage(ranked, 10, k=2) == pytest.approx(4 / 10)


def test_top_k_excludes_history_and_non_candidates() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], dtype=np.float32))
    assert top_k(scores, 2, seen).tolist() == [[1, 2]]
    assert top_k(scores, 2, seen, candidates=np.array([True, False, False, True, True])).tolist() == [[3, 4]]


def test_evaluate_skips_users_without_relevant_items() -> None:
    seen = sp.csr_matrix(np.zeros((2, 12), dtype=np.float32))
    rel = relevant([[0], []], 12)
    scores = np.tile(np.arange(12, 0, -1, dtype=np.float32), (2, 1))  # item 0 ranked first for everyone
    res = evaluate(lambda r: scores[r], np.array([0, 1]), rel, seen, k=12)
    assert res["users"] == 1
    assert res["ndcg10"] == 1.0 and res["hr10"] == 1.0
