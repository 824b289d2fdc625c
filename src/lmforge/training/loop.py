"""The training loop: one loop, written out, on accelerate.

Single process, ``torchrun``/``accelerate launch`` (DDP), FSDP and DeepSpeed all run this
code. Objectives, adversarial steps and regularizers plug in as :class:`Hook` objects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch import nn

from lmforge.config import TrainConfig
from lmforge.devices import default_device
from lmforge.errors import LmforgeError
from lmforge.training.adaptive import resolve_auto
from lmforge.training.checkpoint import Checkpointer, TrainState, load_weights, save_weights
from lmforge.training.hooks import Hook, LossFn, StepContext, eval_weights
from lmforge.training.loggers import MetricsLogger, Tracking, progress_bar
from lmforge.training.optim import build_optimizer, build_scheduler
from lmforge.training.precision import resolve_precision

log = logging.getLogger("lmforge.train")
Batch = dict[str, torch.Tensor]


class BatchSource(Protocol):
    """Training batches, reproducible per epoch so that a resumed run sees the same data."""

    def num_batches(self, epoch: int) -> int:
        """Global micro-batches in ``epoch``."""

    def batches(self, epoch: int, start: int, rank: int, world: int) -> Iterator[tuple[Batch, int]]:
        """This process's share of micro-batches ``start..`` of ``epoch``, each with the global example count."""


@dataclass
class FitResult:
    """How a run ended.

    Attributes:
        status: ``completed``, ``early_stopped``, ``interrupted`` or ``diverged``.
        state: Final progress.
        model: The trained model (best weights restored when a metric was tracked).
        history: Every evaluation, in order.
    """

    status: str
    state: TrainState
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)


def make_accelerator(cfg: TrainConfig) -> Any:
    """An ``Accelerator`` with the precision the hardware supports.

    accelerate keeps one process-wide state and refuses a second ``Accelerator`` with another precision;
    a notebook or script that trains twice (fp32, then bf16) resets the precision part of that state
    (never the distributed part, which the launcher owns).
    """
    device = torch.device(default_device())
    precision = resolve_precision(cfg.precision, device)
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", precision) != precision:
        AcceleratorState._reset_state(reset_partial_state=False)  # accelerate's own reset (private API; see its tests)
    return Accelerator(mixed_precision=precision, cpu=device.type == "cpu")


@contextlib.contextmanager
def interrupt_flag() -> Iterator[dict[str, bool]]:
    """Turn the first Ctrl-C into a flag the loop checks between steps; a second one aborts."""
    flag = {"set": False}

    def handler(signum: int, frame: Any) -> None:
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True
        log.warning("interrupt received: saving a checkpoint after this step (Ctrl-C again to abort)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Loop:
    """State and steps of one training run; :func:`fit` is the entry point."""

    def __init__(self, model: nn.Module, source: BatchSource, loss_fn: LossFn, cfg: TrainConfig, run_dir: Path,
                 evaluate: Callable[[nn.Module], dict[str, Any]] | None, metric: str, mode: str,
                 hooks: list[Hook], accelerator: Any, tensorboard: bool, tracking: Tracking | None = None) -> None:
        self.cfg, self.source, self.loss_fn, self.evaluate_fn = cfg, source, loss_fn, evaluate
        self.metric, self.mode, self.hooks, self.acc, self.run_dir = metric, mode, hooks, accelerator, run_dir
        self.state = TrainState()
        self.steps_per_epoch = max(1, math.ceil(source.num_batches(0) / cfg.grad_accum))
        self.total = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
        optimizer = build_optimizer(model, cfg, accelerator.device)
        self.scheduler = build_scheduler(optimizer, cfg, self.total)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(self.scheduler, self.state, *hooks)
        self.ckpt = Checkpointer(run_dir / "checkpoints", accelerator, cfg.keep_checkpoints)
        self.best_path = run_dir / "checkpoints" / "best" / "model.safetensors"
        self.logger = MetricsLogger(run_dir, tensorboard, enabled=accelerator.is_main_process, tracking=tracking)
        self.history: list[dict[str, Any]] = []
        self._accum = cfg.grad_accum
        self._window = {"loss": 0.0, "n": 0, "samples": 0, "t": time.perf_counter()}

    @property
    def epoch_float(self) -> float:
        """Fractional epochs done."""
        return self.state.step / self.steps_per_epoch

    def resume(self, path: Path | None) -> None:
        """Continue from ``path`` or the newest checkpoint of the run."""
        path = path or self.ckpt.latest()
        if path is None:
            raise LmforgeError(f"nothing to resume: no checkpoint under {self.run_dir / 'checkpoints'}")
        self.ckpt.load(path)
        self.logger.truncate(self.state.log_rows)
        self.history = _read_evals(self.logger.path)
        log.info("resumed from %s at step %d (epoch %d)", path, self.state.step, self.state.epoch)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` scaled for gradient accumulation."""
        self.acc.backward(loss / self._accum)

    def _micro_step(self, batch: Batch, ctx: StepContext, sync: bool) -> torch.Tensor:
        no_sync = self.acc.no_sync(self.model) if not sync and self.acc.num_processes > 1 else contextlib.nullcontext()
        with no_sync:
            loss, outputs = self.loss_fn(self.model, batch)
            for hook in self.hooks:
                loss = hook.loss(ctx, self.model, batch, loss, outputs)
            self.backward(loss)
            for hook in self.hooks:
                hook.after_backward(ctx, self.model, batch)
        return loss.detach()

    def train_step(self, group: list[tuple[Batch, int]]) -> tuple[float, bool]:
        """One optimizer step over ``group`` micro-batches; returns (mean loss, finite)."""
        self._accum = len(group)
        ctx = StepContext(self.loss_fn, self.backward, self.state.step, self.total)
        losses = [self._micro_step(_to(b, self.acc.device), ctx, i == len(group) - 1) for i, (b, _) in enumerate(group)]
        loss = torch.stack(losses).float().mean()
        finite = bool(torch.isfinite(loss))
        if finite:
            if self.cfg.max_grad_norm:
                self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
            if not self.acc.optimizer_step_was_skipped:
                self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        for hook in self.hooks:
            hook.after_step(self.model, self.state.step + 1)
        return float(loss), finite

    def _sync(self, loss: float, finite: bool, interrupted: bool) -> tuple[float, bool, bool]:
        """Mean loss over processes, and the flags OR-ed, so every process stops at the same step."""
        if self.acc.num_processes == 1:
            return loss, not finite, interrupted
        t = torch.tensor([loss if finite else 0.0, float(not finite), float(interrupted)], device=self.acc.device)
        total = self.acc.reduce(t, reduction="sum").tolist()
        return total[0] / self.acc.num_processes, total[1] > 0, total[2] > 0

    def log_train(self, loss: float, samples: int, bar: Any) -> None:
        """Accumulate the loss and write a train row every ``log_every`` steps."""
        w = self._window
        w["loss"], w["n"], w["samples"] = w["loss"] + loss, w["n"] + 1, w["samples"] + samples
        if self.state.step % self.cfg.log_every and self.state.step != self.total:
            return
        elapsed = max(time.perf_counter() - w["t"], 1e-9)
        row = {"loss": w["loss"] / w["n"], "lr": self.scheduler.get_last_lr()[0], "samples_per_s": w["samples"] / elapsed}
        self.logger.log("train", self.state.step, self.epoch_float, row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", samples_s=f"{row['samples_per_s']:.0f}")
        self._window = {"loss": 0.0, "n": 0, "samples": 0, "t": time.perf_counter()}

    def evaluate(self) -> bool:
        """Evaluate, track the best weights, and say whether early stopping should stop the run."""
        if self.evaluate_fn is None or self.state.last_eval_step == self.state.step:
            return False
        self.state.last_eval_step = self.state.step
        with eval_weights(self.hooks, self.model):
            self.model.eval()
            with torch.no_grad():
                result = self.evaluate_fn(self.model)
            self.model.train()
            scalars = {k: v for k, v in result.items() if isinstance(v, (int, float))}
            self.logger.log("eval", self.state.step, self.epoch_float, scalars)
            self.history.append({"step": self.state.step, **scalars})
            for hook in self.hooks:
                hook.after_eval(self.state.step, scalars)
            return self._track_best(scalars)

    def _track_best(self, scalars: dict[str, float]) -> bool:
        value = scalars.get(self.metric)
        if value is None:
            raise LmforgeError(f"train.metric '{self.metric}' is not computed; choose one of {', '.join(scalars)}")
        best = self.state.best_metric
        if best is None or (value > best if self.mode == "max" else value < best):
            self.state.best_metric, self.state.best_step = float(value), self.state.step
            self.state.evals_without_improvement = 0
            if self.acc.is_main_process:
                save_weights(self.acc.unwrap_model(self.model), self.best_path)
            log.info("step %d: %s=%.4f (best)", self.state.step, self.metric, value)
            return False
        self.state.evals_without_improvement += 1
        log.info("step %d: %s=%.4f (best %.4f at step %d)", self.state.step, self.metric, value, best, self.state.best_step)
        patience = self.cfg.early_stopping_patience
        return patience is not None and self.state.evals_without_improvement >= patience

    def save_checkpoint(self) -> Path:
        """A resumable checkpoint of the current step."""
        self.state.log_rows = self.logger.rows
        path = self.ckpt.save(self.state)
        log.info("checkpoint saved: %s", path)
        return path

    def run(self) -> str:
        """Train until done; returns how the run ended."""
        rank, world, accum = self.acc.process_index, self.acc.num_processes, self.cfg.grad_accum
        bar = progress_bar(self.total, self.state.step, self.acc.is_main_process)
        with interrupt_flag() as interrupted, bar:
            while self.state.step < self.total:
                n = self.source.num_batches(self.state.epoch)
                stream = self.source.batches(self.state.epoch, self.state.batch_in_epoch, rank, world)
                while self.state.batch_in_epoch < n and self.state.step < self.total:
                    group = list(islice(stream, min(accum, n - self.state.batch_in_epoch)))
                    loss, finite = self.train_step(group)
                    loss, diverged, stop = self._sync(loss, finite, interrupted["set"])
                    if diverged:
                        return self._diverged(loss)
                    self.state.step += 1
                    self.state.batch_in_epoch += len(group)
                    samples = sum(count for _, count in group)
                    self.state.samples += samples
                    bar.update(1)
                    self.log_train(loss, samples, bar)
                    if self.cfg.eval_every and self.state.step % self.cfg.eval_every == 0 and self.evaluate():
                        return "early_stopped"
                    if stop:
                        self.save_checkpoint()
                        return "interrupted"
                    if self.cfg.save_every and self.state.step % self.cfg.save_every == 0:
                        self.save_checkpoint()
                if self.state.batch_in_epoch >= n:
                    self.state.epoch, self.state.batch_in_epoch = self.state.epoch + 1, 0
                    if self.evaluate():
                        return "early_stopped"
            self.evaluate()
        return "completed"

    def _diverged(self, loss: float) -> str:
        last = self.ckpt.latest()
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        log.error("loss became %s at step %d (lr=%.2e); stopping: %s. Try a lower train.lr or train.max_grad_norm.",
                  loss, self.state.step + 1, self.scheduler.get_last_lr()[0], where)
        return "diverged"

    def finish(self, status: str) -> FitResult:
        """Restore the best weights (when a metric was tracked) and close the loggers."""
        self.acc.wait_for_everyone()
        model = self.acc.unwrap_model(self.model)
        if status in ("completed", "early_stopped") and self.state.best_step is not None and self.best_path.is_file():
            load_weights(model, self.best_path)
            log.info("restored the best weights: %s=%.4f at step %d", self.metric, self.state.best_metric, self.state.best_step)
        self.logger.close()
        return FitResult(status, self.state, model, self.history)


def _to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _read_evals(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if k not in ("split", "epoch")} for r in rows if r.get("split") == "eval"]


def fit(model: nn.Module, source: BatchSource, loss_fn: LossFn, cfg: TrainConfig, run_dir: Path, *,
        evaluate: Callable[[nn.Module], dict[str, Any]] | None = None, metric: str = "loss", mode: str = "min",
        hooks: list[Hook] | None = None, resume: bool | Path = False, accelerator: Any = None,
        tensorboard: bool = True, tracking: Tracking | None = None) -> FitResult:
    """Train ``model`` on ``source`` and return the result.

    Args:
        model: The model; it is prepared (wrapped for DDP, mixed precision) here.
        source: Training batches per epoch.
        loss_fn: ``(model, batch) -> (loss, outputs)``.
        cfg: Optimizer, schedule, evaluation, checkpoint and stopping settings.
        run_dir: Where checkpoints, metrics and event files go.
        evaluate: ``model -> metrics`` on validation data; called every ``eval_every`` steps and each epoch end.
        metric: Metric that picks the best checkpoint and drives early stopping.
        mode: ``max`` or ``min`` for ``metric``.
        hooks: Plug-ins (extra objectives, adversarial training, EMA...).
        resume: True for the newest checkpoint of ``run_dir``, or a checkpoint path.
        accelerator: An existing ``Accelerator``; one is made from ``cfg`` when absent.
        tensorboard: Write TensorBoard event files (when ``tracking`` is None).
        tracking: Trackers (TensorBoard, W&B, MLflow) and the resolved config they store; overrides ``tensorboard``.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if "auto" in (cfg.epochs, cfg.head_lr):  # callers that know their data resolve these themselves
        labels = getattr(getattr(model, "config", None), "num_labels", None)
        cfg = resolve_auto(cfg, source.num_batches(0) * cfg.batch_size, labels)
    acc = accelerator or make_accelerator(cfg)
    loop = Loop(model, source, loss_fn, cfg, run_dir, evaluate, metric, mode, list(hooks or []), acc, tensorboard, tracking)
    if resume:
        loop.resume(resume if isinstance(resume, Path) else None)
    loop.model.train()
    status = loop.run()
    return loop.finish(status)
