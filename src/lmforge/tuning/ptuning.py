"""P-tuning (Liu et al. 2021): virtual-token embeddings produced by a small trained encoder, through peft."""

from __future__ import annotations

from typing import Any

from peft import PromptEncoderConfig
from torch import nn

from lmforge.config.tuning import PtuningOptions
from lmforge.tuning.base import METHODS
from lmforge.tuning.peft_method import PeftMethod, task_type


def _config(options: Any, model: nn.Module, head: list[str]) -> Any:
    hidden = options.encoder_hidden_size or model.config.hidden_size
    return PromptEncoderConfig(task_type=task_type(model), num_virtual_tokens=options.num_virtual_tokens,
                               encoder_reparameterization_type=options.encoder.upper(), encoder_hidden_size=hidden,
                               modules_to_save=list(head) or None)


METHODS.add("ptuning", PeftMethod("ptuning", PtuningOptions, _config))
