"""``lmforge pretrain``: corpus -> token store -> model (preset or checkpoint) -> training loop -> run.

The run directory's ``model/`` is an ordinary Hugging Face folder (model, tokenizer), so
``lmforge finetune`` and every other recipe take the run directory as ``model.name``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from accelerate.utils import set_seed

from lmforge import config as config_mod
from lmforge.artifacts import write_meta
from lmforge.errors import LmforgeError
from lmforge.evaluation import format_table, metric_mode, write_report
from lmforge.models.build import load_tokenizer, quiet_transformers, resolve
from lmforge.pretraining.config import PretrainConfig
from lmforge.pretraining.masking import Masker
from lmforge.pretraining.model import build_model
from lmforge.pretraining.nsp import PairSequences, plan_pairs
from lmforge.pretraining.objectives import (
    Objectives,
    PretrainingModel,
    describe,
    evaluate_batches,
    freeze,
    pretrain_loss,
    unused_parameters,
)
from lmforge.pretraining.packing import PackedSequences, Sequences, SequenceSource, document_spans, packed_spans
from lmforge.pretraining.store import StoreOptions, TokenStore, build_stores
from lmforge.runs import cache_dir, open_run
from lmforge.training.loggers import tracking_of
from lmforge.training.loop import fit

log = logging.getLogger("lmforge.pretrain")
EVAL_SEED = 1234


@dataclass
class PretrainResult:
    """What a pretraining run produced.

    Attributes:
        run_dir: The run directory (its ``model/`` is the pretrained model).
        status: ``completed``, ``early_stopped``, ``interrupted`` or ``diverged``.
        metrics: Final held-out metrics (empty without held-out data).
        objectives: The objectives trained, e.g. ``["mlm", "nsp"]``.
    """

    run_dir: Path
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    objectives: list[str] = field(default_factory=list)


def store_options(cfg: PretrainConfig, objectives: Objectives, tokenizer: Any) -> StoreOptions:
    """How the corpus is stored for these objectives: sentences for NSP, whole documents for causal LMs."""
    segments = "sentences" if objectives.nsp else "document" if objectives.clm else "lines"
    separator = tokenizer.eos_token_id if objectives.clm else tokenizer.sep_token_id
    if separator is None:
        separator = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    wwm = objectives.mlm and cfg.objective.whole_word_masking
    return StoreOptions(segments, int(separator), wwm, cfg.objective.chinese_words)


def make_masker(cfg: PretrainConfig, tokenizer: Any) -> Masker:
    """The MLM masker for ``tokenizer``: special tokens (but not UNK) are never chosen."""
    special = sorted(set(tokenizer.all_special_ids) - {tokenizer.unk_token_id})
    o = cfg.objective
    return Masker(int(tokenizer.mask_token_id), len(tokenizer), np.array(special, dtype=np.int64), o.mask_probability,
                  o.mask_replace, o.random_replace, o.whole_word_masking)


def sequences_for(store: TokenStore, cfg: PretrainConfig, objectives: Objectives, tokenizer: Any,
                  seed: int) -> Callable[[int], Sequences]:
    """``epoch -> Sequences`` over ``store``: sentence pairs (NSP), packed MLM sequences or packed CLM sequences."""
    length, pad = cfg.data.max_length, int(tokenizer.pad_token_id)
    if objectives.nsp:
        ids = {"cls": int(tokenizer.cls_token_id), "sep": int(tokenizer.sep_token_id), "pad": pad}
        masker, short = make_masker(cfg, tokenizer), cfg.objective.short_seq_probability
        return lambda epoch: PairSequences(store, plan_pairs(store, length, seed, epoch, short), length, ids, masker)
    if objectives.mlm:
        content = length - 1  # CLS goes in front of every sequence
        spans = packed_spans(store.num_tokens, content) if cfg.data.packing else document_spans(store, content)
        seqs = PackedSequences(store, spans, pad, int(tokenizer.cls_token_id or pad), make_masker(cfg, tokenizer))
    else:
        spans = packed_spans(store.num_tokens, length) if cfg.data.packing else document_spans(store, length)
        seqs = PackedSequences(store, spans, pad)
    return lambda epoch: seqs


def _count_parameters(model: Any) -> None:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("model: %s, %s parameters, %s trained", type(model.model).__name__, f"{total:,}", f"{trainable:,}")


def save_pretrained(out: Path, model: Any, tokenizer: Any, cfg: PretrainConfig, objectives: Objectives) -> Path:
    """The model and tokenizer in Hugging Face format, with ``lmforge.json`` describing the run.

    A causal LM is saved as a ``generator`` artifact, a masked LM as an ``encoder``.
    """
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    kind = "generator" if objectives.clm else "encoder"
    base = cfg.model.name or f"new {cfg.model.arch} ({cfg.model.size})"
    data = cfg.data.model_dump(mode="json", include={"normalize", "lowercase", "fullwidth_to_halfwidth", "max_length"})
    return write_meta(out, kind, base, data=data, objectives=objectives.names())


def pretrain(config: Any, overrides: list[str] | None = None, resume: bool = False) -> PretrainResult:
    """Pretrain (or continue pretraining) a model on unlabeled text and save a run directory.

    Args:
        config: A YAML path, a dict or a :class:`PretrainConfig`.
        overrides: ``key.sub=value`` strings applied on top.
        resume: Continue the run from its newest checkpoint.
    """
    cfg = config_mod.load(PretrainConfig, config, overrides)
    with open_run(cfg.output, cfg.train, resume, cfg) as (acc, run_dir):
        return _pretrain(cfg, acc, run_dir, resume)


def _cache_root(cfg: PretrainConfig, run_dir: Path) -> Path:
    return cache_dir("pretrain") if cfg.data.cache else run_dir / "tokens"


def _pretrain(cfg: PretrainConfig, acc: Any, run_dir: Path, resume: bool) -> PretrainResult:
    set_seed(cfg.train.seed)
    tokenizer = load_tokenizer(cfg.model.tokenizer or resolve(cfg.model.name or ""))
    model, objectives = build_model(cfg.model, cfg.objective, tokenizer, cfg.data.max_length)
    log.info("objectives: %s", describe(objectives))
    with acc.main_process_first():
        options = store_options(cfg, objectives, tokenizer)
        train_store, held_store = build_stores(cfg.data, tokenizer, options, _cache_root(cfg, run_dir))
    sequences = sequences_for(train_store, cfg, objectives, tokenizer, cfg.train.seed)
    source = SequenceSource(sequences, cfg.train.batch_size, cfg.train.seed)
    log.info("%d training sequences of up to %d tokens per epoch", len(source.of_epoch(0)), cfg.data.max_length)
    evaluate = None
    if held_store.num_docs:
        held_sequences = sequences_for(held_store, cfg, objectives, tokenizer, EVAL_SEED)
        held = SequenceSource(held_sequences, cfg.train.eval_batch_size, EVAL_SEED)
        eval_data = held.fixed_batches(cfg.data.max_eval_sequences)
        evaluate = lambda m: evaluate_batches(m, eval_data)  # noqa: E731
    else:
        log.warning("no held-out documents: set data.validation or data.validation_share > 0 to see held-out metrics")
    freeze(model, unused_parameters(model, objectives))
    wrapper = PretrainingModel(model, objectives)
    _count_parameters(wrapper)
    metric = "loss" if cfg.train.metric == "auto" else cfg.train.metric
    result = fit(wrapper, source, pretrain_loss, cfg.train, run_dir, evaluate=evaluate, metric=metric, mode=metric_mode(metric),
                 resume=resume, accelerator=acc, tracking=tracking_of(cfg.output, cfg.model_dump(mode="json")))
    return _finish(cfg, acc, run_dir, result, tokenizer, objectives, evaluate)


def _finish(cfg: PretrainConfig, acc: Any, run_dir: Path, result: Any, tokenizer: Any, objectives: Objectives,
            evaluate: Callable[[Any], dict[str, float]] | None) -> PretrainResult:
    if result.status == "interrupted":
        log.warning("run interrupted; continue it with: lmforge pretrain <config> --resume")
        return PretrainResult(run_dir, result.status, objectives=objectives.names())
    if result.status == "diverged":
        raise LmforgeError(f"training diverged (loss became nan or inf) at step {result.state.step + 1}; "
                           f"see {run_dir / 'train.log'}")
    if not acc.is_main_process:
        return PretrainResult(run_dir, result.status, objectives=objectives.names())
    save_pretrained(run_dir / "model", result.model.model, tokenizer, cfg, objectives)
    metrics: dict[str, float] = {}
    if evaluate is not None:
        result.model.eval()
        metrics = evaluate(result.model)
        (run_dir / "eval_results.json").write_text(json.dumps({"validation": metrics}, indent=2), encoding="utf-8")
        log.info("held-out metrics:\n%s", format_table(metrics))
    if cfg.output.report:
        final = {"validation": metrics} if metrics else {}
        write_report(run_dir, final, f"lmforge pretraining: {cfg.output.name}", config_mod.dump(cfg))
    if not cfg.data.cache:
        shutil.rmtree(run_dir / "tokens", ignore_errors=True)
    log.info("run saved to %s (model in %s; fine-tune it with model.name=%s)", run_dir, run_dir / "model", run_dir)
    return PretrainResult(run_dir, result.status, metrics, objectives.names())
