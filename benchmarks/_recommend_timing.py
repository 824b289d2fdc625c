"""Timings for the recommendation benchmark: latency of recommend() in process and through HTTP, batch top-k with numpy vs FAISS."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from lmforge_recommend.app import LoopbackServer, create, service_config
from lmforge_recommend.store import Store, default_url
from threadpoolctl import threadpool_limits


def latency_ms(recommender: Any, calls: int = 500, seed: int = 0) -> dict[str, float]:
    """Percentiles of ``recommend()`` wall time for random training users, a 3-film new user and a text request.

    Text requests are new each time, so each one runs the sentence encoder on the CPU.
    """
    rng = np.random.default_rng(seed)
    users = rng.choice(recommender.inter.user_ids, size=calls)
    liked = rng.choice(recommender.catalogue.ids[recommender.warm], size=(calls // 5, 3), replace=True)
    for user in users[:20]:  # first calls fill caches and page in the matrices
        recommender.recommend(user_id=int(user))
    recommender.recommend(text="warm-up request")  # loads the sentence encoder once
    known = _times(lambda i: recommender.recommend(user_id=int(users[i]), k=10), calls)
    new = _times(lambda i: recommender.recommend(liked_items=[int(x) for x in liked[i]], k=10), len(liked))
    nonce = time.time_ns()  # texts never seen before, so the on-disk embedding cache cannot answer them
    topics = ["space", "love", "war", "robots"]
    text = _times(lambda i: recommender.recommend(text=f"a film about {topics[i % 4]}, request {nonce}-{i}", k=10), 50)
    return {"recommend_p50_ms": float(np.percentile(known, 50)), "recommend_p99_ms": float(np.percentile(known, 99)),
            "recommend_calls": calls, "liked_items_p99_ms": float(np.percentile(new, 99)),
            "text_request_p99_ms": float(np.percentile(text, 99))}


def http_latency_ms(recommender: Any, calls: int = 500, budget_s: float = 120.0, seed: int = 0) -> dict[str, float]:
    """Percentiles of ``POST /v1/recommend`` round trips on 127.0.0.1, one client on a kept-alive connection.

    The service is the application's own app on lmforge's service (engine serving the text model,
    middleware, metrics, the SQLite store recording each list served) without keys or access log
    lines; random training users, then new free-text requests (embedded by the engine). The loop
    stops after ``calls`` requests or ``budget_s`` seconds, whichever comes first.
    """
    rng = np.random.default_rng(seed)
    users = rng.choice(recommender.inter.user_ids, size=calls)
    config = recommender.config.model_copy(update={"service": {"auth": {"enabled": False}, "logging": {"access_log": False}}})
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(default_url(Path(tmp)))
        app = create(recommender, store, service_config(config))
        with LoopbackServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            for user in users[:20]:
                client.post("/v1/recommend", json={"user_id": int(user), "k": 10}).raise_for_status()
            deadline = time.monotonic() + budget_s
            known = _times(lambda i: client.post("/v1/recommend", json={"user_id": int(users[i]), "k": 10}).raise_for_status(), calls, deadline)
            nonce = time.time_ns()
            text = _times(lambda i: client.post("/v1/recommend", json={"text": f"a film about robots, request {nonce}-{i}"}).raise_for_status(),
                          50, deadline + 30)
        store.close()
    return {"http_recommend_p50_ms": float(np.percentile(known, 50)), "http_recommend_p99_ms": float(np.percentile(known, 99)),
            "http_recommend_calls": int(len(known)), "http_text_request_p99_ms": float(np.percentile(text, 99))}


def scoring_backends(recommender: Any, vectors: np.ndarray, repeats: int = 10) -> dict[str, Any]:
    """Exact top-10 for every training user against every item: numpy product + argpartition vs a FAISS flat index.

    Two query sets: folded-in ALS user factors (F dims) and text profiles (D dims). One thread each.
    """
    import faiss  # optional: only this measurement uses it

    signals = recommender.ranker.signals
    seen = recommender.inter.seen
    queries = {"als": (signals.als.fold_in(seen), signals.als.item_factors),
               "text": (_unit(np.asarray(seen @ vectors)), vectors)}
    out: dict[str, Any] = {}
    faiss.omp_set_num_threads(1)
    with threadpool_limits(1):
        for name, (users, items) in queries.items():
            users, items = np.ascontiguousarray(users, dtype=np.float32), np.ascontiguousarray(items, dtype=np.float32)
            index = faiss.IndexFlatIP(items.shape[1])
            index.add(items)
            exact = _numpy_top(users, items)
            out[f"{name}_dims"] = int(items.shape[1])
            out[f"{name}_numpy_batch_ms"] = _best(lambda u=users, i=items: _numpy_top(u, i), repeats)
            out[f"{name}_faiss_batch_ms"] = _best(lambda u=users, x=index: x.search(u, 10), repeats)
            out[f"{name}_numpy_one_us"] = _best(lambda u=users, i=items: [_numpy_top(u[j:j + 1], i) for j in range(100)], repeats) * 10
            out[f"{name}_faiss_one_us"] = _best(lambda u=users, x=index: [x.search(u[j:j + 1], 10) for j in range(100)], repeats) * 10
            out[f"{name}_same_top10"] = float((np.sort(index.search(users, 10)[1], 1) == np.sort(exact, 1)).mean())
    out["users"] = int(seen.shape[0])
    out["items"] = int(seen.shape[1])
    return out


def _numpy_top(users: np.ndarray, items: np.ndarray, k: int = 10) -> np.ndarray:
    scores = users @ items.T  # (U, I)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1), axis=1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _best(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` runs in ms: other processes on a shared machine only ever slow a run down."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(min(times))


def _times(fn: Callable[[int], object], n: int, deadline: float | None = None) -> np.ndarray:
    """Milliseconds of ``fn(0) ... fn(n - 1)``, stopping early past ``deadline`` (``time.monotonic``)."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
        if deadline is not None and time.monotonic() > deadline:
            break
    return np.asarray(out)
