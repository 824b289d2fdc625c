"""Kind ``classifier``: a fully fine-tuned model with its task head (a plain transformers folder).

Also the common shape of every model-plus-task artifact (:class:`TaskModel`): adapters and
chat-tuned generators reuse it, so predict, evaluate and generate work the same on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import transformers
from torch import nn

from lmforge.artifacts.base import ARTIFACTS, Scored, input_examples, write_meta
from lmforge.config import DataConfig, TaskConfig
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.generation import Generator
from lmforge.models.build import from_pretrained, load_tokenizer, quiet_transformers
from lmforge.tasks import get_task
from lmforge.tasks.base import Task, make_split, task_logits, task_metrics, task_predictions


def full_kind(task: TaskConfig) -> str:
    """The kind a fully fine-tuned run is saved as: ``generator`` for instruction tuning, else ``classifier``."""
    return "generator" if task.name == "instruct" else "classifier"


def save_model(out: Path, model: nn.Module, tokenizer: Any, task: TaskConfig, labels: LabelSpace, data: DataConfig,
               base_model: str, **fields: Any) -> Path:
    """Save a fully fine-tuned ``model`` and ``tokenizer`` in transformers format with ``lmforge.json`` beside them.

    ``fields`` are extra ``lmforge.json`` entries (``merged_from``...).
    """
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return write_meta(out, full_kind(task), base_model, labels, data, task=task.model_dump(mode="json"), **fields)


@dataclass
class TaskModel(Scored):
    """A model with its task, ready to predict, evaluate and (for causal LMs) generate; made by :func:`load`."""

    path: Path
    model: nn.Module
    tokenizer: Any
    task: Task
    labels: LabelSpace
    data: DataConfig
    kind: str = "classifier"

    @property
    def capabilities(self) -> tuple[str, ...]:  # type: ignore[override]
        """Predict, evaluate and score; generate too when the model is a causal LM."""
        causal = getattr(self.task, "auto_model", "") == "AutoModelForCausalLM"
        return ("predict", "evaluate", "score") + (("generate",) if causal else ())

    def _split(self, examples: Examples, targets: np.ndarray | None) -> Split:
        return make_split(self.task, "predict", examples, targets, self.tokenizer, self.data, self.labels, None)

    def logits(self, split: Split, batch_size: int = 64) -> np.ndarray:
        """Raw model outputs for every example of ``split``, in order."""
        self.model.eval()
        return task_logits(self.task, self.model, split, batch_size)

    def scores(self, examples: Examples, targets: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """Logits for ``examples`` (cleaned inputs), in order."""
        return self.logits(self._split(examples, targets), batch_size)

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, top_k: int = 1,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for ``texts`` (and ``pairs``), in input order; batched and length-sorted inside.

        For ``ner`` runs each result holds the ``entities`` of a text with character offsets into it; for
        ``qa`` runs ``texts`` are questions, ``pairs`` their contexts, and each result holds the ``answer``
        with its offsets in the context.
        """
        own = getattr(self.task, "inputs", None)
        if own is not None:
            texts = [texts] if isinstance(texts, str) else texts
            pairs = [pairs] if isinstance(pairs, str) else pairs
            return self.predict_examples(own(texts, pairs, self.data), top_k, batch_size) if texts else []
        answer = getattr(self.task, "generate", None)
        if answer is None:
            return super().predict(texts, pairs, top_k, batch_size)
        texts = [texts] if isinstance(texts, str) else texts
        if not texts:
            return []
        self.model.eval()
        split = self._split(input_examples(self.data, texts, pairs), None)
        return [{"text": t, **r} for t, r in zip(texts, answer(self.model, self.tokenizer, split, batch_size), strict=True)]

    def predict_examples(self, examples: Any, top_k: int = 1, batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for examples the task read itself (sentences to tag, questions with contexts), in order."""
        split = self._split(examples, None)
        return task_predictions(self.task, self.logits(split, batch_size), split, self.labels, top_k)

    def evaluate(self, source: str | Path, text_column: str | None = None, label_column: str | None = None,
                 batch_size: int = 64, **data_overrides: Any) -> dict[str, Any]:
        """Metrics on a labeled file: a table as in training, or the task's own format (CoNLL, SQuAD...)."""
        own = getattr(self.task, "read_labeled", None)
        if own is None:
            return super().evaluate(source, text_column, label_column, batch_size, **data_overrides)
        examples, targets = own(str(source), self.data.model_copy(update=data_overrides), self.labels)
        split = self._split(examples, targets)
        return task_metrics(self.task, self.logits(split, batch_size), split, self.labels)

    def generate(self, prompts: Any, options: Any = None, **overrides: Any) -> Any:
        """Continue free prompts with the model (causal LMs only); see :meth:`lmforge.generation.Generator.generate`."""
        if "generate" not in self.capabilities:
            raise self.refuse("generate")
        return Generator(self.model, self.tokenizer).generate(prompts, options, **overrides)


@ARTIFACTS.register("classifier")
def load_classifier(path: Path, meta: dict[str, Any], device: str) -> TaskModel:
    """Loader of the ``classifier`` kind (and of runs saved as ``model`` by earlier versions)."""
    task = get_task(TaskConfig(**meta["task"]))
    labels = LabelSpace.from_dict(meta["labels"])
    own = getattr(task, "load_model", None)  # tasks whose model has layers transformers does not know (a CRF)
    model = own(str(path), labels) if own is not None else from_pretrained(getattr(transformers, task.auto_model), str(path))
    model.to(device).eval()
    return TaskModel(path, model, load_tokenizer(str(path)), task, labels, DataConfig(**meta["data"]))
