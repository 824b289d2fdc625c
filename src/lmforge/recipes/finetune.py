"""``lmforge finetune``: a config file -> one fine-tuning run (see :mod:`lmforge.runs.finetune_run`)."""

from __future__ import annotations

from typing import Any

from lmforge.runs.finetune_run import FinetuneResult
from lmforge.runs.finetune_run import finetune as run_finetune
from lmforge.training.hooks import Hook

__all__ = ["FinetuneResult", "finetune"]


def finetune(config: Any, overrides: list[str] | None = None, resume: bool = False,
             hooks: list[Hook] | None = None) -> FinetuneResult:
    """Fine-tune a pretrained model on labeled text and save a run directory.

    Args:
        config: A YAML path, a dict or a :class:`~lmforge.config.FinetuneConfig`.
        overrides: ``key.sub=value`` strings applied on top.
        resume: Continue the run from its newest checkpoint.
        hooks: Extra training-loop hooks, after those the config switches on.
    """
    return run_finetune(config, overrides, resume, hooks)
