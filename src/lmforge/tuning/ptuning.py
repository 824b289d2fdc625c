"""P-tuning (Liu et al. 2021): virtual-token embeddings produced by a small trained encoder, through peft."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn

from lmforge.config import TuningConfig
from lmforge.tuning.base import METHODS
from lmforge.tuning.peft_method import PeftMethod, task_type


class PtuningOptions(TuningConfig):
    """Options of ``tuning.method: ptuning``."""

    default_lr: ClassVar[float] = 1e-2
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Virtual tokens put before every input.")
    encoder: Literal["mlp", "lstm"] = Field("mlp", description="The prompt encoder's kind.")
    encoder_hidden_size: int | None = Field(None, ge=1, description="Hidden size of the prompt encoder; the model's when absent.")


def _config(options: Any, model: nn.Module, head: list[str]) -> Any:
    from peft import PromptEncoderConfig

    hidden = options.encoder_hidden_size or model.config.hidden_size
    return PromptEncoderConfig(task_type=task_type(model), num_virtual_tokens=options.num_virtual_tokens,
                               encoder_reparameterization_type=options.encoder.upper(), encoder_hidden_size=hidden,
                               modules_to_save=list(head) or None)


METHODS.add("ptuning", PeftMethod("ptuning", PtuningOptions, _config))
