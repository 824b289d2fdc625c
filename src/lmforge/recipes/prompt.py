"""``lmforge prompt``: zero-shot and few-shot classifiers compared on the same k-shot draws.

config -> labeled pool + evaluation set -> templates and verbalizer (checked before any model is
loaded) -> the k-shot protocol over the configured methods, k values and seeds -> one table,
``results.json``, ``report.md`` with a plot, and an artifact per method and k.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmforge import config as config_mod
from lmforge.artifacts import save_artifact
from lmforge.config import TaskConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.pipeline import labeled_splits
from lmforge.devices import default_device
from lmforge.errors import ConfigError
from lmforge.prompting import protocol
from lmforge.prompting.config import PromptConfig
from lmforge.prompting.methods import Context, Method, check_templates
from lmforge.prompting.report import write_prompt_report
from lmforge.prompting.templates import builtin, is_chinese
from lmforge.prompting.verbalizers import build_verbalizer
from lmforge.runs import run_folder
from lmforge.tasks import get_task

log = logging.getLogger("lmforge")


@dataclass
class PromptResult:
    """What ``lmforge prompt`` produced.

    Attributes:
        run_dir: The run directory.
        cells: Per method and k, the per-seed scores.
        table: The comparison table as printed.
        artifacts: Saved artifact folders by ``method-kK`` name.
    """

    run_dir: Path
    cells: list[protocol.Cell]
    table: str
    artifacts: dict[str, Path]


def load_data(cfg: PromptConfig) -> tuple[tuple[Examples, np.ndarray], tuple[Examples, np.ndarray], LabelSpace]:
    """The labeled pool to draw from, the evaluation set (test, else validation) and the labels."""
    splits, labels = labeled_splits(cfg.data, get_task(TaskConfig()))
    name = "test" if "test" in splits else "validation"
    if name not in splits:
        raise ConfigError("no evaluation set: give data.validation (or data.test), "
                          "or hold one out with data.split.validation > 0")
    return splits["train"], splits[name], labels


def make_context(cfg: PromptConfig, labels: LabelSpace, pool: Examples, run_dir: Path) -> Context:
    """Templates, verbalizer and lazily loaded models for the protocol."""
    language = cfg.prompt.language
    if language == "auto":
        language = "zh" if is_chinese(pool.texts) else "en"
    templates = builtin(cfg.prompt.task, language).updated(cfg.prompt.templates.model_dump())
    verbalizer = build_verbalizer(labels.names, cfg.prompt.task, language, cfg.prompt.verbalizer, cfg.prompt.multi_token,
                                  cfg.prompt.names)
    device = default_device(cfg.device)
    log.info("prompting: task %s (%s), verbalizer %s", cfg.prompt.task, language, verbalizer.describe())
    return Context(cfg, labels, verbalizer, templates, device, run_dir / "work")


def _saver(ctx: Context, run_dir: Path, artifacts: dict[str, Path]) -> protocol.Saver:
    def save(clf: Any, method: Method, name: str, k: int, seed: int) -> None:
        out = run_dir / f"{name}-k{k}"
        save_artifact(out, clf, method.name, ctx.labels, ctx.cfg.data, ctx.verbalizer, getattr(ctx.cfg.models, method.role),
                      k=k, seed=seed)
        artifacts[out.name] = out

    return save


def _write_outputs(run_dir: Path, cfg: PromptConfig, cells: list[protocol.Cell], table: str, n_pool: int, n_eval: int) -> None:
    results = {"cells": [c.summary() for c in cells], "k": cfg.shots.k, "seeds": cfg.shots.seeds,
               "pool_size": n_pool, "eval_size": n_eval, "decoder_eval_samples": cfg.shots.decoder_eval_samples}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    if cfg.output.report:
        write_prompt_report(run_dir, cells, table, config_mod.dump(cfg))


def prompt(config: Any, overrides: list[str] | None = None) -> PromptResult:
    """Run the configured prompting methods over the k-shot protocol and save the results.

    Args:
        config: A YAML path, a dict or a :class:`PromptConfig`.
        overrides: ``key.sub=value`` strings applied on top.
    """
    cfg = config_mod.load(PromptConfig, config, overrides)
    with run_folder(cfg.output, cfg) as run_dir:
        pool, evaluation, labels = load_data(cfg)
        ctx = make_context(cfg, labels, pool[0], run_dir)
        check_templates(ctx, cfg.methods)
        artifacts: dict[str, Path] = {}
        saver = _saver(ctx, run_dir, artifacts) if cfg.save == "first_seed" else None
        cells = protocol.run(ctx, pool, evaluation, cfg.methods, cfg.shots.k, cfg.shots.seeds, saver)
        table = protocol.format_cells(cells, cfg.shots.k)
        _write_outputs(run_dir, cfg, cells, table, len(pool[0]), len(evaluation[0]))
        return PromptResult(run_dir, cells, table, artifacts)
