"""Compression: a trained run -> a smaller, faster run, with what it cost in accuracy measured.

==========  ====================================================================================
quantize    int8 PyTorch: dynamic for classifiers (accuracy-aware fallback to fp32), weight-only
            for causal LMs (:mod:`~lmforge.compression.quantize`)
onnx        an ONNX graph (fp32, int8, fp16) for plain onnxruntime (:mod:`~lmforge.compression.onnx`)
prune       layers, attention heads and small weights removed, then recovery fine-tuning
            (:mod:`~lmforge.compression.prune`)
distill     a smaller student trained on a teacher's outputs (:mod:`~lmforge.compression.distill`)
==========  ====================================================================================

Every method writes a new run directory: ``config.yaml`` (the resolved :class:`CompressConfig`),
``train.log``, and ``model/`` with ``lmforge.json`` naming the parent run and the method.
:func:`lmforge.artifacts.load` loads it like any other run; ``lmforge bench`` compares runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge import config as config_mod
from lmforge.compression import distill, onnx, prune, quantize
from lmforge.compression.config import METHODS, CompressConfig
from lmforge.compression.distill import distillation_loss
from lmforge.compression.source import APPLIES, Parent, check_files, check_out, open_parent, staged
from lmforge.runs import add_file_log

log = logging.getLogger("lmforge.compress")

COMPRESSORS: dict[str, Callable[[Parent, Path, CompressConfig], Path]] = {
    "quantize": quantize.quantize, "onnx": onnx.export, "prune": prune.prune, "distill": distill.distill,
}
# What each method refuses before any work (so a refusal prints one line and writes nothing).
CHECKS: dict[str, Callable[[Parent, CompressConfig], None]] = {
    "quantize": quantize.check, "onnx": onnx.check, "prune": prune.check, "distill": distill.check,
}


def compress(run: str | Path, out: str | Path, config: CompressConfig | dict[str, Any], overrides: list[str] | None = None) -> Path:
    """Compress the run ``run`` into the new run directory ``out`` and return ``out``.

    Args:
        run: A run directory, model folder or zoo model (generators).
        out: The new run directory; it must not exist. Nothing appears there unless compression
            completes.
        config: A :class:`CompressConfig` or its dict (``{"method": "onnx", "onnx": {...}}``).
        overrides: ``key.sub=value`` strings applied on top.

    Raises:
        LmforgeError: The method does not apply to the run's kind (the message says which do), a
            file is missing, ``out`` exists, or a student is not smaller than its teacher.
    """
    cfg = config_mod.load(CompressConfig, config, overrides)
    out = check_out(out)
    parent = open_parent(run, cfg.method)
    check_files(cfg)
    CHECKS[cfg.method](parent, cfg)
    with staged(out) as staging:
        handler = add_file_log(staging)
        try:
            # Written like runs.save_config, without its log line: that would name the hidden folder.
            (staging / "config.yaml").write_text(config_mod.dump(cfg), encoding="utf-8")
            log.debug("resolved config:\n%s", config_mod.dump(cfg))
            log.info("compressing %s (%s run) by %s into %s", parent.path, parent.kind, cfg.method, out)
            COMPRESSORS[cfg.method](parent, staging, cfg)
        finally:
            logging.getLogger("lmforge").removeHandler(handler)
            handler.close()
    log.info("compressed run saved to %s (model in %s)", out, out / "model")
    return out


__all__ = ["APPLIES", "COMPRESSORS", "METHODS", "CompressConfig", "compress", "distillation_loss", "open_parent"]
