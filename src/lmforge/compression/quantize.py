"""``compress --method quantize``: int8 PyTorch models that keep their accuracy.

Classifiers get dynamic int8 quantization with one scale per output channel; the task head and
pooler stay in fp32 (embeddings are lookups, never quantized). With ``quantize.max_drop`` (or
``quantize.min_agreement``) the cost is measured on validation data and, while it is too high,
layers go back to fp32 one by one, the one whose int8 version changes the outputs most first;
what was kept is recorded.

Causal LMs get int8 weight-only quantization (the output layer, tied to the embeddings, stays):
decoding reads a quarter of the weight bytes per token, and perplexity barely moves.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from lmforge.artifacts import LanguageModel
from lmforge.artifacts.compressed import INT8_FILE, save_compressed
from lmforge.compression.config import CompressConfig
from lmforge.compression.source import Parent, agreement_of, headline, log_cost, split_of, validation_examples, within
from lmforge.data.dataset import Split
from lmforge.devices import exact_inference
from lmforge.errors import ConfigError
from lmforge.models.build import quiet_transformers
from lmforge.models.heads import head_modules
from lmforge.models.quantized import dynamic_int8, int8_state, linear_names, weight_only_int8
from lmforge.tasks.base import Task, task_logits

log = logging.getLogger("lmforge.compress")


def sensitivity(model: nn.Module, names: list[str], task: Task, split: Split, reference: np.ndarray,
                per_channel: bool) -> list[str]:
    """``names`` ordered by how much quantizing each one alone moves the logits on ``split`` (most first)."""
    change = {}
    for name in names:
        logits = task_logits(task, dynamic_int8(model, [name], per_channel), split, 64)
        change[name] = float(np.abs(logits - reference).mean())
    return sorted(names, key=change.get, reverse=True)


def _fall_back(model: nn.Module, names: list[str], task: Task, split: Split, labels: Any, cfg: CompressConfig,
               before: float, metric: str, reference: np.ndarray) -> tuple[nn.Module, list[str], float, float]:
    """Quantize ``names``; while ``max_drop`` or ``min_agreement`` does not hold, keep one more layer in fp32."""
    opts = cfg.quantize

    def measure(model: nn.Module, what: str) -> tuple[float, float]:
        logits = task_logits(task, model, split, cfg.batch_size)
        after = headline(task, task.metrics(logits, split.targets, labels))[1]
        log_cost(what, metric, before, after)
        return after, agreement_of(logits, reference)

    quantized = dynamic_int8(model, names, opts.per_channel)
    after, agreement = measure(quantized, "int8")
    kept: list[str] = []
    if within(opts, metric, before, after, agreement):
        return quantized, kept, after, agreement
    pick = np.sort(np.random.default_rng(0).permutation(len(split))[:opts.sample])
    sample = Split(split.name, split.examples.subset(pick), split.encoded.take(pick), split.targets[pick], split.pad_id)
    for name in sensitivity(model, names, task, sample, reference[pick], opts.per_channel):
        kept.append(name)
        quantized = dynamic_int8(model, [n for n in names if n not in kept], opts.per_channel)
        after, agreement = measure(quantized, f"{name} back in fp32")
        if within(opts, metric, before, after, agreement):
            break
    return quantized, kept, after, agreement


def quantize_classifier(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    """Dynamic int8 quantization of a classifier, accuracy-aware when ``quantize.max_drop`` is set."""
    predictor = parent.load("cpu")  # PyTorch's int8 kernels are CPU kernels
    model, task, labels = predictor.model.float().eval(), predictor.task, predictor.labels
    fp32 = head_modules(model, with_pooler=True, fresh=False) + cfg.quantize.keep
    names = linear_names(model, fp32)
    split = split_of(task, predictor.tokenizer, predictor.data, labels, "validation",
                     validation_examples(parent, cfg.data, cfg.eval_samples, cfg.train_data))
    reference = task_logits(task, model, split, cfg.batch_size)
    metric, before = headline(task, task.metrics(reference, split.targets, labels))
    quantized, kept, after, agreement = _fall_back(model, names, task, split, labels, cfg, before, metric, reference)
    log.info("int8: %d linear layers quantized, %d kept in fp32 (%s); agreement with fp32 %.4f",
             len(names) - len(kept), len(fp32) + len(kept), ", ".join(fp32 + kept), agreement)
    record = {"metric": metric, "before": before, "after": after, "agreement": agreement, "max_drop": cfg.quantize.max_drop,
              "min_agreement": cfg.quantize.min_agreement, "fallback_fp32": kept}
    out = _write_int8(staging / "model", quantized, predictor.tokenizer)
    extra = {"pruned_heads": parent.meta["pruned_heads"]} if "pruned_heads" in parent.meta else {}
    return save_compressed(out, parent.meta, parent.path, "quantize", "int8", scheme="dynamic", auto_model=task.auto_model,
                           per_channel=cfg.quantize.per_channel, quantized=[n for n in names if n not in kept],
                           kept_fp32=fp32 + kept, compression=record, **extra)


def _write_int8(out: Path, model: nn.Module, tokenizer: Any) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.config.save_pretrained(out)
        tokenizer.save_pretrained(out)
        generation = getattr(model, "generation_config", None)
        if generation is not None and getattr(model, "can_generate", lambda: False)():
            generation.save_pretrained(out)
    save_file(int8_state(model), str(out / INT8_FILE), metadata={"format": "pt"})
    return out


def quantize_generator(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    """Int8 weight-only quantization of a causal LM; perplexity before and after on ``cfg.data`` when given."""
    predictor = parent.load(cfg.device)
    model = predictor.model.eval()
    output = model.get_output_embeddings()
    fp32 = [name for name, m in model.named_modules() if m is output] + cfg.quantize.keep
    names = linear_names(model, fp32)
    quantized = weight_only_int8(copy.deepcopy(model), names)
    record: dict[str, Any] = {"scheme": "weight_only"}
    if cfg.data:
        before = LanguageModel(parent.path, model, predictor.tokenizer).evaluate(cfg.data)["perplexity"]
        after = LanguageModel(parent.path, quantized, predictor.tokenizer).evaluate(cfg.data)["perplexity"]
        log.info("perplexity on %s: %.3f -> %.3f (%+.2f%%)", cfg.data, before, after, 100 * (after / before - 1))
        record |= {"metric": "perplexity", "before": before, "after": after}
    log.info("int8 weight-only: %d linear layers quantized, %s kept", len(names), ", ".join(fp32) or "none")
    out = _write_int8(staging / "model", quantized.cpu(), predictor.tokenizer)
    task = getattr(predictor, "task", None)
    return save_compressed(out, parent.meta, parent.path, "quantize", "int8", scheme="weight_only",
                           auto_model=task.auto_model if task is not None else "AutoModelForCausalLM",
                           quantized=names, kept_fp32=fp32, compression=record)


def check(parent: Parent, cfg: CompressConfig) -> None:
    """Refuse, before any work, options that do not apply to the run."""
    if parent.kind == "generator" and (cfg.quantize.max_drop is not None or cfg.quantize.min_agreement is not None):
        raise ConfigError("quantize.max_drop and quantize.min_agreement apply to classifiers; for a language model compare "
                          "perplexity with --data FILE")


def quantize(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    """Quantize the parent run: weight-only for language models, dynamic (accuracy-aware) for classifiers.

    Measured against the fp32 model (no bf16 autocast, whatever the CPU): agreement is with fp32.
    """
    with torch.inference_mode(), exact_inference():
        if parent.kind == "generator":
            return quantize_generator(parent, staging, cfg)
        return quantize_classifier(parent, staging, cfg)
