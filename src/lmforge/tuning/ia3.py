"""IA3 (Liu et al. 2022): learned vectors that rescale keys, values and feed-forward activations, through peft.

Far fewer trained parameters than LoRA (one vector per adapted layer); the vectors merge
into the base weights.
"""

from __future__ import annotations

from typing import Any

from peft import IA3Config
from torch import nn

from lmforge.config.tuning import Ia3Options
from lmforge.tuning.base import METHODS
from lmforge.tuning.peft_method import PeftMethod, task_type


def _config(options: Any, model: nn.Module, head: list[str]) -> Any:
    auto = lambda value: None if value == "auto" else value  # noqa: E731  peft's per-architecture tables
    return IA3Config(task_type=task_type(model), target_modules=auto(options.target_modules),
                     feedforward_modules=auto(options.feedforward_modules), modules_to_save=list(head) or None)


METHODS.add("ia3", PeftMethod("ia3", Ia3Options, _config, mergeable=True))
