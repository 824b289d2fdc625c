"""One fine-tuning run: data -> model with a task head (and tuning method) -> training loop -> artifact -> report.

``lmforge finetune`` is this run behind a config file; ``lmforge ensemble`` and ``lmforge search``
run it once per member or trial.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from lmforge import artifacts
from lmforge import config as config_mod
from lmforge.config import FinetuneConfig
from lmforge.data.dataset import Split, SplitSource
from lmforge.errors import LmforgeError
from lmforge.evaluation import format_table, metric_mode, write_report
from lmforge.evaluation.baselines import baseline_metrics, fit_tfidf_logreg
from lmforge.models.build import enable_checkpointing, load_tokenizer, resolve
from lmforge.runs.directory import open_run, save_config, token_cache_dir
from lmforge.tasks import get_task
from lmforge.tasks.base import Task, labeled_data, make_split, task_logits, task_metrics, task_predictions
from lmforge.training.adaptive import resolve_auto
from lmforge.training.configured import build_hooks
from lmforge.training.hooks import Hook
from lmforge.training.loggers import tracking_of
from lmforge.training.loop import fit
from lmforge.training.regularizers import build_loss
from lmforge.tuning import apply_tuning, is_full
from lmforge.tuning import summary as tuning_summary

log = logging.getLogger("lmforge")


@dataclass
class FinetuneResult:
    """What a fine-tuning run produced.

    Attributes:
        run_dir: The run directory.
        status: ``completed``, ``early_stopped``, ``interrupted`` or ``diverged``.
        metrics: Final metrics per split (validation, test).
        predictions: A few held-out examples with their predictions.
    """

    run_dir: Path
    status: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)


def _evaluator(task: Task, split: Split, labels: Any, batch_size: int) -> Any:
    def evaluate(model: Any) -> dict[str, Any]:
        return task_metrics(task, task_logits(task, model, split, batch_size), split, labels)

    return evaluate


def _samples(task: Task, split: Split, labels: Any, logits: Any, n: int = 5) -> list[dict[str, Any]]:
    if getattr(task, "predictions", None) is not None:
        return task_predictions(task, logits, split, labels, 1)[:n]
    picks = list(range(min(n, len(split))))
    preds = task.postprocess(logits[picks], labels, 1)
    rows = []
    for i, pred in zip(picks, preds):
        gold = split.examples.labels[i] if split.examples.labels is not None else None
        rows.append({"text": split.examples.texts[i], "gold": gold, **{k: v for k, v in pred.items() if k != "probabilities"}})
    return rows


def _final_eval(task: Task, splits: dict[str, Split], model: Any, labels: Any, batch_size: int) -> tuple[dict, list]:
    metrics, samples = {}, []
    model.eval()
    for name in ("validation", "test"):
        if name in splits:
            logits = task_logits(task, model, splits[name], batch_size)
            metrics[name] = task_metrics(task, logits, splits[name], labels)
            samples = _samples(task, splits[name], labels, logits)
    return metrics, samples


def _task_baseline(task: Task, splits: dict[str, Split], labels: Any, metrics: dict[str, dict], started: float) -> dict[str, dict]:
    """The task's own classic baseline (a CRF for NER, lexical overlap for QA), logged beside the model's score."""
    start = time.perf_counter()
    out = task.baseline(splits, labels)  # type: ignore[attr-defined]
    metric = task.default_metric
    for name, values in out.items():
        split = name.split(" (", 1)[0]
        ours, theirs = metrics.get(split, {}).get(metric), values.get(metric)
        if ours is not None and theirs is not None:
            log.info("%s %s %.4f; %s %.4f", split, metric, ours, name.split(" (", 1)[1].rstrip(")"), theirs)
    seconds, total = time.perf_counter() - start, time.perf_counter() - started
    log.info("baseline: %.1f s, %.1f%% of this run's %.0f s (output.baseline=false skips it)", seconds,
             100 * seconds / max(total, 1e-9), total)
    return out


def _baseline(splits: dict[str, Split], labels: Any, metrics: dict[str, dict], started: float) -> dict[str, dict]:
    """TF-IDF + logistic regression fitted once on train (C chosen on validation, as the model is), scored on every split."""
    if labels.kind != "single":
        return {}
    start = time.perf_counter()
    train, val = splits["train"], splits.get("validation")
    held = (val.examples.texts, val.targets) if val is not None else None
    pipe = fit_tfidf_logreg(train.examples.texts, train.targets, tune=held is not None or len(train) <= 20_000, validation=held)
    out = {}
    for name in ("validation", "test"):
        if name not in splits:
            continue
        ours = metrics[name]["accuracy"]
        base = baseline_metrics(pipe, splits[name].examples.texts, splits[name].targets, labels.names)
        out[f"{name} (TF-IDF baseline)"] = base
        log.info("%s accuracy %.4f; TF-IDF + logistic regression baseline %.4f", name, ours, base["accuracy"])
        if ours < base["accuracy"]:
            log.warning("the model loses to the TF-IDF baseline on %s: train longer (train.epochs), raise the head's "
                        "learning rate (train.head_lr), or add data", name)
    seconds, total = time.perf_counter() - start, time.perf_counter() - started
    share = seconds / max(total, 1e-9)
    log.info("TF-IDF baseline: %.1f s, %.1f%% of this run's %.0f s (output.baseline=false skips it)", seconds, 100 * share, total)
    return {name: values | {"fit_seconds": round(seconds, 2), "share_of_run": round(share, 4)} for name, values in out.items()}


def _save(cfg: FinetuneConfig, run_dir: Path, model: Any, tokenizer: Any, labels: Any) -> Path:
    out = run_dir / "model"
    if is_full(cfg.tuning):
        return artifacts.save_model(out, model, tokenizer, cfg.task, labels, cfg.data, cfg.model.name)
    return artifacts.save_adapter(out, model, cfg.task, labels, cfg.data, cfg.model.name, cfg.tuning)


def _resolve_auto(cfg: FinetuneConfig, train: Split, labels: Any, run_dir: Path, acc: Any) -> FinetuneConfig:
    """Settings left at ``auto`` chosen from the training data (logged), and the resolved config saved again with them."""
    if "auto" not in (cfg.train.epochs, cfg.train.head_lr):
        return cfg
    cfg = cfg.model_copy(update={"train": resolve_auto(cfg.train, len(train), labels.num_labels)})
    if acc.is_main_process:
        save_config(run_dir, cfg)
    return cfg


def _method_lr_note(cfg: FinetuneConfig) -> None:
    default = cfg.tuning.default_lr
    if default is not None and cfg.train.lr == default:
        log.info("train.lr %g: the usual rate of tuning.method=%s (set train.lr to change it)", cfg.train.lr, cfg.tuning.method)


def finetune(config: Any, overrides: list[str] | None = None, resume: bool = False,
             hooks: list[Hook] | None = None) -> FinetuneResult:
    """Fine-tune a pretrained model on labeled text and save a run directory.

    Args:
        config: A YAML path, a dict or a :class:`FinetuneConfig`.
        overrides: ``key.sub=value`` strings applied on top.
        resume: Continue the run from its newest checkpoint.
        hooks: Extra training-loop hooks, after those the config switches on.
    """
    cfg = config_mod.load(FinetuneConfig, config, overrides)
    with open_run(cfg.output, cfg.train, resume, cfg) as (acc, run_dir):
        return _finetune(cfg, acc, run_dir, resume, hooks or [])


def _finetune(cfg: FinetuneConfig, acc: Any, run_dir: Path, resume: bool, hooks: list[Hook]) -> FinetuneResult:
    started = time.perf_counter()
    log.info("device: %s, %d process(es), precision %s", acc.device, acc.num_processes, acc.mixed_precision)
    _method_lr_note(cfg)
    set_seed(cfg.train.seed)
    source = resolve(cfg.model.name)
    tokenizer = load_tokenizer(source)
    task = get_task(cfg.task)
    loader = lambda run: artifacts.load(run, device="cpu")  # noqa: E731  the augmentation filter's labeler
    examples, labels = labeled_data(task, cfg.data, model_source=source, load_labeler=loader)
    splits = {name: make_split(task, name, ex, y, tokenizer, cfg.data, labels, token_cache_dir())
              for name, (ex, y) in examples.items()}
    cfg = _resolve_auto(cfg, splits["train"], labels, run_dir, acc)
    set_seed(cfg.train.seed if cfg.model.init_seed is None else cfg.model.init_seed)
    model = task.build_model(source, labels, cfg.model)
    if cfg.model.gradient_checkpointing:
        enable_checkpointing(model)
    model = apply_tuning(model, cfg.tuning)
    params = tuning_summary(model, cfg.tuning)
    if acc.is_main_process:
        (run_dir / "tuning.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
    metric = task.default_metric if cfg.train.metric == "auto" else cfg.train.metric
    batches = SplitSource(splits["train"], task.collate, cfg.train.batch_size, cfg.data.batching, cfg.train.seed, cfg.data.max_tokens)
    evaluate = _evaluator(task, splits["validation"], labels, cfg.train.eval_batch_size) if "validation" in splits else None
    if cfg.model.init_seed is not None:
        set_seed(cfg.train.seed)  # soup members share the head's init, not their dropout masks
    result = fit(model, batches, build_loss(task.loss, cfg.train), cfg.train, run_dir, evaluate=evaluate,
                 metric=metric if evaluate else "loss", mode=metric_mode(metric), hooks=build_hooks(cfg.train, tokenizer) + hooks,
                 resume=resume, accelerator=acc, tracking=tracking_of(cfg.output, cfg.model_dump(mode="json")))
    if result.status == "interrupted":
        log.warning("run interrupted; continue it with: lmforge finetune <config> --resume")
        return FinetuneResult(run_dir, result.status)
    if result.status == "diverged":
        raise LmforgeError(f"training diverged (loss became nan or inf) at step {result.state.step + 1}; see {run_dir / 'train.log'}")
    if not acc.is_main_process:
        return FinetuneResult(run_dir, result.status)
    return _finish(cfg, run_dir, result, task, splits, labels, tokenizer, started)


def _finish(cfg: FinetuneConfig, run_dir: Path, result: Any, task: Task, splits: dict[str, Split], labels: Any,
            tokenizer: Any, started: float) -> FinetuneResult:
    _save(cfg, run_dir, result.model, tokenizer, labels)
    metrics, samples = _final_eval(task, splits, result.model, labels, cfg.train.eval_batch_size)
    if cfg.output.baseline and metrics:
        own = getattr(task, "baseline", None) is not None
        metrics |= _task_baseline(task, splits, labels, metrics, started) if own else _baseline(splits, labels, metrics, started)
    (run_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    if cfg.output.report:
        write_report(run_dir, metrics, f"lmforge run: {cfg.output.name}", config_mod.dump(cfg))
    for name, values in metrics.items():
        if "baseline" not in name:
            log.info("%s metrics:\n%s", name, format_table(values))
    log.info("run saved to %s (model in %s)", run_dir, run_dir / "model")
    return FinetuneResult(run_dir, result.status, metrics, samples)
