"""The training settings a run chooses from its data when the config leaves them at ``auto``.

A user's first run is with defaults, and one fixed value does not suit every dataset: a new head
for 77 intents needs a far higher learning rate than the body (BANKING77: 66.9% accuracy at the
body's rate, 91.8% at 2e-3), while a two-label head trains best at the body's rate; a few thousand
examples need more passes than sixty thousand. :func:`resolve_auto` makes such values concrete
from the size of the training set and the number of labels, and logs each choice with its reason.
"""

from __future__ import annotations

import logging
import math

from lmforge.config import TrainConfig

log = logging.getLogger("lmforge.train")

MIN_STEPS = 1000  # optimizer steps a small training set is repeated up to
MIN_EPOCHS, MAX_EPOCHS = 3, 10
HEAD_LR_MAX = 2e-3  # the head's rate on many labels; a method whose own rate is higher keeps its own
FALLBACK_EPOCHS, FALLBACK_LABELS = 3.0, 2


def auto_epochs(examples: int, batch_size: int, grad_accum: int = 1) -> tuple[float, str]:
    """Passes over ``examples`` training examples: enough for MIN_STEPS optimizer steps, within [MIN_EPOCHS, MAX_EPOCHS]."""
    steps = max(1, math.ceil(examples / (batch_size * grad_accum)))
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps)))
    return float(epochs), (f"{examples:,} training examples make {steps:,} steps per epoch; {epochs} epochs give "
                           f"{epochs * steps:,} steps (at least {MIN_STEPS:,} where {MAX_EPOCHS} epochs allow, "
                           f"and {MIN_EPOCHS} to {MAX_EPOCHS} epochs)")


def auto_head_lr(lr: float, labels: int) -> tuple[float, str]:
    """The new head's rate: the body's for two labels, growing with the label count up to HEAD_LR_MAX."""
    cap = max(lr, HEAD_LR_MAX)
    head = min(cap, max(lr, lr * labels / 2))
    return head, (f"a new head of {labels} outputs starts at random and has more to learn with more labels: "
                  f"train.lr x {labels}/2, between train.lr ({lr:g}) and {cap:g}")


def resolve_auto(cfg: TrainConfig, examples: int, labels: int | None) -> TrainConfig:
    """``cfg`` with its ``auto`` values (epochs, head_lr) made concrete, each choice logged with its reason.

    Args:
        cfg: The training settings.
        examples: Training examples per epoch.
        labels: Outputs of the task head (classes), or None where unknown (taken as two).
    """
    changes: dict[str, float] = {}
    if cfg.epochs == "auto":
        changes["epochs"], why = auto_epochs(examples, cfg.batch_size, cfg.grad_accum)
        log.info("train.epochs auto: %g (%s)", changes["epochs"], why)
    if cfg.head_lr == "auto":
        changes["head_lr"], why = auto_head_lr(cfg.lr, labels or FALLBACK_LABELS)
        log.info("train.head_lr auto: %g (%s)", changes["head_lr"], why)
    return cfg.model_copy(update=changes) if changes else cfg
