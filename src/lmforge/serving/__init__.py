"""Serving: an engine with HTTP and Ray Serve faces over it.

``Engine`` (micro-batching over loaded runs, no HTTP), ``create_app`` (the FastAPI app over an
engine), ``load_serve_config`` (``serve.yaml``) and ``serve`` (what ``lmforge serve`` runs) are
imported on first use, so ``lmforge.serving.auth`` and ``lmforge.serving.privacy`` load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> "module:attribute", resolved on first access.
_PUBLIC: dict[str, str] = {
    "Engine": "lmforge.serving.engine:Engine",
    "ServeConfig": "lmforge.serving.config:ServeConfig",
    "load_serve_config": "lmforge.serving.config:load_serve_config",
    "create_app": "lmforge.serving.http:create_app",
    "require_key": "lmforge.serving.api:require_key",
    "serve": "lmforge.serving.server:serve",
}


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'lmforge.serving' has no attribute {name!r}")
    module, attribute = target.split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = list(_PUBLIC)
