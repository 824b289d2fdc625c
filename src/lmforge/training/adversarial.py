"""Adversarial training on the embeddings: FGM, PGD and FreeLB, as training-loop hooks.

Each runs after the clean backward pass: it perturbs the embeddings in the direction that
raises the loss, backpropagates the loss under that perturbation on top of the clean
gradients, and restores the embeddings before the optimizer step.

* FGM (Miyato et al., 2017): one step ``r = eps * g / ||g||`` on the word-embedding matrix.
* PGD (Madry et al., 2018): K steps of size alpha, projected back into the eps-ball; the
  gradient of the last step is added to the clean one.
* FreeLB (Zhu et al., 2020): K ascent steps on a per-example perturbation of the input
  embeddings (``inputs_embeds``), whose gradients are averaged onto the clean one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lmforge.config import AdversarialConfig, TrainConfig
from lmforge.errors import LmforgeError
from lmforge.registry import Registry
from lmforge.training.hooks import HOOKS, Hook, StepContext

Batch = dict[str, torch.Tensor]
ADVERSARIAL: Registry[type[Hook]] = Registry("adversarial method")


def word_embeddings(model: nn.Module) -> nn.Embedding:
    """The input word-embedding table of a (possibly DDP-wrapped) transformers model."""
    inner = getattr(model, "module", model)
    get = getattr(inner, "get_input_embeddings", None)
    emb = get() if get else None
    if not isinstance(emb, nn.Embedding):
        raise LmforgeError(f"adversarial training needs a model with an input embedding table; {type(inner).__name__} has none")
    return emb


def _grad_norm(g: torch.Tensor | None) -> float | None:
    """``||g||``, or None when there is no gradient or it is zero or not finite.

    Callers step by ``g`` with ``alpha=size / norm`` in place: the embedding matrix can be the
    largest tensor of the model, and this runs every step.
    """
    if g is None:
        return None
    norm = float(torch.linalg.vector_norm(g.float()))
    return norm if math.isfinite(norm) and norm > 0 else None


@ADVERSARIAL.register("fgm")
class FGM(Hook):
    """Fast gradient method: one normalized gradient step of size epsilon on the embedding matrix."""

    def __init__(self, cfg: AdversarialConfig) -> None:
        self.epsilon = cfg.epsilon

    def after_backward(self, ctx: StepContext, model: nn.Module, batch: Batch) -> None:
        """Add the gradient of the loss at the perturbed embeddings, then restore them."""
        weight = word_embeddings(model).weight
        norm = _grad_norm(weight.grad)
        if norm is None:
            return
        original = weight.data.clone()  # restored bit for bit, not by subtracting the step again
        weight.data.add_(weight.grad, alpha=self.epsilon / norm)
        try:
            loss, _ = ctx.loss_fn(model, batch)
            ctx.backward(loss)
        finally:
            weight.data.copy_(original)


def _project_(delta: torch.Tensor, epsilon: float) -> None:
    """Scale ``delta`` in place back into the L2 ball of radius ``epsilon`` (a factor of exactly 1 inside it)."""
    norm = torch.linalg.vector_norm(delta.float())
    delta.mul_((epsilon / norm.clamp_min(epsilon)).to(delta.dtype))


@ADVERSARIAL.register("pgd")
class PGD(Hook):
    """Projected gradient descent: K ascent steps of size alpha within an epsilon ball on the embedding matrix."""

    def __init__(self, cfg: AdversarialConfig) -> None:
        self.epsilon, self.alpha, self.steps = cfg.epsilon, cfg.alpha, cfg.steps

    def after_backward(self, ctx: StepContext, model: nn.Module, batch: Batch) -> None:
        """Search the perturbation with K steps; keep the clean gradient plus the last step's."""
        weight = word_embeddings(model).weight
        if weight.grad is None:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        # The clean gradients need no copy: while the parameters' grads are None, backward makes new
        # tensors and leaves these alone until they are handed back.
        clean = [p.grad for p in params]
        original = weight.data.clone()
        delta = torch.zeros_like(original)
        try:
            for k in range(self.steps):
                norm = _grad_norm(weight.grad)
                if norm is None:
                    break
                delta.add_(weight.grad, alpha=self.alpha / norm)
                _project_(delta, self.epsilon)
                torch.add(original, delta, out=weight.data)
                last = k == self.steps - 1
                # Intermediate steps need the adversarial gradient alone; the last one adds onto the clean one.
                _set_grads(params, clean if last else [None] * len(params))
                loss, _ = ctx.loss_fn(model, batch)
                ctx.backward(loss)
                if last:
                    return
            _set_grads(params, clean)
        finally:
            weight.data.copy_(original)


def _set_grads(params: list[nn.Parameter], grads: list[torch.Tensor | None]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g


@ADVERSARIAL.register("freelb")
class FreeLB(Hook):
    """FreeLB: K ascent steps on per-example perturbations of the input embeddings, gradients averaged."""

    def __init__(self, cfg: AdversarialConfig) -> None:
        self.epsilon, self.alpha, self.steps = cfg.epsilon, cfg.alpha, cfg.steps

    def after_backward(self, ctx: StepContext, model: nn.Module, batch: Batch) -> None:
        """Accumulate ``(1/K) * grad`` of the loss at each of K ascending perturbations."""
        if "input_ids" not in batch:
            return
        emb = word_embeddings(model)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask", torch.ones_like(ids)).unsqueeze(-1).to(emb.weight.dtype)  # (B, T, 1)
        rest = {k: v for k, v in batch.items() if k != "input_ids"}
        delta = self._init(ids.shape + (emb.embedding_dim,), mask)
        for _ in range(self.steps):
            delta.requires_grad_(True)
            loss, _ = ctx.loss_fn(model, {**rest, "inputs_embeds": emb(ids) + delta})
            ctx.backward(loss / self.steps)
            delta = self._ascend(delta.detach(), delta.grad, mask)

    def _init(self, shape: tuple[int, ...], mask: torch.Tensor) -> torch.Tensor:
        """A random start of per-example norm alpha on the real (unpadded) tokens."""
        delta = torch.empty(shape, device=mask.device, dtype=mask.dtype).uniform_(-1, 1) * mask
        return self._per_example(delta, self.alpha)

    @staticmethod
    def _per_example(delta: torch.Tensor, radius: float, only_if_larger: bool = False) -> torch.Tensor:
        norms = torch.linalg.vector_norm(delta.float().flatten(1), dim=1).clamp_min(1e-12)  # (B,)
        scale = radius / norms
        if only_if_larger:
            scale = scale.clamp(max=1.0)
        return delta * scale.to(delta.dtype).view(-1, *([1] * (delta.dim() - 1)))

    def _ascend(self, delta: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        if grad is None:
            return delta
        step = self._per_example(grad * mask, self.alpha)
        return self._per_example(delta + step, self.epsilon, only_if_larger=True)


@HOOKS.register("adversarial")
def _adversarial(cfg: TrainConfig) -> Any:
    method = cfg.adversarial.method
    return None if method == "none" else ADVERSARIAL.get(method)(cfg.adversarial)
