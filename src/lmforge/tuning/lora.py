"""LoRA (Hu et al. 2021): a trainable low-rank update B·A beside chosen linear layers, through peft.

Options cover rsLoRA (scale alpha/sqrt(r), steadier at high rank) and DoRA (a trained
magnitude per output, Liu et al. 2024). The update merges into the base weights.
"""

from __future__ import annotations

from typing import Any

from peft import LoraConfig
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS
from torch import nn

from lmforge.config.tuning import LoraOptions
from lmforge.tuning.base import METHODS
from lmforge.tuning.peft_method import PeftMethod, model_type, task_type

# Where 'auto' puts LoRA on decoders: every projection of attention and the feed-forward
# block (the QLoRA recipe). Other architectures get peft's per-architecture choice, the
# query and value projections of the LoRA paper: on MiniLM-L6 at r=16 that trains 148k
# parameters where all-linear trains 677k, within 0.7 points of full fine-tuning on SST-2
# (benchmarks/peft_compare.py).
DECODER_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
AUTO_TARGETS: dict[str, list[str]] = {
    **{name: DECODER_TARGETS for name in ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2")},
    "distilbert": ["q_lin", "v_lin"],
}




def targets(spec: str | list[str], model: nn.Module) -> str | list[str]:
    """The ``target_modules`` peft gets for ``spec`` on ``model``."""
    if spec != "auto":
        return spec

    kind = model_type(model)
    return AUTO_TARGETS.get(kind) or PEFT_TARGETS.get(kind) or "all-linear"


def _config(options: Any, model: nn.Module, head: list[str]) -> Any:
    return LoraConfig(task_type=task_type(model), r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                      target_modules=targets(options.target_modules, model), use_rslora=options.rslora,
                      use_dora=options.dora, bias=options.bias, modules_to_save=list(head) or None)


METHODS.add("lora", PeftMethod("lora", LoraOptions, _config, mergeable=True))
