"""``compress --method prune``: drop layers, then attention heads, then (optionally) small weights, recovering after each.

- **Layers**: the layer whose removal raises the loss on a training sample least goes first,
  one at a time.
- **Heads**: importance is the gradient of the loss with respect to a gate on each head's output
  (Michel et al., 2019, "Are Sixteen Heads Really Better than One?"), normalized per layer; the
  least important share goes, keeping at least one head per layer. The heads are sliced out, so
  the model computes less.
- **Sparsity** (unstructured): the smallest weights of the encoder's linear layers, by magnitude,
  become zero. The file compresses well, but dense kernels on a CPU run no faster.

After each step the model is fine-tuned briefly on the run's training data through lmforge's
training loop. A model that lost heads is saved as a ``compressed`` run (a plain transformers
folder with the pruned heads zeroed); the others are plain ``classifier`` runs.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from lmforge import artifacts
from lmforge.artifacts.compressed import save_compressed
from lmforge.compression.config import CompressConfig
from lmforge.compression.source import Parent, headline, log_cost, run_splits, score, skeleton, split_of
from lmforge.compression.training import sample_batches, train
from lmforge.config import TaskConfig
from lmforge.data.dataset import Split, SplitSource
from lmforge.errors import ConfigError
from lmforge.models.build import quiet_transformers
from lmforge.models.compact import HeadMap, attention_blocks, drop_heads, keep_layers, layer_list, pad_heads
from lmforge.models.heads import head_modules
from lmforge.models.quantized import linear_names
from lmforge.training.regularizers import build_loss

log = logging.getLogger("lmforge.compress")


def head_importance(model: nn.Module, batches: list[dict[str, torch.Tensor]], loss_fn: Any) -> torch.Tensor:
    """|dLoss/dgate| of every head summed over ``batches``, each layer's row scaled to unit norm; shape (L, H)."""
    blocks = attention_blocks(model)
    device = next(model.parameters()).device
    gates = [torch.ones(b.heads, device=device, requires_grad=True) for b in blocks]
    handles = [b.output.register_forward_pre_hook(_gate_hook(gate, b.head_size)) for b, gate in zip(blocks, gates)]
    model.eval()  # dropout off: the estimate should not be noisy
    try:
        for batch in batches:
            loss, _ = loss_fn(model, {k: v.to(device) for k, v in batch.items()})
            loss.backward()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
    scores = torch.stack([g.grad.abs() for g in gates]).cpu()  # (L, H)
    return scores / scores.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _gate_hook(gate: torch.Tensor, head_size: int) -> Any:
    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0]  # (B, T, H * d): the heads' outputs side by side
        gated = x.view(*x.shape[:-1], -1, head_size) * gate.view(-1, 1)
        return (gated.view(x.shape), *args[1:])

    return hook


def choose_heads(importance: torch.Tensor, share: float) -> HeadMap:
    """The least important ``share`` of all heads, at most all but one per layer: layer -> head indices."""
    layers, heads = importance.shape
    budget = int(round(share * layers * heads))
    chosen: HeadMap = {}
    for flat in torch.argsort(importance.flatten()).tolist():
        if budget == 0:
            break
        layer, head = divmod(flat, heads)
        if len(chosen.get(layer, [])) < heads - 1:
            chosen.setdefault(layer, []).append(head)
            budget -= 1
    return {layer: sorted(hs) for layer, hs in sorted(chosen.items())}


def _sample_loss(model: nn.Module, batches: list[dict[str, torch.Tensor]], loss_fn: Any) -> float:
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        return float(np.mean([float(loss_fn(model, {k: v.to(device) for k, v in b.items()})[0]) for b in batches]))


def layers_to_keep(model: nn.Module, batches: list[dict[str, torch.Tensor]], loss_fn: Any, drop: int) -> list[int]:
    """Indices of the layers that stay after dropping ``drop``, each time the one whose removal costs least."""
    keep = list(range(len(layer_list(model))))
    if drop >= len(keep):
        raise_layers(drop, len(keep))
    for _ in range(drop):
        costs = {}
        for layer in keep:
            trial = [i for i in keep if i != layer]
            costs[layer] = _sample_loss(keep_layers(copy.deepcopy(model), trial), batches, loss_fn)
        cheapest = min(costs, key=costs.get)
        log.info("dropping layer %d (sample loss without it %.4f)", cheapest, costs[cheapest])
        keep.remove(cheapest)
    return keep


def raise_layers(drop: int, total: int) -> None:
    """Refuse to drop every layer."""
    raise ConfigError(f"prune.layers={drop} would drop every one of the model's {total} layers; drop at most {total - 1}")


def sparsify(model: nn.Module, sparsity: float) -> list[tuple[nn.Module, str]]:
    """Zero the smallest-magnitude ``sparsity`` of the encoder's linear weights (global threshold); masks stay on."""
    head = head_modules(model, with_pooler=True, fresh=False)
    targets = [(model.get_submodule(name), "weight") for name in linear_names(model, head)]
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    return targets


def check(parent: Parent, cfg: CompressConfig) -> None:
    """Refuse, before any work, pruning the model's shape does not allow (from its config, without its weights)."""
    model = skeleton(parent.path)
    total = len(layer_list(model))
    if cfg.prune.layers >= total:
        raise_layers(cfg.prune.layers, total)
    if cfg.prune.heads:
        attention_blocks(model)


def _recover(model: nn.Module, step: str, train_split: Split, validation: Split | None, ctx: dict[str, Any]) -> nn.Module:
    cfg: CompressConfig = ctx["cfg"]
    if not cfg.prune.recover:
        return model
    log.info("recovery fine-tuning after %s: %g epoch(s) at lr %g", step, cfg.train.epochs, cfg.train.lr)
    task = ctx["task"]
    source = SplitSource(train_split, task.collate, cfg.train.batch_size, "length_grouped", cfg.train.seed)
    return train(model, source, build_loss(task.loss, cfg.train), cfg.train, ctx["staging"] / f"recovery-{step}", task,
                 validation, ctx["labels"])


def prune(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    """Prune the parent run as ``cfg.prune`` says and save the result under ``staging/model``."""
    predictor = parent.load(cfg.device)
    model, task, labels = predictor.model, predictor.task, predictor.labels
    splits = run_splits(parent, cfg.train_data, cfg.data, cfg.train_samples, cfg.eval_samples)
    made = {name: split_of(task, predictor.tokenizer, predictor.data, labels, name, pair) for name, pair in splits.items()}
    train_split, validation = made["train"], made.get("validation")
    ctx = {"cfg": cfg, "task": task, "labels": labels, "staging": staging}
    batches = sample_batches(train_split, task.collate, cfg.prune.sample, 32, cfg.train.seed)
    metric, before = headline(task, score(task, model, validation, labels, cfg.batch_size)) if validation else ("", 0.0)
    record: dict[str, Any] = {"layers_before": len(layer_list(model))}
    if cfg.prune.layers:
        keep = layers_to_keep(model, batches, task.loss, cfg.prune.layers)
        model = _recover(keep_layers(model, keep), "layers", train_split, validation, ctx)
        record["kept_layers"] = keep
    heads: HeadMap = {}
    if cfg.prune.heads:
        importance = head_importance(model, batches, task.loss)
        heads = choose_heads(importance, cfg.prune.heads)
        total = importance.numel()
        record |= {"heads_before": total, "pruned_heads_share": sum(map(len, heads.values())) / total}
        log.info("pruning %d of %d heads: %s", sum(map(len, heads.values())), total, heads)
        model = _recover(drop_heads(model, heads), "heads", train_split, validation, ctx)
    if cfg.prune.sparsity:
        targets = sparsify(model, cfg.prune.sparsity)
        model = _recover(model, "sparsity", train_split, validation, ctx)
        for module, name in targets:
            torch_prune.remove(module, name)
        record["sparsity"] = cfg.prune.sparsity
        log.info("unstructured sparsity %.0f%%: the saved weights compress well, but CPU kernels are dense (no speed-up)",
                 100 * cfg.prune.sparsity)
    if validation is not None:
        after = headline(task, score(task, model, validation, labels, cfg.batch_size))[1]
        log_cost("pruned", metric, before, after)
        record |= {"metric": metric, "before": before, "after": after}
    return _save(parent, staging / "model", model.cpu(), predictor, heads, record)


def _save(parent: Parent, out: Path, model: nn.Module, predictor: Any, heads: HeadMap, record: dict[str, Any]) -> Path:
    fields = {"parent": str(parent.path.resolve()), "method": "prune", "compression": record}
    if not heads:
        return artifacts.save_model(out, model, predictor.tokenizer, TaskConfig(**parent.meta["task"]), predictor.labels,
                                    predictor.data, parent.meta.get("base_model", str(parent.path)), **fields)
    pad_heads(model, heads)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out)
        predictor.tokenizer.save_pretrained(out)
    return save_compressed(out, parent.meta, parent.path, "prune", "pruned_heads", compression=record,
                           pruned_heads={str(k): v for k, v in heads.items()})
