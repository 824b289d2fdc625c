"""``serve.yaml``: what a service loads and how it behaves, validated like the training configs.

A config names the models (name -> run directory, model folder or zoo name) and the service's
settings, section by section. ``lmforge serve RUN`` builds the same config for one run; ``key=value``
overrides (``batching.max_batch_size=64``) go on top either way.

.. code-block:: yaml

    models:
      sentiment: runs/sst2
      topic: runs/news-lora        # adapters over one base share its weights
    server: {port: 8000, workers: 4}
    batching: {max_batch_size: 32, max_wait_ms: 5, queue_size: 256}
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lmforge import config as config_mod
from lmforge.config import Section
from lmforge.errors import ConfigError
from lmforge.serving.auth import default_store_path
from lmforge.serving.guard import GuardConfig
from lmforge.serving.privacy import KINDS


class ServerConfig(Section):
    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 only behind a firewall or load balancer.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the API (0 picks a free one).")
    workers: int = Field(1, ge=1, le=64, description="Worker processes sharing one copy of the weights (forked after loading).")
    engine: Literal["local", "ray"] = Field("local", description="local: this machine's processes; ray: a Ray Serve deployment.")
    metrics_port: int | None = Field(None, ge=1, le=65535,
        description="Serve /metrics on this port without a key instead of on the API port with one.")
    request_timeout_s: float = Field(30.0, gt=0, le=3600, description="A request not answered in this time gets 504.")
    drain_timeout_s: float = Field(30.0, ge=0, le=3600, description="On SIGTERM, how long in-flight requests may take to finish.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger request bodies get 413.")
    threads: int | None = Field(None, ge=1, description="Torch threads per worker; the cores divided among the workers when unset.")


class BatchingConfig(Section):
    max_batch_size: int = Field(32, ge=1, le=4096, description="Most texts run through a model together.")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="How long a request waits for others to join its batch.")
    queue_size: int = Field(256, ge=1, description="Most requests waiting per worker; more get 503 with Retry-After.")
    threads: int = Field(1, ge=1, le=16, description="Threads running batches in each worker.")


class LimitsConfig(Section):
    max_items: int = Field(64, ge=1, description="Most texts (or pairs) in one request; more get 422.")
    max_text_chars: int = Field(10_000, ge=1, description="Longest text in characters; longer gets 422.")
    max_new_tokens: int = Field(512, ge=1, description="Most tokens one generate request may ask for.")


class AuthConfig(Section):
    enabled: bool = Field(True, description="Require an API key (Bearer) on every endpoint but /healthz and /readyz.")
    keys: str | None = Field(None, description="Key store file (`lmforge keys create` writes it); ~/.cache/lmforge/keys.json when unset.")

    def store_path(self) -> Path:
        """The key store this service reads."""
        return Path(self.keys).expanduser() if self.keys else default_store_path()


class PrivacyConfig(Section):
    redact_inputs: bool = Field(False, description="Mask PII in texts before the model sees them.")
    redact_outputs: bool = Field(False, description="Mask PII in generated text before it is returned or stored.")
    kinds: list[str] = Field(default_factory=lambda: list(KINDS), description="PII kinds to mask (logs always mask them).")

    @field_validator("kinds")
    @classmethod
    def _known(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"privacy.kinds has unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
        return kinds


class LoggingConfig(Section):
    access_log: bool = Field(True, description="One JSON line per request: id, route, model, key id, status, milliseconds.")
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level of the service.")
    store: str | None = Field(None, description="JSONL file of requests and outputs (PII masked); none when unset.")


class AlertsConfig(Section):
    webhook: str | None = Field(None, description="URL that gets a JSON POST when a rule fires (for deployments without Prometheus).")
    window_s: float = Field(60.0, gt=0, description="Seconds of traffic each check looks at.")
    check_every_s: float = Field(10.0, gt=0, description="Seconds between checks.")
    cooldown_s: float = Field(300.0, ge=0, description="Seconds before the same rule may fire again.")
    min_requests: int = Field(20, ge=1, description="Fewer requests in the window never fire the error-rate or latency rules.")
    error_rate: float = Field(0.05, gt=0, le=1, description="Share of 5xx answers that fires.")
    p99_ms: float = Field(2000.0, gt=0, description="99th-percentile latency in milliseconds that fires.")
    queue_saturation: float = Field(0.8, gt=0, le=1, description="Share of the queue in use that fires.")


class RayConfig(Section):
    min_replicas: int = Field(1, ge=0, description="Fewest replicas the autoscaler keeps.")
    max_replicas: int = Field(4, ge=1, description="Most replicas the autoscaler starts.")
    target_ongoing_requests: float = Field(16.0, gt=0, description="Requests per replica the autoscaler aims for.")
    num_cpus: float = Field(1.0, gt=0, description="CPUs each replica reserves.")
    address: str | None = Field(None, description="Ray cluster to join (ray://host:10001 or auto); a local one when unset.")

    @model_validator(mode="after")
    def _order(self) -> RayConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"ray.min_replicas ({self.min_replicas}) must not exceed ray.max_replicas ({self.max_replicas})")
        return self


class ServeConfig(Section):
    models: dict[str, str] = Field(description="Model name -> run directory, model folder or zoo name.")
    default_model: str | None = Field(None, description="Model used when a request names none; the first one when unset.")
    server: ServerConfig = Field(default_factory=ServerConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig, description="Input and output filters of generation (blocklist, PII, lengths).")
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @model_validator(mode="after")
    def _models(self) -> ServeConfig:
        if not self.models:
            raise ValueError("models must name at least one model, e.g. models: {sentiment: runs/sst2}")
        bad = [n for n in self.models if not n or "/" in n or n != n.strip()]
        if bad:
            raise ValueError(f"model name {bad[0]!r} must be a plain name without '/' or spaces (it appears in URLs and metrics)")
        if self.default_model is not None and self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not one of models ({', '.join(self.models)})")
        return self

    @property
    def default(self) -> str:
        """The model a request that names none uses."""
        return self.default_model or next(iter(self.models))


def require_serve_extra() -> None:
    """Raise unless the serve extra (FastAPI, uvicorn, prometheus-client) is installed."""
    missing = [name for name in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"lmforge serve needs {', '.join(missing)}: pip install 'lmforge[serve]'")


def _name_of(run: str) -> str:
    path = Path(run)
    name = (path.parent.name if path.name == "model" else path.name) or "default"
    return name.replace(" ", "-")


def load_serve_config(source: str | Path | dict[str, Any] | ServeConfig, overrides: list[str] | None = None) -> ServeConfig:
    """The service config of a ``serve.yaml``, a dict, or a single run (served under its folder's name).

    Args:
        source: A YAML file (``.yaml``/``.yml``), a config dict or object, or a run directory, model folder or zoo name.
        overrides: ``key.sub=value`` items laid over it (``server.workers=4``).

    Raises:
        ConfigError: One sentence naming the key and what it accepts.
    """
    if isinstance(source, (str, Path)) and Path(source).suffix not in (".yaml", ".yml"):
        source = {"models": {_name_of(str(source)): str(source)}}
    elif isinstance(source, (str, Path)) and not Path(source).is_file():
        raise ConfigError(f"serve config {source} not found; give a serve.yaml or a run directory")
    return config_mod.load(ServeConfig, source, overrides)
