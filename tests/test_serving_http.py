"""The HTTP service on a free loopback port: keys, scopes, rate limits, size limits, errors, streaming, metrics, logs."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request

from lmforge.serving.auth import KeyStore
from lmforge.serving.config import ServeConfig, load_serve_config
from lmforge.serving.engine import Engine
from lmforge.serving.http import Caller, create_app, require_key, service_of
from lmforge.serving.logs import setup_service_logging
from serving_support import CHEAP_SCRYPT, ServerThread, bearer, build_classifier_run, make_keys

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "pii_corpus.jsonl").read_text(encoding="utf-8").splitlines()]
PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|ID|CARD|IP)\]")

@pytest.fixture(scope="module")
def classifier_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier_run(tiny_bert, tmp_path_factory.mktemp("serve") / "clf")


extra = APIRouter(prefix="/v1/support")


@extra.post("/echo")
async def support_echo(body: dict[str, Any], request: Request, caller: Annotated[Caller, Depends(require_key("support"))]) -> Any:
    service = service_of(request)
    model = service.model_for(request, caller, None, "classify")
    service.check_texts(body.get("texts", []), "texts")
    return {"model": model, "results": await service.run("classify", body["texts"], model)}


@pytest.fixture(scope="module")
def setup(classifier_run: Path, tiny_bert: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("http")
    store = tmp / "keys.json"
    keys = make_keys(store, all={"rate_per_minute": 0}, clf_only={"models": ["clf"], "endpoints": ["classify"], "rate_per_minute": 0},
                     limited={"rate_per_minute": 60, "burst": 2}, support={"endpoints": ["support"], "rate_per_minute": 0},
                     revoked={"rate_per_minute": 0})
    KeyStore(store, scrypt_n=CHEAP_SCRYPT).revoke(next(r.id for r in KeyStore(store).list() if r.name == "revoked"))
    cfg = load_serve_config({"models": {"clf": str(classifier_run), "enc": str(tiny_bert), "gen": str(tiny_llama)},
                             "auth": {"keys": str(store)}, "limits": {"max_items": 4, "max_text_chars": 100, "max_new_tokens": 16},
                             "server": {"max_body_bytes": 2048}, "logging": {"store": str(tmp / "store.jsonl")}})
    engine = Engine.from_config(cfg, start=False)
    with ServerThread(create_app(engine, cfg, extra_routers=[extra])) as server:
        yield {"url": server.url, "keys": keys, "engine": engine, "store": tmp / "store.jsonl", "cfg": cfg}


def post(setup: dict, path: str, body: Any, key: str | None = "all", **kwargs: Any) -> httpx.Response:
    headers = bearer(setup["keys"][key]) if key else {}
    return httpx.post(setup["url"] + path, json=body, headers=headers, timeout=30, **kwargs)


def test_health_needs_no_key_and_ready_means_loaded(setup: dict) -> None:
    assert httpx.get(setup["url"] + "/healthz").json() == {"status": "ok"}
    assert httpx.get(setup["url"] + "/readyz").json() == {"status": "ready", "models": 3}


def test_classify_embed_and_generate_answer_with_their_model_and_version(setup: dict) -> None:
    r = post(setup, "/v1/classify", {"texts": ["good movie", "bad plot"], "top_k": 2})
    assert r.status_code == 200 and r.headers["x-request-id"]
    body = r.json()
    assert body["model"] == "clf" and body["version"] and len(body["results"]) == 2
    assert body["results"][0]["label"] in ("negative", "positive") and len(body["results"][0]["top_k"]) == 2
    r = post(setup, "/v1/embed", {"model": "enc", "texts": ["good movie"]})
    assert r.status_code == 200 and r.json()["dim"] == 32 and len(r.json()["embeddings"][0]) == 32
    r = post(setup, "/v1/generate", {"model": "gen", "prompt": "good", "max_new_tokens": 4})
    assert r.status_code == 200 and isinstance(r.json()["text"], str)
    models = httpx.get(setup["url"] + "/v1/models", headers=bearer(setup["keys"]["all"])).json()
    assert models["default"] == "clf" and [m["name"] for m in models["models"]] == ["clf", "enc", "gen"]


def test_generate_streams_server_sent_events(setup: dict) -> None:
    full = post(setup, "/v1/generate", {"model": "gen", "prompt": "good", "max_new_tokens": 6}).json()["text"]
    with httpx.stream("POST", setup["url"] + "/v1/generate", json={"model": "gen", "prompt": "good", "max_new_tokens": 6, "stream": True},
                      headers=bearer(setup["keys"]["all"]), timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    pieces = [json.loads(line[6:])["text"] for line in lines if line.startswith("data: ") and '"text"' in line]
    assert "".join(pieces) == full and "event: done" in lines


@pytest.mark.parametrize("key, status, message", [
    (None, 401, "missing API key"), ("lmf_00000000_" + "x" * 32, 401, "unknown or revoked"), ("revoked", 401, "unknown or revoked"),
    ("Basic abc", 401, "malformed Authorization"),
])
def test_missing_wrong_and_revoked_keys_get_401(setup: dict, key: str | None, status: int, message: str) -> None:
    headers = {} if key is None else ({"Authorization": key} if key.startswith("Basic") else bearer(setup["keys"].get(key, key)))
    r = httpx.post(setup["url"] + "/v1/classify", json={"texts": ["x"]}, headers=headers)
    assert r.status_code == status and message in r.json()["error"]["message"] and r.headers["www-authenticate"] == "Bearer"


def test_keys_out_of_scope_get_403(setup: dict) -> None:
    assert post(setup, "/v1/classify", {"texts": ["x"]}, "clf_only").status_code == 200
    r = post(setup, "/v1/embed", {"model": "enc", "texts": ["x"]}, "clf_only")
    assert r.status_code == 403 and "may not call the 'embed' endpoint" in r.json()["error"]["message"]
    models = httpx.get(setup["url"] + "/v1/models", headers=bearer(setup["keys"]["clf_only"]))
    assert models.status_code == 403
    r = post(setup, "/v1/support/echo", {"texts": ["x"]}, "clf_only")
    assert r.status_code == 403


def test_a_key_over_its_rate_gets_429_with_retry_after(setup: dict) -> None:
    codes = [post(setup, "/v1/classify", {"texts": ["x"]}, "limited") for _ in range(4)]
    assert [r.status_code for r in codes[:2]] == [200, 200] and codes[-1].status_code == 429
    assert int(codes[-1].headers["retry-after"]) >= 1 and codes[-1].json()["error"]["type"] == "rate_limited"


def test_oversize_bodies_get_413_and_too_many_or_too_long_texts_get_422_naming_the_field(setup: dict) -> None:
    big = {"texts": ["x" * 90] * 40}
    assert post(setup, "/v1/classify", big).status_code == 413
    chunks = (json.dumps(big).encode()[i:i + 256] for i in range(0, 4000, 256))  # chunked: no Content-Length to check first
    r = httpx.post(setup["url"] + "/v1/classify", content=chunks, headers={**bearer(setup["keys"]["all"]), "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"
    cases = [({"texts": ["a"] * 5}, "texts"), ({"texts": ["a", "b" * 101]}, "texts[1]"), ({"texts": []}, "texts"),
             ({"texts": ["a"], "pairs": ["a", "b"]}, "pairs"), ({"texts": ["a"], "colour": "red"}, "colour"),
             ({"texts": ["a"], "top_k": 0}, "top_k")]
    for body, field in cases:
        r = post(setup, "/v1/classify", body)
        assert (r.status_code, r.json()["error"]["field"]) == (422, field), body
    r = post(setup, "/v1/generate", {"model": "gen", "prompt": "good", "max_new_tokens": 17})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "max_new_tokens")
    assert post(setup, "/v1/classify", {"model": "nope", "texts": ["a"]}).status_code == 404
    assert post(setup, "/v1/embed", {"model": "clf", "texts": ["a"]}).status_code == 422


def test_applications_mount_routers_with_the_same_keys_limits_and_metrics(setup: dict) -> None:
    r = post(setup, "/v1/support/echo", {"texts": ["good"]}, "support")
    assert r.status_code == 200 and r.json()["model"] == "clf"
    assert post(setup, "/v1/support/echo", {"texts": ["a"] * 5}, "support").status_code == 422
    assert post(setup, "/v1/support/echo", {"texts": ["a"]}, None).status_code == 401
    metrics = httpx.get(setup["url"] + "/metrics", headers=bearer(setup["keys"]["all"])).text
    assert 'lmforge_requests_total{code="200",model="clf",route="/v1/support/echo"}' in metrics


def test_metrics_count_requests_batches_queue_and_load_times(setup: dict) -> None:
    post(setup, "/v1/classify", {"texts": ["good"]})
    assert httpx.get(setup["url"] + "/metrics").status_code == 401
    text = httpx.get(setup["url"] + "/metrics", headers=bearer(setup["keys"]["all"])).text
    samples = {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}
    for name in ('lmforge_requests_total{code="200",model="clf",route="/v1/classify"}',
                 'lmforge_request_seconds_bucket{le="0.005",model="clf",route="/v1/classify"}',
                 'lmforge_batch_size_bucket{le="1.0",model="clf",operation="classify"}', "lmforge_queue_depth", "lmforge_queue_capacity",
                 "lmforge_in_flight_requests", 'lmforge_model_load_seconds{model="gen"}',
                 'lmforge_batch_seconds_count{model="clf",operation="classify"}'):
        assert name in samples, name
    assert 'code="401"' in text


def test_the_pii_corpus_leaves_no_pii_in_logs_or_the_store_and_masks_only_what_it_should(setup: dict) -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_service_logging("info", buffer)
    engine = setup["engine"]
    real = engine.slots["clf"].artifact
    try:
        for i in range(0, len(CORPUS), 4):
            assert post(setup, "/v1/classify", {"texts": [r["text"][:100] for r in CORPUS[i:i + 4]]}).status_code == 200
        engine.slots["clf"].artifact = type("Failing", (), {"predict": lambda self, texts, *a, **k: (_ for _ in ()).throw(
            ValueError(f"cannot read {texts}"))})()
        assert post(setup, "/v1/classify", {"texts": [CORPUS[0]["text"]]}).status_code == 500
        for row in CORPUS:
            logging.getLogger("lmforge.serving").info("input: %s", row["text"])
    finally:
        engine.slots["clf"].artifact = real
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert any(line.get("type") == "access" for line in lines) and any("cannot read" in line.get("error", "") for line in lines)
    logged = [line["msg"].removeprefix("input: ") for line in lines if line.get("msg", "").startswith("input: ")]
    assert logged == [row["masked"] for row in CORPUS]
    everything = buffer.getvalue() + setup["store"].read_text(encoding="utf-8")
    for row in CORPUS:
        if row["text"] != row["masked"]:
            for value in _values(row):
                assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", everything), value


def _values(row: dict[str, str]) -> list[str]:
    pieces = PLACEHOLDER.split(row["masked"])
    pattern = "(.+?)".join(re.escape(p) for p in pieces)
    return list(re.fullmatch(pattern, row["text"], re.DOTALL).groups())


@pytest.fixture
def slow(classifier_run: Path, tmp_path: Path) -> Iterator[tuple[str, str, Engine]]:
    """A service whose model takes 0.3 s a batch, one request per batch, two requests of queue, 1.5 s timeout."""
    store = tmp_path / "keys.json"
    secret = make_keys(store, all={"rate_per_minute": 0})["all"]
    cfg = ServeConfig(models={"clf": str(classifier_run)}, auth={"keys": str(store)},
                      batching={"max_batch_size": 1, "max_wait_ms": 0, "queue_size": 2}, server={"request_timeout_s": 1.5})
    engine = Engine.from_config(cfg)
    real = engine.slots["clf"].artifact
    engine.slots["clf"].artifact = type("Slow", (), {"predict": lambda self, *a, **k: time.sleep(0.3) or real.predict(*a, **k)})()
    with ServerThread(create_app(engine, cfg)) as server:
        yield server.url, secret, engine


def test_past_saturation_the_service_sheds_with_503_and_retry_after_never_other_5xx(slow: tuple[str, str, Engine]) -> None:
    url, secret, _ = slow
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: httpx.post(url + "/v1/classify", json={"texts": [f"t{i}"]}, headers=bearer(secret), timeout=30),
                                range(12)))
    codes = [r.status_code for r in answers]
    assert codes.count(200) >= 3 and set(codes) <= {200, 503, 504}, codes
    assert 503 in codes and all(int(r.headers["retry-after"]) >= 1 for r in answers if r.status_code == 503)


def test_a_request_past_its_timeout_gets_504(slow: tuple[str, str, Engine]) -> None:
    url, secret, engine = slow
    real = engine.slots["clf"].artifact
    engine.slots["clf"].artifact = type("Slower", (), {"predict": lambda self, *a, **k: time.sleep(2) or real.predict(*a, **k)})()
    r = httpx.post(url + "/v1/classify", json={"texts": ["x"]}, headers=bearer(secret), timeout=30)
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
