"""Where models run: the one place that decides between the GPU and the CPU."""

from __future__ import annotations

import torch


def default_device(requested: str | None = None) -> str:
    """``requested`` when given (``cpu``, ``cuda``, ``cuda:1``...), else ``cuda`` where a GPU is visible, else ``cpu``.

    ``"auto"`` is the same as None.
    """
    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"
