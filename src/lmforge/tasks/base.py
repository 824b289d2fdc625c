"""The task interface: preprocess labels, build the model, batch, loss, metrics, postprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from lmforge.config import DataConfig, ModelConfig, TaskConfig
from lmforge.data.batching import eval_batches
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.pipeline import labeled_splits, to_split
from lmforge.devices import inference_precision
from lmforge.logs import progress
from lmforge.registry import Registry


class Task(Protocol):
    """What a task defines. One file per task under ``lmforge/tasks/``, registered in :data:`TASKS`.

    Attributes:
        name: Registry name.
        default_metric: Validation metric used when ``train.metric`` is ``auto``.
        auto_model: The ``transformers`` Auto class whose ``from_pretrained`` reloads the saved model.
    """

    name: ClassVar[str]
    default_metric: ClassVar[str]
    auto_model: ClassVar[str]

    def __init__(self, cfg: TaskConfig) -> None: ...

    def label_space(self, train: Examples, data: DataConfig) -> LabelSpace:
        """Preprocess: the labels of the task, from the config or the training data."""

    def build_model(self, source: str, labels: LabelSpace, cfg: ModelConfig) -> nn.Module:
        """A model with this task's head on the checkpoint at ``source``."""

    def collate(self, split: Split, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Model inputs and targets of rows ``index``."""

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """Training loss and model outputs of a batch."""

    def metrics(self, logits: np.ndarray, targets: np.ndarray, labels: LabelSpace) -> dict[str, Any]:
        """Evaluation metrics of logits (N, C) against encoded targets."""

    def postprocess(self, logits: np.ndarray, labels: LabelSpace, top_k: int) -> list[dict[str, Any]]:
        """Per-example predictions (label, probabilities, top-k) from logits."""

    # Optional, for tasks whose inputs are more than the tokenized text (chat prompts, answers):
    #   make_split(name, examples, targets, tokenizer, data, labels) -> Split   replaces pipeline.to_split
    #   infer(model, split, batch_size) -> np.ndarray                    replaces infer_logits
    #   generate(model, tokenizer, split, batch_size) -> list[dict]      free-text predictions
    # Optional, for tasks with files of their own format whose predictions point into the input (entities, answers):
    #   labeled_splits(data) -> ({split: (examples, targets)}, labels)   replaces pipeline.labeled_splits
    #   read_labeled(source, data, labels) -> (examples, targets)        a labeled file, for evaluate
    #   read_inputs(source, data) -> examples                           an unlabeled file, for batch predict
    #   inputs(texts, pairs, data) -> examples                          raw texts (questions and contexts) for predict
    #   split_metrics(outputs, split, labels) -> dict                   replaces metrics(outputs, split.targets, labels)
    #   predictions(outputs, split, labels, top_k) -> list[dict]        replaces postprocess(outputs, labels, top_k)
    #   load_model(path, labels) -> nn.Module                           reloads a saved run (extra layers included)
    #   baseline(splits, labels) -> {name: metrics}                     the classic baseline beside the model


TASKS: Registry[type[Task]] = Registry("task")
PROGRESS_ROWS = 2000  # inference over fewer rows shows no progress bar


def get_task(cfg: TaskConfig) -> Task:
    """Instantiate the task named in ``cfg``."""
    return TASKS.get(cfg.name)(cfg)


def make_split(task: Task, name: str, examples: Examples, targets: np.ndarray | None, tokenizer: Any,
               data: DataConfig, labels: LabelSpace, cache_dir: Path | None) -> Split:
    """Tokenize examples for ``task``: its own ``make_split`` when it has one, else the plain tokenizer."""
    own = getattr(task, "make_split", None)
    if own is not None:
        return own(name, examples, targets, tokenizer, data, labels)
    return to_split(name, examples, targets, tokenizer, data, cache_dir)


def labeled_data(task: Task, data: DataConfig, model_source: str | None = None,
                 load_labeler: Any = None) -> tuple[dict[str, tuple[Any, np.ndarray]], LabelSpace]:
    """Train/validation(/test) examples with targets, and the labels: the task's own reader or the table pipeline."""
    own = getattr(task, "labeled_splits", None)
    if own is not None:
        return own(data)
    return labeled_splits(data, task, model_source=model_source, load_labeler=load_labeler)


def task_metrics(task: Task, outputs: np.ndarray, split: Split, labels: LabelSpace) -> dict[str, Any]:
    """The task's metrics of ``outputs`` on ``split``: its ``split_metrics`` when it has one."""
    own = getattr(task, "split_metrics", None)
    if own is not None:
        return own(outputs, split, labels)
    return task.metrics(outputs, split.targets, labels)


def task_predictions(task: Task, outputs: np.ndarray, split: Split, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
    """Per-example predictions: the task's ``predictions`` (which see the inputs) or its ``postprocess``."""
    own = getattr(task, "predictions", None)
    if own is not None:
        return own(outputs, split, labels, top_k)
    return task.postprocess(outputs, labels, top_k)


def task_logits(task: Task, model: nn.Module, split: Split, batch_size: int) -> np.ndarray:
    """What ``task.metrics`` and ``task.postprocess`` take for every example: the task's own ``infer`` or the logits."""
    own = getattr(task, "infer", None)
    if own is not None:
        return own(model, split, batch_size)
    return infer_logits(model, split, batch_size, task.collate)


def infer_logits(model: nn.Module, split: Split, batch_size: int, collate: Any = None,
                 device: torch.device | None = None) -> np.ndarray:
    """Logits of every example of ``split`` in input order, run in length-sorted batches.

    Args:
        model: The model (put in eval mode by the caller).
        split: The data.
        batch_size: Examples per forward pass.
        collate: ``(split, index) -> batch``; :meth:`Split.inputs` when absent.
        device: Where to run; the model's device when absent.
    """
    device = device or next(model.parameters()).device
    collate = collate or (lambda s, i: s.inputs(i))
    out: np.ndarray | None = None
    with torch.inference_mode(), progress(total=len(split), desc=f"scoring {split.name}", unit="row", min_total=PROGRESS_ROWS) as bar:
        for index in eval_batches(split.lengths, batch_size):
            batch = {k: v.to(device) for k, v in collate(split, index).items() if k != "labels"}
            with inference_precision(device):
                logits = model(**batch).logits.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(split),) + logits.shape[1:], dtype=np.float32)
            out[index] = logits
            bar.update(len(index))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
