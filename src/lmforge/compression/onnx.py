"""``compress --method onnx``: a classifier as an ONNX graph that plain ``onnxruntime`` + ``tokenizers`` run.

The graph comes from ``torch.onnx.export`` (the torch.export-based exporter, dynamic batch and
sequence length); ONNX Runtime's transformer optimizer fuses attention, layer norm and GELU;
``onnxruntime.quantization`` makes int8 weights (dynamic, or static with a calibration file),
leaving the task head in fp32. With ``onnx.max_drop`` or ``onnx.min_agreement`` the int8 graph is
measured on validation data against the PyTorch model and, while it misses, weight matrices go
back to fp32 one at a time, the one whose int8 version moves the logits most first (as
``--method quantize`` does for PyTorch); what was kept is recorded. ``tokenizer.json`` and ``config.json`` (with the label names)
go beside ``model.onnx``; the graph optimization level is recorded and used when it runs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.artifacts import input_examples
from lmforge.artifacts.compressed import ONNX_FILE, OnnxModel, onnx_session, save_compressed
from lmforge.compression.config import CompressConfig, OnnxOptions
from lmforge.compression.source import Parent, agreement_of, headline, log_cost, split_of, validation_examples, within
from lmforge.data.batching import eval_batches
from lmforge.data.dataset import Split
from lmforge.data.pipeline import read_examples
from lmforge.devices import exact_inference
from lmforge.errors import ConfigError, LmforgeError
from lmforge.models.build import quiet_transformers
from lmforge.tasks.base import task_logits

log = logging.getLogger("lmforge.compress")
# The task head and pooler, by the module path in their node or weight names.
HEAD_NODES = ("classifier", "pooler", "score")


def _onnx_tools() -> tuple[Any, Any]:
    try:
        import onnx  # optional: lmforge[export]
        import onnxruntime  # optional: lmforge[export]
    except ImportError:
        raise LmforgeError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'lmforge[export]'") from None
    return onnx, onnxruntime


@contextlib.contextmanager
def quiet_tools() -> Iterator[None]:
    """Silence the exporter's and the quantizer's advice to the console (torchvision absent, pre-processing)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxruntime", "")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_graph(model: nn.Module, inputs: dict[str, torch.Tensor], path: Path, opset: int) -> Path:
    """Export ``model`` to ``path`` with dynamic batch and sequence dimensions; the output is ``logits``."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with quiet_transformers(), torch.no_grad(), warnings.catch_warnings():
        # The exporter notes that every input shares the batch and sequence axes (they do) and that
        # torch.export renamed an internal class; neither is the user's concern.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(model.eval(), (), kwargs=inputs, input_names=list(inputs), output_names=["logits"],
                                    dynamic_shapes={name: {0: batch, 1: seq} for name in inputs}, opset_version=opset,
                                    dynamo=True, verbose=False, external_data=False)
        program.save(str(path))
    return path


def fuse(path: Path, out: Path, model_type: str) -> bool:
    """Fuse attention, layer norm and GELU with ONNX Runtime's transformer optimizer; False when it fused nothing."""
    from onnxruntime.transformers.optimizer import optimize_model  # optional: lmforge[export]

    try:
        optimized = optimize_model(str(path), model_type=model_type, num_heads=0, hidden_size=0)
    except Exception as exc:  # noqa: BLE001  an architecture the optimizer does not know keeps its plain graph
        log.warning("ONNX Runtime's transformer optimizer failed (%s); keeping the unfused graph", str(exc).splitlines()[0])
        return False
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    log.info("fused operators: %s", ", ".join(f"{k} {v}" for k, v in fused.items()) or "none")
    optimized.save_model_to_file(str(out))
    return bool(fused)


def _head_nodes(path: Path) -> list[str]:
    """Nodes of the task head and pooler: named after them, or reading their weights (the exporter may name nodes generically)."""
    onnx, _ = _onnx_tools()
    graph = onnx.load(str(path), load_external_data=False).graph
    head = [n for n in graph.node if any(h in n.name or any(h in i for i in n.input) for h in HEAD_NODES)]
    # The quantizer rewrites a Gemm as a MatMul named "<gemm>_MatMul" before it quantizes: exclude both names.
    return [name for n in head for name in ((n.name, f"{n.name}_MatMul") if n.op_type == "Gemm" else (n.name,))]


def weight_matmuls(path: Path) -> dict[str, str]:
    """Node -> module of every MatMul with a weight matrix, outside the head: the modules int8 can quantize.

    A node is named after the bias added to its output (``bert.encoder.layer.0.output.dense``), or keeps
    its own name when the exporter left none to read.
    """
    onnx, _ = _onnx_tools()
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    head = set(_head_nodes(path))
    found = {}
    for node in graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2 or node.input[1] not in weights or node.name in head:
            continue
        biases = [i for r in readers.get(node.output[0], []) for i in r.input
                  if i in weights and i.endswith(".bias") and "LayerNorm" not in i]
        found[node.name] = biases[0].removesuffix(".bias") if biases else node.name
    return found


class CalibrationReader:
    """Feeds of calibration texts for ``onnxruntime.quantization.quantize_static``, one length-sorted batch at a time."""

    def __init__(self, split: Split, names: set[str], batch_size: int = 16) -> None:
        self.batches = iter([{k: v.numpy() for k, v in split.inputs(i).items() if k in names}
                             for i in eval_batches(split.lengths, batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch, or None when done."""
        return next(self.batches, None)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.batches


def quantize_graph(path: Path, out: Path, opts: OnnxOptions, calibration: Split | None, keep: Sequence[str] = ()) -> str:
    """int8 weights for every MatMul outside the task head and ``keep``: dynamic, or static calibrated on ``calibration``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static  # optional: lmforge[export]

    exclude = _head_nodes(path) + list(keep)
    if calibration is None:
        quantize_dynamic(str(path), str(out), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
        return "dynamic"
    names = {i.name for i in onnx_session(path, "basic").get_inputs()}
    quantize_static(str(path), str(out), CalibrationReader(calibration, names), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                    op_types_to_quantize=["MatMul", "Gemm"])
    return "static"


def to_fp16(path: Path, out: Path, model_type: str) -> None:
    """fp16 weights and activations (inputs and logits stay as they were), for GPUs."""
    from onnxruntime.transformers.optimizer import optimize_model  # optional: lmforge[export]

    optimized = optimize_model(str(path), model_type=model_type, num_heads=0, hidden_size=0, opt_level=0)
    optimized.convert_float_to_float16(keep_io_types=True)
    optimized.save_model_to_file(str(out))


def check(parent: Parent, cfg: CompressConfig) -> None:
    """Refuse, before any work, what the export cannot do."""
    _onnx_tools()
    if cfg.onnx.calibration is not None and cfg.onnx.precision != "int8":
        raise ConfigError(f"onnx.calibration is for int8 graphs; drop it or set onnx.precision=int8 (now {cfg.onnx.precision})")


def _calibration(opts: OnnxOptions, predictor: Any) -> Split | None:
    if opts.calibration is None:
        return None
    examples = read_examples(opts.calibration, predictor.data, labeled=False)
    examples = examples.subset(range(min(len(examples), opts.calibration_samples)))
    return split_of(predictor.task, predictor.tokenizer, predictor.data, predictor.labels, "calibration", (examples, None))


def _graph(model: nn.Module, predictor: Any, work: Path, opts: OnnxOptions) -> tuple[Path, dict[str, Any]]:
    """The float graph in ``work`` (fused, fp16 when asked) and how it was made; int8 is made from it by the caller."""
    # The graph takes exactly what lmforge feeds the model (segment ids only for sentence pairs).
    texts = ["a sample input", "another"]
    examples = input_examples(predictor.data, texts, texts if predictor.data.text_pair_column else None)
    sample = split_of(predictor.task, predictor.tokenizer, predictor.data, predictor.labels, "sample", (examples, None))
    path = export_graph(model.float().cpu(), sample.inputs(np.arange(2)), work / "exported.onnx", opts.opset)
    model_type = "bert" if getattr(model.config, "model_type", "") in ("bert", "roberta", "xlm-roberta", "electra") else model.config.model_type
    info: dict[str, Any] = {"fused": False}
    if opts.fuse and fuse(path, work / "fused.onnx", model_type):
        path, info["fused"] = work / "fused.onnx", True
    if opts.precision == "fp16":
        to_fp16(path, work / "fp16.onnx", model_type)
        path = work / "fp16.onnx"
    return path, info


def export(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    """Export the parent classifier to ONNX under ``staging/model`` and measure what it costs on validation data.

    The PyTorch model is the fp32 reference (no bf16 autocast, whatever the CPU), as the graph holds its fp32 weights.
    """
    with exact_inference():
        return _export(parent, staging, cfg)


def _export(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    opts = cfg.onnx
    predictor = parent.load("cpu")
    calibration = _calibration(opts, predictor)
    out, work = staging / "model", staging / "export"
    out.mkdir(parents=True)
    work.mkdir()
    with quiet_tools():
        graph, info = _graph(predictor.model, predictor, work, opts)
    validation = _validation(parent, predictor, cfg, required=opts.precision == "int8" and _targets(opts))
    if opts.precision == "int8":
        with quiet_tools():
            graph, info["quantization"], info["fallback_fp32"] = _int8(graph, work, opts, calibration, predictor, validation,
                                                                       cfg.batch_size)
    shutil.move(str(graph), out / ONNX_FILE)
    shutil.rmtree(work)
    with quiet_transformers():
        predictor.tokenizer.save_pretrained(out)
        predictor.model.config.save_pretrained(out)
    record = _measure(predictor, out / ONNX_FILE, validation, cfg)
    log.info("ONNX %s graph: %.1f MB", opts.precision, (out / ONNX_FILE).stat().st_size / 1e6)
    return save_compressed(out, parent.meta, parent.path, "onnx", "onnx", precision=opts.precision, opset=opts.opset,
                           graph_optimization=opts.optimization, file=ONNX_FILE, compression={**info, **record})


def _targets(opts: OnnxOptions) -> bool:
    return opts.max_drop is not None or opts.min_agreement is not None


class _Validation:
    """Validation data tokenized once, with the PyTorch model's logits and metric on it."""

    def __init__(self, predictor: Any, examples: Any, targets: np.ndarray, batch_size: int) -> None:
        task, labels = predictor.task, predictor.labels
        self.examples, self.targets = examples, targets
        self.split = split_of(task, predictor.tokenizer, predictor.data, labels, "validation", (examples, targets))
        self.reference = task_logits(task, predictor.model.eval(), self.split, batch_size)
        self.metric, self.before = headline(task, task.metrics(self.reference, targets, labels))


def _validation(parent: Parent, predictor: Any, cfg: CompressConfig, required: bool) -> _Validation | None:
    try:
        examples, targets = validation_examples(parent, cfg.data, cfg.eval_samples, cfg.train_data)
    except LmforgeError as exc:
        if required:
            raise LmforgeError(f"onnx.max_drop and onnx.min_agreement are measured on validation data: {exc}") from None
        log.warning("not measured on validation data: %s", exc)
        return None
    return _Validation(predictor, examples, targets, cfg.batch_size)


def _scores(predictor: Any, graph: Path, examples: Any, opts: OnnxOptions, batch_size: int) -> np.ndarray:
    """Logits of ``graph`` for ``examples``, run as the saved run will run it."""
    session = onnx_session(graph, opts.optimization)
    model = OnnxModel(graph.parent, session, predictor.tokenizer, predictor.task, predictor.labels, predictor.data)
    return model.scores(examples, None, batch_size)


def _int8(fp32: Path, work: Path, opts: OnnxOptions, calibration: Split | None, predictor: Any,
          validation: _Validation | None, batch_size: int) -> tuple[Path, str, list[str]]:
    """The int8 graph; with ``max_drop``/``min_agreement``, weight matrices back in fp32 until they hold."""
    out = work / "int8.onnx"
    scheme = quantize_graph(fp32, out, opts, calibration)
    if validation is None or not _targets(opts):
        return out, scheme, []
    task, labels, v = predictor.task, predictor.labels, validation

    def holds(graph: Path, what: str) -> bool:
        logits = _scores(predictor, graph, v.examples, opts, batch_size)
        after = headline(task, task.metrics(logits, v.targets, labels))[1]
        agreement = agreement_of(logits, v.reference)
        log_cost(what, v.metric, v.before, after)
        log.info("agreement with the PyTorch model: %.4f", agreement)
        return within(opts, v.metric, v.before, after, agreement)

    if holds(out, "int8"):
        return out, scheme, []
    modules = weight_matmuls(fp32)
    kept: list[str] = []
    for node in _sensitivity(fp32, work, opts, calibration, predictor, v, list(modules), batch_size):
        kept.append(node)
        quantize_graph(fp32, out, opts, calibration, kept)
        if holds(out, f"{modules[node]} back in fp32"):
            break
    else:
        log.warning("every weight matrix is back in fp32 and the bounds still do not hold; the graph is in effect fp32")
    return out, scheme, [modules[n] for n in kept]


def _sensitivity(fp32: Path, work: Path, opts: OnnxOptions, calibration: Split | None, predictor: Any, v: _Validation,
                 nodes: list[str], batch_size: int) -> list[str]:
    """``nodes`` ordered by how much quantizing each one alone moves the logits on a sample of the validation data (most first)."""
    pick = np.sort(np.random.default_rng(0).permutation(len(v.examples))[:opts.sample])
    examples, reference = v.examples.subset(pick), v.reference[pick]
    change = {}
    alone = work / "one.onnx"
    for node in nodes:
        quantize_graph(fp32, alone, opts, calibration, [n for n in nodes if n != node])
        change[node] = float(np.abs(_scores(predictor, alone, examples, opts, batch_size) - reference).mean())
    alone.unlink(missing_ok=True)
    return sorted(nodes, key=change.get, reverse=True)


def _measure(predictor: Any, graph: Path, validation: _Validation | None, cfg: CompressConfig) -> dict[str, Any]:
    """Metric of the PyTorch model and of the graph on validation data, and how often they agree."""
    if validation is None:
        return {}
    v = validation
    logits = _scores(predictor, graph, v.examples, cfg.onnx, cfg.batch_size)
    after = headline(predictor.task, predictor.task.metrics(logits, v.targets, predictor.labels))[1]
    log_cost(f"ONNX {cfg.onnx.precision}", v.metric, v.before, after)
    agreement = agreement_of(logits, v.reference)
    log.info("agreement with the PyTorch model: %.4f; largest logit difference %.4g", agreement, float(np.abs(logits - v.reference).max()))
    return {"metric": v.metric, "before": v.before, "after": after, "agreement": agreement,
            "max_abs_diff": float(np.abs(logits - v.reference).max()), "max_drop": cfg.onnx.max_drop,
            "min_agreement": cfg.onnx.min_agreement}
