"""Prefix tuning (Li & Liang 2021): trained keys and values put before every attention layer's own, through peft."""

from __future__ import annotations

import inspect
from typing import Any

from peft import PrefixTuningConfig
from torch import nn

from lmforge.config.tuning import PrefixOptions
from lmforge.tuning.base import METHODS
from lmforge.tuning.peft_method import PeftMethod, task_type


def accept_past_key_values(model: nn.Module) -> None:
    """Let peft hand its prefixes to a transformers-5 classifier.

    For models other than causal LMs, peft looks for a ``past_key_values`` argument on the
    model, else on its backbone; transformers 5 renamed it ``cache``. The first of the two
    that takes ``cache`` gets a ``forward`` that also takes the old name.
    """
    if task_type(model) == "CAUSAL_LM":
        return
    backbone = getattr(model, getattr(model, "base_model_prefix", ""), None)
    for module in (model, backbone):
        params = inspect.signature(module.forward).parameters if module is not None else {}
        if "past_key_values" in params:
            return
        if "cache" in params:
            _rename_cache(module)
            return


def _rename_cache(module: nn.Module) -> None:
    original = module.forward
    signature = inspect.signature(original)
    extra = inspect.Parameter("past_key_values", inspect.Parameter.KEYWORD_ONLY, default=None)
    params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    params += [extra] + [p for p in signature.parameters.values() if p.kind == p.VAR_KEYWORD]

    def forward(*args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
        if past_key_values is not None:
            kwargs["cache"] = past_key_values
        return original(*args, **kwargs)

    forward.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    module.forward = forward


def _config(options: Any, model: nn.Module, head: list[str]) -> Any:
    hidden = options.encoder_hidden_size or model.config.hidden_size
    return PrefixTuningConfig(task_type=task_type(model), num_virtual_tokens=options.num_virtual_tokens,
                              prefix_projection=options.projection, encoder_hidden_size=hidden,
                              modules_to_save=list(head) or None)


METHODS.add("prefix", PeftMethod("prefix", PrefixOptions, _config, prepare=accept_past_key_values))
