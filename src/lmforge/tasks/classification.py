"""Sequence classification: single-label, multi-label, sentence pairs, and regression.

The model is the checkpoint's ``AutoModelForSequenceClassification``, so a saved run reloads
with plain ``transformers``. Sentence pairs need nothing special: set ``data.text_pair_column``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForSequenceClassification

from lmforge.config import DataConfig, ModelConfig, TaskConfig
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.evaluation import classification_metrics, multilabel_metrics, regression_metrics
from lmforge.models.build import from_pretrained, model_kwargs
from lmforge.tasks.base import TASKS

_PROBLEM = {"single": "single_label_classification", "multi": "multi_label_classification", "regression": "regression"}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@TASKS.register("classification")
class ClassificationTask:
    """One label per example (softmax), or a set of labels with ``task.multi_label`` (sigmoid)."""

    name: ClassVar[str] = "classification"
    default_metric: ClassVar[str] = "accuracy"
    auto_model: ClassVar[str] = "AutoModelForSequenceClassification"

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        self.kind = "multi" if cfg.multi_label else "single"
        if cfg.multi_label:
            self.default_metric = "micro_f1"

    def label_space(self, train: Examples, data: DataConfig) -> LabelSpace:
        """Label names from ``data.labels`` or, in order of appearance sorted, from the training data."""
        return LabelSpace.infer(train, self.kind, data.labels, data.label_separator)

    def build_model(self, source: str, labels: LabelSpace, cfg: ModelConfig) -> nn.Module:
        """The checkpoint with a freshly initialized classification head of ``labels.num_labels`` outputs."""
        names = labels.names or ["value"]
        model = from_pretrained(
            AutoModelForSequenceClassification, source, num_labels=labels.num_labels,
            id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
            problem_type=_PROBLEM[labels.kind], ignore_mismatched_sizes=True, **model_kwargs(source, cfg))
        if model.config.pad_token_id is None and getattr(model.config, "eos_token_id", None) is not None:
            eos = model.config.eos_token_id
            model.config.pad_token_id = eos[0] if isinstance(eos, list) else eos
        return model

    def collate(self, split: Split, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Padded inputs plus ``labels``."""
        batch = split.inputs(index)
        if split.targets is not None:
            batch["labels"] = torch.from_numpy(split.targets[index])
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """The model's own loss for its problem type (cross-entropy, BCE or MSE)."""
        outputs = model(**batch)
        return outputs.loss, outputs

    def eval_loss(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """The training loss computed on evaluation logits."""
        x, y = torch.from_numpy(logits), torch.from_numpy(targets)
        if self.kind == "multi":
            return float(F.binary_cross_entropy_with_logits(x, y))
        return float(F.cross_entropy(x, y))

    def metrics(self, logits: np.ndarray, targets: np.ndarray, labels: LabelSpace) -> dict[str, Any]:
        """Accuracy, F1 (macro, micro), per-class scores, confusion matrix, ROC-AUC for binary."""
        if self.kind == "multi":
            result = multilabel_metrics(targets, _sigmoid(logits), labels.names, self.cfg.threshold)
        else:
            result = classification_metrics(targets, _softmax(logits), labels.names)
        return {"loss": self.eval_loss(logits, targets), **result}

    def postprocess(self, logits: np.ndarray, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """Label(s), per-label probabilities and the ``top_k`` most likely labels per example."""
        probs = _sigmoid(logits) if self.kind == "multi" else _softmax(logits)
        results = []
        for row in probs:
            order = np.argsort(-row)[:max(1, top_k)]
            item: dict[str, Any] = {
                "probabilities": {n: round(float(p), 6) for n, p in zip(labels.names, row)},
                "top_k": [{"label": labels.names[i], "score": round(float(row[i]), 6)} for i in order],
            }
            if self.kind == "multi":
                item["labels"] = [labels.names[i] for i in np.flatnonzero(row >= self.cfg.threshold)]
            else:
                item["label"], item["score"] = labels.names[int(order[0])], round(float(row[order[0]]), 6)
            results.append(item)
        return results


@TASKS.register("regression")
class RegressionTask(ClassificationTask):
    """One real-valued target per example (mean squared error)."""

    name: ClassVar[str] = "regression"
    default_metric: ClassVar[str] = "mse"

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        self.kind = "regression"

    def label_space(self, train: Examples, data: DataConfig) -> LabelSpace:
        """Regression has no label names."""
        return LabelSpace("regression")

    def collate(self, split: Split, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Padded inputs plus float ``labels``."""
        batch = split.inputs(index)
        if split.targets is not None:
            batch["labels"] = torch.from_numpy(split.targets[index]).float()
        return batch

    def metrics(self, logits: np.ndarray, targets: np.ndarray, labels: LabelSpace) -> dict[str, Any]:
        """MSE, RMSE, MAE, R², Pearson and Spearman."""
        return {"loss": float(np.mean((logits[:, 0] - targets) ** 2)), **regression_metrics(targets, logits[:, 0])}

    def postprocess(self, logits: np.ndarray, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """The predicted value of each example."""
        return [{"value": round(float(v), 6)} for v in logits[:, 0]]
