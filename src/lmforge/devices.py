"""Where models run and in what precision: the one place that decides between GPU and CPU, bf16 and fp32.

On CPUs, bf16 matrix products are several times faster than fp32 where the cores have AMX tiles
(Sapphire Rapids and later) and several times slower where they do not, so the choice follows the
hardware: the CPU flags decide where the operating system lists them, and a tiny timed matrix
product decides elsewhere. The answer is computed once per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger("lmforge")
# Set to 0 or 1 to force fp32 or bf16 on the CPU (tests pin fp32 so their numbers do not depend on the machine).
CPU_BF16_ENV = "LMFORGE_CPU_BF16"
_EXACT = threading.local()


def default_device(requested: str | None = None) -> str:
    """``requested`` when given (``cpu``, ``cuda``, ``cuda:1``...), else ``cuda`` where a GPU is visible, else ``cpu``.

    ``"auto"`` is the same as None.
    """
    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def _cpu_flags() -> set[str] | None:
    """The CPU feature flags the operating system lists, or None where it lists none (not Linux)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return None
    for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def _timed_bf16_ratio(size: int = 512, repeats: int = 5) -> float:
    """fp32 time over bf16 time of a ``size``-square matrix product (above 1: bf16 is faster)."""
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size).to(dtype)
        a @ a  # warm up the kernel
        start = time.perf_counter()
        for _ in range(repeats):
            a @ a
        times[dtype] = time.perf_counter() - start
    return times[torch.float32] / max(times[torch.bfloat16], 1e-9)


@cache
def cpu_bf16() -> tuple[bool, str]:
    """Whether bf16 is the fast precision on this CPU, and why (for the run log)."""
    forced = os.environ.get(CPU_BF16_ENV)
    if forced in ("0", "1"):
        return forced == "1", f"{CPU_BF16_ENV}={forced}"
    flags = _cpu_flags()
    if flags is not None:
        amx = {"amx_bf16", "amx_tile"} <= flags
        return amx, "the CPU has AMX bf16 tiles" if amx else "the CPU has no AMX tiles (bf16 would be slower than fp32)"
    ratio = _timed_bf16_ratio()
    return ratio > 1.5, f"a timed matrix product ran {ratio:.1f}x faster in bf16 than fp32"


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices much faster than fp32 (AMX tiles)."""
    return cpu_bf16()[0]


@contextlib.contextmanager
def exact_inference() -> Iterator[None]:
    """Run inference in this thread in fp32 whatever the hardware favours: references that other precisions are measured against."""
    previous = getattr(_EXACT, "on", False)
    _EXACT.on = True
    try:
        yield
    finally:
        _EXACT.on = previous


def inference_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype for inference on ``device``: bf16 on AMX CPUs and bf16-capable GPUs, else None (fp32)."""
    if getattr(_EXACT, "on", False):
        return None
    kind = torch.device(device).type
    if kind == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


@contextlib.contextmanager
def inference_precision(device: str | torch.device) -> Iterator[None]:
    """Autocast a forward pass to the fast precision of ``device`` (nothing where fp32 is the fast one)."""
    dtype = inference_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=dtype):
        yield


def describe_precision(device: str | torch.device) -> str:
    """One line for the log: the inference precision on ``device`` and why."""
    dtype = inference_dtype(device)
    name = "fp32" if dtype is None else str(dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float16", "fp16")
    if getattr(_EXACT, "on", False):
        return "fp32 (an exact reference: compression is measured against it)"
    why = cpu_bf16()[1] if torch.device(device).type == "cpu" else "GPU"
    return f"{name} ({why})"
