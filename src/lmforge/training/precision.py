"""Pick the numeric precision the hardware trains fastest without losing accuracy (see :mod:`lmforge.devices`)."""

from __future__ import annotations

import logging

import torch

from lmforge.devices import cpu_bf16, cpu_has_fast_bf16, default_device

log = logging.getLogger("lmforge.train")

__all__ = ["cpu_has_fast_bf16", "resolve_precision"]


def resolve_precision(requested: str, device: torch.device | None = None) -> str:
    """Map ``auto|fp32|bf16|fp16`` to what accelerate calls it (``no``, ``bf16``, ``fp16``), saying why in the log.

    ``auto`` takes bf16 on GPUs that support it, fp16 on older GPUs; on CPUs bf16 where the cores
    have AMX tiles and fp32 elsewhere, where bf16 runs many times slower than fp32.
    """
    device = device or torch.device(default_device())
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        fast, why = cpu_bf16()
        log.info("precision auto: %s on this CPU (%s)", "bf16" if fast else "fp32", why)
        return "bf16" if fast else "no"
    if requested == "fp16" and device.type == "cpu":
        log.warning("fp16 is not supported for training on CPU; using fp32")
        return "no"
    if requested == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("this CPU has no bf16 matrix units (AMX); bf16 will be much slower than fp32")
    return {"fp32": "no"}.get(requested, requested)
