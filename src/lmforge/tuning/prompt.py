"""Prompt tuning (Lester et al. 2021): trained embeddings of virtual tokens put before the input, through peft."""

from __future__ import annotations

from typing import Any

from peft import PromptTuningConfig
from torch import nn

from lmforge.config.tuning import PromptOptions
from lmforge.tuning.base import METHODS
from lmforge.tuning.peft_method import PeftMethod, task_type


def _config(options: Any, model: nn.Module, head: list[str]) -> Any:
    init: dict[str, Any] = {"prompt_tuning_init": options.init.upper().replace("VOCAB", "SAMPLE_VOCAB")}
    if options.init == "text":
        init |= {"prompt_tuning_init_text": options.init_text, "tokenizer_name_or_path": model.config._name_or_path}
    return PromptTuningConfig(task_type=task_type(model), num_virtual_tokens=options.num_virtual_tokens,
                              modules_to_save=list(head) or None, **init)


METHODS.add("prompt", PeftMethod("prompt", PromptOptions, _config))
