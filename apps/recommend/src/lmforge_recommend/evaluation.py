"""The cold-start protocol: hold out items, remove all their ratings from training, rank them from text alone.

A seeded ``fraction`` of the rated items is held out. Models see the training ratings of the other
items only. For each user who rated a held-out item (in the training or the test file), the
held-out items are ranked and every one the user rated is relevant; NDCG@10 is as in the warm
protocol, over the held-out items as candidates. Popularity cannot count ratings of items that
have none, so its cold version is a prior from metadata: the mean popularity of the item's genres
(``genre_popularity``); a ridge prior on genres and decade is reported beside it.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np

from lmforge_recommend.coldstart import ColdStart, genre_decade_popularity, genre_popularity
from lmforge_recommend.data import Catalogue, Ratings
from lmforge_recommend.matrix import build, targets
from lmforge_recommend.metrics import evaluate
from lmforge_recommend.split import concat, holdout_items, without_items
from lmforge_recommend.text import text_scores

log = logging.getLogger("lmforge.recommend")
COLD_GRID = {"factors": [16, 32, 64], "alpha": [1.0, 10.0, 100.0]}


def cold_start(train: Ratings, test: Ratings, catalogue: Catalogue, item_vectors: np.ndarray, als: dict[str, Any],
               fraction: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Cold-start NDCG@10 of the text model and of the popularity priors on the same held-out items.

    The text model's ALS factors and ridge strength are chosen on a second held-out item set drawn
    from the remaining training items (seed + 1), never on the evaluated items.

    Returns:
        ``text``, ``text_profile``, ``genre_popularity``, ``genre_decade_popularity``: each
        ``evaluate``'s result; ``settings``: the chosen text-model settings; ``items``, ``users``.
    """
    cold = holdout_items(train, fraction, seed)
    warm_train, cold_train = without_items(train, cold)
    _, cold_test = without_items(test, cold)
    settings = tune_cold(warm_train, catalogue, item_vectors, als, fraction, seed + 1)
    inter = build(warm_train, catalogue)
    rows, relevant = targets(concat(cold_train, cold_test), inter)
    candidates = np.isin(catalogue.ids, cold)
    warm = ~candidates & (inter.item_popularity() > 0)
    model = ColdStart(item_vectors, {**als, "factors": settings["factors"]}, settings["alpha"]).fit(inter.seen)

    def run(score: Any) -> dict[str, Any]:
        return evaluate(score, rows, relevant, inter.seen, candidates=candidates)

    prior = genre_popularity(catalogue, inter.seen, warm)
    decade = genre_decade_popularity(catalogue, inter.seen, warm)
    return {
        "text": run(lambda r: model.score(inter.seen[r])),
        "text_profile": run(lambda r: text_scores(item_vectors, inter.seen[r])),
        "genre_popularity": run(lambda r: np.broadcast_to(prior, (len(r), len(prior)))),
        "genre_decade_popularity": run(lambda r: np.broadcast_to(decade, (len(r), len(decade)))),
        "settings": settings, "items": int(len(cold)), "users": int(len(rows)),
    }


def tune_cold(warm_train: Ratings, catalogue: Catalogue, item_vectors: np.ndarray, als: dict[str, Any], fraction: float,
              seed: int) -> dict[str, Any]:
    """ALS factors and ridge strength of the text model, by cold-start NDCG@10 on an inner held-out item set."""
    inner = holdout_items(warm_train, fraction, seed)
    fit_part, held = without_items(warm_train, inner)
    inter = build(fit_part, catalogue)
    rows, relevant = targets(held, inter)
    candidates = np.isin(catalogue.ids, inner)
    trials = []
    for factors, alpha in itertools.product(COLD_GRID["factors"], COLD_GRID["alpha"]):
        model = ColdStart(item_vectors, {**als, "factors": factors}, alpha).fit(inter.seen)
        ndcg = evaluate(lambda r, m=model: m.score(inter.seen[r]), rows, relevant, inter.seen, candidates=candidates)["ndcg10"]
        trials.append(({"factors": factors, "alpha": alpha}, float(ndcg)))
    best, score = max(trials, key=lambda t: t[1])
    log.info("cold start: inner validation NDCG@10 %.4f with %s", score, best)
    return best
