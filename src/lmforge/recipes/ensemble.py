"""``lmforge ensemble``: train N members (seeds or k-fold), save them as one artifact, evaluate it.

Layout of the run directory::

    <run>/config.yaml                 the resolved ensemble config
    <run>/members/member-<i>/         each member's complete fine-tuning run
    <run>/model/lmforge.json          the ensemble artifact ("kind": "ensemble"), or the soup model
    <run>/eval_results.json           members' and ensemble's metrics
    <run>/report.md                   the same as a table
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from lmforge import config as config_mod
from lmforge.artifacts import assemble, load
from lmforge.config import EnsembleConfig, FinetuneConfig
from lmforge.data.pipeline import labeled_splits, read_examples
from lmforge.errors import LmforgeError
from lmforge.runs import finetune, run_folder
from lmforge.tasks import get_task

log = logging.getLogger("lmforge")
HEADLINE = ("accuracy", "micro_f1", "mse")


def member_config(cfg: EnsembleConfig, index: int, root: Path, labels: list[str] | None) -> FinetuneConfig:
    """The fine-tuning config of member ``index``: its seed (and augmentation seed) or fold, a shared label list,
    its own run folder."""
    tree = cfg.model_dump(mode="json", exclude={"ensemble"})
    ens = cfg.ensemble
    tree["train"]["seed"] = ens.seeds[index] if ens.seeds else cfg.train.seed + index
    tree["output"].update(dir=str(root / "members" / f"member-{index}"), name=f"{cfg.output.name}-member-{index}",
                          overwrite=True, report=False)
    if labels is not None:
        tree["data"]["labels"] = labels
    tree["data"]["augment"]["seed"] = cfg.data.augment.seed + index  # other augmented copies: more diverse members
    if ens.strategy == "kfold":
        tree["data"]["split"].update(folds=ens.members, fold=index)
    if ens.combine == "soup" and cfg.model.init_seed is None:
        tree["model"]["init_seed"] = cfg.train.seed  # a soup averages members that start from one head
    return config_mod.build(FinetuneConfig, tree, f"ensemble member {index}")


def _label_names(cfg: EnsembleConfig) -> list[str] | None:
    """Label names fixed once from all of data.train, so folds missing a rare label still agree."""
    task = get_task(cfg.task)
    if cfg.task.name == "regression":
        return None
    return task.label_space(read_examples(cfg.data.train, cfg.data), cfg.data).names


def _train_member(member: FinetuneConfig, resume: bool) -> dict[str, Any]:
    run = Path(member.output.dir)
    results = run / "eval_results.json"
    if (run / "model" / "lmforge.json").is_file() and results.is_file():
        log.info("member %s already trained; reusing it", run.name)
        return json.loads(results.read_text(encoding="utf-8"))
    can_resume = resume and (run / "checkpoints").is_dir()
    result = finetune(member, resume=can_resume)
    if result.status not in ("completed", "early_stopped"):
        raise LmforgeError(f"ensemble member {run.name} ended {result.status}; rerun with --resume to continue")
    return result.metrics


def ensemble(config: Any, overrides: list[str] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train the members, save the ensemble artifact and evaluate it.

    Args:
        config: A YAML path, a dict or an :class:`EnsembleConfig`.
        overrides: ``key.sub=value`` strings applied on top.
        resume: Reuse finished members and continue an interrupted one.

    Returns:
        ``{"run_dir", "members": [metrics per split], "ensemble": {split: metrics}}``.
    """
    cfg = config_mod.load(EnsembleConfig, config, overrides)
    with run_folder(cfg.output, cfg, resume) as root:
        labels = _label_names(cfg)
        members = [member_config(cfg, i, root, labels) for i in range(cfg.ensemble.members)]
        member_metrics = []
        for i, member in enumerate(members):
            log.info("ensemble member %d of %d (%s)", i + 1, len(members), _describe(cfg, member))
            member_metrics.append(_train_member(member, resume))
        assemble([m.output.dir for m in members], root, cfg.ensemble.combine, overwrite=True)
        scores = _evaluate(cfg, root)
    result = {"run_dir": str(root), "combine": cfg.ensemble.combine, "members": member_metrics, "ensemble": scores}
    (root / "eval_results.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    (root / "report.md").write_text(report(cfg, member_metrics, scores), encoding="utf-8")
    log.info("ensemble saved to %s", root)
    return result


def _describe(cfg: EnsembleConfig, member: FinetuneConfig) -> str:
    if cfg.ensemble.strategy == "kfold":
        return f"fold {member.data.split.fold} of {member.data.split.folds} held out, seed {member.train.seed}"
    return f"seed {member.train.seed}"


def _evaluate(cfg: EnsembleConfig, root: Path) -> dict[str, dict[str, Any]]:
    """The ensemble's metrics on the test file and, for seed ensembles, on the shared validation data."""
    predictor = load(root)
    scores: dict[str, dict[str, Any]] = {}
    if cfg.data.test:
        scores["test"] = predictor.evaluate(cfg.data.test, batch_size=cfg.train.eval_batch_size)
    if cfg.ensemble.strategy == "seeds" and cfg.data.validation:
        scores["validation"] = predictor.evaluate(cfg.data.validation, batch_size=cfg.train.eval_batch_size)
    elif cfg.ensemble.strategy == "seeds" and cfg.data.split.validation > 0:
        scores["validation"] = _held_out_scores(cfg, predictor)
    return scores


def _held_out_scores(cfg: EnsembleConfig, predictor: Any) -> dict[str, Any]:
    """Metrics on the validation share split from data.train (the same for every seed member)."""
    data = cfg.data.model_copy(update={"augment": cfg.data.augment.model_copy(update={"ops": []})})
    splits, labels = labeled_splits(data, get_task(cfg.task))
    examples, targets = splits["validation"]
    logits = predictor.scores(examples, targets, cfg.train.eval_batch_size)  # an ensemble, or a soup's single model
    return predictor.task.metrics(logits, targets, predictor.labels)


def headline(metrics: dict[str, Any]) -> str | None:
    """The metric to show first: accuracy, micro-F1 or MSE."""
    return next((m for m in HEADLINE if m in metrics), None)


def report(cfg: EnsembleConfig, members: list[dict[str, Any]], scores: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of each member's and the ensemble's headline metric per split."""
    splits = sorted({s for m in members for s in m} | set(scores))
    lines = [f"# lmforge ensemble: {cfg.output.name}", "",
             f"{cfg.ensemble.members} members ({cfg.ensemble.strategy}), combined by {cfg.ensemble.combine}.", "",
             "| model | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]

    def cell(metrics: dict[str, Any] | None) -> str:
        name = headline(metrics or {})
        return f"{name} {metrics[name]:.4f}" if metrics and name else "-"

    for i, m in enumerate(members):
        lines.append(f"| member {i} | " + " | ".join(cell(m.get(s)) for s in splits) + " |")
    lines.append("| **ensemble** | " + " | ".join(cell(scores.get(s)) for s in splits) + " |")
    if cfg.ensemble.strategy == "kfold":
        folds = [m["validation"] for m in members if m.get("validation") and headline(m["validation"])]
        values = [fold[headline(fold)] for fold in folds]
        if values:
            lines += ["", f"Cross-validation (each member on its held-out fold): {np.mean(values):.4f} ± {np.std(values):.4f}"]
    return "\n".join(lines) + "\n"
