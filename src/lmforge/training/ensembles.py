"""Ensembles of fine-tuned models: combining their outputs, and averaging their weights (model soup).

Members' raw outputs (logits) are combined per example:

* ``mean``: the average of the members' logits (for regression, of their predicted values).
* ``vote``: majority vote of the members' predicted labels; the ensemble's scores are the vote
  shares, ties broken by the mean probability. Multi-label votes run per label.

A model soup (Wortsman et al., 2022) averages the weights of members fine-tuned from one
checkpoint with one head initialization, giving a single model at the cost of one. The saved
ensemble artifact (members, combination) is :mod:`lmforge.artifacts.ensemble`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from lmforge.errors import LmforgeError

COMBINE = ("mean", "vote")
_TIE = 1e-3  # weight of the mean probability beside the vote share: breaks ties, never overturns a vote


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray | float) -> np.ndarray:
    return np.log(p) - np.log1p(-np.asarray(p))


def combine_logits(logits: Sequence[np.ndarray], how: str = "mean", kind: str = "single",
                   threshold: float = 0.5) -> np.ndarray:
    """One (N, C) array of ensemble logits from the members' (N, C) logits.

    Args:
        logits: One array per member, all of shape (N, C).
        how: ``mean`` (logit averaging) or ``vote`` (majority vote).
        kind: ``single`` (softmax classes), ``multi`` (sigmoid labels) or ``regression``.
        threshold: Probability at which a multi-label member votes for a label.

    Returns:
        Logits whose softmax (single) or sigmoid (multi) gives the ensemble's probabilities;
        for ``vote`` these are the vote shares (with the tie-break folded in).
    """
    if not logits:
        raise LmforgeError("an ensemble needs at least one member")
    stack = np.stack([np.asarray(x, dtype=np.float64) for x in logits])  # (M, N, C)
    if how == "mean" or kind == "regression":
        return stack.mean(axis=0).astype(np.float32)
    if how != "vote":
        raise LmforgeError(f"unknown ensemble combination {how!r}; choose one of {', '.join(COMBINE)}")
    if kind == "multi":
        probs = _sigmoid(stack)
        # A label passes when more than half the members vote for it; the mean probability only decides ties.
        score = np.clip((probs >= threshold).mean(axis=0) + _TIE * (probs.mean(axis=0) - threshold), 1e-6, 1 - 1e-6)
        # Shift so that sigmoid(logit) >= threshold exactly when score >= 0.5.
        return (_logit(score) + _logit(threshold)).astype(np.float32)
    probs = _softmax(stack)  # (M, N, C)
    votes = np.eye(stack.shape[-1])[probs.argmax(axis=-1)].mean(axis=0)  # (N, C) vote shares
    score = votes + _TIE * probs.mean(axis=0)
    return np.log(score / score.sum(axis=-1, keepdims=True)).astype(np.float32)


def soup(state_dicts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the members' floating-point weights (integer buffers from the first member).

    Raises:
        LmforgeError: The members do not share their parameter names and shapes.
    """
    if not state_dicts:
        raise LmforgeError("a model soup needs at least one member")
    first = state_dicts[0]
    for i, other in enumerate(state_dicts[1:], 1):
        if other.keys() != first.keys() or any(other[k].shape != first[k].shape for k in first):
            raise LmforgeError(f"soup member {i} does not have the architecture of member 0; soups need members "
                               "fine-tuned from one checkpoint")
    out = {}
    for key, value in first.items():
        if value.is_floating_point():
            out[key] = torch.stack([sd[key].float() for sd in state_dicts]).mean(0).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a saved Hugging Face model folder (safetensors)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise LmforgeError(f"{folder} holds no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state
