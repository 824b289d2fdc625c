"""Grid searches of the baselines' settings on a validation carve-out of the training ratings (never the test file)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmforge_recommend.baselines import ALS, EASE, ItemKNN, Model, Popularity
from lmforge_recommend.data import Catalogue, Ratings
from lmforge_recommend.features import history_matrix
from lmforge_recommend.hybrid import histories
from lmforge_recommend.matrix import build, targets
from lmforge_recommend.metrics import evaluate
from lmforge_recommend.split import carve

log = logging.getLogger("lmforge.recommend")

GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {},
    "itemknn": {"neighbours": [0, 50, 100, 200, 400]},
    "ease": {"lam": [50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000]},
    "als": {"factors": [16, 32, 64, 128], "regularization": [0.01, 0.1, 1.0], "iterations": [10, 20], "alpha": [1.0, 5.0, 20.0]},
}
BUILDERS: dict[str, Callable[..., Model]] = {"popularity": Popularity, "itemknn": ItemKNN, "ease": EASE, "als": ALS}


@dataclass
class Search:
    """The outcome of one grid search: every setting's validation NDCG@10 and the best."""

    name: str
    trials: list[tuple[dict[str, Any], float]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        """The setting with the highest validation NDCG@10 (the first of equals)."""
        return max(self.trials, key=lambda t: t[1])[0]

    @property
    def best_ndcg(self) -> float:
        """Its validation NDCG@10."""
        return max(score for _, score in self.trials)


def make(name: str, params: dict[str, Any], threads: int = 1) -> Model:
    """A baseline by name with ``params`` (ALS also gets ``threads``)."""
    return BUILDERS[name](**params, threads=threads) if name == "als" else BUILDERS[name](**params)


def tune_baselines(train: Ratings, catalogue: Catalogue, names: list[str], validation: str = "last", val_n: int = 10,
                   threads: int = 1) -> dict[str, Search]:
    """Grid-search each named baseline on ``val_n`` ratings per user of ``train`` (``validation``: the last or random
    ones, see ``split.carve``), fitted on the rest."""
    part, val = carve(train, validation, val_n)
    inter = build(part, catalogue)
    rows, relevant = targets(val, inter)
    out = {}
    for name in names:
        search = Search(name)
        grid = GRIDS[name]
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            model = make(name, params, threads).fit(inter.seen)
            ndcg = float(evaluate(lambda r, m=model: m.score(inter.seen[r]), rows, relevant, inter.seen)["ndcg10"])
            search.trials.append((params, ndcg))
        log.info("%s: best validation NDCG@10 %.4f with %s (%d settings)", name, search.best_ndcg, search.best, len(search.trials))
        out[name] = search
    return out


def tune_halflife(train: Ratings, catalogue: Catalogue, lam: float, halflives: list[float], validation: str = "last",
                  val_n: int = 10) -> Search:
    """Validation NDCG@10 of EASE scored from recency-weighted histories, for each half-life (0 = no weighting)."""
    part, val = carve(train, validation, val_n)
    inter = build(part, catalogue)
    rows, relevant = targets(val, inter)
    ease = EASE(lam).fit(inter.seen)
    hist = histories(inter, np.arange(inter.shape[0]))
    search = Search("ease_recency")
    for halflife in halflives:
        weighted = history_matrix(hist, inter.shape[1], halflife)
        ndcg = float(evaluate(lambda r, w=weighted: ease.score(w[r]), rows, relevant, inter.seen)["ndcg10"])
        search.trials.append(({"halflife": halflife}, ndcg))
    log.info("EASE with recency: best validation NDCG@10 %.4f with %s", search.best_ndcg, search.best)
    return search
