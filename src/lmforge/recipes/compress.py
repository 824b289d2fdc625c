"""``lmforge compress``: a trained run -> a smaller run (quantized, ONNX, pruned or distilled) beside it.

The work is :func:`lmforge.compression.compress`; this recipe turns the command line's options
into its config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.compression import compress as run_compress


def compress(run: str | Path, method: str, out: str | Path, options: dict[str, Any] | None = None,
             overrides: list[str] | None = None) -> Path:
    """Compress ``run`` by ``method`` into the new run directory ``out``.

    Args:
        run: Run directory, model folder or zoo model.
        method: ``quantize``, ``onnx``, ``prune`` or ``distill``.
        out: New run directory (must not exist).
        options: Config entries set on the command line (``{"quantize": {"max_drop": 0.01}}``...).
        overrides: ``key.sub=value`` strings laid over them.
    """
    tree = {"method": method, **{k: v for k, v in (options or {}).items() if v not in (None, {}, [])}}
    return run_compress(run, out, tree, overrides)
