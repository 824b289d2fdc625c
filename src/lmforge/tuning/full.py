"""Full fine-tuning: every parameter trains and the run saves the whole model (the default)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from torch import nn

from lmforge.config import TuningConfig
from lmforge.tuning.base import METHODS


class FullMethod:
    """No method: the model is trained and saved as it is."""

    name = "full"
    options = TuningConfig
    mergeable = True

    def apply(self, model: nn.Module, options: TuningConfig, head: list[str]) -> nn.Module:
        """The model unchanged."""
        return model

    def save(self, model: nn.Module, out: Path) -> None:
        """The whole model in transformers format."""
        model.save_pretrained(out)

    def load(self, model: nn.Module, path: Path, options: TuningConfig) -> nn.Module:
        """A fully fine-tuned run is a plain transformers model; nothing to add."""
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        """Nothing to merge."""
        return model

    def shared(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        """Every parameter was trained: nothing is shared with the base model."""
        return iter(())


METHODS.add("full", FullMethod())
