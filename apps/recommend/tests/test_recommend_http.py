"""The HTTP routes on lmforge's service app, on a loopback port: keys, answers, explanations, 4xx for bad input, the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lmforge.serving.auth import KeyStore

from lmforge_recommend.app import LoopbackServer, create, service_config
from lmforge_recommend.config import RecommendConfig
from lmforge_recommend.store import Store, default_url
from recommend_testing import small_recommender, write_movies


@pytest.fixture(scope="module")
def server(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("http")
    keys = KeyStore(tmp / "keys.json", scrypt_n=2**4)
    secrets = {name: keys.create(name, endpoints=scopes, rate_per_minute=0)[1]
               for name, scopes in (("web", ["recommend", "metrics"]), ("other", ["embed"]))}
    config = RecommendConfig(service={"models": {"text": str(tiny_encoder)}, "auth": {"keys": str(tmp / "keys.json")}})
    url = default_url(tmp / "data")
    app = create(small_recommender(write_movies(tmp / "movies")), Store(url), service_config(config))
    with LoopbackServer(app) as running:
        yield {"url": running.url, "store": url, **secrets}


def call(server: dict, path: str, body: Any = None, key: str | None = "web") -> httpx.Response:
    headers = {"Authorization": f"Bearer {server[key]}"} if key else {}
    if body is None:
        return httpx.get(server["url"] + path, headers=headers, timeout=30)
    return httpx.post(server["url"] + path, json=body, headers=headers, timeout=30)


def test_a_known_user_gets_explained_unseen_films(server: dict) -> None:
    answer = call(server, "/v1/recommend", {"user_id": 3, "k": 3})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert len(items) == 3 and items[0]["genres"] == ["Action"]
    assert all(r["reason"].startswith("because you watched ") and r["because"]["item_id"] for r in items)


def test_filters_text_and_similar(server: dict) -> None:
    comedies = call(server, "/v1/recommend", {"text": "love wedding", "k": 5, "genres": ["Comedy"], "years": [1990, 2000]}).json()["items"]
    assert comedies and all("Comedy" in r["genres"] and 1990 <= r["year"] <= 2000 for r in comedies)
    like = call(server, "/v1/similar", {"item_id": 1, "k": 4}).json()["items"]
    assert len(like) == 4 and all(r["item_id"] != 1 for r in like) and like[0]["because"]["item_id"] == 1
    assert call(server, "/v1/recommend/items?q=twin").json()["items"][0]["title"] == "Twin Film (1994)"


def test_keys_are_required_and_scoped(server: dict) -> None:
    assert call(server, "/v1/recommend", {"user_id": 3}, key=None).status_code == 401
    assert call(server, "/v1/recommend", {"user_id": 3}, key="other").status_code == 403
    assert httpx.get(server["url"] + "/recommend", timeout=30).status_code == 200  # the page itself needs no key


@pytest.mark.parametrize(("body", "status", "field", "words"), [
    ({"user_id": 999}, 404, "user_id", "no ratings in the training file"),
    ({"liked_items": [1, 4242]}, 404, "liked_items", "item 4242 is not in the catalogue"),
    ({"liked_items": []}, 422, None, "liked_items is empty"),
    ({"user_id": 3, "k": 0}, 422, None, "k must be an integer from 1 to 20"),
    ({"user_id": 3, "k": 10**12}, 422, None, "k must be an integer from 1 to 20"),
    ({"user_id": "three"}, 422, "user_id", "valid integer"),
    ({"user_id": 3, "genres": ["Western"]}, 422, None, "genres must be a non-empty list of"),
    ({"user_id": 3, "years": [2000, 1990]}, 422, None, "first <= last"),
    ({"k": 5}, 422, None, "needs user_id, liked_items or text"),
    ({"profile": "nobody"}, 404, "profile", "no profile named 'nobody'"),
    ({"user_id": 3, "colour": "red"}, 422, "colour", "Extra inputs"),
])
def test_bad_requests_get_4xx_naming_the_problem(server: dict, body: dict, status: int, field: str | None, words: str) -> None:
    answer = call(server, "/v1/recommend", body)
    error = answer.json()["error"]
    assert answer.status_code == status and words in error["message"]
    assert field is None or error["field"] == field


def test_similar_rejects_unknown_items_and_bad_k(server: dict) -> None:
    assert call(server, "/v1/similar", {"item_id": 4242}).json()["error"]["field"] == "item_id"
    assert call(server, "/v1/similar", {"item_id": 1, "k": -1}).status_code == 422


def test_profiles_and_feedback_are_kept_in_the_store(server: dict) -> None:
    assert call(server, "/v1/recommend/profiles", {"name": "ana", "liked_items": [17, 18]}).status_code == 200
    assert call(server, "/v1/recommend/profiles", {"name": "bad", "liked_items": [4242]}).status_code == 404
    first = call(server, "/v1/recommend", {"profile": "ana", "k": 3}).json()["items"]
    assert all("Comedy" in r["genres"] for r in first)
    dismissed = first[0]["item_id"]
    assert call(server, "/v1/recommend/feedback", {"profile": "ana", "item_id": dismissed, "action": "dismissed"}).status_code == 200
    assert call(server, "/v1/recommend/feedback", {"profile": "ana", "item_id": 19, "action": "liked"}).status_code == 200
    assert call(server, "/v1/recommend/feedback", {"user_id": 3, "profile": "ana", "item_id": 19, "action": "liked"}).status_code == 422
    again = call(server, "/v1/recommend", {"profile": "ana", "k": 5}).json()["items"]
    assert dismissed not in {r["item_id"] for r in again} and 19 not in {r["item_id"] for r in again}
    restarted = Store(server["store"])  # a new process would read the same rows
    assert restarted.profile("ana") == [17, 18, 19] and restarted.items("profile:ana", "dismissed") == [dismissed]
    assert set(restarted.items("profile:ana", "served")) >= {r["item_id"] for r in first}


def test_requests_show_in_the_service_metrics(server: dict) -> None:
    call(server, "/v1/recommend", {"user_id": 3})
    call(server, "/v1/similar", {"item_id": 1})
    text = call(server, "/metrics").text
    assert 'route="/v1/recommend"' in text and 'route="/v1/similar"' in text
