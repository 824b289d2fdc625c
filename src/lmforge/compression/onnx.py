"""``compress --method onnx``: a classifier as an ONNX graph that plain ``onnxruntime`` + ``tokenizers`` run.

The graph comes from ``torch.onnx.export`` (the torch.export-based exporter, dynamic batch and
sequence length); ONNX Runtime's transformer optimizer fuses attention, layer norm and GELU;
``onnxruntime.quantization`` makes int8 weights (dynamic, or static with a calibration file),
leaving the task head in fp32. ``tokenizer.json`` and ``config.json`` (with the label names)
go beside ``model.onnx``; the graph optimization level is recorded and used when it runs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.artifacts import input_examples
from lmforge.artifacts.compressed import ONNX_FILE, OnnxModel, onnx_session, save_compressed
from lmforge.compression.config import CompressConfig, OnnxOptions
from lmforge.compression.source import Parent, headline, log_cost, split_of, validation_examples
from lmforge.data.batching import eval_batches
from lmforge.data.dataset import Split
from lmforge.data.pipeline import read_examples
from lmforge.errors import ConfigError, LmforgeError
from lmforge.models.build import quiet_transformers
from lmforge.tasks.base import task_logits

log = logging.getLogger("lmforge.compress")
# Nodes of the task head and pooler, by the module path the exporter writes into their names.
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
    onnx, _ = _onnx_tools()
    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if any(h in n.name for h in HEAD_NODES)]


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


def quantize_graph(path: Path, out: Path, opts: OnnxOptions, calibration: Split | None) -> str:
    """int8 weights for every MatMul outside the task head: dynamic, or static calibrated on ``calibration``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static  # optional: lmforge[export]

    exclude = _head_nodes(path)
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


def _graph(model: nn.Module, predictor: Any, work: Path, opts: OnnxOptions, calibration: Split | None) -> tuple[Path, dict[str, Any]]:
    """The final graph in ``work`` and how it was made."""
    # The graph takes exactly what lmforge feeds the model (segment ids only for sentence pairs).
    texts = ["a sample input", "another"]
    examples = input_examples(predictor.data, texts, texts if predictor.data.text_pair_column else None)
    sample = split_of(predictor.task, predictor.tokenizer, predictor.data, predictor.labels, "sample", (examples, None))
    path = export_graph(model.float().cpu(), sample.inputs(np.arange(2)), work / "exported.onnx", opts.opset)
    model_type = "bert" if getattr(model.config, "model_type", "") in ("bert", "roberta", "xlm-roberta", "electra") else model.config.model_type
    info: dict[str, Any] = {"fused": False}
    if opts.fuse and fuse(path, work / "fused.onnx", model_type):
        path, info["fused"] = work / "fused.onnx", True
    if opts.precision == "int8":
        info["quantization"] = quantize_graph(path, work / "int8.onnx", opts, calibration)
        path = work / "int8.onnx"
    elif opts.precision == "fp16":
        to_fp16(path, work / "fp16.onnx", model_type)
        path = work / "fp16.onnx"
    return path, info


def export(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    """Export the parent classifier to ONNX under ``staging/model`` and measure what it costs on validation data."""
    opts = cfg.onnx
    predictor = parent.load("cpu")
    calibration = _calibration(opts, predictor)
    out, work = staging / "model", staging / "export"
    out.mkdir(parents=True)
    work.mkdir()
    with quiet_tools():
        graph, info = _graph(predictor.model, predictor, work, opts, calibration)
    shutil.move(str(graph), out / ONNX_FILE)
    shutil.rmtree(work)
    with quiet_transformers():
        predictor.tokenizer.save_pretrained(out)
        predictor.model.config.save_pretrained(out)
    record = _measure(parent, predictor, out, cfg)
    log.info("ONNX %s graph: %.1f MB", opts.precision, (out / ONNX_FILE).stat().st_size / 1e6)
    return save_compressed(out, parent.meta, parent.path, "onnx", "onnx", precision=opts.precision, opset=opts.opset,
                           graph_optimization=opts.optimization, file=ONNX_FILE, compression={**info, **record})


def _measure(parent: Parent, predictor: Any, out: Path, cfg: CompressConfig) -> dict[str, Any]:
    """Metric of the PyTorch model and of the graph on validation data, and how often they agree."""
    try:
        examples, targets = validation_examples(parent, cfg.data, cfg.eval_samples, cfg.train_data)
    except LmforgeError as exc:
        log.warning("not measured on validation data: %s", exc)
        return {}
    task, labels = predictor.task, predictor.labels
    split = split_of(task, predictor.tokenizer, predictor.data, labels, "validation", (examples, targets))
    reference = task_logits(task, predictor.model.eval(), split, cfg.batch_size)
    graph = OnnxModel(out, onnx_session(out / ONNX_FILE, cfg.onnx.optimization), predictor.tokenizer, task, labels, predictor.data)
    logits = graph.scores(examples, targets, cfg.batch_size)
    metric, before = headline(task, task.metrics(reference, targets, labels))
    after = headline(task, task.metrics(logits, targets, labels))[1]
    log_cost(f"ONNX {cfg.onnx.precision}", metric, before, after)
    agreement = float((logits.argmax(-1) == reference.argmax(-1)).mean())
    log.info("agreement with the PyTorch model: %.4f; largest logit difference %.4g", agreement, float(np.abs(logits - reference).max()))
    return {"metric": metric, "before": before, "after": after, "agreement": agreement,
            "max_abs_diff": float(np.abs(logits - reference).max())}
