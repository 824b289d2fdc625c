"""Prometheus metrics of the service: requests, latency, batches, queue, in-flight requests and load times.

With several worker processes, every process writes its values to files in one folder
(prometheus_client's multiprocess mode) and ``/metrics`` adds them up, whichever worker answers.
``deploy/prometheus/alerts.yml`` holds alerting rules over these names.
"""

from __future__ import annotations

import os
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Seconds; a classify request on CPU takes milliseconds, a long generation tens of seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess(directory: str | Path) -> None:
    """Switch prometheus_client to multiprocess mode with its files in ``directory``; call before creating :class:`Metrics`.

    prometheus_client picks its value storage when it is imported; this makes the same choice again
    now that the folder is known, so the server need not set the variable before any import.
    """
    Path(directory).mkdir(parents=True, exist_ok=True)
    os.environ[_MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()


def process_exited(pid: int) -> None:
    """Drop the live gauges (queue depth, in-flight) of a worker process that has exited."""
    if os.environ.get(_MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


class Metrics:
    """The service's metrics in a registry of their own (several apps in one process do not collide).

    It is also the engine's :class:`~lmforge.serving.engine.Observer`: batch sizes, queue depth and
    model load times come from the engine, requests and latency from the HTTP middleware.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("lmforge_requests", "Requests answered, by route, model and HTTP status.",
                                ["route", "model", "code"], registry=r)
        self.latency = Histogram("lmforge_request_seconds", "Time from request to the end of the response.",
                                 ["route", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("lmforge_batch_size", "Texts per forward pass.", ["model", "operation"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("lmforge_batch_seconds", "Time of one batch through the model.", ["model", "operation"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.queue = Gauge("lmforge_queue_depth", "Requests waiting for a batch.", registry=r, multiprocess_mode="livesum")
        self.capacity = Gauge("lmforge_queue_capacity", "Requests the queue holds before answering 503.", registry=r,
                              multiprocess_mode="livesum")
        self.in_flight = Gauge("lmforge_in_flight_requests", "Requests being handled.", registry=r, multiprocess_mode="livesum")
        self.load_seconds = Gauge("lmforge_model_load_seconds", "Seconds the last load of each model took.", ["model"],
                                  registry=r, multiprocess_mode="mostrecent")

    def request(self, route: str, model: str, code: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(route, model, str(code)).inc()
        self.latency.labels(route, model).observe(seconds)

    def batch(self, model: str, operation: str, items: int, seconds: float) -> None:
        """Observe one batch (engine callback)."""
        self.batch_size.labels(model, operation).observe(items)
        self.batch_seconds.labels(model, operation).observe(seconds)

    def queue_depth(self, depth: int, capacity: int) -> None:
        """Set the queue gauges (engine callback)."""
        self.queue.set(depth)
        self.capacity.set(capacity)

    def model_loaded(self, model: str, seconds: float) -> None:
        """Record a model's load time (engine callback)."""
        self.load_seconds.labels(model).set(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type; across all worker processes in multiprocess mode."""
        return render_registry(self.registry)


def render_registry(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """Exposition of ``registry``, or of every process's files in multiprocess mode."""
    if os.environ.get(_MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry or prometheus_client.REGISTRY), CONTENT_TYPE_LATEST


def start_metrics_server(port: int, host: str, metrics: Metrics | None = None) -> None:
    """Serve ``/metrics`` without a key on ``host:port`` from a thread (for a port that only Prometheus reaches).

    In multiprocess mode it adds up every worker's files; otherwise it serves ``metrics``' registry.
    """
    if os.environ.get(_MULTIPROC_ENV) or metrics is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = metrics.registry
    prometheus_client.start_http_server(port, addr=host, registry=registry)
