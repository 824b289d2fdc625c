"""Kind ``adapter``: a parameter-efficient run (LoRA, IA3, prefix, prompt, BitFit, adapters) over its base model.

The folder holds only what the method trained (peft's own format for peft methods); the base
model is loaded from ``base_model``. :class:`AdapterSet` serves several adapters on one shared
copy of the base weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmforge.artifacts.base import ARTIFACTS, model_dir, read_meta, write_meta
from lmforge.artifacts.classifier import TaskModel
from lmforge.config import DataConfig, ModelConfig, TaskConfig, TuningConfig
from lmforge.data.labels import LabelSpace
from lmforge.devices import default_device
from lmforge.errors import LmforgeError
from lmforge.models.build import load_tokenizer, resolve
from lmforge.tasks import get_task
from lmforge.tuning import load_tuned, parse_options, save_tuned, shared_parameters


def save_adapter(out: Path, model: nn.Module, task: TaskConfig, labels: LabelSpace, data: DataConfig, base_model: str,
                 tuning: TuningConfig, **fields: Any) -> Path:
    """Save only what the tuning method trained (and the task head), with ``lmforge.json`` pointing at the base model."""
    save_tuned(model, out, tuning)
    return write_meta(out, "adapter", base_model, labels, data, task=task.model_dump(mode="json"),
                      tuning=tuning.model_dump(mode="json"), **fields)


def base_source(path: Path, meta: dict[str, Any]) -> str:
    """The loadable location of an adapter's base model, or an error that names it."""
    try:
        return resolve(meta["base_model"])
    except LmforgeError as exc:
        raise LmforgeError(f"{path} is an adapter over {meta['base_model']}, which cannot be loaded here ({exc}); "
                           "put the base model back or fetch it with lmforge zoo fetch") from None


@ARTIFACTS.register("adapter")
def load_adapter(path: Path, meta: dict[str, Any], device: str) -> TaskModel:
    """Loader of the ``adapter`` kind: the base model rebuilt with the task head, then the saved method."""
    task = get_task(TaskConfig(**meta["task"]))
    labels = LabelSpace.from_dict(meta["labels"])
    base = base_source(path, meta)
    model = load_tuned(task.build_model(base, labels, ModelConfig()), path, meta["tuning"])
    model.to(device)
    return TaskModel(path, model, load_tokenizer(base), task, labels, DataConfig(**meta["data"]), kind="adapter")


class AdapterSet:
    """Named adapter runs over one shared base model, chosen by name on every call.

    Each adapter keeps its own small modules and head, and all of them use one copy of the
    base model's weights: loading another adapter costs its own parameters, not another base
    model. Calls for different adapters share no mutable state, so a server can route each
    request to its adapter from several threads.

    Args:
        device: ``cpu``, ``cuda``...; the GPU when there is one.

    Example:
        >>> adapters = lmforge.load_adapters({"sentiment": "runs/sst2-lora", "topic": "runs/news-lora"})
        >>> adapters.predict(["great movie"], adapter="sentiment")
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self.base_model: str | None = None
        self._predictors: dict[str, TaskModel] = {}
        self._tensors: dict[str, torch.Tensor] = {}

    def add(self, name: str, run: str | Path) -> None:
        """Load the adapter run ``run`` under ``name``; it must be trained on the same base model."""
        if name in self._predictors:
            raise LmforgeError(f"an adapter named {name!r} is already loaded; choose another name")
        path = model_dir(run)
        meta = read_meta(path)
        if meta.get("kind") != "adapter":
            raise LmforgeError(f"{path} holds a fully fine-tuned model, not an adapter; only runs trained with "
                               "a tuning method (tuning.method: lora...) can share a base model")
        base = base_source(path, meta)
        if self.base_model is not None and base != self.base_model:
            raise LmforgeError(f"{path} was trained on {base}, the other adapters on {self.base_model}; "
                               "an adapter set shares one base model")
        predictor = load_adapter(path, meta, default_device(self.device))
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

    def __getitem__(self, name: str) -> TaskModel:
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
        """Predictions of the adapter named ``adapter`` (see :meth:`TaskModel.predict`)."""
        return self[adapter].predict(texts, pairs, top_k=top_k, batch_size=batch_size)

    def evaluate(self, source: str | Path, adapter: str, **kwargs: Any) -> dict[str, Any]:
        """Metrics of the adapter named ``adapter`` on a labeled file (see :meth:`TaskModel.evaluate`)."""
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
