"""``POST /v1/explain``: word attributions for a served classifier, token log-probabilities for a generator, key scopes."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lmforge.serving.config import load_serve_config
from lmforge.serving.engine import Engine
from lmforge.serving.http import create_app
from serving_support import bearer, build_classifier_run, make_keys

needs_captum = pytest.mark.skipif(importlib.util.find_spec("captum") is None, reason="Captum is not installed (lmforge[explain])")


@pytest.fixture(scope="module")
def client(tiny_bert: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    tmp = tmp_path_factory.mktemp("explain-http")
    clf = build_classifier_run(tiny_bert, tmp / "clf")
    keys = make_keys(tmp / "keys.json", all={"rate_per_minute": 0}, explain={"endpoints": ["explain"], "rate_per_minute": 0},
                     classify={"endpoints": ["classify"], "rate_per_minute": 0})
    cfg = load_serve_config({"models": {"clf": str(clf), "gen": str(tiny_llama), "enc": str(tiny_bert)},
                             "auth": {"keys": str(tmp / "keys.json")}, "limits": {"max_items": 3, "max_text_chars": 100}})
    with TestClient(create_app(Engine.from_config(cfg, start=False), cfg)) as test_client:
        yield test_client, keys


@needs_captum
def test_explain_a_classifier_by_integrated_gradients(client: tuple[TestClient, dict]) -> None:
    http, keys = client
    r = http.post("/v1/explain", json={"texts": ["the movie was good"], "steps": 8}, headers=bearer(keys["explain"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "clf" and body["kind"] == "attributions" and body["version"]
    row = body["explanations"][0]
    assert row["method"] == "integrated_gradients" and row["words"] == ["the", "movie", "was", "good"]
    assert len(row["scores"]) == 4 and row["offsets"][3] == [14, 18] and row["label"] in ("negative", "positive")


def test_explain_by_occlusion_for_a_chosen_class(client: tuple[TestClient, dict]) -> None:
    http, keys = client
    r = http.post("/v1/explain", json={"model": "clf", "texts": ["bad plot", "good film"], "method": "occlusion",
                                       "target": "positive"}, headers=bearer(keys["all"]))
    assert r.status_code == 200, r.text
    rows = r.json()["explanations"]
    assert [row["label"] for row in rows] == ["positive", "positive"] and all(row["method"] == "occlusion" for row in rows)


def test_explain_a_generator_gives_token_logprobs(client: tuple[TestClient, dict]) -> None:
    http, keys = client
    r = http.post("/v1/explain", json={"model": "gen", "texts": ["good movie"]}, headers=bearer(keys["all"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "logprobs" and "explanations" not in body
    row = body["logprobs"][0]
    assert row["logprobs"][0] is None and len(row["tokens"]) == len(row["logprobs"]) >= 2
    assert all(v <= 0 for v in row["logprobs"][1:]) and row["mean_logprob"] <= 0


def test_explain_needs_the_scope_and_checks_its_inputs(client: tuple[TestClient, dict]) -> None:
    http, keys = client
    assert http.post("/v1/explain", json={"texts": ["good"]}).status_code == 401
    r = http.post("/v1/explain", json={"texts": ["good"]}, headers=bearer(keys["classify"]))
    assert r.status_code == 403
    r = http.post("/v1/explain", json={"texts": ["a", "b", "c", "d"]}, headers=bearer(keys["all"]))
    assert r.status_code == 422 and r.json()["error"]["field"] == "texts"
    r = http.post("/v1/explain", json={"texts": ["good"], "method": "shap"}, headers=bearer(keys["all"]))
    assert r.status_code == 422 and r.json()["error"]["field"] == "method"
    r = http.post("/v1/explain", json={"texts": ["good"], "method": "occlusion", "target": "neutral"}, headers=bearer(keys["all"]))
    assert r.status_code == 422 and "not a class" in r.json()["error"]["message"]
    r = http.post("/v1/explain", json={"model": "enc", "texts": ["good"]}, headers=bearer(keys["all"]))
    assert r.status_code == 422 and "cannot generate" in r.json()["error"]["message"]
