"""``compress --method distill``: a smaller student learns a teacher run's outputs (Hinton et al., 2015).

The teacher is a classifier run, an ensemble run or an adapter run. The student starts from
evenly spaced layers of the teacher (as DistilBERT starts from every other layer of BERT), or
from any zoo model or folder. The loss is ``alpha * T^2 * KL(teacher_T || student_T) + (1 -
alpha) * CE(student, label)``, plus an optional MSE between the student's hidden states and
those of the teacher layers they were copied from. Unlabeled text files add transfer data: on
them the student learns the teacher's outputs only. Training is lmforge's training loop.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmforge import artifacts
from lmforge.compression.config import CompressConfig
from lmforge.compression.source import Parent, headline, log_cost, run_splits, score, skeleton, split_of
from lmforge.compression.training import train
from lmforge.config import ModelConfig, TaskConfig
from lmforge.data.dataset import Split, SplitSource
from lmforge.data.examples import Examples
from lmforge.data.pipeline import normalizer
from lmforge.data.sources import read_table
from lmforge.errors import ConfigError
from lmforge.models.build import load_tokenizer, resolve
from lmforge.models.compact import keep_layers, layer_list

log = logging.getLogger("lmforge.compress")
UNLABELED = -100  # the target of transfer examples: no hard label, only the teacher's outputs


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
                      alpha: float) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)``.

    Args:
        student: Student logits, shape (B, C).
        teacher: Teacher logits, shape (B, C).
        labels: Class indices, shape (B,); rows with ``-100`` (transfer data) have no hard-label term.
        temperature: T; the T^2 factor keeps the soft term's gradients on the scale of the hard one's.
        alpha: Weight of the soft term.
    """
    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1), log_target=True,
                    reduction="batchmean") * t * t
    labeled = labels != UNLABELED
    hard = F.cross_entropy(student[labeled], labels[labeled]) if bool(labeled.any()) else student.sum() * 0.0
    return alpha * soft + (1.0 - alpha) * hard


def hidden_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], mapping: list[int],
                mask: torch.Tensor) -> torch.Tensor:
    """Mean MSE between student layer ``i``'s output and teacher layer ``mapping[i]``'s, over real tokens.

    ``student`` and ``teacher`` are ``hidden_states`` tuples (embeddings first, then one (B, T, D) per layer).
    """
    weight = mask.unsqueeze(-1).to(student[0].dtype)  # (B, T, 1)
    terms = [(((student[i + 1] - teacher[m + 1]) ** 2) * weight).sum() / (weight.sum() * student[0].shape[-1])
             for i, m in enumerate(mapping)]
    return torch.stack(terms).mean()


def spaced_layers(total: int, keep: int) -> list[int]:
    """``keep`` evenly spaced layer indices of ``total``, first and last included (6 -> 4: 0, 2, 3, 5)."""
    return sorted({int(round(x)) for x in np.linspace(0, total - 1, keep)})


def _teacher_model(teacher: Any) -> nn.Module | None:
    """The teacher's own transformers model, when it has one whose layers a student can copy."""
    if hasattr(teacher, "members"):
        teacher = teacher.members[0]
    model = getattr(teacher, "model", None)
    return None if model is None or getattr(teacher, "kind", "") == "adapter" else model


def _teacher_folder(parent: Parent) -> Path | None:
    """The folder of the full model a student can copy layers from (an ensemble's first member), if any."""
    if parent.kind == "ensemble":
        first = (parent.path / parent.meta["members"][0]).resolve()
        return first if artifacts.read_meta(first)["kind"] in ("classifier", "model") else None
    return parent.path if parent.kind == "classifier" else None


def _size(model: nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in model.parameters()), len(layer_list(model))


def check(parent: Parent, cfg: CompressConfig) -> None:
    """Refuse, before any work, a student that is not smaller than its teacher and options that do not fit."""
    opts, folder = cfg.distill, _teacher_folder(parent)
    if parent.labels.kind != "single":
        raise ConfigError(f"{parent.path} predicts {parent.labels.kind} labels; distill supports single-label classification runs")
    if folder is None and not opts.student:
        raise ConfigError(f"{parent.path} is an {parent.kind} run whose layers a student cannot copy; "
                          "name a student to start from with --student (a zoo model or folder)")
    if opts.hidden_weight and opts.student:
        raise ConfigError("distill.hidden_weight needs a student made from the teacher's layers (leave out --student)")
    if folder is None:
        return
    teacher = _size(skeleton(folder))
    if not opts.student and (opts.layers or 0) >= teacher[1]:
        raise ConfigError(f"distill.layers={opts.layers} is not fewer than the teacher's {teacher[1]} layers; a student must be smaller")
    if opts.student:
        student = skeleton(resolve(opts.student))
        if opts.layers:
            keep_layers(student, spaced_layers(len(layer_list(student)), min(opts.layers, len(layer_list(student)))))
        if _size(student)[0] >= teacher[0] or _size(student)[1] > teacher[1]:
            raise ConfigError(f"the student ({_size(student)[0]:,} parameters, {_size(student)[1]} layers) is not smaller than its "
                              f"teacher ({teacher[0]:,} parameters, {teacher[1]} layers); choose fewer distill.layers or a smaller distill.student")


def build_student(teacher: Any, cfg: CompressConfig, labels: Any) -> tuple[nn.Module, Any, list[int] | None]:
    """The student model, its tokenizer, and the teacher layers its layers came from (None for a zoo student)."""
    opts = cfg.distill
    if opts.student:
        student = teacher.task.build_model(resolve(opts.student), labels, ModelConfig())
        if opts.layers:
            keep_layers(student, spaced_layers(len(layer_list(student)), min(opts.layers, len(layer_list(student)))))
        return student, load_tokenizer(resolve(opts.student)), None
    source = _teacher_model(teacher)
    total = len(layer_list(source))
    mapping = spaced_layers(total, opts.layers or max(1, total // 2))
    tokenizer = teacher.members[0].tokenizer if hasattr(teacher, "members") else teacher.tokenizer
    return keep_layers(copy.deepcopy(source), mapping), tokenizer, mapping


def transfer_examples(files: list[str], column: str, data: Any) -> Examples | None:
    """Texts of the unlabeled transfer files, cleaned as the run's data was."""
    if not files:
        return None
    norm, texts = normalizer(data), []
    for file in files:
        table = read_table(Path(file))
        col = column if column in table.columns else table.columns[0]
        texts += [t for t in (norm(str(r.get(col) or "")) for r in table.rows) if t]
    if not texts:
        raise ConfigError(f"the transfer files {', '.join(files)} hold no text in column '{column}'; give files with text")
    log.info("transfer data: %d unlabeled texts", len(texts))
    return Examples(Path(files[0]), texts, None, None, list(range(1, len(texts) + 1)))


def _collate(teacher_logits: np.ndarray) -> Any:
    def collate(split: Split, index: np.ndarray) -> dict[str, torch.Tensor]:
        batch = split.inputs(index)
        batch["labels"] = torch.from_numpy(split.targets[index])
        batch["teacher_logits"] = torch.from_numpy(teacher_logits[index])
        return batch

    return collate


def _loss(cfg: CompressConfig, teacher_model: nn.Module | None, mapping: list[int] | None) -> Any:
    opts = cfg.distill

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "teacher_logits")}
        out = model(**inputs, output_hidden_states=bool(opts.hidden_weight))
        loss = distillation_loss(out.logits.float(), batch["teacher_logits"], batch["labels"], opts.temperature, opts.alpha)
        if opts.hidden_weight:
            with torch.no_grad():
                reference = teacher_model(**inputs, output_hidden_states=True).hidden_states
            loss = loss + opts.hidden_weight * hidden_loss(out.hidden_states, reference, mapping, inputs["attention_mask"])
        return loss, out

    return loss_fn


def distill(parent: Parent, staging: Path, cfg: CompressConfig) -> Path:
    """Distill the parent run into a smaller student saved as a classifier run under ``staging/model``."""
    teacher = parent.load(cfg.device)
    labels = teacher.labels
    student, tokenizer, mapping = build_student(teacher, cfg, labels)
    splits = run_splits(parent, cfg.train_data, cfg.data, cfg.train_samples, cfg.eval_samples)
    examples, targets = splits["train"]
    extra = transfer_examples(cfg.distill.transfer, cfg.distill.transfer_column, teacher.data)
    if extra is not None:
        examples = Examples(examples.path, examples.texts + extra.texts, None, None, examples.lines + extra.lines)
        targets = np.concatenate([targets, np.full(len(extra), UNLABELED, dtype=targets.dtype)])
    log.info("teacher outputs on %d training texts", len(examples))
    teacher_logits = teacher.scores(examples, None, cfg.batch_size).astype(np.float32)  # (N, C)
    task = teacher.task
    train_split = split_of(task, tokenizer, teacher.data, labels, "train", (examples, targets))
    validation = split_of(task, tokenizer, teacher.data, labels, "validation", splits["validation"]) if "validation" in splits else None
    source = SplitSource(train_split, _collate(teacher_logits), cfg.train.batch_size, "length_grouped", cfg.train.seed)
    student = train(student, source, _loss(cfg, _teacher_model(teacher), mapping), cfg.train, staging / "distill", task,
                    validation, labels)
    record: dict[str, Any] = {"student_layers": len(layer_list(student)), "teacher_layers_used": mapping,
                              "temperature": cfg.distill.temperature, "alpha": cfg.distill.alpha,
                              "hidden_weight": cfg.distill.hidden_weight, "transfer_texts": len(extra) if extra else 0}
    if validation is not None:
        metric, before = headline(task, task.metrics(teacher.scores(splits["validation"][0], None, cfg.batch_size),
                                                      splits["validation"][1], labels))
        after = headline(task, score(task, student, validation, labels, cfg.batch_size))[1]
        log_cost("student vs teacher", metric, before, after)
        record |= {"metric": metric, "before": before, "after": after}
    base = cfg.distill.student or parent.meta.get("base_model", str(parent.path))
    return artifacts.save_model(staging / "model", student.cpu(), tokenizer, TaskConfig(**parent.meta["task"]), labels, teacher.data,
                                base, parent=str(parent.path.resolve()), method="distill", compression=record)
