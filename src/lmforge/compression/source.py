"""What every compression method starts from: the parent run, its data, and a new run directory built aside.

A method may only be applied to the kinds of run it can handle (:data:`APPLIES`); asking for
another says which methods the run takes. The new run is written into a hidden folder next to
``--out`` and renamed into place when it is complete, so an interrupted compress leaves nothing
that :func:`lmforge.artifacts.load` accepts, and an ``--out`` that exists is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from lmforge import artifacts, zoo
from lmforge import config as config_mod
from lmforge.config import AugmentConfig, DataConfig, FinetuneConfig, TaskConfig
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.pipeline import labeled_splits
from lmforge.devices import default_device
from lmforge.errors import LmforgeError
from lmforge.models.build import from_pretrained
from lmforge.tasks import get_task
from lmforge.tasks.base import Task, make_split, task_logits
from lmforge.tuning import METHODS, parse_options

log = logging.getLogger("lmforge.compress")

# Methods each kind of run takes. Pruned-head runs are ``compressed`` but still plain models.
APPLIES: dict[str, tuple[str, ...]] = {
    "classifier": ("quantize", "onnx", "prune", "distill"),
    "generator": ("quantize",),
    "ensemble": ("distill",),
    "adapter": ("distill",),
    "pruned_heads": ("quantize", "onnx"),
}
SEQUENCE_MODEL = "AutoModelForSequenceClassification"


@dataclass
class Parent:
    """The run being compressed.

    Attributes:
        path: Its model folder.
        config: The fine-tuning config its data came from (a compressed run's is its first ancestor's), when known.
        meta: Its ``lmforge.json``.
        kind: Its kind as far as compression goes (``classifier``, ``generator``, ``pruned_heads``...).
    """

    path: Path
    config: Path | None
    meta: dict[str, Any]
    kind: str
    loaded: Any = None

    @property
    def labels(self) -> LabelSpace:
        """The run's label space."""
        return LabelSpace.from_dict(self.meta["labels"])

    @property
    def data(self) -> DataConfig:
        """The run's text settings."""
        return DataConfig(**self.meta.get("data", {}))

    def task(self) -> Task:
        """The run's task."""
        return get_task(TaskConfig(**self.meta["task"]))

    def load(self, device: str | None = None) -> Any:
        """The run as an artifact (on the CPU it is loaded once)."""
        if self.loaded is not None and default_device(device) == "cpu":
            return self.loaded
        return artifacts.load(self.path, device=device)


def _kind(meta: dict[str, Any]) -> str:
    kind = artifacts.legacy_kind(meta)
    if kind == "compressed":
        return "pruned_heads" if meta.get("format") == "pruned_heads" else "compressed"
    if kind == "classifier" and get_task(TaskConfig(**meta["task"])).auto_model != SEQUENCE_MODEL:
        return "generator"  # a causal LM fine-tuned to answer with labels: quantized like any generator
    return kind


def applicable(kind: str, meta: dict[str, Any]) -> str:
    """Which methods apply to a run of ``kind``, as a phrase for messages."""
    methods = APPLIES.get(kind, ())
    phrase = f"compress can apply {', '.join(methods)} to it" if methods else "compress applies to none of its kind"
    if kind == "adapter" and METHODS.get(parse_options(meta["tuning"]).method).mergeable:
        phrase += "; merge it first (lmforge merge) for quantize, onnx or prune"
    if kind == "compressed":
        phrase += f"; it is already compressed ({meta.get('method')}), so compress its parent {meta.get('parent')} instead"
    return phrase


def open_any(run: str | Path) -> Parent:
    """The run ``run`` (a run directory, model folder, zoo model or plain transformers folder)."""
    loaded = None
    try:
        path = artifacts.model_dir(run)
        meta = artifacts.read_meta(path)
    except LmforgeError:
        if str(run) not in zoo.ZOO and not (Path(run) / "config.json").is_file():
            raise
        loaded = artifacts.load(run, device="cpu")  # a zoo model or plain transformers folder: no lmforge.json to read
        path, meta = loaded.path, loaded.meta
    return Parent(path, finetune_config(path, meta), meta, _kind(meta), loaded)


def finetune_config(path: Path, meta: dict[str, Any]) -> Path | None:
    """The ``config.yaml`` of the fine-tuning run a model folder descends from (through compressed parents)."""
    for _ in range(32):
        file = path.parent / "config.yaml"
        if path.name == "model" and file.is_file() and "method" not in (config_mod.read_yaml(file) or {}):
            return file
        if "parent" not in meta or not (Path(meta["parent"]) / artifacts.META_FILE).is_file():
            return None
        path = Path(meta["parent"])
        meta = artifacts.read_meta(path)
    return None


def open_parent(run: str | Path, method: str) -> Parent:
    """The run ``run``, checked to be one that ``method`` can compress."""
    parent = open_any(run)
    if method not in APPLIES.get(parent.kind, ()):
        what = parent.kind if parent.kind != "pruned_heads" else "head-pruned"
        detail = f" ({parse_options(parent.meta['tuning']).method})" if parent.kind == "adapter" else ""
        raise LmforgeError(f"{parent.path} is a {what} run{detail}, which {method} cannot handle: {applicable(parent.kind, parent.meta)}")
    return parent


def check_files(cfg: Any) -> None:
    """Refuse, before any work, data files named in the config that do not exist."""
    named = {"--data": cfg.data, "--train-data": cfg.train_data,
             "--calibration": cfg.onnx.calibration if cfg.method == "onnx" else cfg.quantize.calibration}
    named |= {f"--transfer {f}": f for f in cfg.distill.transfer}
    for flag, file in named.items():
        if file and not Path(file).is_file() and str(file) not in zoo.ZOO:
            what = "calibration file" if flag == "--calibration" else "file"
            raise LmforgeError(f"{what} {file} does not exist (given as {flag.split()[0]}); check the path")


def skeleton(source: str | Path) -> nn.Module:
    """The model of ``source`` (a folder or zoo name) built from its config on the meta device: shapes, no weights."""
    config = from_pretrained(AutoConfig, str(source))
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def check_out(out: str | Path) -> Path:
    """``out`` as a path, refused when something is already there."""
    out = Path(out)
    if out.exists():
        raise LmforgeError(f"{out} already exists; choose another --out (compress never writes over a folder)")
    return out


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A hidden folder beside ``out`` to build the run in, renamed to ``out`` when the block ends without error."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_config(parent: Parent, train_file: str | None) -> FinetuneConfig:
    """The parent's fine-tuning config (its data settings), with ``train_file`` in place of its training data."""
    if parent.config is not None:
        # An ensemble's or a search's config is a fine-tuning config plus a section of its own.
        tree = {k: v for k, v in (config_mod.read_yaml(parent.config) or {}).items() if k in FinetuneConfig.model_fields}
        cfg = config_mod.build(FinetuneConfig, tree, str(parent.config))
        data = cfg.data.model_copy(update={"augment": AugmentConfig()})
    elif train_file:
        data = DataConfig(**{**parent.meta.get("data", {}), "train": train_file})
        cfg = FinetuneConfig(data=data)
    else:
        raise LmforgeError(f"{parent.path} has no run directory with config.yaml, so its training data is unknown; "
                           "pass --train-data FILE (and --data FILE for validation)")
    if train_file:
        data = data.model_copy(update={"train": train_file, "validation": None})
    return cfg.model_copy(update={"data": data})


def run_splits(parent: Parent, train_file: str | None, validation_file: str | None, train_samples: int | None,
               eval_samples: int | None) -> dict[str, tuple[Examples, np.ndarray]]:
    """Train and validation examples of the parent run (its own data unless files are given), with encoded targets."""
    cfg = run_config(parent, train_file)
    data = cfg.data.model_copy(update={"max_train_samples": train_samples or cfg.data.max_train_samples,
                                       "max_eval_samples": eval_samples or cfg.data.max_eval_samples})
    if validation_file:
        data = data.model_copy(update={"validation": validation_file})
    if not Path(str(data.train)).exists() and "/" in str(data.train):
        raise LmforgeError(f"the training data of {parent.path} ({data.train}) is gone; pass --train-data FILE")
    splits, labels = labeled_splits(data, parent.task())
    if labels.names != parent.labels.names:
        raise LmforgeError(f"the labels of {data.train} ({', '.join(labels.names)}) are not those of {parent.path} "
                           f"({', '.join(parent.labels.names)}); pass the data the run was trained on")
    return splits


def validation_examples(parent: Parent, validation_file: str | None, eval_samples: int | None,
                        train_file: str | None = None) -> tuple[Examples, np.ndarray]:
    """The labeled examples that measure what compression costs: ``validation_file`` or the run's own validation data."""
    if validation_file and parent.config is None:
        examples, targets = artifacts.labeled_examples(parent.data, parent.labels, validation_file)
        if eval_samples and eval_samples < len(examples):
            keep = np.sort(np.random.default_rng(0).permutation(len(examples))[:eval_samples])
            examples, targets = examples.subset(keep), targets[keep]
        return examples, targets
    splits = run_splits(parent, train_file, validation_file, None, eval_samples)
    if "validation" not in splits:
        raise LmforgeError(f"{parent.path} was trained without validation data; pass --data FILE to measure accuracy")
    return splits["validation"]


def split_of(task: Task, tokenizer: Any, data: DataConfig, labels: LabelSpace, name: str,
             pair: tuple[Examples, np.ndarray | None]) -> Split:
    """Tokenized examples for ``task``."""
    return make_split(task, name, pair[0], pair[1], tokenizer, data, labels, None)


def score(task: Task, model: Any, split: Split, labels: LabelSpace, batch_size: int) -> dict[str, Any]:
    """The task's metrics of ``model`` on ``split``."""
    model.eval()
    return task.metrics(task_logits(task, model, split, batch_size), split.targets, labels)


def headline(task: Task, metrics: dict[str, Any]) -> tuple[str, float]:
    """The task's main metric and its value."""
    name = getattr(task, "default_metric", "accuracy")
    return name, float(metrics[name])


def loss_of(name: str, before: float, after: float) -> float:
    """How much worse ``after`` is than ``before`` (positive = worse) for a metric where higher or lower is better."""
    lower_better = name in ("mse", "rmse", "mae", "loss", "perplexity")
    return after - before if lower_better else before - after


def within(opts: Any, metric: str, before: float, after: float, agreement: float) -> bool:
    """Whether a quantized model keeps ``opts.max_drop`` and ``opts.min_agreement`` (each checked only when set)."""
    if opts.max_drop is not None and loss_of(metric, before, after) > opts.max_drop:
        return False
    return opts.min_agreement is None or np.isnan(agreement) or agreement >= opts.min_agreement


def agreement_of(logits: np.ndarray, reference: np.ndarray) -> float:
    """Share of examples whose predicted class is the reference's (NaN for one-output models)."""
    return float((logits.argmax(-1) == reference.argmax(-1)).mean()) if logits.ndim == 2 and logits.shape[1] > 1 else float("nan")


def log_cost(what: str, name: str, before: float, after: float) -> None:
    """One log line with the metric before and after a step."""
    log.info("%s: %s %.4f -> %.4f (%+.2f points)", what, name, before, after, 100 * (after - before))
