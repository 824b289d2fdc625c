"""lmforge: from raw text to a deployed language model, on a laptop CPU or a GPU box.

The public functions below are imported on first use, so ``import lmforge`` is instant and
loads torch only when a function needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# Public name -> "module:attribute", resolved on first access.
_PUBLIC: dict[str, str] = {
    "finetune": "lmforge.runs.finetune_run:finetune",
    "pretrain": "lmforge.recipes.pretrain:pretrain",
    "load": "lmforge.artifacts:load",
    "load_adapters": "lmforge.artifacts:load_adapters",
    "generate": "lmforge.artifacts:generate",
}


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'lmforge' has no attribute {name!r}")
    module, attribute = target.split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = ["__version__", *_PUBLIC]
