"""Cold start: items nobody has rated yet, scored from their text, and popularity priors built from metadata.

A cold item has no collaborative factors, but its text embedding does: a ridge regression learned
on the rated items maps text embeddings (D) to ALS item factors (F), and a user's folded-in ALS
factors score the mapped items. The same map feeds the hybrid ranker a text-derived score for
every item.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import Ridge

from lmforge_recommend.baselines import ALS
from lmforge_recommend.data import Catalogue


class TextToFactors:
    """Ridge regression from text embeddings (I, D) to collaborative item factors (I, F).

    Args:
        alpha: Ridge strength.
    """

    def __init__(self, alpha: float = 10.0) -> None:
        self.ridge = Ridge(alpha=alpha)

    def fit(self, vectors: np.ndarray, factors: np.ndarray) -> TextToFactors:
        """Learn the map on items (rows) that have both."""
        self.ridge.fit(vectors, factors)
        return self

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Factors (N, F) for text embeddings (N, D)."""
        return self.ridge.predict(vectors).astype(np.float32)


class ColdStart:
    """Scores items from text alone: ALS on the rated items, text mapped to factors for every item.

    Args:
        item_vectors: Unit embeddings (I, D) of the item texts.
        als: ALS settings.
        alpha: Ridge strength of the text-to-factors map.
    """

    def __init__(self, item_vectors: np.ndarray, als: dict | None = None, alpha: float = 10.0) -> None:
        self.item_vectors, self.als_settings, self.alpha = item_vectors, als or {}, alpha

    def fit(self, seen: sp.csr_matrix) -> ColdStart:
        """Fit ALS on ``seen`` (U, I) and the map on the items it rates; every item gets text-derived factors."""
        self.als = ALS(**self.als_settings).fit(seen)
        warm = np.asarray(seen.sum(axis=0)).ravel() > 0
        self.map = TextToFactors(self.alpha).fit(self.item_vectors[warm], self.als.item_factors[warm])
        self.factors = self.map.predict(self.item_vectors)  # (I, F)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores (B, I) of every item's text-derived factors for users given by history rows (B, I)."""
        users = self.als.fold_in(history)  # (B, F)
        return users @ self.factors.T


def genre_popularity(catalogue: Catalogue, seen: sp.csr_matrix, warm: np.ndarray) -> np.ndarray:
    """A popularity prior (I,) for items without ratings: the mean over an item's genres of that genre's popularity.

    A genre's popularity is the mean log(1 + ratings) of the warm items that carry it.

    Args:
        catalogue: The items.
        seen: Binary user-item matrix (U, I).
        warm: Boolean (I,) mask of the items whose ratings may be counted.
    """
    log_pop = np.log1p(np.asarray(seen.sum(axis=0)).ravel())
    genres = catalogue.genres.astype(np.float32)  # (I, G)
    per_genre = (genres[warm] * log_pop[warm, None]).sum(axis=0) / np.maximum(genres[warm].sum(axis=0), 1.0)  # (G,)
    return (genres @ per_genre) / np.maximum(genres.sum(axis=1), 1.0)


def genre_decade_popularity(catalogue: Catalogue, seen: sp.csr_matrix, warm: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """A stronger prior (I,): ridge regression of warm items' log(1 + ratings) on genre flags and release decade."""
    log_pop = np.log1p(np.asarray(seen.sum(axis=0)).ravel())
    decades = np.where(catalogue.years > 0, catalogue.years // 10 * 10, 0)
    onehot = (decades[:, None] == np.unique(decades)[None, :]).astype(np.float32)  # (I, decades)
    meta = np.concatenate([catalogue.genres.astype(np.float32), onehot], axis=1)
    return Ridge(alpha=alpha).fit(meta[warm], log_pop[warm]).predict(meta)


def query_scores(query_vector: np.ndarray, item_vectors: np.ndarray, log_popularity: np.ndarray, prior: float = 0.1) -> np.ndarray:
    """Scores (I,) for a free-text request: cosine to every item text, plus a small standardized popularity prior.

    The prior breaks near-ties among films that match the words equally well in favour of known ones.
    """
    cosine = item_vectors @ query_vector  # (I,)
    pop = (log_popularity - log_popularity.mean()) / (log_popularity.std() + 1e-9)
    return (cosine - cosine.mean()) / (cosine.std() + 1e-9) + prior * pop
