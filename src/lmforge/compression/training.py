"""Short training runs of compression (recovery after pruning, distillation) through lmforge's one training loop."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.config import TrainConfig
from lmforge.data.dataset import Split, SplitSource
from lmforge.errors import LmforgeError
from lmforge.evaluation import metric_mode
from lmforge.tasks.base import Task, task_logits
from lmforge.training.hooks import LossFn
from lmforge.training.loop import fit

log = logging.getLogger("lmforge.compress")


def evaluator(task: Task, split: Split, labels: Any, batch_size: int) -> Callable[[nn.Module], dict[str, Any]]:
    """``model -> metrics`` on ``split``, what the loop calls to keep the best weights."""
    def evaluate(model: nn.Module) -> dict[str, Any]:
        return task.metrics(task_logits(task, model, split, batch_size), split.targets, labels)

    return evaluate


def train(model: nn.Module, source: SplitSource, loss_fn: LossFn, cfg: TrainConfig, run_dir: Path, task: Task,
          validation: Split | None, labels: Any) -> nn.Module:
    """Train ``model`` with :func:`lmforge.training.loop.fit` and return it with its best weights.

    Checkpoints go to ``run_dir/checkpoints`` and are removed at the end; ``metrics.jsonl`` stays.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    evaluate = evaluator(task, validation, labels, cfg.eval_batch_size) if validation is not None else None
    metric = task.default_metric if cfg.metric == "auto" else cfg.metric
    result = fit(model, source, loss_fn, cfg, run_dir, evaluate=evaluate, metric=metric if evaluate else "loss",
                 mode=metric_mode(metric), tensorboard=False)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if result.status == "interrupted":
        raise KeyboardInterrupt
    if result.status == "diverged":
        raise LmforgeError(f"training diverged (loss became nan or inf); lower train.lr (now {cfg.lr:g}) and compress again")
    return result.model.eval()


def sample_batches(split: Split, collate: Any, size: int, batch_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Batches of a seeded random sample of ``size`` examples of ``split`` (importance estimates)."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.permutation(len(split))[:size])
    pick = pick[np.argsort(-split.lengths[pick], kind="stable")]
    return [collate(split, pick[i:i + batch_size]) for i in range(0, len(pick), batch_size)]
