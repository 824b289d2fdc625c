"""The Recommender API on tiny data: results, explanations, filters, and one-line errors for bad requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lmforge.errors import LmforgeError

from lmforge_recommend.config import ModelConfig, RecommendConfig, ServeConfig
from lmforge_recommend.data import load_genres, load_items, load_ratings
from lmforge_recommend.recommender import Recommender
from recommend_testing import fake_embed


@pytest.fixture
def rec(movie_dir: Path) -> Recommender:
    cat = load_items(movie_dir / "u.item", load_genres(movie_dir / "u.genre"))
    train = load_ratings(movie_dir / "ua.base", set(cat.ids.tolist()))
    config = RecommendConfig(model=ModelConfig(text_model="fake", windows=1, ease_lambda=5.0, candidates=10), serve=ServeConfig(max_k=20))
    return Recommender(cat, train, config, embed=fake_embed)


def seen_by(rec: Recommender, user: int) -> set[int]:
    return set(rec.catalogue.ids[rec.inter.history(rec.inter.row(user))[0]].tolist())


def test_known_user_gets_unseen_films_of_their_taste(rec: Recommender) -> None:
    out = rec.recommend(user_id=3, k=3)
    assert len(out) == 3 and {"item_id", "title", "year", "genres", "score", "because", "reason"} <= set(out[0])
    assert not {r["item_id"] for r in out} & seen_by(rec, 3)
    assert out[0]["genres"] == ["Action"]  # the one action film user 3 has not rated ranks first
    assert out[0]["because"]["item_id"] in seen_by(rec, 3)
    assert out[0]["reason"].startswith("because you watched ")


def test_new_user_from_liked_items_and_text(rec: Recommender) -> None:
    liked = rec.recommend(liked_items=[17, 18, 19], k=4)
    assert all(r["item_id"] not in (17, 18, 19) for r in liked)
    assert liked[0]["genres"] == ["Comedy"]
    text = rec.recommend(text="robot space war", k=5)
    assert all("Robot Space War" in r["title"] for r in text) and text[0]["because"] is None


def test_filters(rec: Recommender) -> None:
    out = rec.recommend(user_id=3, k=10, genres=["comedy"], years=(1995, 2005))
    assert out and all(r["genres"] == ["Comedy"] and 1995 <= r["year"] <= 2005 for r in out)
    assert rec.recommend(user_id=3, k=5, years=(1700, 1701)) == []


def test_same_film_under_two_ids_counts_once(rec: Recommender) -> None:
    titles = [r["title"] for r in rec.recommend(text="twin film", k=20)]
    assert titles.count("Twin Film (1994)") == 1
    assert all(r["title"] != "Twin Film (1994)" for r in rec.similar(15, k=20))


def test_similar(rec: Recommender) -> None:
    out = rec.similar(2, k=5)
    assert len(out) == 5 and all(r["item_id"] != 2 and r["because"]["item_id"] == 2 for r in out)
    assert sum(r["genres"] == ["Action"] for r in out) >= 4


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"user_id": 999}, "user 999 has no ratings"),
    ({"user_id": "3"}, "has no ratings"),
    ({"liked_items": [1, 555]}, "item 555 is not in the catalogue"),
    ({"liked_items": []}, "liked_items is empty"),
    ({}, "needs user_id, liked_items or text"),
    ({"text": "  "}, "text must be a non-empty string"),
    ({"user_id": 3, "k": 0}, "k must be an integer from 1 to 20"),
    ({"user_id": 3, "k": 10**6}, "k must be an integer from 1 to 20"),
    ({"user_id": 3, "k": True}, "k must be an integer"),
    ({"user_id": 3, "genres": ["Westerns"]}, "genres must be a non-empty list of"),
    ({"user_id": 3, "genres": "Action"}, "genres must be a non-empty list of"),
    ({"user_id": 3, "years": (2000, 1990)}, "years must be a"),
    ({"user_id": 3, "years": 1995}, "years must be a"),
])
def test_bad_requests_raise_one_line(rec: Recommender, kwargs: dict, message: str) -> None:
    with pytest.raises(LmforgeError, match=message) as info:
        rec.recommend(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_similar_requests(rec: Recommender) -> None:
    with pytest.raises(LmforgeError, match="item 77 is not in the catalogue"):
        rec.similar(77)
    with pytest.raises(LmforgeError, match="k must be"):
        rec.similar(2, k=-1)


def test_scores_are_finite(rec: Recommender) -> None:
    assert np.isfinite([r["score"] for r in rec.recommend(user_id=12, k=20)]).all()
