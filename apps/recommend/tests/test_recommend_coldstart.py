"""Cold start: text-only scores for unrated films, the popularity priors, and the held-out-item protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from lmforge_recommend.coldstart import ColdStart, genre_popularity, query_scores
from lmforge_recommend.data import load_genres, load_items, load_ratings
from lmforge_recommend.evaluation import cold_start
from lmforge_recommend.matrix import build
from lmforge_recommend.split import leave_last_n, without_items
from lmforge_recommend.text import item_texts
from recommend_testing import fake_embed


@pytest.fixture
def data(movie_dir: Path) -> tuple:
    cat = load_items(movie_dir / "u.item", load_genres(movie_dir / "u.genre"))
    return cat, load_ratings(movie_dir / "ua.base", set(cat.ids.tolist()))


def test_unrated_films_are_scored_from_text(data: tuple) -> None:
    cat, ratings = data
    warm, _ = without_items(ratings, np.array([5, 20]))
    inter = build(warm, cat)
    vectors = fake_embed(item_texts(cat))
    model = ColdStart(vectors, {"factors": 4, "iterations": 5}, alpha=0.1).fit(inter.seen)
    action_fan, comedy_fan = inter.row(1), inter.row(15)
    scores = model.score(inter.seen[[action_fan, comedy_fan]])  # (2, I)
    a, c = cat.index([5, 20])  # film 5 is an action film, film 20 a comedy; neither has ratings
    assert scores[0, a] > scores[0, c] and scores[1, c] > scores[1, a]


def test_genre_popularity_by_hand(data: tuple) -> None:
    cat, _ = data
    dense = np.zeros((3, len(cat)), dtype=np.float32)
    dense[:, 0] = 1  # an action film rated 3 times
    dense[0, 20] = 1  # a comedy rated once
    prior = genre_popularity(cat, sp.csr_matrix(dense), np.ones(len(cat), dtype=bool))
    assert prior[1] == pytest.approx(np.log(4) / 15)  # action: mean of log1p over its 15 films
    assert prior[25] == pytest.approx(np.log(2) / 15)


def test_query_scores_prefer_matching_text(data: tuple) -> None:
    cat, _ = data
    vectors = fake_embed(item_texts(cat))
    scores = query_scores(fake_embed(["love wedding"])[0], vectors, np.zeros(len(cat)))
    assert cat.genre_list(int(np.argmax(scores))) == ["Comedy"]


def test_cold_start_protocol_runs(data: tuple) -> None:
    cat, ratings = data
    train, test = leave_last_n(ratings, 4)
    out = cold_start(train, test, cat, fake_embed(item_texts(cat)), {"factors": 4, "iterations": 3}, fraction=0.2, seed=0)
    assert out["items"] == 6 and out["users"] > 0
    assert {"text", "text_profile", "genre_popularity", "genre_decade_popularity"} <= set(out)
    assert 0.0 <= out["text"]["ndcg10"] <= 1.0
