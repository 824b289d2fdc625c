"""Bottleneck adapters: small down-project / non-linearity / up-project blocks added inside each layer.

Houlsby placement (Houlsby et al. 2019) adds one after the attention output and one after
the feed-forward output of every layer; Pfeiffer placement (Pfeiffer et al. 2021) only the
feed-forward one, about as accurate for half the adapter parameters. Each adapter starts as
the identity (zero up-projection), so training begins from the pretrained model's behaviour.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from lmforge.config.tuning import AdapterOptions, TuningConfig
from lmforge.errors import LmforgeError
from lmforge.tuning.base import METHODS, OwnMethod, head_parameters
from lmforge.tuning.peft_method import model_type

_ENCODER = (r"attention\.output\.dense$", r"layer\.\d+\.output\.dense$")
_DECODER = (r"self_attn\.o_proj$", r"mlp\.down_proj$")
# (attention output, feed-forward output) module-name patterns per architecture.
PLACES: dict[str, tuple[str, str]] = {
    "bert": _ENCODER, "roberta": _ENCODER, "xlm-roberta": _ENCODER, "electra": _ENCODER,
    "distilbert": (r"attention\.out_lin$", r"ffn\.lin2$"),
    "llama": _DECODER, "qwen2": _DECODER, "mistral": _DECODER,
    "gpt2": (r"attn\.c_proj$", r"mlp\.c_proj$"),
}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}




class Bottleneck(nn.Module):
    """``x + up(act(down(x)))``, the identity at initialization."""

    def __init__(self, size: int, reduction_factor: int, non_linearity: str) -> None:
        super().__init__()
        self.down = nn.Linear(size, max(1, size // reduction_factor))
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(self.down.out_features, size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Any) -> Any:  # (..., size) -> (..., size)
        return x + self.up(self.act(self.down(x)))


def _run_adapter(module: nn.Module, inputs: Any, output: Any) -> Any:
    # A module-level forward hook that finds its adapter on the module: copies of the model stay correct.
    return module.adapter(output)


def out_size(module: nn.Module) -> int:
    """Output width of a linear layer (``nn.Linear`` or GPT-2's transposed ``Conv1D``)."""
    for attr in ("out_features", "nf"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    raise LmforgeError(f"cannot add an adapter after {type(module).__name__}: it is not a linear layer")


def places(model: nn.Module, options: AdapterOptions) -> list[str]:
    """Names of the modules an adapter goes after, for the chosen placement."""
    known = PLACES.get(model_type(model))
    attention = options.attention_modules or (known[0] if known else None)
    ffn = options.ffn_modules or (known[1] if known else None)
    if ffn is None or (options.placement == "houlsby" and attention is None):
        raise LmforgeError(f"bottleneck adapters have no placement for '{model_type(model)}' models; set "
                           "tuning.ffn_modules (and tuning.attention_modules) to regular expressions of module names")
    patterns = [ffn] + ([attention] if options.placement == "houlsby" else [])
    names = [n for n, _ in model.named_modules() if any(re.search(p, n) for p in patterns)]
    if not names:
        raise LmforgeError(f"tuning: no module of {type(model).__name__} matches {' or '.join(patterns)}")
    return names


class Adapter(OwnMethod):
    """Bottleneck adapters and the head train; the base model is frozen."""

    name = "adapter"
    options = AdapterOptions

    def add_modules(self, model: nn.Module, options: TuningConfig) -> None:
        """Attach a :class:`Bottleneck` after every chosen module."""
        assert isinstance(options, AdapterOptions)
        for name in places(model, options):
            module = model.get_submodule(name)
            weight = module.weight
            module.add_module("adapter", Bottleneck(out_size(module), options.reduction_factor, options.non_linearity)
                              .to(device=weight.device, dtype=weight.dtype))
            module.register_forward_hook(_run_adapter)

    def trained(self, model: nn.Module, head: list[str]) -> set[str]:
        """The adapters' parameters and the head's."""
        return {n for n, _ in model.named_parameters() if ".adapter." in n} | head_parameters(model, head)


METHODS.add("adapter", Adapter())
