"""Atomic, resumable checkpoints (keep the last K) and the best model's weights."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from lmforge.errors import LmforgeError

log = logging.getLogger("lmforge.train")
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainState:
    """Progress of a run, saved in every checkpoint.

    Attributes:
        step: Optimizer steps done.
        epoch: Current epoch (0-based).
        batch_in_epoch: Micro-batches of the current epoch already consumed.
        samples: Training examples seen.
        best_metric: Best validation metric so far.
        best_step: Step of the best validation metric.
        evals_without_improvement: Evaluations since the best one (early stopping).
        last_eval_step: Step of the last evaluation.
        log_rows: Rows in metrics.jsonl when the checkpoint was written.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    last_eval_step: int = -1
    log_rows: int = 0

    def state_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        for f in fields(self):
            setattr(self, f.name, state[f.name])


def checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / "state.json").is_file()]
    return [p for _, p in sorted(found)]


class Checkpointer:
    """Writes checkpoints through accelerate into a temporary folder renamed into place.

    A crash while saving leaves at most a ``.tmp-*`` folder, and the previous checkpoints
    stay intact; only after the rename are the oldest beyond ``keep`` deleted.
    """

    def __init__(self, root: Path, accelerator: Any, keep: int) -> None:
        self.root, self.acc, self.keep = root, accelerator, keep
        accelerator.register_save_state_pre_hook(_drop_frozen)
        accelerator.register_load_state_pre_hook(_load_trainable)

    def save(self, state: TrainState) -> Path:
        """Save a resumable checkpoint of everything registered with the accelerator."""
        final = self.root / f"checkpoint-{state.step:07d}"
        tmp = self.root / f".tmp-checkpoint-{state.step:07d}"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            (tmp / "state.json").write_text(json.dumps(state.state_dict(), indent=1))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in checkpoints(self.root)[:-self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()
        return final

    def latest(self) -> Path | None:
        """The newest complete checkpoint, if any."""
        found = checkpoints(self.root)
        return found[-1] if found else None

    def load(self, path: Path) -> None:
        """Restore model, optimizer, scheduler, RNG and registered objects from ``path``."""
        try:
            self.acc.load_state(str(path))
        except Exception as exc:  # torch and safetensors raise many types for damaged files
            raise LmforgeError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); "
                               "delete it to resume from the one before") from None


def frozen_names(model: nn.Module) -> set[str]:
    """Names (tied ones included) of parameters that do not train, e.g. a frozen base model under an adapter."""
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


def _drop_frozen(models: list[nn.Module], weights: list[dict[str, Any]], output_dir: str) -> None:
    # Frozen weights never change, so a checkpoint of an adapter run holds only what trains:
    # kilobytes instead of the whole base model. Loading leaves the frozen ones as they are.
    # The filtered dict stays an OrderedDict: accelerate drops tied duplicates only from those.
    for i, (model, state) in enumerate(zip(models, weights, strict=True)):
        frozen = frozen_names(model)
        if frozen:
            weights[i] = OrderedDict((k, v) for k, v in state.items() if k not in frozen)


def _load_trainable(models: list[nn.Module], input_dir: str) -> None:
    # Models with frozen parameters were saved without them (_drop_frozen): load what is
    # there, check that every trainable parameter was, and keep accelerate from a strict load.

    for i, model in enumerate(list(models)):
        frozen = frozen_names(model)
        if not frozen:
            continue
        file = Path(input_dir) / (f"model_{i}.safetensors" if i else "model.safetensors")
        saved = load_file(str(file))
        result = model.load_state_dict(saved, strict=False)
        # A tied weight is saved under one of its names; its other names count as loaded.
        current = model.state_dict(keep_vars=True)
        loaded = {current[k].data_ptr() for k in saved if k in current}
        missing = sorted(k for k in set(result.missing_keys) - frozen if current[k].data_ptr() not in loaded)
        if missing or result.unexpected_keys:
            name = (missing or result.unexpected_keys)[0]
            raise LmforgeError(f"{file} does not match the model ({name} is missing or unknown); "
                               "was it written with other tuning options?")
        models.remove(model)


def save_weights(model: nn.Module, path: Path) -> None:
    """Write ``model``'s weights to ``path`` (safetensors) atomically; tied weights stored once.

    Only trainable parameters are written when some are frozen (adapter runs): the rest
    cannot have changed since the run started.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if frozen_names(model):
        save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}, str(tmp))
    else:
        save_model(model, str(tmp))
    os.replace(tmp, path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load weights written by :func:`save_weights` into ``model``."""
    load_model(model, str(path), strict=False)
