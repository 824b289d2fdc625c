"""lmforge: from raw text to a deployed language model, on a laptop CPU or a GPU box."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def finetune(config: Any, overrides: list[str] | None = None, resume: bool = False) -> Any:
    """Fine-tune a model as ``config`` says (a YAML path, a dict or a FinetuneConfig); see :mod:`lmforge.recipes.finetune`."""
    from lmforge.recipes.finetune import finetune as run

    return run(config, overrides, resume)


def load(run: Any, device: str | None = None) -> Any:
    """Load a trained run for prediction and evaluation; see :func:`lmforge.artifact.load`."""
    from lmforge.artifact import load as load_run

    return load_run(run, device)


def pretrain(config: Any, overrides: list[str] | None = None, resume: bool = False) -> Any:
    """Pretrain or continue pretraining as ``config`` says (YAML, dict or PretrainConfig); see :mod:`lmforge.recipes.pretrain`."""
    from lmforge.recipes.pretrain import pretrain as run

    return run(config, overrides, resume)


def generate(model: str, prompts: Any, **options: Any) -> Any:
    """Continue ``prompts`` with a causal LM (zoo name, folder or run); see :mod:`lmforge.generation`."""
    from lmforge.generation import generate as run

    return run(model, prompts, **options)


def load_adapters(runs: dict[str, Any], device: str | None = None) -> Any:
    """Load several adapter runs (name -> run) over one shared base model; see :mod:`lmforge.tuning.adapter_set`."""
    from lmforge.tuning.adapter_set import load_adapters as load_set

    return load_set(runs, device)


__all__ = ["__version__", "finetune", "generate", "load", "load_adapters", "pretrain"]
