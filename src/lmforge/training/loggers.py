"""Where training numbers go: metrics.jsonl, the trackers (TensorBoard, Weights & Biases, MLflow) and the progress bar.

The trackers are accelerate's tracker integrations; each gets the same scalars (``split/name`` at
the step) and the run's resolved config as hyperparameters. ``metrics.jsonl`` is always written,
so the run's own report and the studio need none of them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker, WandBTracker
from tqdm.auto import tqdm

from lmforge.config import OutputConfig
from lmforge.errors import ConfigError

log = logging.getLogger("lmforge.train")


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("step", "epoch") and math.isfinite(float(v))}


TRACKERS = ("tensorboard", "wandb", "mlflow")
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


@dataclass
class Tracking:
    """Which trackers a run reports to, and what they need.

    Attributes:
        trackers: Any of ``tensorboard``, ``wandb``, ``mlflow``.
        config: The resolved config, stored as the run's hyperparameters.
        name: Run name shown by W&B and MLflow.
        project: W&B project and MLflow experiment.
        wandb_mode: ``offline`` (files under ``run_dir/wandb``, uploaded later by ``wandb sync``) or ``online``.
        mlflow_uri: MLflow tracking URI; ``MLFLOW_TRACKING_URI``, else ``./mlruns``, when None.
    """

    trackers: Sequence[str] = ("tensorboard",)
    config: dict[str, Any] = field(default_factory=dict)
    name: str = "run"
    project: str = "lmforge"
    wandb_mode: str = "offline"
    mlflow_uri: str | None = None


def tracking_of(output: OutputConfig, config: dict[str, Any] | None = None) -> Tracking:
    """The :class:`Tracking` an ``output`` config section asks for, with the resolved ``config`` to store."""
    trackers = output.trackers if output.trackers is not None else (["tensorboard"] if output.tensorboard else [])
    return Tracking(list(dict.fromkeys(trackers)), config or {}, output.name, output.project, output.wandb_mode, output.mlflow_uri)


def check_trackers(trackers: Sequence[str]) -> None:
    """Raise a one-line install hint for a tracker whose package is missing, or for an unknown tracker."""
    for name in trackers:
        if name not in TRACKERS:
            raise ConfigError(f"output.trackers has unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            extra = "pip install tensorboard" if name == "tensorboard" else "pip install 'lmforge[track]'"
            raise ConfigError(f"output.trackers lists {name}, which is not installed: {extra} (or remove it from output.trackers)")


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``; lists become strings (hyperparameter stores take scalars)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat_config(value, name + ".")
        else:
            out[name] = value if isinstance(value, (bool, int, float, str)) or value is None else json.dumps(value, default=str)
    return out


def _start(name: str, run_dir: Path, tracking: Tracking) -> GeneralTracker:
    """One accelerate tracker, started; wandb and mlflow keep their files in or near the run directory."""
    if name == "tensorboard":
        tracker: GeneralTracker = TensorBoardTracker("tensorboard", run_dir)
    elif name == "wandb":
        # accelerate hands its first argument to wandb.init as the project.
        tracker = WandBTracker(tracking.project, name=tracking.name, dir=str(run_dir), config=tracking.config, mode=tracking.wandb_mode)
    else:
        import mlflow  # optional: lmforge[track]

        uri = tracking.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 refuses a folder store unless asked for; a local mlruns/ needs no server or database.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(uri)
        tracker = MLflowTracker(tracking.project, run_name=tracking.name)
    tracker.start()
    return tracker


class MetricsLogger:
    """Appends rows to ``metrics.jsonl`` and mirrors scalars to the trackers.

    Args:
        run_dir: The run directory.
        tensorboard: Write TensorBoard event files under ``run_dir/tensorboard`` (when ``tracking`` is None).
        enabled: False on non-main processes, which log nothing.
        tracking: The trackers and the config they store; overrides ``tensorboard``.

    Raises:
        ConfigError: A tracker's package is missing (one line naming the install command).
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, enabled: bool = True, tracking: Tracking | None = None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.rows = len(self.path.read_text(encoding="utf-8").splitlines()) if self.path.is_file() else 0
        tracking = tracking or Tracking(["tensorboard"] if tensorboard else [])
        self.trackers: list[GeneralTracker] = []
        if not enabled or not tracking.trackers:
            return
        check_trackers(tracking.trackers)
        values = flat_config(tracking.config)
        for name in tracking.trackers:
            tracker = _start(name, run_dir, tracking)
            if values and name != "wandb":  # wandb got the nested config when it started
                tracker.store_init_configuration(values)
            self.trackers.append(tracker)
        if "wandb" in tracking.trackers and tracking.wandb_mode == "offline":
            log.info("wandb logs offline to %s; upload them with: wandb sync %s", run_dir / "wandb", run_dir / "wandb" / "offline-run-*")

    def log(self, split: str, step: int, epoch: float, values: dict[str, Any]) -> None:
        """Record one row of ``split`` (train, eval, test) at ``step``."""
        if not self.enabled:
            return
        row = {"split": split, "step": step, "epoch": round(epoch, 4), **values}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
        self.rows += 1
        scalars = {f"{split}/{key}": value for key, value in _scalars(values).items()}
        for tracker in self.trackers:
            tracker.log(scalars, step=step)

    def close(self) -> None:
        """Flush and close the trackers (the event files, the W&B and MLflow runs)."""
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` rows: a resumed run logs the later ones again."""
        if not self.enabled or not self.path.is_file():
            return
        kept = self.path.read_text(encoding="utf-8").splitlines()[:rows]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        self.rows = len(kept)


def progress_bar(total: int, initial: int, enabled: bool) -> tqdm:
    """The training progress bar (steps), shown on the main process only."""
    return tqdm(total=total, initial=initial, desc="training", unit="step", disable=not enabled, dynamic_ncols=True)
