"""Methods backed by ``peft``: one adapter of a peft config, saved in peft's own format.

The task head travels through peft's ``modules_to_save``, so the saved folder
(``adapter_config.json`` + ``adapter_model.safetensors``) loads with plain
``PeftModel.from_pretrained`` on a base model with the same head.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peft import PeftModel, get_peft_model
from torch import nn

from lmforge.config import TuningConfig
from lmforge.errors import LmforgeError

# peft's task types by the ending of the transformers class name; they choose the PeftModel
# subclass, which knows where inputs go for prompt methods and which head to keep trainable.
_TASK_TYPES = (("ForSequenceClassification", "SEQ_CLS"), ("ForCausalLM", "CAUSAL_LM"),
               ("ForTokenClassification", "TOKEN_CLS"), ("ForQuestionAnswering", "QUESTION_ANS"))
# Parameter-name parts of what peft adds: never part of the base model.
_ADDED = ("lora_", "ia3_", "prompt_encoder", ".modules_to_save.", "lora_magnitude_vector")


def task_type(model: nn.Module) -> str | None:
    """peft's task type for a transformers model, from its class name."""
    name = type(model).__name__
    return next((kind for suffix, kind in _TASK_TYPES if name.endswith(suffix)), None)


def model_type(model: nn.Module) -> str:
    """The architecture name of a transformers model (``bert``, ``llama``...)."""
    return str(getattr(getattr(model, "config", None), "model_type", ""))


ConfigBuilder = Callable[[TuningConfig, nn.Module, list[str]], Any]


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the FutureWarning peft 0.21 triggers by reading a renamed transformers-5 attribute."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


@dataclass
class PeftMethod:
    """A tuning method that builds a peft config from our options.

    Attributes:
        name: Registry name.
        options: Options class.
        build: ``(options, model, head) -> peft config``.
        mergeable: Whether peft can merge the adapter into the base weights.
        prepare: Called on the base model before peft wraps it (compatibility shims).
    """

    name: str
    options: type[TuningConfig]
    build: ConfigBuilder
    mergeable: bool = False
    prepare: Callable[[nn.Module], None] | None = None

    def apply(self, model: nn.Module, options: TuningConfig, head: list[str]) -> nn.Module:
        """Wrap ``model`` in a ``PeftModel``; only the adapter and the ``head`` modules train."""
        if self.prepare is not None:
            self.prepare(model)
        with quiet_peft():
            return get_peft_model(model, self.build(options, model, head))

    def save(self, model: nn.Module, out: Path) -> None:
        """peft's ``save_pretrained``: the adapter config and weights, the head included."""
        model.save_pretrained(str(out))
        (out / "README.md").unlink(missing_ok=True)  # peft's empty model-card template

    def load(self, model: nn.Module, path: Path, options: TuningConfig) -> nn.Module:
        """``PeftModel.from_pretrained`` on the fresh base model."""
        if self.prepare is not None:
            self.prepare(model)
        with quiet_peft():
            return PeftModel.from_pretrained(model, str(path))

    def merge(self, model: nn.Module) -> nn.Module:
        """peft's ``merge_and_unload``: the base model with the update in its weights and the trained head."""
        if not self.mergeable:
            raise LmforgeError(f"tuning method '{self.name}' keeps its own inputs (virtual tokens) and cannot be "
                               "merged into the base weights; use the run as it is (lmforge.load)")
        return model.merge_and_unload()

    def shared(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        """Base-model parameters under their plain names (``.base_layer`` and ``.original_module`` removed)."""
        for name, param in model.get_base_model().named_parameters():
            if not any(part in name for part in _ADDED):
                yield name.replace(".base_layer.", ".").replace(".original_module.", "."), param
