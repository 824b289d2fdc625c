"""Several adapters on one base model in one process, chosen by name on every call.

Each adapter keeps its own small modules and head, and all of them use one copy of the
base model's weights: loading another adapter costs its own parameters, not another base
model. Calls for different adapters share no mutable state, so a server can route each
request to its adapter from several threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lmforge.errors import LmforgeError


class AdapterSet:
    """Named adapter runs over one shared base model.

    Args:
        device: ``cpu``, ``cuda``...; the GPU when there is one.

    Example:
        >>> adapters = lmforge.load_adapters({"sentiment": "runs/sst2-lora", "topic": "runs/news-lora"})
        >>> adapters.predict(["great movie"], adapter="sentiment")
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self.base_model: str | None = None
        self._predictors: dict[str, Any] = {}
        self._tensors: dict[str, torch.Tensor] = {}

    def add(self, name: str, run: str | Path) -> None:
        """Load the adapter run ``run`` under ``name``; it must be trained on the same base model."""
        from lmforge.artifact import load, model_dir, read_meta
        from lmforge.models.build import resolve
        from lmforge.tuning import parse_options, shared_parameters

        if name in self._predictors:
            raise LmforgeError(f"an adapter named {name!r} is already loaded; choose another name")
        path = model_dir(run)
        meta = read_meta(path)
        if meta.get("kind") != "adapter":
            raise LmforgeError(f"{path} holds a fully fine-tuned model, not an adapter; only runs trained with "
                               "a tuning method (tuning.method: lora...) can share a base model")
        base = resolve(meta["base_model"])
        if self.base_model is not None and base != self.base_model:
            raise LmforgeError(f"{path} was trained on {base}, the other adapters on {self.base_model}; "
                               "an adapter set shares one base model")
        predictor = load(path, self.device)
        for param_name, param in shared_parameters(predictor.model, parse_options(meta["tuning"])):
            self._share(param_name, param)
        self.base_model = base
        self._predictors[name] = predictor

    def _share(self, name: str, param: torch.nn.Parameter) -> None:
        # The first adapter's copy of each base weight becomes everyone's; a weight that differs
        # (a head built fresh, a bias BitFit trained) keeps its own copy.
        ref = self._tensors.get(name)
        if ref is None:
            self._tensors[name] = param.data
        elif ref is not param.data and ref.shape == param.shape and torch.equal(ref, param.data):
            param.data = ref

    @property
    def names(self) -> list[str]:
        """The loaded adapters' names, in loading order."""
        return list(self._predictors)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._predictors[name]
        except KeyError:
            known = ", ".join(self._predictors) or "(none loaded)"
            raise LmforgeError(f"no adapter named {name!r}; loaded: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._predictors

    def __iter__(self) -> Iterator[str]:
        return iter(self._predictors)

    def __len__(self) -> int:
        return len(self._predictors)

    def predict(self, texts: list[str], adapter: str, pairs: list[str] | None = None, top_k: int = 1,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions of the adapter named ``adapter`` (see ``Predictor.predict``)."""
        return self[adapter].predict(texts, pairs, top_k=top_k, batch_size=batch_size)

    def evaluate(self, source: str | Path, adapter: str, **kwargs: Any) -> dict[str, Any]:
        """Metrics of the adapter named ``adapter`` on a labeled file (see ``Predictor.evaluate``)."""
        return self[adapter].evaluate(source, **kwargs)

    def shared_bytes(self) -> int:
        """Bytes of base-model weights held once for all adapters."""
        return sum(t.numel() * t.element_size() for t in self._tensors.values())


def load_adapters(runs: dict[str, str | Path], device: str | None = None) -> AdapterSet:
    """Load adapter runs (name -> run directory) over one shared base model."""
    adapters = AdapterSet(device)
    for name, run in runs.items():
        adapters.add(name, run)
    return adapters
