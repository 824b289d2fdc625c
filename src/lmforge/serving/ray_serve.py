"""Scale-out on Ray Serve: the same engine and HTTP app as a Ray Serve deployment with autoscaling.

``lmforge serve serve.yaml --engine ray`` (``pip install 'lmforge[cluster]'``) starts or joins a Ray
cluster and deploys one replica type: each replica builds an :class:`~lmforge.serving.engine.Engine`
and serves :func:`~lmforge.serving.http.create_app` over it, so the endpoints, keys, limits and
metrics are those of ``lmforge serve``. Ray Serve adds replicas between ``ray.min_replicas`` and
``ray.max_replicas`` to keep about ``ray.target_ongoing_requests`` requests on each.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import lmforge
from lmforge.errors import LmforgeError
from lmforge.serving.config import ServeConfig
from lmforge.serving.engine import Engine
from lmforge.serving.http import create_app
from lmforge.serving.logs import mask_handlers
from lmforge.serving.metrics import Metrics

_LOG = logging.getLogger("lmforge.serving")
APP_NAME = "lmforge"


class Replica:
    """One Ray Serve replica: an engine over the configured models and the service's FastAPI app.

    Args:
        config: The service config as JSON-ready values (what Ray sends to the replica).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = ServeConfig.model_validate(config)
        self.metrics = Metrics()
        self.engine = Engine.from_config(self.cfg, observer=self.metrics)
        self.service_app = create_app(self.engine, self.cfg, metrics=self.metrics)
        mask_handlers()

    def __serve_build_asgi_app__(self) -> Any:
        """The ASGI app Ray Serve routes this replica's requests to."""
        return self.service_app


def _ray() -> tuple[Any, Any]:
    try:
        import ray  # optional: lmforge[cluster]
        from ray import serve  # optional: lmforge[cluster]
    except ImportError:
        raise LmforgeError("--engine ray needs Ray Serve: pip install 'lmforge[cluster]'") from None
    return ray, serve


def build_application(cfg: ServeConfig) -> Any:
    """The Ray Serve application of ``cfg``: the replica class with autoscaling, bound to the config."""
    _, serve = _ray()
    r = cfg.ray
    deployment = serve.deployment(
        serve.ingress()(Replica), name=APP_NAME,
        autoscaling_config={"min_replicas": r.min_replicas, "max_replicas": r.max_replicas,
                            "target_ongoing_requests": r.target_ongoing_requests},
        # Requests past this wait in Ray's router; the engine's own queue bound answers 503 beyond it.
        max_ongoing_requests=max(1, cfg.batching.queue_size),
        ray_actor_options={"num_cpus": r.num_cpus},
        health_check_period_s=10)
    return deployment.bind(cfg.model_dump(mode="json"))


def start_ray(cfg: ServeConfig) -> str:
    """Start (or join, with ``ray.address``) Ray, deploy the application, and return its URL."""
    ray, serve = _ray()
    if not ray.is_initialized():
        if cfg.ray.address:
            ray.init(address=cfg.ray.address, logging_level=logging.WARNING)
        else:
            # A local cluster on the loopback address only: nothing outside this machine can join it. Its
            # workers import the same lmforge as this process (a source checkout need not be installed).
            source = str(Path(lmforge.__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": {"PYTHONPATH": path, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}})
    serve.start(http_options={"host": cfg.server.host, "port": cfg.server.port})
    serve.run(build_application(cfg), name=APP_NAME, route_prefix="/")
    return f"http://{cfg.server.host}:{cfg.server.port}"


def stop_ray() -> None:
    """Delete the application and stop Serve and the Ray instance this process started."""
    ray, serve = _ray()
    serve.shutdown()
    ray.shutdown()


def run_ray(cfg: ServeConfig) -> int:
    """Deploy on Ray Serve and block until SIGTERM or SIGINT, then shut the deployment down."""
    url = start_ray(cfg)
    _LOG.info("Ray Serve deployment %s at %s (%d-%d replicas)", APP_NAME, url, cfg.ray.min_replicas, cfg.ray.max_replicas)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    stop_ray()
    return 0
