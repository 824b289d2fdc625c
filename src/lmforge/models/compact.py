"""Make a transformers model smaller in place: keep some of its layers, drop attention heads.

Both compression (which chooses what to remove) and loading (which rebuilds a saved pruned
model) use these, so a model is cut the same way in both places.

transformers 5 no longer prunes heads itself (``prune_heads`` and ``config.pruned_heads`` are
gone), and its attention modules take their projection sizes from the config. A head-pruned
folder that plain ``from_pretrained`` can read therefore keeps the full shapes with the pruned
heads' weights set to zero (:func:`zero_heads`, which changes no output); :func:`drop_heads`
then slices those heads out of the loaded model, which is what makes it faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import prune_linear_layer

from lmforge.errors import LmforgeError

# Heads per layer: layer index -> head indices (as in the old ``config.pruned_heads``).
HeadMap = dict[int, list[int]]


def layer_list(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer layers (``bert.encoder.layer``, ``model.layers``...)."""
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count and count:
            return module
    raise LmforgeError(f"{type(model).__name__} has no stack of {count} transformer layers that lmforge can find; "
                       "layer dropping and distillation support BERT-style encoders and Llama-style decoders")


def keep_layers(model: nn.Module, keep: Sequence[int]) -> nn.Module:
    """Keep only layers ``keep`` (in that order) of ``model``, in place; the config follows.

    Args:
        model: A transformers model.
        keep: Indices of the layers that stay, e.g. ``[0, 2, 3, 5]``.
    """
    layers = layer_list(model)
    if not keep or len(set(keep)) != len(keep) or not all(0 <= i < len(layers) for i in keep):
        raise LmforgeError(f"cannot keep layers {list(keep)} of a model with {len(layers)}: give distinct indices below {len(layers)}")
    kept = [layers[i] for i in keep]
    for new, layer in enumerate(kept):
        # Decoders index their key/value cache by this number.
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new
    layers_parent, name = _parent_of(model, layers)
    setattr(layers_parent, name, nn.ModuleList(kept))
    model.config.num_hidden_layers = len(kept)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[i] for i in keep]
    return model


def _parent_of(model: nn.Module, child: nn.Module) -> tuple[nn.Module, str]:
    for _, module in model.named_modules():
        for name, sub in module.named_children():
            if sub is child:
                return module, name
    raise LmforgeError(f"{type(model).__name__}: the layer stack has no parent module")


@dataclass
class Attention:
    """The parts of one BERT-style self-attention block that head pruning cuts.

    Attributes:
        module: The self-attention module (with ``query``, ``key``, ``value``).
        output: The projection after it (``attention.output.dense``).
        head_size: Width of one head.
    """

    module: nn.Module
    output: nn.Linear
    head_size: int

    @property
    def heads(self) -> int:
        """Heads the block has now."""
        return self.module.query.out_features // self.head_size

    def head_index(self, heads: Sequence[int]) -> torch.Tensor:
        """Output rows of query/key/value (input columns of the output) that belong to ``heads``."""
        rows = [h * self.head_size + i for h in heads for i in range(self.head_size)]
        return torch.tensor(rows, dtype=torch.long)


def attention_blocks(model: nn.Module) -> list[Attention]:
    """The self-attention block of every layer of a BERT-style encoder (BERT, RoBERTa, ELECTRA, MiniLM...)."""
    blocks = []
    for layer in layer_list(model):
        attention = getattr(layer, "attention", None)
        module = getattr(attention, "self", None)
        output = getattr(getattr(attention, "output", None), "dense", None)
        if module is None or output is None or not all(hasattr(module, p) for p in ("query", "key", "value")):
            raise LmforgeError(f"{type(model).__name__} is not a BERT-style encoder; head pruning supports BERT, RoBERTa, "
                               "ELECTRA and MiniLM models (use layer dropping or distillation for others)")
        blocks.append(Attention(module, output, int(module.attention_head_size)))
    return blocks


def zero_heads(model: nn.Module, heads: HeadMap) -> nn.Module:
    """Set the weights of ``heads`` to zero, in place, keeping every shape (outputs as if the heads were gone)."""
    blocks = attention_blocks(model)
    with torch.no_grad():
        for layer, pruned in heads.items():
            block = blocks[layer]
            rows = block.head_index(pruned)
            for proj in (block.module.query, block.module.key, block.module.value):
                proj.weight[rows] = 0.0
                proj.bias[rows] = 0.0
            block.output.weight[:, rows] = 0.0
    return model


def drop_heads(model: nn.Module, heads: HeadMap) -> nn.Module:
    """Slice ``heads`` out of the query/key/value and output projections, in place.

    The attention modules infer their head count from the projection sizes, so the smaller model
    runs as is; every layer keeps at least one head.
    """
    blocks = attention_blocks(model)
    for layer, pruned in heads.items():
        block = blocks[layer]
        keep = [h for h in range(block.heads) if h not in set(pruned)]
        if not keep:
            raise LmforgeError(f"pruning every head of layer {layer} would cut the layer off; keep at least one head per layer")
        index = block.head_index(keep)
        for name in ("query", "key", "value"):
            setattr(block.module, name, prune_linear_layer(getattr(block.module, name), index, dim=0))
        layer_list(model)[layer].attention.output.dense = prune_linear_layer(block.output, index, dim=1)
        block.module.num_attention_heads = len(keep)
        block.module.all_head_size = len(keep) * block.head_size
    return model


def pad_heads(model: nn.Module, heads: HeadMap) -> nn.Module:
    """Undo :func:`drop_heads` in shape only, in place: the dropped heads come back with zero weights.

    The model then has the shapes its config describes again, so ``save_pretrained`` writes a
    folder that plain ``from_pretrained`` loads, with the same outputs as the sliced model.
    """
    for layer, pruned in heads.items():
        block = attention_blocks(model)[layer]
        total = block.heads + len(pruned)
        keep = block.head_index([h for h in range(total) if h not in set(pruned)])
        for name in ("query", "key", "value"):
            setattr(block.module, name, _widened(getattr(block.module, name), keep, total * block.head_size, dim=0))
        layer_list(model)[layer].attention.output.dense = _widened(block.output, keep, total * block.head_size, dim=1)
        block.module.num_attention_heads = total
        block.module.all_head_size = total * block.head_size
    return model


def _widened(linear: nn.Linear, index: torch.Tensor, size: int, dim: int) -> nn.Linear:
    """A copy of ``linear`` with ``size`` rows (dim 0) or input columns (dim 1), ``linear``'s own at ``index``, zeros elsewhere."""
    shape = (size, linear.in_features) if dim == 0 else (linear.out_features, size)
    wide = nn.Linear(shape[1], shape[0], bias=linear.bias is not None).to(linear.weight.device, linear.weight.dtype)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight.index_copy_(dim, index.to(wide.weight.device), linear.weight)
        if linear.bias is not None:
            if dim == 0:
                wide.bias.zero_()
                wide.bias.index_copy_(0, index.to(wide.bias.device), linear.bias)
            else:
                wide.bias.copy_(linear.bias)
    return wide


def head_counts(model: nn.Module) -> list[int]:
    """Heads left in each layer."""
    return [block.heads for block in attention_blocks(model)]
