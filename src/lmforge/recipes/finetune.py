"""``lmforge finetune``: data -> model with a task head -> training loop -> saved run -> report."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge import config as config_mod
from lmforge.artifact import save_model
from lmforge.config import FinetuneConfig, OutputConfig, TrainConfig
from lmforge.data.dataset import Split, SplitSource
from lmforge.data.pipeline import labeled_splits
from lmforge.errors import LmforgeError
from lmforge.evaluation import format_table, metric_mode, write_report
from lmforge.models.build import enable_checkpointing, load_tokenizer, resolve
from lmforge.tasks import get_task
from lmforge.tasks.base import Task, make_split, task_logits
from lmforge.training.hooks import Hook, build_hooks
from lmforge.training.loop import fit, make_accelerator
from lmforge.training.regularizers import build_loss
from lmforge.tuning import apply_tuning
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


def run_directory(out: OutputConfig, resume: bool) -> Path:
    """The run directory named by ``out``; refuses to overwrite a finished run by accident."""
    path = Path(out.dir.format(name=out.name, time=time.strftime("%Y%m%d-%H%M%S")))
    if path.exists() and any(path.iterdir()) and not (resume or out.overwrite):
        raise LmforgeError(f"run directory {path} already exists; pass --resume to continue it, "
                           "set output.overwrite=true to replace it, or choose another output.name")
    if out.overwrite and not resume and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shared_run_directory(out: OutputConfig, resume: bool, acc: Any) -> Path:
    """The main process picks the run directory; the others are told, so all write to one place."""
    from accelerate.utils import broadcast_object_list

    paths = [str(run_directory(out, resume)) if acc.is_main_process else None]
    if acc.num_processes > 1:
        broadcast_object_list(paths)
    return Path(paths[0])


def add_file_log(run_dir: Path) -> logging.Handler:
    """Mirror lmforge's log into ``run_dir/train.log``."""
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("lmforge")
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:  # the file gets the full story even when the console is quiet
        root.setLevel(logging.INFO)
    return handler


@contextlib.contextmanager
def open_run(output: OutputConfig, train: TrainConfig, resume: bool) -> Iterator[tuple[Any, Path]]:
    """The accelerator and run directory of a training recipe, with lmforge's log mirrored into the run."""
    acc = make_accelerator(train)
    run_dir = _shared_run_directory(output, resume, acc)
    handler = add_file_log(run_dir) if acc.is_main_process else None
    try:
        yield acc, run_dir
    finally:
        if handler:
            logging.getLogger("lmforge").removeHandler(handler)
            handler.close()


def token_cache_dir() -> Path:
    """Where tokenized data is cached."""
    from lmforge.zoo import home

    return home() / "cache" / "tokens"


def _evaluator(task: Task, split: Split, labels: Any, batch_size: int) -> Any:
    def evaluate(model: Any) -> dict[str, Any]:
        return task.metrics(task_logits(task, model, split, batch_size), split.targets, labels)

    return evaluate


def _samples(task: Task, split: Split, labels: Any, logits: Any, n: int = 5) -> list[dict[str, Any]]:
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
            metrics[name] = task.metrics(logits, splits[name].targets, labels)
            samples = _samples(task, splits[name], labels, logits)
    return metrics, samples


def _baseline(splits: dict[str, Split], labels: Any, metrics: dict[str, dict]) -> dict[str, dict]:
    """TF-IDF + logistic regression on the same splits, for single-label classification."""
    from lmforge.evaluation.baselines import tfidf_logreg

    if labels.kind != "single":
        return {}
    train, out = splits["train"], {}
    for name in ("validation", "test"):
        if name not in splits:
            continue
        ours = metrics[name]["accuracy"]
        base = tfidf_logreg(train.examples.texts, train.targets, splits[name].examples.texts, splits[name].targets,
                            labels.names, tune=len(train) <= 20_000)
        out[f"{name} (TF-IDF baseline)"] = base
        log.info("%s accuracy %.4f; TF-IDF + logistic regression baseline %.4f", name, ours, base["accuracy"])
        if ours < base["accuracy"]:
            log.warning("the model loses to the TF-IDF baseline on %s: train longer (train.epochs), raise the head's "
                        "learning rate (train.head_lr), or add data", name)
    return out


def finetune(config: Any, overrides: list[str] | None = None, resume: bool = False,
             hooks: list[Hook] | None = None) -> FinetuneResult:
    """Fine-tune a pretrained model on labeled text and save a run directory.

    Args:
        config: A YAML path, a dict or a :class:`FinetuneConfig`.
        overrides: ``key.sub=value`` strings applied on top.
        resume: Continue the run from its newest checkpoint.
        hooks: Extra training-loop hooks, after those the config switches on.
    """
    from accelerate.utils import set_seed

    cfg = config_mod.load(FinetuneConfig, config, overrides)
    with open_run(cfg.output, cfg.train, resume) as (acc, run_dir):
        return _finetune(cfg, acc, run_dir, resume, set_seed, hooks or [])


def _finetune(cfg: FinetuneConfig, acc: Any, run_dir: Path, resume: bool, set_seed: Any, hooks: list[Hook]) -> FinetuneResult:
    if acc.is_main_process:
        (run_dir / "config.yaml").write_text(config_mod.dump(cfg), encoding="utf-8")
    log.info("device: %s, %d process(es), precision %s", acc.device, acc.num_processes, acc.mixed_precision)
    set_seed(cfg.train.seed)
    source = resolve(cfg.model.name)
    tokenizer = load_tokenizer(source)
    task = get_task(cfg.task)
    examples, labels = labeled_splits(cfg.data, task, model_source=source)
    splits = {name: make_split(task, name, ex, y, tokenizer, cfg.data, labels, token_cache_dir())
              for name, (ex, y) in examples.items()}
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
                 resume=resume, accelerator=acc, tensorboard=cfg.output.tensorboard)
    if result.status == "interrupted":
        log.warning("run interrupted; continue it with: lmforge finetune <config> --resume")
        return FinetuneResult(run_dir, result.status)
    if result.status == "diverged":
        raise LmforgeError(f"training diverged (loss became nan or inf) at step {result.state.step + 1}; see {run_dir / 'train.log'}")
    if not acc.is_main_process:
        return FinetuneResult(run_dir, result.status)
    save_model(run_dir / "model", result.model, tokenizer, cfg.task, labels, cfg.data, cfg.model.name, cfg.tuning)
    metrics, samples = _final_eval(task, splits, result.model, labels, cfg.train.eval_batch_size)
    if cfg.output.baseline and metrics:
        metrics |= _baseline(splits, labels, metrics)
    (run_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    if cfg.output.report:
        write_report(run_dir, metrics, f"lmforge run: {cfg.output.name}", config_mod.dump(cfg))
    for name, values in metrics.items():
        if "baseline" not in name:
            log.info("%s metrics:\n%s", name, format_table(values))
    log.info("run saved to %s (model in %s)", run_dir, run_dir / "model")
    return FinetuneResult(run_dir, result.status, metrics, samples)
