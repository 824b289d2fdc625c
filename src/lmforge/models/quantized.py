"""Int8 linear layers in PyTorch, and their weights as plain tensors so that they save to safetensors.

Two kinds, chosen by what the model does with its layers:

- **dynamic** (encoders, classifiers): PyTorch's dynamic quantization (``torch.ao``): int8
  weights, activations quantized per batch, int8 matrix products (fbgemm/oneDNN) on CPU.
- **per-token dynamic** (decoders generating on CPU): the same int8 kernels, each row of the
  activations quantized with its own scale, so one token's outliers do not cost the others
  their precision; decoding one token at a time is then one fbgemm product per layer.
- **weight-only** (decoders on GPUs): int8 weights with one scale per output channel; the product
  runs on the activations' own precision, so the model reads a quarter of the bytes per token.

Compression decides which layers to convert; loading a saved run converts the same layers of a
model built from its config and fills in the saved tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
import torch.ao.quantization as tq
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from lmforge.errors import LmforgeError

# The suffixes under which an int8 layer's tensors are saved.
INT8, SCALE, ZERO = ".weight_int8", ".weight_scale", ".weight_zero_point"


def linear_names(model: nn.Module, skip: Iterable[str] = ()) -> list[str]:
    """Names of the ``nn.Linear`` layers of ``model`` outside the modules ``skip``."""
    skip = list(skip)
    inside = lambda name: any(name == s or name.startswith(s + ".") for s in skip)  # noqa: E731
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear) and not inside(name)]


class TokenDynamicLinear(DynamicLinear):
    """A dynamic int8 linear whose activations are quantized row by row (one scale per token).

    The int8 kernel quantizes its whole input with one scale. A few rows go through it one at a
    time (decoding); more rows (a prompt, perplexity) are computed at once with the same per-row
    quantization on the dequantized weights, which gives the kernel's results up to float rounding.
    """

    ROWS_BY_KERNEL = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        dtype = x.dtype
        flat = x.reshape(-1, x.shape[-1]).float()  # the kernels take fp32 (bf16 autocast hands some layers bf16)
        if flat.shape[0] == 1:  # decoding: the hot path, one kernel call
            y = torch.ops.quantized.linear_dynamic(flat, self._packed_params._packed_params, reduce_range=True)
        elif flat.shape[0] <= self.ROWS_BY_KERNEL:
            packed = self._packed_params._packed_params
            y = torch.cat([torch.ops.quantized.linear_dynamic(row, packed, reduce_range=True) for row in flat.split(1)])
        else:
            weight, bias = self._weight_bias()
            y = nn.functional.linear(quantize_rows(flat), weight.dequantize(), bias)
        return y.reshape(*x.shape[:-1], -1).to(dtype)


def quantize_rows(x: torch.Tensor, levels: int = 127) -> torch.Tensor:
    """``x`` (rows, features) through uint8 quantization with each row's own range (0 included), back in float.

    ``levels`` 127 is the reduced range the x86 int8 kernels use for activations.
    """
    low, high = x.amin(1, keepdim=True).clamp(max=0), x.amax(1, keepdim=True).clamp(min=0)
    scale = ((high - low) / levels).clamp(min=torch.finfo(torch.float32).tiny)
    zero = torch.clamp(torch.round(-low / scale), 0, levels)
    return (torch.clamp(torch.round(x / scale) + zero, 0, levels) - zero) * scale


def dynamic_int8(model: nn.Module, names: Iterable[str], per_channel: bool = True, per_token: bool = False) -> nn.Module:
    """A copy of ``model`` whose layers ``names`` are dynamically quantized int8 linears (CPU only).

    ``per_token`` quantizes each row of the activations with its own scale (:class:`TokenDynamicLinear`).
    """
    qconfig = tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig
    mapping = {nn.Linear: TokenDynamicLinear} if per_token else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch announces that torch.ao moves to torchao; the API works in this torch
        quantized = tq.quantize_dynamic(model, {name: qconfig for name in names}, dtype=torch.qint8, inplace=False,
                                        mapping=mapping)
    for module in quantized.modules():
        if isinstance(module, DynamicLinear) and not isinstance(module, TokenDynamicLinear):
            module.register_forward_pre_hook(_fp32_input)
    return quantized


def _fp32_input(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
    # The int8 kernels take fp32 activations only, while bf16 autocast (inference on AMX CPUs) hands the
    # layers after an attention product bf16 ones.
    x = args[0]
    return (x.float(), *args[1:]) if x.is_floating_point() and x.dtype != torch.float32 else None


def _dynamic_tensors(name: str, module: DynamicLinear) -> dict[str, torch.Tensor]:
    weight, bias = module._weight_bias()
    out = {name + INT8: weight.int_repr().contiguous()}
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        out[name + SCALE] = weight.q_per_channel_scales().float()
        out[name + ZERO] = weight.q_per_channel_zero_points().to(torch.int32)
    else:
        out[name + SCALE] = torch.tensor([weight.q_scale()], dtype=torch.float32)
        out[name + ZERO] = torch.tensor([weight.q_zero_point()], dtype=torch.int32)
    if bias is not None:
        out[name + ".bias"] = bias.detach().float().contiguous()
    return out


def int8_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of a model with int8 layers, as plain tensors (int8 weights with their scales)."""
    state: dict[str, torch.Tensor] = {}
    quantized = set()
    for name, module in model.named_modules():
        if isinstance(module, DynamicLinear):
            state |= _dynamic_tensors(name, module)
            quantized.add(name)
        elif isinstance(module, WeightInt8Linear):
            state |= {name + INT8: module.weight, name + SCALE: module.scale}
            if module.bias is not None:
                state[name + ".bias"] = module.bias.detach()
            quantized.add(name)
    within = lambda key: any(key.startswith(q + ".") for q in quantized)  # noqa: E731
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        # A weight tied to another (a decoder's output layer and its embeddings) is saved once; loading reties it.
        if isinstance(tensor, torch.Tensor) and not within(key) and tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            state[key] = tensor.detach().contiguous()
    return state


def _fill_dynamic(module: DynamicLinear, name: str, tensors: dict[str, torch.Tensor]) -> None:
    ints, scale, zero = tensors[name + INT8], tensors[name + SCALE], tensors[name + ZERO]
    if scale.numel() > 1 or module.weight().qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        weight = torch._make_per_channel_quantized_tensor(ints, scale.double(), zero.long(), 0)
    else:
        weight = torch._make_per_tensor_quantized_tensor(ints, float(scale[0]), int(zero[0]))
    module.set_weight_bias(weight, tensors.get(name + ".bias"))


def load_int8_state(model: nn.Module, tensors: dict[str, torch.Tensor]) -> nn.Module:
    """Fill a model already converted with :func:`dynamic_int8` or :func:`weight_only_int8` with saved tensors."""
    converted = {name: m for name, m in model.named_modules() if isinstance(m, (DynamicLinear, WeightInt8Linear))}
    for name, module in converted.items():
        if isinstance(module, DynamicLinear):
            _fill_dynamic(module, name, tensors)
        else:
            module.weight, module.scale = tensors[name + INT8], tensors[name + SCALE]
            if name + ".bias" in tensors:
                module.bias = nn.Parameter(tensors[name + ".bias"], requires_grad=False)
    # The other tensors are copied into the model's own, so weights tied in the model stay tied.
    own = {k: v for k, v in model.state_dict(keep_vars=True).items()
           if isinstance(v, torch.Tensor) and not any(k.startswith(q + ".") for q in converted)}
    filled = {own[key].data_ptr() for key in own if key in tensors}
    missing = [key for key, value in own.items() if key not in tensors and value.data_ptr() not in filled]
    if missing:
        raise LmforgeError(f"the saved int8 weights lack {', '.join(missing[:3])}; the file is incomplete, compress the run again")
    with torch.no_grad():
        for key in own.keys() & tensors.keys():
            own[key].copy_(tensors[key])
    return model


class WeightInt8Linear(nn.Module):
    """A linear layer with int8 weights and one float scale per output channel (weight-only quantization).

    On CPU the product is ``aten._weight_int8pack_mm`` (int8 weights read, activations kept in
    their precision); elsewhere the weights are widened to the activations' dtype first.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out,) float32
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> WeightInt8Linear:
        """Quantize ``linear`` symmetrically per output channel."""
        w = linear.weight.detach().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        ints = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        return cls(ints, scale, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ (weight * scale).T + bias`` for ``x`` of shape (..., in)."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.bfloat16, torch.float16):
            y = torch.ops.aten._weight_int8pack_mm(flat.contiguous(), self.weight, self.scale.to(flat.dtype))
        else:
            y = nn.functional.linear(flat, self.weight.to(flat.dtype)) * self.scale.to(flat.dtype)
        y = y.reshape(*shape[:-1], -1)
        return y + self.bias if self.bias is not None else y


def weight_only_int8(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Replace the linear layers ``names`` of ``model`` with :class:`WeightInt8Linear`, in place."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, WeightInt8Linear.from_linear(getattr(parent, child)))
    return model
