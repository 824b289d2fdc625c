"""The tuning-method interface, its registry, and what every method shares.

A method is an object with ``apply`` (make the model trainable the method's way), ``save``
(only what was trained), ``load`` (rebuild on a fresh base model), ``merge`` (fold the
update into the base weights, where the method allows it) and ``shared`` (the untouched
base weights, so that several adapters can share one copy). Each method lives in its own
module and registers an instance in :data:`METHODS`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.config import TuningConfig
from lmforge.errors import LmforgeError
from lmforge.models.heads import head_modules, under
from lmforge.registry import Registry

log = logging.getLogger("lmforge.tuning")
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class Method(Protocol):
    """What a tuning method provides.

    Attributes:
        name: Registry name, the ``tuning.method`` value.
        options: The pydantic class of its options (a :class:`TuningConfig` subclass).
        mergeable: Whether :meth:`merge` can fold the trained update into the base weights.
    """

    name: str
    options: type[TuningConfig]
    mergeable: bool

    def apply(self, model: nn.Module, options: TuningConfig, head: list[str]) -> nn.Module:
        """``model`` with only the method's parameters and the ``head`` modules trainable."""

    def save(self, model: nn.Module, out: Path) -> None:
        """Write what was trained (and the task head) to the folder ``out``."""

    def load(self, model: nn.Module, path: Path, options: TuningConfig) -> nn.Module:
        """Rebuild a saved run on a freshly built base ``model`` (with its task head)."""

    def merge(self, model: nn.Module) -> nn.Module:
        """A plain ``transformers`` model with the update folded into its weights."""

    def shared(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        """Base-model parameters under their names in the plain base model (method parameters left out)."""


METHODS: Registry[Method] = Registry("tuning method")




def is_full(options: TuningConfig | None) -> bool:
    """True when every parameter is trained (no tuning method)."""
    return options is None or options.method == "full"










def freeze_except(model: nn.Module, trainable: set[str]) -> None:
    """Freeze every parameter of ``model`` but those named in ``trainable``."""
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)


def head_parameters(model: nn.Module, head: list[str]) -> set[str]:
    """Parameter names under the ``head`` modules."""
    return {n for n, _ in model.named_parameters() if under(n, head)}


def parameter_counts(model: nn.Module) -> dict[str, Any]:
    """Trainable and total parameters (shared tensors counted once) and the trainable share."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable_parameters": trainable, "total_parameters": total,
            "trainable_share": trainable / max(total, 1)}


def save_tensors(model: nn.Module, names: set[str], out: Path) -> None:
    """Write the parameters ``names`` of ``model`` to ``out/adapter_model.safetensors``."""
    out.mkdir(parents=True, exist_ok=True)
    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if n in names}
    save_file(state, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def load_tensors(model: nn.Module, path: Path) -> None:
    """Load ``path/adapter_model.safetensors`` into ``model``; every saved tensor must find its parameter."""
    file = path / ADAPTER_WEIGHTS
    if not file.is_file():
        raise LmforgeError(f"{path} has no {ADAPTER_WEIGHTS}; the run was not saved completely, train it again")
    state = load_file(str(file))
    params = dict(model.named_parameters())
    unknown = sorted(set(state) - set(params))
    if unknown:
        raise LmforgeError(f"{file}: {len(unknown)} tensors (e.g. {unknown[0]}) have no place in the model; "
                           "the tuning options in lmforge.json do not match the saved weights")
    with torch.no_grad():
        for name, value in state.items():
            if params[name].shape != value.shape:
                raise LmforgeError(f"{file}: {name} has shape {tuple(value.shape)}, "
                                   f"the model expects {tuple(params[name].shape)}")
            params[name].copy_(value)


class OwnMethod:
    """Shared behaviour of methods built from our own modules (BitFit, bottleneck adapters).

    Subclasses say which parameters they train (:meth:`trained`) and, for adapters, which
    modules they add (:meth:`add_modules`); saving, loading and counting are common.
    """

    name: ClassVar[str]
    options: ClassVar[type[TuningConfig]]
    mergeable: ClassVar[bool] = False

    def add_modules(self, model: nn.Module, options: TuningConfig) -> None:
        """Insert the method's modules into ``model`` (nothing by default)."""

    def trained(self, model: nn.Module, head: list[str]) -> set[str]:
        """Names of the parameters this method trains."""
        raise NotImplementedError

    def install(self, model: nn.Module, options: TuningConfig, head: list[str]) -> set[str]:
        """Insert the modules, freeze everything else, and return the trained names."""
        self.add_modules(model, options)
        names = self.trained(model, head)
        freeze_except(model, names)
        model._lmforge_trained = sorted(names)  # what save() writes, fixed here
        return names

    def apply(self, model: nn.Module, options: TuningConfig, head: list[str]) -> nn.Module:
        """Insert the modules and freeze everything else; say so when only the head is left to train."""
        names = self.install(model, options, head)
        if not names:
            raise LmforgeError(f"tuning.method={self.name} finds nothing to train in {type(model).__name__} "
                               "(no parameters of its kind and no task head); choose another method such as lora")
        if not names - head_parameters(model, head):
            log.warning("tuning.method=%s finds nothing to train in %s besides the task head",
                        self.name, type(model).__name__)
        return model

    def save(self, model: nn.Module, out: Path) -> None:
        """Write the trained parameters (method and head)."""
        save_tensors(model, set(model._lmforge_trained), out)

    def load(self, model: nn.Module, path: Path, options: TuningConfig) -> nn.Module:
        """Insert the modules into a fresh base model and load the saved parameters."""
        self.install(model, options, head_modules(model))
        load_tensors(model, path)
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        """Refused by default: the method's modules cannot be folded into the base weights."""
        raise LmforgeError(f"tuning method '{self.name}' adds layers that cannot be merged into the base weights; "
                           "use the run as it is (lmforge.load) or train with lora or ia3 to merge")

    def shared(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        """Every parameter but the trained ones, under its own name."""
        trained = set(getattr(model, "_lmforge_trained", ()))
        for name, param in model.named_parameters():
            if name not in trained:
                yield name, param
