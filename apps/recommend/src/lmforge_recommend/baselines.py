"""The collaborative baselines: popularity, item-kNN, EASE and ALS (the ``implicit`` package).

Each model is fitted on the binary user-item matrix (U, I) and scores users from their history
rows (B, I), so a new user given a few liked items is scored exactly as a training user is.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from sklearn.metrics.pairwise import cosine_similarity
from threadpoolctl import threadpool_limits


class Model(Protocol):
    """What the evaluation and the recommender need from a model."""

    def fit(self, seen: sp.csr_matrix) -> Model:
        """Learn from the binary user-item matrix (U, I)."""

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores (B, I) for users given by their history rows (B, I)."""


class Popularity:
    """Items ranked by how many users rated them, the same list for everyone."""

    def fit(self, seen: sp.csr_matrix) -> Popularity:
        """Count ratings per item."""
        self.counts = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)  # (I,)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """The counts (B, I), the same row for every user."""
        return np.broadcast_to(self.counts, (history.shape[0], len(self.counts))).copy()


class ItemKNN:
    """Item-based kNN: cosine similarity of item columns, each item's ``neighbours`` strongest kept.

    Args:
        neighbours: Similarities kept per item (0 keeps all).
    """

    def __init__(self, neighbours: int = 0) -> None:
        self.neighbours = neighbours

    def fit(self, seen: sp.csr_matrix) -> ItemKNN:
        """Item-item cosine similarities (I, I), zero diagonal, pruned to the nearest neighbours."""
        sim = cosine_similarity(seen.T, dense_output=True).astype(np.float32)
        np.fill_diagonal(sim, 0.0)
        if 0 < self.neighbours < sim.shape[0]:
            cut = np.argpartition(-sim, self.neighbours, axis=0)[self.neighbours:]  # weakest rows of each column
            np.put_along_axis(sim, cut, 0.0, axis=0)
        self.sim = sim
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """Summed similarity (B, I) to the items in each history."""
        return np.asarray(history @ self.sim)


def ease_weights(seen: sp.csr_matrix, lam: float, prior: np.ndarray | None = None) -> np.ndarray:
    """EASE item-item weights (I, I): argmin ||X - XB||^2 + lam ||B - prior||^2 with diag(B) = 0, in closed form.

    With ``prior`` = 0 this is Steck's EASE, B = I - P diagMat(1 / diag(P)) for P = (X^T X + lam I)^-1.
    A prior (e.g. text similarity) pulls B towards it instead of towards zero:
    B = I - lam P (I - S) - P diagMat(mu), mu_j = (1 - lam [P (I - S)]_jj) / P_jj.
    """
    gram = (seen.T @ seen).toarray().astype(np.float64)  # (I, I)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    if prior is None:
        weights = -p / np.diag(p)
    else:
        rest = lam * (p - p @ prior.astype(np.float64))  # lam P (I - S)
        mu = (1.0 - np.diag(rest)) / np.diag(p)
        weights = np.eye(len(p)) - rest - p * mu  # p * mu scales column j by mu_j
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


class EASE:
    """Steck's EASE (2019), a shallow linear autoencoder with a closed form; optionally pulled towards a prior.

    Args:
        lam: L2 regularization strength.
        prior: Item-item matrix (I, I) the weights are pulled towards (None: towards zero).
    """

    def __init__(self, lam: float = 500.0, prior: np.ndarray | None = None) -> None:
        self.lam, self.prior = lam, prior

    def fit(self, seen: sp.csr_matrix) -> EASE:
        """Solve for the item-item weights."""
        self.weights = ease_weights(seen, self.lam, self.prior)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """History rows times the weights (B, I)."""
        return np.asarray(history @ self.weights)


class ALS:
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) from the ``implicit`` package, on the CPU.

    Args:
        factors: Latent dimensions.
        regularization: L2 strength.
        iterations: Alternating sweeps.
        alpha: Confidence scale of an observed rating.
        threads: CPU threads for fitting (BLAS is held to one thread meanwhile, as ``implicit`` asks).
        seed: Initialization seed.
    """

    def __init__(self, factors: int = 64, regularization: float = 0.05, iterations: int = 15, alpha: float = 1.0,
                 threads: int = 1, seed: int = 0) -> None:
        with threadpool_limits(1, "blas"):  # the constructor checks BLAS threads and warns unless they are limited
            self.model = AlternatingLeastSquares(factors=factors, regularization=regularization, iterations=iterations, alpha=alpha,
                                                 num_threads=threads, random_state=seed)

    def fit(self, seen: sp.csr_matrix) -> ALS:
        """Alternate user and item least-squares steps."""
        with threadpool_limits(1, "blas"):
            self.model.fit(seen.astype(np.float32).tocsr(), show_progress=False)
        return self

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """User factors (B, F) of history rows (B, I): one exact least-squares step against the item factors."""
        history = sp.csr_matrix(history, dtype=np.float32)
        with threadpool_limits(1, "blas"):
            return np.asarray(self.model.recalculate_user(np.arange(history.shape[0]), history))

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores (B, I) of the folded-in users against all items."""
        return self.fold_in(history) @ self.item_factors.T

    @property
    def item_factors(self) -> np.ndarray:
        """Item factors (I, F)."""
        return np.asarray(self.model.item_factors)
