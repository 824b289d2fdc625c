"""Saved models: a Hugging Face model folder plus ``lmforge.json``, and :func:`load` to use one."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from lmforge import __version__
from lmforge.config import DataConfig, TaskConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.pipeline import encode_labels, read_examples
from lmforge.data.normalize import make_normalizer
from lmforge.data.dataset import Split
from lmforge.data.tokenize import tokenize
from lmforge.errors import LmforgeError
from lmforge.registry import Registry
from lmforge.tasks import get_task
from lmforge.tasks.base import Task, infer_logits

META_FILE = "lmforge.json"


def save_model(out: Path, model: nn.Module, tokenizer: Any, task_cfg: TaskConfig, labels: LabelSpace,
               data: DataConfig, base_model: str) -> Path:
    """Save ``model`` and ``tokenizer`` in Hugging Face format with lmforge's metadata beside them."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {
        "kind": "model",
        "lmforge_version": __version__,
        "base_model": base_model,
        "task": task_cfg.model_dump(mode="json"),
        "labels": labels.to_dict(),
        "data": data.model_dump(mode="json", include={"normalize", "lowercase", "fullwidth_to_halfwidth", "max_length",
                                                      "text_column", "text_pair_column", "label_column", "label_separator"}),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def model_dir(run: str | Path) -> Path:
    """The model folder of a run directory (or the folder itself)."""
    path = Path(run)
    for candidate in (path / "model", path):
        if (candidate / META_FILE).is_file():
            return candidate
    raise LmforgeError(f"{path} is not an lmforge run or model folder (no {META_FILE} in it or in {path / 'model'})")


@dataclass
class Predictor:
    """A trained model ready to predict and evaluate; made by :func:`load`."""

    path: Path
    model: nn.Module
    tokenizer: Any
    task: Task
    labels: LabelSpace
    data: DataConfig

    def _split(self, examples: Examples, targets: np.ndarray | None) -> Split:
        enc = tokenize(self.tokenizer, examples.texts, examples.pairs, self.data.max_length)
        return Split("predict", examples, enc, targets, int(self.tokenizer.pad_token_id))

    def logits(self, split: Split, batch_size: int = 64) -> np.ndarray:
        """Raw model outputs for every example of ``split``, in order."""
        self.model.eval()
        return infer_logits(self.model, split, batch_size, self.task.collate)

    def predict(self, texts: list[str], pairs: list[str] | None = None, top_k: int = 1, batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for ``texts`` (and ``pairs``), in input order; batched and length-sorted inside."""
        if isinstance(texts, str):
            texts = [texts]
        norm = make_normalizer(self.data.normalize, self.data.lowercase, self.data.fullwidth_to_halfwidth)
        clean = [norm(t) or " " for t in texts]
        clean_pairs = [norm(p) or " " for p in pairs] if pairs is not None else None
        examples = Examples(Path("<input>"), clean, clean_pairs, None, list(range(1, len(texts) + 1)))
        if not texts:
            return []
        results = self.task.postprocess(self.logits(self._split(examples, None), batch_size), self.labels, top_k)
        return [{"text": t, **r} for t, r in zip(texts, results)]

    def evaluate(self, source: str | Path, text_column: str | None = None, label_column: str | None = None,
                 batch_size: int = 64, **data_overrides: Any) -> dict[str, Any]:
        """Metrics on a labeled file, whose label values are matched to the saved label names."""
        cfg = self.data.model_copy(update=data_overrides)
        examples = read_examples(str(source), cfg, text_column=text_column, label_column=label_column)
        examples, targets = encode_labels(examples, self.labels, cfg)
        split = self._split(examples, targets)
        return self.task.metrics(self.logits(split, batch_size), targets, self.labels)


class Loadable(Protocol):
    """What every artifact kind gives back from :func:`load`: predict and evaluate."""

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
