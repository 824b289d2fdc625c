"""The service: a fitted recommender and its store behind lmforge's HTTP app, and a loopback runner for tests.

``build(config_path)`` fits the recommender on the configured ratings (seconds; item embeddings
are cached), opens the store and returns the FastAPI app that ``lmforge app recommend serve``
runs with uvicorn. The engine under the app serves the sentence encoder as model ``text``
(``POST /v1/embed`` works too), and free-text requests are embedded through it, so they are
batched with other callers and counted in the service's metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from lmforge.errors import LmforgeError
from lmforge.serving import Engine, create_app, load_serve_config
from lmforge.serving.config import ServeConfig

from lmforge_recommend.api import build_router
from lmforge_recommend.config import RecommendConfig, load_config
from lmforge_recommend.embeddings import cache_dir
from lmforge_recommend.recommender import Recommender
from lmforge_recommend.store import Store, default_url

log = logging.getLogger("lmforge.recommend")


def service_config(config: RecommendConfig, overrides: list[str] | None = None) -> ServeConfig:
    """lmforge's service config: the ``service`` section over ``models: {text: model.text_model}``."""
    return load_serve_config({"models": {"text": config.model.text_model}} | config.service, overrides)


def open_store(config: RecommendConfig) -> Store:
    """The configured store, or the SQLite file in the application's data folder."""
    return Store(config.store.url or default_url(cache_dir()))


def create(rec: Recommender, store: Store, serve_config: ServeConfig, engine: Engine | None = None) -> FastAPI:
    """The service app with the recommendation routes mounted.

    Args:
        rec: A fitted recommender.
        store: Profiles and feedback.
        serve_config: lmforge's service settings (keys, limits, logging).
        engine: The engine under the app; built (not started) from ``serve_config`` when None.
    """
    engine = engine or Engine.from_config(serve_config, start=False)
    if serve_config.models.get("text") == rec.config.model.text_model:
        rec.query_embed = lambda texts, model: engine.embed(texts, model="text")
    return create_app(engine, serve_config, extra_routers=[build_router(rec, store)])


def build(config_path: str | Path, overrides: list[str] | None = None, data_dir: str | Path | None = None) -> tuple[FastAPI, ServeConfig]:
    """Fit the recommender a ``config.yaml`` describes (on the files in ``data_dir`` when given) and return the app and its service config."""
    config, _ = load_config(config_path)
    serve_config = service_config(config, overrides)
    started = time.perf_counter()
    log.info("fitting the recommender on %s (first start embeds the catalogue)", config.data.ratings)
    rec = Recommender.from_config(config_path, data_dir)
    log.info("recommender ready in %.1f s", time.perf_counter() - started)
    return create(rec, open_store(config), serve_config), serve_config


class LoopbackServer:
    """Serve an app with uvicorn on 127.0.0.1 and a free port in a thread (tests and benchmarks); a context manager.

    Args:
        app: The ASGI app.
        timeout: Seconds to wait for the server to start.
    """

    def __init__(self, app: Any, timeout: float = 120.0) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.timeout = timeout
        self.url = ""

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise LmforgeError(f"the server did not start within {self.timeout:g} s")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
