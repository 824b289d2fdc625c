"""The hooks a ``train`` section switches on: each regularizer and adversary registers itself in :data:`HOOKS`."""

from __future__ import annotations

from typing import Any

from lmforge.config import TrainConfig
from lmforge.training import adversarial, regularizers  # noqa: F401  (registration)
from lmforge.training.hooks import HOOKS, Hook


def build_hooks(cfg: TrainConfig, tokenizer: Any = None) -> list[Hook]:
    """The hooks that ``cfg`` switches on (R-Drop, adversarial training, EMA...), in registry order.

    Args:
        cfg: The train section.
        tokenizer: The model's tokenizer, for hooks that work on the text (adversarial ``text``).
    """
    hooks = (HOOKS.get(name)(cfg, tokenizer) for name in HOOKS.names())
    return [hook for hook in hooks if hook is not None]
