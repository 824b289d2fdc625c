"""Regularizers that plug into the training loop: label smoothing, R-Drop and an EMA of the weights.

Label smoothing changes the loss function itself (:func:`build_loss`), so every extra forward
pass a hook makes (R-Drop's second pass, adversarial passes) uses the smoothed loss too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config import TrainConfig
from lmforge.training.hooks import HOOKS, Hook, LossFn, StepContext

Batch = dict[str, torch.Tensor]


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP (or similar) wrapper."""
    return getattr(model, "module", model)


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float, multi_label: bool = False) -> torch.Tensor:
    """Cross-entropy (or BCE for multi-label) against targets moved ``smoothing`` toward uniform.

    Args:
        logits: (B, C) scores.
        labels: (B,) class indices, or (B, C) 0/1 targets when ``multi_label``.
        smoothing: Probability mass spread evenly over the classes (over {0, 1} per label for multi-label).
        multi_label: Independent sigmoid labels instead of one softmax.
    """
    if multi_label:
        target = labels.float() * (1.0 - smoothing) + 0.5 * smoothing
        return F.binary_cross_entropy_with_logits(logits.float(), target)
    return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)


def build_loss(loss_fn: LossFn, cfg: TrainConfig) -> LossFn:
    """``loss_fn``, or a label-smoothed version of it when ``cfg.label_smoothing`` > 0.

    Smoothing applies to classification batches (integer class labels, or multi-label
    targets); regression batches keep the task's own loss.
    """
    smoothing = cfg.label_smoothing
    if smoothing <= 0:
        return loss_fn

    def loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Any]:
        labels = batch.get("labels")
        problem = getattr(_unwrap(model).config, "problem_type", None)
        multi = problem == "multi_label_classification"
        if labels is None or not (multi or labels.dtype == torch.long):
            return loss_fn(model, batch)
        outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
        return smoothed_loss(outputs.logits, labels, smoothing, multi), outputs

    return loss


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of (KL(p_a || p_b) + KL(p_b || p_a)) / 2 for softmax distributions of (B, C) logits."""
    log_a, log_b = F.log_softmax(logits_a.float(), -1), F.log_softmax(logits_b.float(), -1)
    kl_ab = (log_a.exp() * (log_a - log_b)).sum(-1)
    kl_ba = (log_b.exp() * (log_b - log_a)).sum(-1)
    return ((kl_ab + kl_ba) / 2).mean()


class RDrop(Hook):
    """R-Drop (Liang et al., 2021): a second forward pass with other dropout masks, and a KL term
    that pulls the two predictive distributions together.

    The loss becomes ``(loss_1 + loss_2) / 2 + alpha * KL_sym(p_1, p_2)``; regression models
    (one output) use the squared difference of the two predictions instead of the KL.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def loss(self, ctx: StepContext, model: nn.Module, batch: Batch, loss: torch.Tensor, outputs: Any) -> torch.Tensor:
        """Add the second pass and the consistency term."""
        loss_2, outputs_2 = ctx.loss_fn(model, batch)
        a, b = outputs.logits, outputs_2.logits
        gap = F.mse_loss(a.float(), b.float()) if a.shape[-1] == 1 else symmetric_kl(a, b)
        return (loss + loss_2) / 2 + self.alpha * gap


class EMA(Hook):
    """Exponential moving average of the trainable weights, used for evaluation and saving.

    After each optimizer step, ``shadow = d * shadow + (1 - d) * weights`` with
    ``d = min(decay, (step - 1) / step)``: a plain running mean until the decay is reached, so
    the average never leans on the initial weights. Evaluations (and the best
    checkpoint) see the average; at the last step the average replaces the raw weights, so the
    saved model is the average whether or not there is a validation set.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {}
        self.total_steps: int | None = None

    def _params(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in _unwrap(model).named_parameters() if p.requires_grad and p.is_floating_point())

    def loss(self, ctx: StepContext, model: nn.Module, batch: Batch, loss: torch.Tensor, outputs: Any) -> torch.Tensor:
        """Remember the run length, to hand over the average at the last step."""
        self.total_steps = ctx.total_steps
        return loss

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        """Fold the new weights into the average."""
        decay = min(self.decay, (step - 1) / step)
        shadows, weights = [], []
        for name, param in self._params(model):
            weight = param.detach().float()
            shadow = self.shadow.get(name)
            if shadow is None:
                self.shadow[name] = weight.clone()
            else:
                shadows.append(shadow)
                weights.append(weight)
        if shadows:
            # shadow += (1 - d) * (weight - shadow) for all tensors at once: a few fused kernels per
            # step on GPU instead of two per parameter tensor.
            torch._foreach_lerp_(shadows, weights, 1 - decay)
        if step == self.total_steps:
            self._copy_into(model)

    @torch.no_grad()
    def _copy_into(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Put the average into ``model``; returns the weights it replaced."""
        replaced = {}
        for name, param in self._params(model):
            if name in self.shadow:
                replaced[name] = param.detach().clone()
                param.copy_(self.shadow[name].to(param.dtype))
        return replaced

    @contextlib.contextmanager
    def eval_weights(self, model: nn.Module) -> Iterator[None]:
        """Swap the average in for the duration of the block."""
        raw = self._copy_into(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self._params(model):
                    if name in raw:
                        param.copy_(raw[name])

    def state_dict(self) -> dict[str, Any]:
        """The average, for exact resumption."""
        return {"shadow": self.shadow, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.shadow = {k: v.float() for k, v in state["shadow"].items()}
        self.total_steps = state["total_steps"]


@HOOKS.register("rdrop")
def _rdrop(cfg: TrainConfig, tokenizer: Any) -> Hook | None:
    return RDrop(cfg.rdrop_alpha) if cfg.rdrop_alpha > 0 else None


@HOOKS.register("ema")
def _ema(cfg: TrainConfig, tokenizer: Any) -> Hook | None:
    return EMA(cfg.ema_decay) if cfg.ema_decay else None
