"""Parameter-efficient fine-tuning: which parameters train, and what a run saves.

``tuning: {method: lora, r: 8}`` in a finetune config selects a method; every task, the
training loop, checkpoints, evaluation and prediction work unchanged. Methods register
themselves in :data:`METHODS` (one module each); a new one only has to follow
:class:`~lmforge.tuning.base.Method` and call ``METHODS.add(name, method)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from lmforge.config import TuningConfig, parse_options
from lmforge.errors import LmforgeError
from lmforge.tuning import adapter, bitfit, full, ia3, lora, prefix, prompt, ptuning  # noqa: F401  (registration)
from lmforge.tuning.base import METHODS, Method, head_modules, is_full, parameter_counts

log = logging.getLogger("lmforge.tuning")

__all__ = ["METHODS", "Method", "apply_tuning", "head_modules", "is_full", "load_tuned", "merge_tuned",
           "parameter_counts", "parse_options", "save_tuned", "shared_parameters", "summary"]


def apply_tuning(model: nn.Module, options: TuningConfig | None) -> nn.Module:
    """Make ``model`` trainable the way ``options`` says; full fine-tuning returns it unchanged.

    Args:
        model: A transformers model with its task head, as a task's ``build_model`` returns it.
        options: The ``tuning`` section of the config.
    """
    options = options or TuningConfig()
    if is_full(options):
        return model
    tuned = METHODS.get(options.method).apply(model, options, head_modules(model))
    if getattr(model, "is_activation_checkpointing", False):
        # Recomputed segments need an input that asks for gradients when the embeddings are frozen.
        model.enable_input_require_grads()
    return tuned


def summary(model: nn.Module, options: TuningConfig | None) -> dict[str, Any]:
    """Method, options and parameter counts of a tuned model, logged in one line."""
    options = options or TuningConfig()
    counts = parameter_counts(model)
    base = getattr(model, "get_base_model", lambda: model)()
    log.info("tuning: %s on %s, %s of %s parameters trainable (%.3f%%)", options.method, type(base).__name__,
             f"{counts['trainable_parameters']:,}", f"{counts['total_parameters']:,}", 100 * counts["trainable_share"])
    return {"method": options.method, "options": options.model_dump(mode="json"), **counts}


def save_tuned(model: nn.Module, out: Path, options: TuningConfig) -> None:
    """Write only what the method trained (adapter weights and the task head) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    METHODS.get(options.method).save(model, out)


def load_tuned(model: nn.Module, path: Path, options: dict[str, Any] | TuningConfig) -> nn.Module:
    """Rebuild a saved tuned model on the freshly built base ``model``; returned in eval mode."""
    parsed = options if isinstance(options, TuningConfig) else _parse_saved(options, path)
    tuned = METHODS.get(parsed.method).load(model, path, parsed)
    for param in tuned.parameters():
        param.requires_grad_(False)
    return tuned.eval()


def _parse_saved(options: dict[str, Any], path: Path) -> TuningConfig:
    try:
        return parse_options(options)
    except ValueError as exc:
        raise LmforgeError(f"{path}/lmforge.json: {exc}; this lmforge cannot load the run") from None


def merge_tuned(model: nn.Module, options: TuningConfig) -> nn.Module:
    """A plain transformers model with the trained update folded into its weights."""
    return METHODS.get(options.method).merge(model)


def shared_parameters(model: nn.Module, options: TuningConfig) -> Iterator[tuple[str, nn.Parameter]]:
    """The base model's parameters inside a tuned model, under their plain names."""
    return METHODS.get(options.method).shared(model)
