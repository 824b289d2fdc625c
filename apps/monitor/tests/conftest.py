"""A keyword scorer instead of the model, a small watchlist, a temporary SQLite store, and a served app."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmforge.serving import Engine  # noqa: E402
from lmforge.serving.auth import create_key  # noqa: E402
from lmforge.serving.config import ServeConfig  # noqa: E402
from lmforge.serving.http import create_app  # noqa: E402

from lmforge_monitor.config import MonitorConfig  # noqa: E402
from lmforge_monitor.entities import Candidates, Watchlist  # noqa: E402
from lmforge_monitor.pipeline import Monitor  # noqa: E402
from lmforge_monitor.sentiment import Scorer  # noqa: E402
from lmforge_monitor.web import build_router  # noqa: E402
from monitor_fakes import FakeNer, keyword_explain, keyword_scores, make_config  # noqa: E402

SHARED_DATA = Path(os.environ.get("LMFORGE_SHARED_DATA") or Path(__file__).resolve().parents[3].parent / "shared" / "data")
APP = Path(__file__).resolve().parents[1]
@pytest.fixture
def cfg(tmp_path: Path) -> MonitorConfig:
    return make_config(tmp_path)


@pytest.fixture
def monitor(cfg: MonitorConfig) -> Monitor:
    return Monitor(cfg, Scorer(keyword_scores, batch=8), Watchlist.from_yaml(cfg.path(cfg.paths.watchlist)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """uvicorn on 127.0.0.1 in a thread, stopped on exit (bounded start wait)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start within 60 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The monitor's routes on lmforge's service (keys on), a keyword scorer, and a key scoped to everything."""
    tmp = tmp_path_factory.mktemp("served")
    cfg = make_config(tmp)
    keys = tmp / "keys.json"
    key = create_key(keys, "test", rate=0)
    ingest_only = create_key(keys, "pusher", endpoints=["ingest"], rate=0)
    serve_cfg = ServeConfig(models={"sentiment": "minilm-l6"}, auth={"keys": str(keys)})
    engine = Engine.from_config(serve_cfg, start=False)
    watchlist = Watchlist.from_yaml(cfg.path(cfg.paths.watchlist))
    monitor = Monitor(cfg, Scorer(keyword_scores, batch=8, explain=keyword_explain), watchlist,
                      candidates=Candidates(FakeNer(), watchlist, ["ORG"]))
    with Served(create_app(engine, serve_cfg, extra_routers=[build_router(monitor)])) as server:
        yield {"url": server.url, "key": key, "ingest_key": ingest_only, "monitor": monitor}
