"""Saved models: a Hugging Face model folder plus ``lmforge.json``, and :func:`load` to use one."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from lmforge import __version__
from lmforge.config import DataConfig, ModelConfig, TaskConfig, TuningConfig
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.normalize import make_normalizer
from lmforge.data.pipeline import encode_labels, read_examples
from lmforge.errors import LmforgeError
from lmforge.registry import Registry
from lmforge.tasks import get_task
from lmforge.tasks.base import Task, make_split, task_logits

META_FILE = "lmforge.json"


# Data settings a saved model needs to read and clean new inputs the way it was trained.
DATA_KEYS = {"normalize", "lowercase", "fullwidth_to_halfwidth", "max_length", "text_column", "text_pair_column",
             "label_column", "label_separator"}


def write_meta(out: Path, kind: str, base_model: str, labels: LabelSpace, data: DataConfig, **fields: Any) -> Path:
    """Write ``lmforge.json`` of an artifact of ``kind``, with the labels, data settings and ``fields``."""
    meta = {
        "kind": kind,
        "lmforge_version": __version__,
        "base_model": base_model,
        **fields,
        "labels": labels.to_dict(),
        "data": data.model_dump(mode="json", include=DATA_KEYS),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def save_model(out: Path, model: nn.Module, tokenizer: Any, task_cfg: TaskConfig, labels: LabelSpace,
               data: DataConfig, base_model: str, tuning: TuningConfig | None = None, **fields: Any) -> Path:
    """Save ``model`` and ``tokenizer`` in Hugging Face format with lmforge's metadata beside them.

    With a parameter-efficient ``tuning`` method only what was trained is saved (kind
    ``adapter``); ``base_model`` points at the rest, and the tokenizer is the base model's.
    ``fields`` are extra ``lmforge.json`` entries.
    """
    from lmforge.tuning import is_full, save_tuned

    out.mkdir(parents=True, exist_ok=True)
    if is_full(tuning):
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    else:
        save_tuned(model, out, tuning)
    extra = {} if is_full(tuning) else {"tuning": tuning.model_dump(mode="json")}
    return write_meta(out, "model" if is_full(tuning) else "adapter", base_model, labels, data,
                      task=task_cfg.model_dump(mode="json"), **extra, **fields)


def input_examples(data: DataConfig, texts: list[str], pairs: list[str] | None = None) -> Examples:
    """Raw input texts cleaned the way the saved model's training data was."""
    norm = make_normalizer(data.normalize, data.lowercase, data.fullwidth_to_halfwidth)
    clean = [norm(t) or " " for t in texts]
    clean_pairs = [norm(p) or " " for p in pairs] if pairs is not None else None
    return Examples(Path("<input>"), clean, clean_pairs, None, list(range(1, len(texts) + 1)))


def labeled_examples(data: DataConfig, labels: LabelSpace, source: str | Path, text_column: str | None = None,
                     label_column: str | None = None, **data_overrides: Any) -> tuple[Examples, np.ndarray]:
    """A labeled file read with the saved data settings, its labels matched to the saved label names."""
    cfg = data.model_copy(update=data_overrides)
    examples = read_examples(str(source), cfg, text_column=text_column, label_column=label_column)
    return encode_labels(examples, labels, cfg)


def model_dir(run: str | Path) -> Path:
    """The model folder of a run directory (or the folder itself)."""
    path = Path(run)
    for candidate in (path / "model", path):
        if (candidate / META_FILE).is_file():
            return candidate
    raise LmforgeError(f"{path} is not an lmforge run or model folder (no {META_FILE} in it or in {path / 'model'})")


class Scorer(Protocol):
    """An artifact that scores cleaned examples; :func:`predict_rows` and :func:`evaluate_file` do the rest."""

    task: Task
    labels: LabelSpace
    data: DataConfig

    def scores(self, examples: Examples, targets: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray: ...


def predict_rows(scorer: Scorer, texts: list[str] | str, pairs: list[str] | None, top_k: int, batch_size: int) -> list[dict[str, Any]]:
    """``predict`` of any artifact kind: inputs cleaned as in training, scored, post-processed, in input order."""
    texts = [texts] if isinstance(texts, str) else texts
    if not texts:
        return []
    scores = scorer.scores(input_examples(scorer.data, texts, pairs), None, batch_size)
    results = scorer.task.postprocess(scores, scorer.labels, top_k)
    return [{"text": t, **r} for t, r in zip(texts, results, strict=True)]


def evaluate_file(scorer: Scorer, source: str | Path, text_column: str | None, label_column: str | None,
                  batch_size: int, **data_overrides: Any) -> dict[str, Any]:
    """``evaluate`` of any artifact kind: a labeled file read with the saved settings, scored, measured."""
    examples, targets = labeled_examples(scorer.data, scorer.labels, source, text_column, label_column, **data_overrides)
    return scorer.task.metrics(scorer.scores(examples, targets, batch_size), targets, scorer.labels)


class Scored:
    """``predict`` and ``evaluate`` for an artifact kind that has ``task``, ``labels``, ``data`` and ``scores``."""

    def predict(self, texts: list[str], pairs: list[str] | None = None, top_k: int = 1,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for ``texts`` (and ``pairs``), in input order."""
        return predict_rows(self, texts, pairs, top_k, batch_size)

    def evaluate(self, source: str | Path, text_column: str | None = None, label_column: str | None = None,
                 batch_size: int = 64, **data_overrides: Any) -> dict[str, Any]:
        """Metrics on a labeled file, whose label values are matched to the saved label names."""
        return evaluate_file(self, source, text_column, label_column, batch_size, **data_overrides)


@dataclass
class Predictor(Scored):
    """A trained model ready to predict and evaluate; made by :func:`load`."""

    path: Path
    model: nn.Module
    tokenizer: Any
    task: Task
    labels: LabelSpace
    data: DataConfig

    def _split(self, examples: Examples, targets: np.ndarray | None) -> Split:
        return make_split(self.task, "predict", examples, targets, self.tokenizer, self.data, self.labels, None)

    def logits(self, split: Split, batch_size: int = 64) -> np.ndarray:
        """Raw model outputs for every example of ``split``, in order."""
        self.model.eval()
        return task_logits(self.task, self.model, split, batch_size)

    def scores(self, examples: Examples, targets: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """Logits for ``examples`` (cleaned inputs), in order."""
        return self.logits(self._split(examples, targets), batch_size)

    def predict(self, texts: list[str], pairs: list[str] | None = None, top_k: int = 1, batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for ``texts`` (and ``pairs``), in input order; batched and length-sorted inside."""
        generate = getattr(self.task, "generate", None)
        if generate is None:
            return super().predict(texts, pairs, top_k, batch_size)
        texts = [texts] if isinstance(texts, str) else texts
        if not texts:
            return []
        self.model.eval()
        split = self._split(input_examples(self.data, texts, pairs), None)
        return [{"text": t, **r} for t, r in zip(texts, generate(self.model, self.tokenizer, split, batch_size), strict=True)]


class Loadable(Protocol):
    """What every artifact kind gives back from :func:`load`: its data settings, predict and evaluate."""

    data: DataConfig

    def predict(self, texts: list[str], pairs: list[str] | None = None, top_k: int = 1,
                batch_size: int = 64) -> list[dict[str, Any]]: ...

    def evaluate(self, source: str | Path, text_column: str | None = None, label_column: str | None = None,
                 batch_size: int = 64, **data_overrides: Any) -> dict[str, Any]: ...


# Artifact kinds (``"kind"`` in lmforge.json): a fine-tuned model, and whatever later
# recipes save (prompt-based classifiers, ensembles...), each with its own loader.
ARTIFACTS: Registry[Callable[[Path, dict[str, Any], str], Loadable]] = Registry("artifact kind")
# Modules that register the artifact kinds defined outside this file, imported on first use.
ARTIFACT_MODULES: dict[str, str] = {"ensemble": "lmforge.training.ensembles"}


@ARTIFACTS.register("model")
def _load_model(path: Path, meta: dict[str, Any], device: str) -> Predictor:
    import transformers

    from lmforge.models.build import from_pretrained, load_tokenizer

    task = get_task(TaskConfig(**meta["task"]))
    model = from_pretrained(getattr(transformers, task.auto_model), str(path))
    model.to(device).eval()
    data = DataConfig(**meta["data"])
    return Predictor(path, model, load_tokenizer(str(path)), task, LabelSpace.from_dict(meta["labels"]), data)


@ARTIFACTS.register("adapter")
def _load_adapter(path: Path, meta: dict[str, Any], device: str) -> Predictor:
    from lmforge.models.build import load_tokenizer, resolve
    from lmforge.tuning import load_tuned

    task = get_task(TaskConfig(**meta["task"]))
    labels = LabelSpace.from_dict(meta["labels"])
    base = resolve(meta["base_model"])
    model = load_tuned(task.build_model(base, labels, ModelConfig()), path, meta["tuning"])
    model.to(device)
    return Predictor(path, model, load_tokenizer(base), task, labels, DataConfig(**meta["data"]))


@ARTIFACTS.register("prompt")
def _load_prompt(path: Path, meta: dict[str, Any], device: str) -> Loadable:
    from lmforge.prompting.artifacts import load_prompt

    return load_prompt(path, meta, device)


@ARTIFACTS.register("setfit")
def _load_setfit(path: Path, meta: dict[str, Any], device: str) -> Loadable:
    from lmforge.prompting.artifacts import load_setfit

    return load_setfit(path, meta, device)


def read_meta(path: Path) -> dict[str, Any]:
    """The ``lmforge.json`` of a model folder."""
    return json.loads((path / META_FILE).read_text(encoding="utf-8"))


def load(run: str | Path, device: str | None = None) -> Loadable:
    """Load a run directory or model folder saved by lmforge.

    Args:
        run: The run directory (or its ``model`` folder).
        device: ``cpu``, ``cuda``...; the GPU when there is one.
    """
    path = model_dir(run)
    meta = read_meta(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kind = meta.get("kind", "model")
    if kind not in ARTIFACTS and kind in ARTIFACT_MODULES:
        importlib.import_module(ARTIFACT_MODULES[kind])
    return ARTIFACTS.get(kind)(path, meta, device)
