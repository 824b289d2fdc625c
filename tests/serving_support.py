"""What the service's tests share: tiny runs, a key store, and a server on a free loopback port in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import uvicorn

from lmforge.artifacts import save_adapter, save_model
from lmforge.config import DataConfig, ModelConfig, TaskConfig, parse_options
from lmforge.data.labels import LabelSpace
from lmforge.models.build import load_tokenizer
from lmforge.serving.auth import KeyStore
from lmforge.tasks import get_task
from lmforge.tuning import apply_tuning

CHEAP_SCRYPT = 2**4  # the real cost (2**14) is for real keys; tests create many


def build_classifier_run(base: Path, out: Path, seed: int = 0) -> Path:
    """A classifier run over ``base`` with an untrained head (labels negative/positive), saved as lmforge saves one."""
    task_cfg = TaskConfig(name="classification")
    labels = LabelSpace("single", ["negative", "positive"])
    torch.manual_seed(seed)
    model = get_task(task_cfg).build_model(str(base), labels, ModelConfig())
    save_model(out / "model", model, load_tokenizer(str(base)), task_cfg, labels, DataConfig(max_length=32), str(base))
    return out


def build_adapter_run(base: Path, out: Path, seed: int = 0) -> Path:
    """A LoRA adapter run over ``base`` (untrained, random head), saved as lmforge saves one."""
    task_cfg, tuning = TaskConfig(name="classification"), parse_options({"method": "lora"})
    labels = LabelSpace("single", ["negative", "positive"])
    torch.manual_seed(seed)
    model = apply_tuning(get_task(task_cfg).build_model(str(base), labels, ModelConfig()), tuning)
    save_adapter(out / "model", model, task_cfg, labels, DataConfig(max_length=32), str(base), tuning)
    return out


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_keys(path: Path, **scopes: dict[str, Any]) -> dict[str, str]:
    """Create one key per name in ``scopes`` (its create() arguments) and return name -> secret."""
    store = KeyStore(path, scrypt_n=CHEAP_SCRYPT)
    return {name: store.create(name, **args)[1] for name, args in scopes.items()}


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header of ``secret``."""
    return {"Authorization": f"Bearer {secret}"}


class ServerThread:
    """uvicorn serving ``app`` on a free 127.0.0.1 port from a thread, started and stopped by a ``with`` block."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def served(app: Any) -> Iterator[ServerThread]:
    """Serve ``app`` for the duration of a fixture."""
    with ServerThread(app) as server:
        yield server
