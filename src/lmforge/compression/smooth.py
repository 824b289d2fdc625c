"""SmoothQuant for decoders: move activation outliers into the weights before int8 quantization.

A few input channels of a decoder's linear layers carry values far larger than the rest, so one
int8 scale per token spends its range on them. Each such layer is preceded by something linear
per channel (an RMSNorm weight, the value projection, the up projection): dividing a channel
there by ``s`` and multiplying the matching weight column by ``s`` leaves the model's function
unchanged and evens out the activations. ``s = max|x|^alpha / max|w|^(1 - alpha)`` per channel
(Xiao et al., 2023), from the inputs seen on calibration texts.

Supported: LLaMA-style decoders (``model.layers[i].self_attn.{q,k,v,o}_proj``,
``mlp.{gate,up,down}_proj``, RMSNorms; SmolLM2, Llama, Mistral, Qwen2), grouped-query attention
included. Other architectures are left as they are (the caller says so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

log = logging.getLogger("lmforge.compress")


def untie_output(model: nn.Module) -> nn.Module:
    """Give ``model`` an output layer of its own when it shares its weight with the input embeddings."""
    output, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    if output is not None and output.weight.data_ptr() == embeddings.weight.data_ptr():
        own = nn.Linear(output.in_features, output.out_features, bias=output.bias is not None)
        own.weight = nn.Parameter(output.weight.detach().clone(), requires_grad=False)
        if output.bias is not None:
            own.bias = nn.Parameter(output.bias.detach().clone(), requires_grad=False)
        model.set_output_embeddings(own)
    return model


def input_ranges(model: nn.Module, tokenizer: Any, texts: Sequence[str], max_length: int = 512) -> dict[str, torch.Tensor]:
    """Largest absolute input value per channel of every ``nn.Linear`` of ``model`` over ``texts``."""
    ranges: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).abs().amax(0).float()
            ranges[name] = torch.maximum(ranges[name], x) if name in ranges else x
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for text in texts:
                ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)["input_ids"].to(device)
                model(input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    return ranges


def _ratio(x_max: torch.Tensor, w_max: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per channel: ``max|x|^alpha / max|w|^(1 - alpha)``."""
    return (x_max.clamp(min=1e-5).pow(alpha) / w_max.clamp(min=1e-5).pow(1 - alpha)).clamp(min=1e-5)


def _scales(x_max: torch.Tensor, weights: Sequence[torch.Tensor], alpha: float) -> torch.Tensor:
    """Per input channel, :func:`_ratio` over the weights that read the channel."""
    return _ratio(x_max, torch.stack([w.abs().amax(0) for w in weights]).amax(0).float(), alpha)


def _decoder_layers(model: nn.Module) -> Any:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or not len(layers):
        return None
    first = layers[0]
    needed = ("input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
              "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    try:
        for name in needed:
            first.get_submodule(name)
    except AttributeError:
        return None
    return layers


def supports(model: nn.Module) -> bool:
    """Whether :func:`smooth` knows the layout of ``model``."""
    return _decoder_layers(model) is not None and getattr(getattr(model, "model", None), "norm", None) is not None


@torch.no_grad()
def smooth(model: nn.Module, ranges: dict[str, torch.Tensor], alpha: float) -> int:
    """Fold per-channel scales into ``model`` (an untied LLaMA-style decoder), in place; the number of layers rescaled.

    ``ranges`` comes from :func:`input_ranges` on the same model. The function of the model does
    not change (up to float rounding); only the spread of its activations does.
    """
    layers = _decoder_layers(model)
    if layers is None:
        return 0
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    scaled = 0
    for i, layer in enumerate(layers):
        attn, mlp, prefix = layer.self_attn, layer.mlp, f"model.layers.{i}."
        qkv = (attn.q_proj, attn.k_proj, attn.v_proj)
        s = _scales(ranges[prefix + "self_attn.q_proj"], [p.weight for p in qkv], alpha)
        layer.input_layernorm.weight.div_(s.to(layer.input_layernorm.weight.dtype))
        for proj in qkv:
            proj.weight.mul_(s)
        # The output projection reads the values: with grouped-query attention, query head h reads
        # key/value head h // repeats, so one scale per value channel serves every head that reads it.
        heads = attn.o_proj.in_features // head_dim
        repeats = heads // (attn.v_proj.out_features // head_dim)
        channel = torch.arange(attn.o_proj.in_features)
        source = (channel // head_dim) // repeats * head_dim + channel % head_dim
        width = attn.v_proj.out_features
        x_max = torch.zeros(width).scatter_reduce_(0, source, ranges[prefix + "self_attn.o_proj"], "amax", include_self=False)
        w_max = torch.zeros(width).scatter_reduce_(0, source, attn.o_proj.weight.abs().amax(0).float(), "amax",
                                                 include_self=False)
        s = _ratio(x_max, w_max, alpha)
        attn.v_proj.weight.div_(s[:, None])
        if attn.v_proj.bias is not None:
            attn.v_proj.bias.div_(s)
        attn.o_proj.weight.mul_(s[source])
        s = _scales(ranges[prefix + "mlp.gate_proj"], [mlp.gate_proj.weight, mlp.up_proj.weight], alpha)
        layer.post_attention_layernorm.weight.div_(s)
        mlp.gate_proj.weight.mul_(s)
        mlp.up_proj.weight.mul_(s)
        s = _scales(ranges[prefix + "mlp.down_proj"], [mlp.down_proj.weight], alpha)
        mlp.up_proj.weight.div_(s[:, None])
        if mlp.up_proj.bias is not None:
            mlp.up_proj.bias.div_(s)
        mlp.down_proj.weight.mul_(s)
        scaled += 7
    output = model.get_output_embeddings()
    name = next(n for n, m in model.named_modules() if m is output)
    if name in ranges and output.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        s = _scales(ranges[name], [output.weight], alpha)
        model.model.norm.weight.div_(s)
        output.weight.mul_(s)
        scaled += 1
    return scaled
