"""BitFit (Ben Zaken et al. 2022): train only the bias terms, plus the task head.

The trained biases belong to the base model's own layers, so merging is simply saving the
model whole. Architectures without biases (Llama) leave only the head to train; a warning says so.
"""

from __future__ import annotations

from torch import nn

from lmforge.config.tuning import BitfitOptions
from lmforge.tuning.base import METHODS, OwnMethod, head_parameters


class BitFit(OwnMethod):
    """Bias terms and the head train; everything else is frozen."""

    name = "bitfit"
    options = BitfitOptions
    mergeable = True

    def trained(self, model: nn.Module, head: list[str]) -> set[str]:
        """Every ``*.bias`` parameter and the head's parameters."""
        biases = {n for n, _ in model.named_parameters() if n.endswith(".bias")}
        return biases | head_parameters(model, head)

    def merge(self, model: nn.Module) -> nn.Module:
        """The model itself: its biases already hold the update."""
        for param in model.parameters():
            param.requires_grad_(True)
        return model


METHODS.add("bitfit", BitFit())
