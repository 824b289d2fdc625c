"""Pick the numeric precision the hardware runs fastest without losing accuracy."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("lmforge.train")


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices in hardware (AMX tiles)."""
    return "AMX" in torch.backends.cpu.get_cpu_capability().upper()


def resolve_precision(requested: str, device: torch.device | None = None) -> str:
    """Map ``auto|fp32|bf16|fp16`` to what accelerate calls it (``no``, ``bf16``, ``fp16``).

    ``auto`` takes bf16 on GPUs that support it, fp16 on older GPUs and fp32 on CPUs, where
    bf16 without AMX runs many times slower than fp32.
    """
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "no"
    if requested == "fp16" and device.type == "cpu":
        log.warning("fp16 is not supported for training on CPU; using fp32")
        return "no"
    if requested == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("this CPU has no bf16 matrix units (AMX); bf16 will be much slower than fp32")
    return {"fp32": "no"}.get(requested, requested)
