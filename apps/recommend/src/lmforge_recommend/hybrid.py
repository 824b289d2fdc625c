"""The hybrid ranker: EASE proposes candidates, a gradient-boosted classifier reorders them from all signals.

Fitting never looks at the test file. The training ratings are split once more (each user's
last ``val_n`` ratings, or random ones when the task is not about what comes next); the base
models fitted on the rest give features for those validation ratings, which label the ranker's
training rows. The base models are then refitted on all the training ratings, and the ranker
reorders their candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from lmforge_recommend.data import Catalogue, Ratings
from lmforge_recommend.features import FEATURES, SignalConfig, Signals
from lmforge_recommend.matrix import Interactions, build, targets
from lmforge_recommend.split import carve

log = logging.getLogger("lmforge.recommend")


class HybridRanker:
    """Candidates from recency-weighted EASE, reordered by a classifier over collaborative, text and metadata features.

    Args:
        catalogue: The items.
        item_vectors: Unit embeddings (I, D) of the item texts.
        title_vectors: Unit embeddings (I, D) of the bare titles.
        config: Base-model settings.
        features: The features the ranker uses (a subset of ``FEATURES``, for ablations).
        val_n: Validation ratings carved from the end of each user's training history.
        windows: Validation carve-outs stacked for the ranker (each ``val_n`` ratings further back).
        validation: ``"last"``: carve each user's latest ratings (the task is predicting what comes next);
            ``"random"``: carve random ones (the test ratings are not the latest).
        seed: Seed of the classifier.
    """

    def __init__(self, catalogue: Catalogue, item_vectors: np.ndarray, title_vectors: np.ndarray, config: SignalConfig | None = None,
                 features: Sequence[str] = FEATURES, val_n: int = 10, windows: int = 1, validation: str = "last",
                 seed: int = 0) -> None:
        self.catalogue, self.item_vectors, self.title_vectors = catalogue, item_vectors, title_vectors
        self.config = config or SignalConfig()
        self.columns = [FEATURES.index(name) for name in features]
        self.val_n, self.windows, self.validation, self.seed = val_n, windows, validation, seed

    def fit(self, train: Ratings) -> HybridRanker:
        """Train the classifier on validation carve-outs of ``train``, then refit the base models on all of it."""
        feats, labels = [], []
        part = train
        for window in range(self.windows):
            part, val = carve(part, self.validation, self.val_n, seed=self.seed + window)
            x, y = self._examples(part, val)
            feats.append(x)
            labels.append(y)
        self.model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=self.seed)
        with threadpool_limits(1):  # one thread: on a shared, busy CPU OpenMP's spinning threads are several times slower
            self.model.fit(np.concatenate(feats), np.concatenate(labels))
        self.inter = build(train, self.catalogue)
        self.signals = self._signals().fit(self.inter.seen)
        return self

    def _examples(self, part: Ratings, val: Ratings) -> tuple[np.ndarray, np.ndarray]:
        """Features (T * N, F) and labels (T * N,) of the candidates for ``val``, base models fitted on ``part``."""
        inter = build(part, self.catalogue)
        rows, relevant = targets(val, inter)
        signals = self._signals().fit(inter.seen)
        cand, feats, _ = signals.features(histories(inter, rows), inter.seen[rows])  # (T, N), (T, N, F)
        labels = np.take_along_axis(relevant.toarray() > 0, cand, axis=1)  # (T, N)
        log.info("hybrid ranker: %d validation users, %.1f%% of their validation items among the candidates",
                 len(rows), 100 * labels.sum() / max(relevant.sum(), 1))
        return feats[..., self.columns].reshape(-1, len(self.columns)), labels.ravel()

    def scores(self, history: list[np.ndarray], exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """Scores (B, I) for users given by their histories: 1 + the ranker's probability for the candidates,
        and for every other item a number in (0, 1) that follows the candidate generator's order."""
        cand, feats, recent = self.signals.features(history, exclude)  # (B, N), (B, N, F), (B, I)
        with threadpool_limits(1):
            prob = self.model.predict_proba(feats[..., self.columns].reshape(-1, len(self.columns)))[:, 1]
        full = expit(recent).astype(np.float32)
        np.put_along_axis(full, cand, 1.0 + prob.reshape(cand.shape).astype(np.float32), axis=1)
        return full

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Scores (B, I) of training users' rows."""
        return self.scores(histories(self.inter, rows), self.inter.seen[rows])

    def _signals(self) -> Signals:
        return Signals(self.catalogue, self.item_vectors, self.title_vectors, self.config)


def histories(inter: Interactions, rows: np.ndarray) -> list[np.ndarray]:
    """The item columns of each user row, oldest first."""
    return [inter.history(int(r))[0] for r in rows]
