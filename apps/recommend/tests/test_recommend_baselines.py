"""EASE's closed form against per-column least squares; the other baselines' shapes and orders."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lmforge_recommend.baselines import ALS, EASE, ItemKNN, Popularity, ease_weights

X = sp.csr_matrix(np.array([[1, 1, 0, 0, 1], [0, 1, 1, 0, 0], [1, 0, 1, 1, 0], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=np.float32))


def column_least_squares(lam: float, prior: np.ndarray) -> np.ndarray:
    """Column j of B minimizes ||X_j - X_{-j} b||^2 + lam ||b - prior_{-j,j}||^2 (B_jj = 0): solved directly."""
    dense = X.toarray().astype(np.float64)
    n = dense.shape[1]
    out = np.zeros((n, n))
    for j in range(n):
        rest = [i for i in range(n) if i != j]
        a = dense[:, rest]
        out[rest, j] = np.linalg.solve(a.T @ a + lam * np.eye(n - 1), a.T @ dense[:, j] + lam * prior[rest, j])
    return out


def test_ease_closed_form_matches_least_squares() -> None:
    assert ease_weights(X, 2.0) == pytest.approx(column_least_squares(2.0, np.zeros((5, 5))), abs=1e-5)


def test_ease_with_prior_matches_least_squares() -> None:
    prior = np.random.default_rng(0).uniform(0, 0.3, (5, 5))
    np.fill_diagonal(prior, 0)
    got = ease_weights(X, 1.5, prior)
    assert np.diag(got) == pytest.approx(np.zeros(5))
    assert got == pytest.approx(column_least_squares(1.5, prior), abs=1e-5)


def test_ease_hand_case() -> None:
    tiny = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))  # G = [[2, 1], [1, 1]]
    b = ease_weights(tiny, 1.0)  # column j regresses item j on the other: b01 = G01 / (G00 + 1) = 1/3, b10 = G10 / (G11 + 1) = 1/2
    assert b == pytest.approx(np.array([[0, 1 / 3], [0.5, 0]]))
    assert EASE(1.0).fit(tiny).score(tiny) == pytest.approx(tiny.toarray() @ b)


def test_popularity_and_knn() -> None:
    pop = Popularity().fit(X).score(X[:2])
    assert pop.shape == (2, 5) and pop[0].tolist() == [3, 3, 4, 2, 2]
    knn = ItemKNN(2).fit(X)
    assert (knn.sim > 0).sum(axis=0).max() <= 2 and np.diag(knn.sim).sum() == 0


def test_als_folds_in_histories() -> None:
    als = ALS(factors=3, iterations=5, seed=0).fit(X)
    assert als.score(X).shape == (5, 5) and als.fold_in(X[:1]).shape == (1, 3)
