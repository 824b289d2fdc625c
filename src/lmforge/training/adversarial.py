"""Adversarial training as training-loop hooks: FGM, PGD and FreeLB on the embeddings, worst-of-N on the text.

Each runs after the clean backward pass: it finds an input near the batch that raises the
loss and backpropagates the loss there on top of the clean gradients.

* FGM (Miyato et al., 2017): one step ``r = eps * g / ||g||`` on the word-embedding matrix.
* PGD (Madry et al., 2018): K steps of size alpha, projected back into the eps-ball; the
  gradient of the last step is added to the clean one.
* FreeLB (Zhu et al., 2020): K ascent steps on a per-example perturbation of the input
  embeddings (``inputs_embeds``), whose gradients are averaged onto the clean one.
* text: the batch is decoded, each example gets N perturbed copies (typos by default, any of
  :data:`lmforge.data.perturb.PERTURBATIONS`), the copy the current model finds hardest
  is kept (worst-of-N, a black-box attack in the discrete input space as in Pruthi et al.,
  2019), and its loss is trained on; ``consistency`` adds a KL term from the clean prediction
  (held fixed) to the one on that copy (TRADES, Zhang et al., 2019). Embedding-space methods
  leave the model as brittle to misspelled words as before: a typo changes the tokens, not a
  small step around them.

The embedding methods restore the embeddings before the optimizer step.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config import AdversarialConfig, TrainConfig
from lmforge.data.perturb import PERTURBATIONS
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


def target_kind(logits: torch.Tensor, labels: torch.Tensor) -> str:
    """``classes`` (class ids), ``multi_label`` ((B, C) targets) or ``regression``."""
    if labels.dtype == torch.long and labels.dim() == 1:
        return "classes"
    return "multi_label" if labels.shape == logits.shape else "regression"


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) losses of classification (class ids), multi-label (B, C) or regression targets."""
    kind = target_kind(logits, labels)
    if kind == "classes":
        return F.cross_entropy(logits.float(), labels, reduction="none")
    if kind == "multi_label":
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none").mean(-1)
    return (logits.float().reshape(labels.shape) - labels.float()) ** 2


def consistency_loss(clean: torch.Tensor, perturbed: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean KL(p_clean || p_perturbed) over the batch, the clean side fixed: of the softmax for class ids,
    of each label's sigmoid for multi-label targets (summed over labels); squared error for regression."""
    clean, perturbed = clean.float(), perturbed.float()
    kind = target_kind(clean, labels)
    if kind == "classes":
        return F.kl_div(F.log_softmax(perturbed, -1), F.log_softmax(clean, -1), log_target=True, reduction="batchmean")
    if kind == "multi_label":  # cross-entropy against p_clean minus its entropy, per label
        p = torch.sigmoid(clean)
        bce = F.binary_cross_entropy_with_logits
        return (bce(perturbed, p, reduction="none") - bce(clean, p, reduction="none")).sum(-1).mean()
    return F.mse_loss(perturbed, clean)


@ADVERSARIAL.register("text")
class TextAdversary(Hook):
    """Worst-of-N perturbed copies of each example (typos by default), trained on beside the clean batch.

    Args:
        cfg: ``perturbation``, ``candidates`` (N) and ``rate``.
        tokenizer: The model's tokenizer: batches are decoded to text, perturbed and encoded again.
        seed: Seeds the perturbations (with the step), so a resumed run draws the same copies.
    """

    def __init__(self, cfg: AdversarialConfig, tokenizer: Any = None, seed: int = 0) -> None:
        if tokenizer is None:
            raise LmforgeError("train.adversarial.method=text needs the model's tokenizer; it runs in lmforge finetune")
        self.perturb = PERTURBATIONS.get(cfg.perturbation)
        self.tokenizer, self.candidates, self.rate, self.seed = tokenizer, cfg.candidates, cfg.rate, seed
        self.consistency = cfg.consistency
        self.special = set(tokenizer.all_special_ids)
        self.calls = 0
        self._clean: torch.Tensor | None = None

    def loss(self, ctx: StepContext, model: nn.Module, batch: Batch, loss: torch.Tensor, outputs: Any) -> torch.Tensor:
        """Keep the clean logits (without gradients) for the consistency term."""
        self._clean = outputs.logits.detach() if self.consistency and hasattr(outputs, "logits") else None
        return loss

    def texts(self, batch: Batch) -> list[list[str]]:
        """Each example's text segments (one, or two for pairs), decoded from its token ids."""
        ids, mask = batch["input_ids"], batch.get("attention_mask", torch.ones_like(batch["input_ids"]))
        sep = self.tokenizer.sep_token_id
        out = []
        for row, keep in zip(ids.tolist(), mask.bool().tolist(), strict=True):
            segments: list[list[int]] = [[]]
            for token, real in zip(row, keep, strict=True):
                if real and token == sep:
                    segments.append([])
                elif real and token not in self.special:
                    segments[-1].append(token)
            decoded = [self.tokenizer.decode(s, clean_up_tokenization_spaces=True) for s in segments if s]
            out.append((decoded or [""])[:1] + ([" ".join(decoded[1:])] if len(decoded) > 1 else []))
        return out

    def encode(self, segments: list[list[str]], like: Batch) -> Batch:
        """Token ids of ``segments`` with the keys, padding and length limit of the batch ``like``."""
        pairs = [s[1] if len(s) > 1 else None for s in segments]
        enc = self.tokenizer([s[0] for s in segments], pairs if any(p is not None for p in pairs) else None,
                             truncation=True, max_length=like["input_ids"].shape[1], padding=True, return_tensors="pt")
        return {k: enc[k].to(like["input_ids"].device) for k in ("input_ids", "attention_mask", "token_type_ids")
                if k in like and k in enc}

    def after_backward(self, ctx: StepContext, model: nn.Module, batch: Batch) -> None:
        """Score N perturbed copies per example without gradients, then train on each example's worst."""
        if "input_ids" not in batch or "labels" not in batch:
            return
        rng = random.Random(f"{self.seed}:{ctx.step}:{self.calls}")
        self.calls += 1
        n = self.candidates
        copies = [[self.perturb(t, rng, self.rate) for t in segs] for segs in self.texts(batch) for _ in range(n)]
        candidates = self.encode(copies, batch)
        labels = batch["labels"]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(**candidates).logits
        model.train(was_training)
        losses = per_example_loss(logits, labels.repeat_interleave(n, 0)).view(-1, n)  # (B, N)
        worst = torch.arange(len(losses), device=losses.device) * n + losses.argmax(1)
        hard = {k: v[worst] for k, v in candidates.items()}
        if "attention_mask" in hard:  # drop the padding only longer copies needed
            length = int(hard["attention_mask"].sum(1).max())
            cut = slice(-length, None) if self.tokenizer.padding_side == "left" else slice(None, length)
            hard = {k: v[:, cut] for k, v in hard.items()}
        loss, outputs = ctx.loss_fn(model, {**hard, "labels": labels})
        if self._clean is not None:
            loss = loss + self.consistency * consistency_loss(self._clean, outputs.logits, labels)
            self._clean = None
        ctx.backward(loss)

    def state_dict(self) -> dict[str, Any]:
        """The count of batches seen (it seeds the next perturbations)."""
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.calls = int(state.get("calls", 0))


@HOOKS.register("adversarial")
def _adversarial(cfg: TrainConfig, tokenizer: Any) -> Any:
    method = cfg.adversarial.method
    if method == "none":
        return None
    if method == "text":
        return TextAdversary(cfg.adversarial, tokenizer, cfg.seed)
    return ADVERSARIAL.get(method)(cfg.adversarial)
