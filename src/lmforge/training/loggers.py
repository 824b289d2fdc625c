"""Where training numbers go: metrics.jsonl, TensorBoard event files and the progress bar."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

log = logging.getLogger("lmforge.train")


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("step", "epoch") and math.isfinite(float(v))}


class MetricsLogger:
    """Appends rows to ``metrics.jsonl`` and mirrors scalars to TensorBoard.

    Args:
        run_dir: The run directory.
        tensorboard: Also write event files under ``run_dir/tensorboard``.
        enabled: False on non-main processes, which log nothing.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.rows = len(self.path.read_text(encoding="utf-8").splitlines()) if self.path.is_file() else 0
        self.writer = None
        if enabled and tensorboard:
            try:
                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed; pip install tensorboard to get event files")

    def log(self, split: str, step: int, epoch: float, values: dict[str, Any]) -> None:
        """Record one row of ``split`` (train, eval, test) at ``step``."""
        if not self.enabled:
            return
        row = {"split": split, "step": step, "epoch": round(epoch, 4), **values}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
        self.rows += 1
        if self.writer is not None:
            for key, value in _scalars(values).items():
                self.writer.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        """Flush and close the event files."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


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
