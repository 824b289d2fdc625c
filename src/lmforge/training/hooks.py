"""Hook points of the training loop: extra objectives, adversarial steps, regularizers, EMA.

A hook is a small object with any of these methods; the loop calls them in order. Hooks
compose: each sees the loss the previous one returned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lmforge.registry import Registry

if TYPE_CHECKING:
    from lmforge.config import TrainConfig

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, Any]]


@dataclass
class StepContext:
    """What a hook may use during one micro-step.

    Attributes:
        loss_fn: Computes (loss, outputs) of the model on a batch, the same way the loop does.
        backward: Backpropagates a loss with the loop's scaling (accumulation, mixed precision).
        step: Optimizer steps done so far.
        total_steps: Optimizer steps of the whole run.
    """

    loss_fn: LossFn
    backward: Callable[[torch.Tensor], None]
    step: int
    total_steps: int


class Hook:
    """Base class with no-op hook methods; subclasses override what they need."""

    def loss(self, ctx: StepContext, model: nn.Module, batch: dict[str, torch.Tensor],
             loss: torch.Tensor, outputs: Any) -> torch.Tensor:
        """Return the training loss, e.g. with an extra objective added."""
        return loss

    def after_backward(self, ctx: StepContext, model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
        """Run after the main backward pass, before the optimizer step (adversarial steps)."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """Run after each optimizer step (weight averaging)."""

    def after_eval(self, step: int, metrics: dict[str, float]) -> None:
        """Run after each evaluation with its scalar metrics (e.g. to prune a search trial)."""

    @contextlib.contextmanager
    def eval_weights(self, model: nn.Module) -> Iterator[None]:
        """Context in which evaluation and saving see the weights this hook wants (e.g. EMA)."""
        yield

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints so a resumed run continues identically."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


@contextlib.contextmanager
def eval_weights(hooks: list[Hook], model: nn.Module) -> Iterator[None]:
    """Enter every hook's :meth:`Hook.eval_weights` context."""
    with contextlib.ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook.eval_weights(model))
        yield


# Hooks switched on by train.* settings: name -> factory(train config, tokenizer or None) -> Hook, or None when off.
HOOKS: Registry[Callable[[TrainConfig, Any], Hook | None]] = Registry("training hook")

