"""Prompt tuning (Lester et al. 2021): trained embeddings of virtual tokens put before the input, through peft."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from torch import nn

from lmforge.config import TuningConfig
from lmforge.tuning.base import METHODS
from lmforge.tuning.peft_method import PeftMethod, task_type


class PromptOptions(TuningConfig):
    """Options of ``tuning.method: prompt``."""

    default_lr: ClassVar[float] = 3e-2
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Virtual tokens put before every input.")
    init: Literal["random", "vocab", "text"] = Field(
        "random", description="Start from random embeddings, from embeddings of random vocabulary tokens, or from init_text's.")
    init_text: str | None = Field(None, description="Text whose token embeddings start the prompt when init is 'text'.")

    @model_validator(mode="after")
    def _text_given(self) -> PromptOptions:
        if self.init == "text" and not self.init_text:
            raise ValueError("tuning.init_text is required when tuning.init is 'text'")
        return self


def _config(options: Any, model: nn.Module, head: list[str]) -> Any:
    from peft import PromptTuningConfig

    init: dict[str, Any] = {"prompt_tuning_init": options.init.upper().replace("VOCAB", "SAMPLE_VOCAB")}
    if options.init == "text":
        init |= {"prompt_tuning_init_text": options.init_text, "tokenizer_name_or_path": model.config._name_or_path}
    return PromptTuningConfig(task_type=task_type(model), num_virtual_tokens=options.num_virtual_tokens,
                              modules_to_save=list(head) or None, **init)


METHODS.add("prompt", PeftMethod("prompt", PromptOptions, _config))
