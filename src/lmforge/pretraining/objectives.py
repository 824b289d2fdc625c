"""Pretraining objectives around a Hugging Face model: masked LM, next-sentence prediction, causal LM.

:class:`PretrainingModel` wraps the model so that the training loop (and DDP) sees one module
whose forward returns the loss. For masked LM it runs the encoder, gathers the hidden states
of the ~15% predicted positions, and only then applies the vocabulary projection: the output
layer (hidden x vocab) is often as large as the whole encoder, and this skips 85% of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import LmforgeError


@dataclass(frozen=True)
class Objectives:
    """Which objectives a run trains."""

    mlm: bool = False
    nsp: bool = False
    clm: bool = False

    def names(self) -> list[str]:
        """The active objectives, e.g. ``["mlm", "nsp"]``."""
        return [name for name in ("mlm", "nsp", "clm") if getattr(self, name)]


@dataclass
class PretrainOutput:
    """Loss of a batch and the counts its evaluation needs (sums, so batches add up)."""

    loss: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


def mlm_head(model: nn.Module) -> nn.Module | None:
    """The module mapping hidden states (..., H) to vocabulary logits, where the architecture has one we know."""
    cls = getattr(model, "cls", None)
    if cls is not None:
        return getattr(cls, "predictions", cls)  # BertForPreTraining / BertForMaskedLM
    return getattr(model, "lm_head", None)  # RoBERTa, XLM-R and relatives


def nsp_head(model: nn.Module) -> nn.Module | None:
    """The next-sentence classifier on the pooled output (BERT)."""
    return getattr(getattr(model, "cls", None), "seq_relationship", None)


def _count(mask: torch.Tensor) -> torch.Tensor:
    return mask.sum().detach().float()


class PretrainingModel(nn.Module):
    """A Hugging Face model plus the objectives' losses, as one module for the training loop.

    Args:
        model: ``*ForPreTraining``, ``*ForMaskedLM`` or ``*ForCausalLM``.
        objectives: What to train.
    """

    def __init__(self, model: nn.Module, objectives: Objectives) -> None:
        super().__init__()
        self.model, self.objectives = model, objectives
        if objectives.nsp and nsp_head(model) is None:
            raise LmforgeError(f"{type(model).__name__} has no next-sentence head; set objective.nsp=false")

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, next_sentence_label: torch.Tensor | None = None) -> PretrainOutput:
        """Loss of one batch; ``labels`` are -100 except at predicted positions (all positions for CLM)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        inputs = {k: v for k, v in inputs.items() if v is not None}
        if self.objectives.clm:
            out = self.model(**inputs, labels=labels)
            return self._output(out.loss, {"clm": (out.loss, out.logits[:, :-1], labels[:, 1:])})
        # Heads are looked up, not stored: as submodules here they would be saved twice in checkpoints.
        head, next_head = mlm_head(self.model), nsp_head(self.model) if self.objectives.nsp else None
        if head is None:
            out = self.model(**inputs, labels=labels)
            return self._output(out.loss, {"mlm": (out.loss, out.logits, labels)})
        encoded = self.model.base_model(**inputs)
        hidden = encoded.last_hidden_state  # (B, T, H)
        picked = (labels >= 0).view(-1).nonzero().squeeze(-1)
        targets = labels.view(-1).index_select(0, picked)
        logits = head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, picked))  # (M, V)
        loss = F.cross_entropy(logits.float(), targets)
        parts = {"mlm": (loss, logits, targets)}
        if next_head is not None and next_sentence_label is not None:
            nsp_logits = next_head(encoded.pooler_output)  # (B, 2)
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label)
            parts["nsp"] = (nsp_loss, nsp_logits, next_sentence_label)
            loss = loss + nsp_loss
        return self._output(loss, parts)

    def _output(self, loss: torch.Tensor, parts: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> PretrainOutput:
        """``loss`` with, in eval mode only, each objective's summed loss, hits and count.

        Args:
            loss: The batch's total loss.
            parts: Objective name -> (its loss, logits (..., C), targets (...) with -100 where not predicted).
        """
        if self.training:  # only evaluation reads the counts: the argmax over the vocabulary stays off the step
            return PretrainOutput(loss)
        stats: dict[str, torch.Tensor] = {}
        for name, (part, logits, targets) in parts.items():
            mask = targets >= 0
            n = _count(mask)
            stats |= {f"{name}_loss": part.detach() * n, f"{name}_count": n,
                      f"{name}_correct": _count((logits.detach().argmax(-1) == targets) & mask)}
        return PretrainOutput(loss, stats)


def pretrain_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, PretrainOutput]:
    """The loop's loss function: the wrapped model's forward."""
    out = model(**batch)
    return out.loss, out


def summarize(stats: dict[str, float]) -> dict[str, float]:
    """Per-objective loss, accuracy and perplexity from summed counts, plus ``loss`` (their sum)."""
    metrics: dict[str, float] = {}
    total = 0.0
    for name in ("mlm", "nsp", "clm"):
        n = stats.get(f"{name}_count", 0.0)
        if not n:
            continue
        loss = stats[f"{name}_loss"] / n
        total += loss
        metrics[f"{name}_loss"] = loss
        metrics[f"{name}_accuracy"] = stats[f"{name}_correct"] / n
        if name != "nsp":
            metrics[f"{name}_perplexity"] = math.exp(min(loss, 50.0))
    metrics["loss"] = total
    return metrics


def evaluate_batches(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Held-out metrics of ``model`` (the wrapper, possibly prepared by accelerate) over fixed batches."""
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    with torch.inference_mode():
        for batch in batches:
            out = model(**{k: v.to(device) for k, v in batch.items()})
            for key, value in out.stats.items():
                sums[key] = sums.get(key, 0.0) + float(value)
    return summarize(sums)


def unused_parameters(model: nn.Module, objectives: Objectives) -> list[str]:
    """Names of parameters no objective trains (the pooler and NSP head without NSP), to freeze."""
    if objectives.nsp or objectives.clm:
        return []
    names = []
    for name, _ in model.named_parameters():
        if ".pooler." in f".{name}" or "seq_relationship" in name:
            names.append(name)
    return names


def freeze(model: nn.Module, names: list[str]) -> None:
    """Stop gradients for ``names``: frozen parameters are left out of the optimizer and of DDP's sync."""
    wanted = set(names)
    for name, param in model.named_parameters():
        if name in wanted:
            param.requires_grad_(False)


def describe(objectives: Objectives) -> str:
    """``masked LM + next-sentence prediction`` and the like, for the log."""
    words = {"mlm": "masked LM", "nsp": "next-sentence prediction", "clm": "causal LM"}
    return " + ".join(words[n] for n in objectives.names())

