"""Per-(user, candidate) signals for the hybrid ranker: collaborative scores, popularity, text and metadata.

A user is given by their history, item columns oldest first, so training users and new users
(a list of liked films) go through the same code. Candidates are the top ``n`` unseen items of
EASE on a recency-weighted history: in MovieLens a user's next ratings follow their latest ones
(a session of one genre, a title search), so recent items weigh more than old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lmforge_recommend.baselines import ALS, EASE, ItemKNN
from lmforge_recommend.coldstart import TextToFactors
from lmforge_recommend.data import Catalogue

FEATURES = ("ease_recent", "ease", "ease_recent_fast", "als", "knn_recent", "log_popularity", "rank",
            "text_profile", "text_last3", "title_last3", "als_text", "year", "year_gap", "genre_last5")
TEXT_FEATURES = ("text_profile", "text_last3", "title_last3", "als_text")
METADATA_FEATURES = ("year", "year_gap", "genre_last5")


@dataclass
class SignalConfig:
    """Settings of the base models behind the features (chosen on the validation carve-out).

    Attributes:
        ease_lambda: EASE regularization.
        als: ALS keyword arguments (factors, regularization, iterations, alpha, threads).
        knn_neighbours: Item-kNN neighbours kept (0: all).
        halflife: Recency half-life in history positions (with 2, the third latest item weighs half the latest).
        candidates: Candidates per user passed to the ranker.
        text_alpha: Ridge strength of the text-to-ALS-factors map.
    """

    ease_lambda: float = 4000.0
    als: dict | None = None
    knn_neighbours: int = 0
    halflife: float = 2.0
    candidates: int = 100
    text_alpha: float = 10.0


def history_matrix(histories: list[np.ndarray], n_items: int, halflife: float = 0.0) -> sp.csr_matrix:
    """Histories (item columns, oldest first) as a (B, I) matrix, weights 0.5 ** (position from the end / halflife).

    With ``halflife`` 0 every item weighs 1.
    """
    weights = [0.5 ** (np.arange(len(h))[::-1] / halflife) if halflife else np.ones(len(h)) for h in histories]
    indptr = np.r_[0, np.cumsum([len(h) for h in histories])]
    cols = np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, dtype=np.int64)
    data = np.concatenate(weights).astype(np.float32) if histories else np.zeros(0, dtype=np.float32)
    out = sp.csr_matrix((data, cols, indptr), shape=(len(histories), n_items))
    out.sum_duplicates()
    return out


class Signals:
    """The fitted base models and item tables that features are computed from.

    Args:
        catalogue: The items.
        item_vectors: Unit embeddings (I, D) of the item texts.
        title_vectors: Unit embeddings (I, D) of the bare titles.
        config: Base-model settings.
    """

    def __init__(self, catalogue: Catalogue, item_vectors: np.ndarray, title_vectors: np.ndarray, config: SignalConfig) -> None:
        self.catalogue, self.item_vectors, self.title_vectors, self.config = catalogue, item_vectors, title_vectors, config
        years = catalogue.years.astype(np.float32)
        self.years = np.where(years > 0, years, np.median(years[years > 0]) if (years > 0).any() else 0.0)  # (I,)
        genres = catalogue.genres.astype(np.float32)
        self.genres = genres / np.maximum(genres.sum(axis=1, keepdims=True), 1.0)  # (I, G), rows sum to 1

    def fit(self, seen: sp.csr_matrix) -> Signals:
        """Fit EASE, ALS and item-kNN on the binary user-item matrix (U, I)."""
        self.ease = EASE(self.config.ease_lambda).fit(seen)
        self.als = ALS(**(self.config.als or {})).fit(seen)
        self.knn = ItemKNN(self.config.knn_neighbours).fit(seen)
        counts = np.asarray(seen.sum(axis=0)).ravel()
        self.log_popularity = np.log1p(counts).astype(np.float32)  # (I,)
        warm = counts > 0
        text_map = TextToFactors(self.config.text_alpha).fit(self.item_vectors[warm], self.als.item_factors[warm])
        self.text_factors = text_map.predict(self.item_vectors)  # (I, F)
        return self

    def candidates(self, histories: list[np.ndarray], exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top unseen items (B, N) of recency-weighted EASE, and that score for all items (B, I)."""
        n_items = len(self.catalogue)
        recent = self.ease.score(history_matrix(histories, n_items, self.config.halflife))  # (B, I)
        masked = recent.copy()
        seen = history_matrix(histories, n_items) if exclude is None else exclude
        rows, cols = seen.nonzero()
        masked[rows, cols] = -np.inf
        n = min(self.config.candidates, n_items)
        part = np.argpartition(-masked, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(masked, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), recent

    def features(self, histories: list[np.ndarray], exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates (B, N), their features (B, N, F) in the order of ``FEATURES``, and the standardized
        recency-weighted EASE scores of all items (B, I) that chose them."""
        cand, recent = self.candidates(histories, exclude)
        recent = _z(recent)
        n_items = len(self.catalogue)
        flat = history_matrix(histories, n_items)
        fast = history_matrix(histories, n_items, max(self.config.halflife / 2.5, 1.0))
        weighted = history_matrix(histories, n_items, self.config.halflife)
        users = self.als.fold_in(flat)  # (B, F)
        take = lambda scores: np.take_along_axis(np.asarray(scores, dtype=np.float32), cand, axis=1)
        last_years = np.asarray([self.years[h[-5:]].mean() for h in histories])  # (B,)
        last_genres = np.stack([self.genres[h[-5:]].sum(axis=0) for h in histories])  # (B, G)
        columns = {
            "ease_recent": take(recent), "ease": take(_z(self.ease.score(flat))), "ease_recent_fast": take(_z(self.ease.score(fast))),
            "als": take(_z(users @ self.als.item_factors.T)), "knn_recent": take(_z(self.knn.score(weighted))),
            "log_popularity": self.log_popularity[cand], "rank": np.broadcast_to(np.arange(cand.shape[1], dtype=np.float32), cand.shape),
            "text_profile": _profile_similarity(self.item_vectors, weighted, cand),
            "text_last3": _last_similarity(self.item_vectors, histories, cand, 3),
            "title_last3": _last_similarity(self.title_vectors, histories, cand, 3),
            "als_text": take(_z(users @ self.text_factors.T)),
            "year": self.years[cand], "year_gap": np.abs(self.years[cand] - last_years[:, None]),
            "genre_last5": np.einsum("bg,bng->bn", last_genres, self.genres[cand] > 0),
        }
        return cand, np.stack([columns[name] for name in FEATURES], axis=-1).astype(np.float32), recent


def _z(scores: np.ndarray) -> np.ndarray:
    """Scores standardized per user, so users with long and short histories share one scale."""
    return (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True) + 1e-9)


def _profile_similarity(vectors: np.ndarray, history: sp.csr_matrix, cand: np.ndarray) -> np.ndarray:
    profile = np.asarray(history @ vectors)  # (B, D)
    profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
    return np.einsum("bd,bnd->bn", profile, vectors[cand])


def _last_similarity(vectors: np.ndarray, histories: list[np.ndarray], cand: np.ndarray, last: int) -> np.ndarray:
    """Highest cosine (B, N) between each candidate and the user's ``last`` latest items."""
    return np.stack([(vectors[c] @ vectors[h[-last:]].T).max(axis=1) for h, c in zip(histories, cand)])
