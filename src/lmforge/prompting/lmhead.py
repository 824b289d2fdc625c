"""Run a language model's output head only where its predictions are read.

A masked or causal LM computes vocabulary logits at every position, though a prompt is read at
one (the mask, or the token before the label word). Splitting the model into its trunk and its
head lets the head run on those positions only: the same numbers, without a (B, T, V) tensor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def split_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(trunk, head)`` of a ``*ForMaskedLM`` / ``*ForCausalLM`` model, or None when it is not shaped that way.

    The trunk is the ``base_model_prefix`` child (it returns ``last_hidden_state``); the head is
    the one other child (``cls``, ``lm_head``...), which maps hidden states (..., H) to logits.
    """
    prefix = getattr(model, "base_model_prefix", "")
    trunk = getattr(model, prefix, None) if prefix else None
    heads = [m for name, m in model.named_children() if name != prefix]
    if trunk is None or len(heads) != 1:
        return None
    return trunk, heads[0]


def logits_at(model: nn.Module, inputs: dict[str, Any], position: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits (B, V) at ``position[b]`` of each row."""
    rows = torch.arange(position.shape[0], device=position.device)
    parts = split_head(model)
    if parts is None:
        return model(**inputs).logits[rows, position]
    trunk, head = parts
    hidden = trunk(**inputs).last_hidden_state  # (B, T, H)
    return head(hidden[rows, position])
