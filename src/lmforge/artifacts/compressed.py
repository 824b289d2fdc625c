"""Kind ``compressed``: a run made smaller by ``lmforge compress``, in one of three formats.

==============  ==========================================================================================
``onnx``        an ONNX graph (fp32, int8 or fp16) with the tokenizer beside it: runs in plain
                ``onnxruntime`` + ``tokenizers``; lmforge scores it like any classifier
``int8``        PyTorch int8 layers (dynamic quantization for classifiers, weight-only for causal
                LMs) saved as int8 tensors with their scales; rebuilt from ``config.json`` on load
``pruned_heads`` a plain transformers folder whose pruned attention heads are zero (it loads with
                ``from_pretrained``); lmforge slices those heads out when it loads, which makes it faster
==============  ==========================================================================================

``lmforge.json`` names the ``parent`` run, the ``method`` and what the method kept and measured.
Pruned-layer, sparse and distilled models are plain ``classifier`` runs, not this kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import transformers
from safetensors.torch import load_file

from lmforge.artifacts.base import ARTIFACTS, Scored, write_meta
from lmforge.artifacts.classifier import TaskModel, load_classifier
from lmforge.artifacts.generator import LanguageModel
from lmforge.config import DataConfig, TaskConfig
from lmforge.data.batching import eval_batches
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.errors import LmforgeError
from lmforge.models.build import load_tokenizer, quiet_transformers
from lmforge.models.compact import drop_heads
from lmforge.models.quantized import dynamic_int8, load_int8_state, weight_only_int8
from lmforge.tasks import get_task
from lmforge.tasks.base import Task, make_split

ONNX_FILE, INT8_FILE = "model.onnx", "model_int8.safetensors"
# ONNX Runtime's graph optimization levels by the names lmforge.json records.
ORT_LEVELS = {"none": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def save_compressed(out: Path, parent: dict[str, Any], parent_path: Path, method: str, fmt: str, **fields: Any) -> Path:
    """Write ``lmforge.json`` of a compressed run (last, once every other file is in ``out``).

    Args:
        out: The model folder, holding the compressed files.
        parent: The parent run's ``lmforge.json``.
        parent_path: The parent's model folder.
        method: ``quantize``, ``onnx`` or ``prune``.
        fmt: ``onnx``, ``int8`` or ``pruned_heads``.
        fields: What the method kept and measured.
    """
    labels = LabelSpace.from_dict(parent["labels"]) if "labels" in parent else None
    extra = {k: parent[k] for k in ("task",) if k in parent}
    return write_meta(out, "compressed", parent.get("base_model", str(parent_path)), labels, parent.get("data"),
                      parent=str(parent_path.resolve()), method=method, format=fmt, **extra, **fields)


def onnx_session(path: Path, level: str = "all", device: str = "cpu", threads: int | None = None) -> Any:
    """An ONNX Runtime session of ``path`` at graph optimization ``level``, on the GPU when ``device`` is one."""
    try:
        import onnxruntime as ort  # optional: lmforge[export]
    except ImportError:
        raise LmforgeError("running an ONNX model needs onnxruntime: pip install 'lmforge[export]'") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[level])
    if threads:
        options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


@dataclass
class OnnxModel(Scored):
    """An exported classifier run by ONNX Runtime: predict, evaluate and score like the model it came from."""

    path: Path
    session: Any
    tokenizer: Any
    task: Task
    labels: LabelSpace
    data: DataConfig
    kind: str = "compressed"
    capabilities: ClassVar[tuple[str, ...]] = ("predict", "evaluate", "score")

    def scores(self, examples: Examples, targets: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """Logits for ``examples`` (cleaned inputs), in order, run in length-sorted batches."""
        split = make_split(self.task, "predict", examples, targets, self.tokenizer, self.data, self.labels, None)
        wanted = {i.name for i in self.session.get_inputs()}
        out: np.ndarray | None = None
        for index in eval_batches(split.lengths, batch_size):
            feeds = {k: v.numpy() for k, v in split.inputs(index).items() if k in wanted}
            logits = np.asarray(self.session.run(["logits"], feeds)[0], dtype=np.float32)  # (B, C)
            if out is None:
                out = np.zeros((len(split),) + logits.shape[1:], dtype=np.float32)
            out[index] = logits
        return out if out is not None else np.zeros((0, self.labels.num_labels), dtype=np.float32)


def _task(meta: dict[str, Any]) -> Task:
    return get_task(TaskConfig(**meta["task"]))


def _heads(meta: dict[str, Any]) -> dict[int, list[int]]:
    return {int(layer): heads for layer, heads in meta["pruned_heads"].items()}


def _int8_model(path: Path, meta: dict[str, Any]) -> Any:
    """The model of an ``int8`` run: its architecture from ``config.json``, the same layers converted, the saved tensors."""
    auto = getattr(transformers, meta["auto_model"])
    with quiet_transformers():
        config = transformers.AutoConfig.from_pretrained(str(path))
        model = auto.from_config(config)
    if "pruned_heads" in meta:  # int8 layers of a head-pruned run have the sliced shapes
        drop_heads(model, _heads(meta))
    if meta["scheme"] == "weight_only":
        convert = weight_only_int8
    else:  # a per-token run quantized its own (untied) output layer too: converting it unties it here as well
        convert = lambda m, n: dynamic_int8(m, n, meta.get("per_channel", True), meta.get("per_token", False))  # noqa: E731
    model = convert(model, meta["quantized"])
    return load_int8_state(model, load_file(str(path / INT8_FILE))).eval()


@ARTIFACTS.register("compressed")
def load_compressed(path: Path, meta: dict[str, Any], device: str) -> Any:
    """Loader of the ``compressed`` kind, by format."""
    fmt = meta.get("format")
    if fmt == "onnx":
        session = onnx_session(path / ONNX_FILE, meta.get("graph_optimization", "all"), device)
        return OnnxModel(path, session, load_tokenizer(str(path)), _task(meta), LabelSpace.from_dict(meta["labels"]),
                         DataConfig(**meta["data"]))
    if fmt == "pruned_heads":
        predictor = load_classifier(path, meta, device)
        drop_heads(predictor.model, _heads(meta))
        predictor.kind = "compressed"
        return predictor
    if fmt == "int8":
        model = _int8_model(path, meta)
        if meta["scheme"] == "weight_only":
            model.to(device)  # dynamic int8 kernels are CPU kernels; weight-only layers run anywhere
        tokenizer = load_tokenizer(str(path))
        if "task" not in meta:
            return LanguageModel(path, model, tokenizer, kind="compressed")
        return TaskModel(path, model, tokenizer, _task(meta), LabelSpace.from_dict(meta["labels"]), DataConfig(**meta["data"]),
                         kind="compressed")
    raise LmforgeError(f"{path}/lmforge.json names the compressed format {fmt!r}, which this lmforge does not know; upgrade lmforge")
