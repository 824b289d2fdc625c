"""The models a service holds: each loaded through :func:`lmforge.artifacts.load`, adapters over one base shared.

Adapter runs trained on the same base model go into one :class:`lmforge.artifacts.AdapterSet`, so
the base weights are in memory once however many adapters are served. Everything else is one
artifact per name. What a model can do is what its artifact says (``capabilities``): the service
offers classify for ``predict`` with labels, embed for ``embed``, generate for ``generate``,
whatever the backend (PyTorch, ONNX Runtime...). Runs of the span tasks predict spans, not labels:
a ``ner`` run offers ner (entities with character offsets), a ``qa`` run offers qa (answers picked
from a context).
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge import artifacts
from lmforge.errors import LmforgeError

_LOG = logging.getLogger("lmforge.serving")

# Service operations and the artifact capability each needs.
OPERATIONS = {"classify": "predict", "embed": "embed", "generate": "generate"}
# Tasks whose predictions are spans: their runs offer this operation instead of classify.
SPAN_OPERATIONS = {"ner": "ner", "qa": "qa"}


@dataclass
class ModelSlot:
    """One served model.

    Attributes:
        name: The name requests use.
        run: Where it was loaded from (run directory, folder or zoo name).
        artifact: What :func:`lmforge.artifacts.load` (or an ``AdapterSet``) returned.
        operations: Service operations it supports (classify, embed, generate, ner, qa).
        shared_base: The base model it shares with other adapters, if any.
        version: When its ``lmforge.json`` was written (ISO time), to tell a reloaded run from the old one.
        load_seconds: Seconds its loading took (shared loading split among the adapters).
    """

    name: str
    run: str
    artifact: Any
    operations: tuple[str, ...]
    shared_base: str | None = None
    version: str | None = None
    load_seconds: float = 0.0
    loaded_at: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    _info: dict[str, Any] | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` shows: name, kind, operations, labels, base model and version."""
        if self._info is None:
            # describe() walks the model folder for its size: once per load, not once per request.
            self._info = self.artifact.describe()
        info = self._info
        return {"name": self.name, "run": self.run, "kind": info.get("kind"), "task": info.get("task"),
                "operations": list(self.operations), "labels": info.get("labels"), "base_model": info.get("base_model"),
                "shared_base": self.shared_base, "version": self.version, "loaded_at": self.loaded_at,
                "load_seconds": round(self.load_seconds, 3), "inputs": info.get("inputs")}


def operations_of(artifact: Any) -> tuple[str, ...]:
    """The service operations an artifact supports, from its capabilities (classify needs labels too; span tasks offer ner or qa)."""
    caps = set(getattr(artifact, "capabilities", ()))
    task = ((getattr(artifact, "meta", None) or {}).get("task") or {}).get("name")
    if task in SPAN_OPERATIONS:
        return (SPAN_OPERATIONS[task],) if "predict" in caps else ()
    ops = [op for op, cap in OPERATIONS.items() if cap in caps]
    if "classify" in ops and getattr(artifact, "labels_or_none", None) is None and getattr(artifact, "labels", None) is None:
        ops.remove("classify")
    return tuple(ops)


def _meta(run: str) -> dict[str, Any] | None:
    """The run's ``lmforge.json``, or None for a zoo name or plain transformers folder."""
    path = Path(run)
    if not any((p / artifacts.META_FILE).is_file() for p in (path, path / "model")):
        return None
    return artifacts.read_meta(artifacts.model_dir(path))


def _version(run: str) -> str | None:
    path = Path(run)
    for folder in (path / "model", path):
        meta = folder / artifacts.META_FILE
        if meta.is_file():
            stamp = datetime.datetime.fromtimestamp(meta.stat().st_mtime, datetime.timezone.utc)
            return stamp.isoformat(timespec="milliseconds")
    return None


def _load_adapters(group: dict[str, str], base: str, device: str | None) -> dict[str, ModelSlot]:
    start = time.perf_counter()
    adapters = artifacts.load_adapters(group, device)
    for name, run in group.items():
        if not hasattr(adapters[name], "meta"):
            # AdapterSet's members skip load(), which sets kind and meta; describe() needs both.
            adapters[name].meta = artifacts.read_meta(artifacts.model_dir(run))
    seconds = (time.perf_counter() - start) / len(group)
    _LOG.info("loaded adapters %s over one copy of %s (%.1f MB shared)", ", ".join(group), base, adapters.shared_bytes() / 1e6)
    return {name: ModelSlot(name, run, adapters[name], operations_of(adapters[name]), base, _version(run), seconds)
            for name, run in group.items()}


def load_models(models: Mapping[str, str | Path], device: str | None = None) -> dict[str, ModelSlot]:
    """Load every model of ``models`` (name -> run, folder or zoo name).

    Args:
        models: The models to serve, by name.
        device: ``cpu``, ``cuda``...; the GPU when there is one.

    Returns:
        The slots by name, in the order of ``models``.

    Raises:
        LmforgeError: A run cannot be loaded (one sentence naming it), or a model supports no service operation.
    """
    slots: dict[str, ModelSlot] = {}
    by_base: dict[str, dict[str, str]] = {}
    for name, run in models.items():
        meta = _meta(str(run))
        if meta is not None and meta.get("kind") == "adapter":
            by_base.setdefault(str(meta.get("base_model")), {})[name] = str(run)
            continue
        start = time.perf_counter()
        artifact = artifacts.load(run, device)
        slots[name] = ModelSlot(name, str(run), artifact, operations_of(artifact), None, _version(str(run)), time.perf_counter() - start)
        _LOG.info("loaded %s (%s) from %s in %.1f s", name, artifact.kind, run, slots[name].load_seconds)
    for base, group in by_base.items():
        slots |= _load_adapters(group, base, device)
    for slot in slots.values():
        if not slot.operations:
            raise LmforgeError(f"model {slot.name} ({slot.run}) is a {slot.artifact.kind} artifact that can neither classify, "
                               "embed, generate, tag entities nor answer questions; serve a fine-tuned, encoder or generator run")
    return {name: slots[name] for name in models}
