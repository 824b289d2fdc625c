"""The playground's models: each run is served by the service's own :class:`~lmforge.serving.engine.Engine`, loaded on first use.

A few engines stay loaded (least recently used first out), so switching between a run, its adapter
and its compressed variants does not reload each one every time. Attributions come from
:mod:`lmforge.evaluation.explain`: occlusion for anything with label probabilities, integrated
gradients for runs that hold a Hugging Face model and its tokenizer.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.evaluation import explain as explain_mod
from lmforge.serving.engine import Engine

EXPLAIN_METHODS = ("occlusion", "integrated_gradients")


class Playground:
    """Engines for the runs a person tries, loaded lazily and kept up to ``capacity`` at once.

    Args:
        capacity: Most runs kept loaded.
        device: ``cpu``, ``cuda``...; the GPU when there is one.
    """

    def __init__(self, capacity: int = 3, device: str | None = None) -> None:
        self.capacity, self.device = capacity, device
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def engine(self, name: str, path: Path) -> Engine:
        """The engine serving run ``name`` from ``path`` (loaded now when it is not yet)."""
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None:
                self._engines.move_to_end(name)
                return engine
            engine = Engine({name: str(path)}, max_batch_size=16, max_wait_ms=1.0, device=self.device)
            self._engines[name] = engine
            while len(self._engines) > self.capacity:
                self._engines.popitem(last=False)[1].close(drain=True, timeout=5)
            return engine

    def describe(self, name: str, path: Path) -> dict[str, Any]:
        """The run's served description (kind, operations, labels...) and whether it can be explained."""
        engine = self.engine(name, path)
        info = engine.models()[0]
        artifact = engine.slots[name].artifact
        info["explain"] = [m for m in EXPLAIN_METHODS if _explainable(artifact, m)]
        info["pair"] = bool((artifact.meta.get("data") or {}).get("text_pair_column")) or (artifact.meta.get("task") or {}).get("name") == "qa"
        return info

    def predict(self, name: str, path: Path, text: str, pair: str | None = None, top_k: int = 5) -> dict[str, Any]:
        """The run's prediction for ``text`` (and ``pair``), with the time it took in milliseconds."""
        engine = self.engine(name, path)
        started = time.perf_counter()
        if "classify" in engine.slots[name].operations:
            row = engine.classify([text], [pair] if pair else None, model=name, top_k=top_k, timeout=120)[0]
            kind = "classify"
        elif "generate" in engine.slots[name].operations:
            row, kind = {"generated": engine.generate(text, model=name, timeout=300)}, "generate"
        elif "embed" in engine.slots[name].operations:
            vector = engine.embed([text], model=name, timeout=120)[0]
            row, kind = {"dimensions": int(vector.shape[0]), "head": [round(float(v), 4) for v in vector[:8]]}, "embed"
        else:
            raise LmforgeError(f"run {name} can neither classify, generate nor embed; the playground has nothing to show for it")
        return {"run": name, "operation": kind, "result": _plain(row), "latency_ms": round(1000 * (time.perf_counter() - started), 1)}

    def stream(self, name: str, path: Path, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0) -> Iterator[str]:
        """Pieces of generated text as they are decoded."""
        engine = self.engine(name, path)
        return engine.generate(prompt, model=name, stream=True, timeout=300, max_new_tokens=max_new_tokens, temperature=temperature)

    def explain(self, name: str, path: Path, text: str, method: str = "occlusion") -> dict[str, Any]:
        """Per-word attributions of the run's predicted label for ``text``: scores, highlighted HTML and the time taken."""
        artifact = self.engine(name, path).slots[name].artifact
        if method not in EXPLAIN_METHODS:
            raise LmforgeError(f"explanation method must be one of {', '.join(EXPLAIN_METHODS)}; got {method!r}")
        if not _explainable(artifact, method):
            raise LmforgeError(f"run {name} ({artifact.kind}) cannot be explained by {method}; "
                               "explanations need a single-label classifier (integrated gradients: a Hugging Face model)")
        started = time.perf_counter()
        names = artifact.labels.names
        if method == "occlusion":
            found = explain_mod.occlusion(explain_mod.predictor_proba(artifact.predict, names), [text], label_names=names)[0]
        else:
            max_length = (artifact.meta.get("data") or {}).get("max_length")
            found = explain_mod.integrated_gradients(artifact.model, artifact.tokenizer, [text], label_names=names, n_steps=32,
                                                     max_length=max_length)[0]
        return {"run": name, "explanation": found.to_dict(), "html": explain_mod.to_html(found),
                "latency_ms": round(1000 * (time.perf_counter() - started), 1)}

    def close(self) -> None:
        """Stop every engine."""
        with self._lock:
            for engine in self._engines.values():
                engine.close(drain=False, timeout=5)
            self._engines.clear()


def _explainable(artifact: Any, method: str) -> bool:
    labels = getattr(artifact, "labels", None)
    if labels is None or getattr(labels, "kind", "") != "single" or "predict" not in artifact.capabilities:
        return False
    task = (artifact.meta.get("task") or {}).get("name", "classification")
    if task != "classification":
        return False
    if method == "integrated_gradients":
        fast = getattr(getattr(artifact, "tokenizer", None), "is_fast", False)
        return hasattr(artifact, "model") and fast and importlib.util.find_spec("captum") is not None
    return True


def _plain(value: Any) -> Any:
    """``value`` with numpy numbers and arrays turned into JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
