"""``lmforge search``: hyperparameter search over fine-tuning configs with Optuna.

TPE proposes each trial's values from a space of dotted config keys; every trial is one
fine-tuning run, reporting its validation metric after each evaluation so that the median
pruner can stop bad trials early. Trials run in parallel processes against one SQLite study
(``<run>/study.db``), so a search that stops (Ctrl-C, crash) resumes where it was when run again.

Layout of the run directory::

    <run>/study.db            the Optuna study (resumable)
    <run>/trials/trial-NNNN/  each trial's fine-tuning run (models of non-best trials removed)
    <run>/trials.csv          one row per trial: state, metric, values, duration
    <run>/best.yaml           the best trial's complete fine-tuning config
    <run>/plots/search.png    the metric over trials, with the best so far
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import TrialState
from pydantic import Field

from lmforge import config as config_mod
from lmforge.config import FinetuneConfig, SearchConfig, Section, set_key
from lmforge.errors import ConfigError, LmforgeError
from lmforge.evaluation import metric_mode
from lmforge.evaluation.report import new_figure, save_figure
from lmforge.runs import finetune, run_directory, setup_logging
from lmforge.tasks import get_task
from lmforge.training.hooks import Hook

log = logging.getLogger("lmforge")


class ParamSpec(Section):
    """One dimension of the search space."""

    type: Literal["float", "int", "categorical"] = Field(description="Kind of values.")
    low: float | None = Field(None, description="Smallest value (float, int).")
    high: float | None = Field(None, description="Largest value (float, int).")
    log: bool = Field(False, description="Sample on a log scale (float, int).")
    step: float | None = Field(None, description="Grid step (float, int).")
    choices: list[Any] | None = Field(None, description="The values to choose from (categorical).")


def parse_space(raw: dict[str, Any], source: str = "search.space") -> dict[str, ParamSpec]:
    """Validate a search space; a list is shorthand for a categorical choice."""
    if not raw:
        raise ConfigError(f"{source} is empty; give dotted keys such as "
                          "train.lr: {type: float, low: 1e-5, high: 1e-4, log: true}")
    space = {}
    for key, spec in raw.items():
        spec = {"type": "categorical", "choices": spec} if isinstance(spec, list) else spec
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: {key} must be a mapping like {{type: float, low: ..., high: ...}} or a list of choices")
        parsed = config_mod.build(ParamSpec, spec, f"{source}: {key}")
        numeric = parsed.type != "categorical"
        if numeric and (parsed.low is None or parsed.high is None or parsed.low > parsed.high):
            raise ConfigError(f"{source}: {key} needs low <= high")
        if not numeric and not parsed.choices:
            raise ConfigError(f"{source}: {key} needs a non-empty choices list")
        space[key] = parsed
    return space


def suggest(trial: Any, key: str, spec: ParamSpec) -> Any:
    """The trial's value for ``key``."""
    if spec.type == "float":
        return trial.suggest_float(key, spec.low, spec.high, log=spec.log, step=spec.step)
    if spec.type == "int":
        return trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
    return trial.suggest_categorical(key, spec.choices)


class PruneHook(Hook):
    """Reports each evaluation to the trial and stops the run when the pruner says so."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def after_eval(self, step: int, metrics: dict[str, float]) -> None:
        """Report ``metric`` at ``step``; raise ``optuna.TrialPruned`` for a bad trial."""
        if self.metric in metrics:
            self.trial.report(float(metrics[self.metric]), step)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"{self.metric}={metrics[self.metric]:.4f} at step {step}")


@dataclass
class Study:
    """What every trial needs, picklable so worker processes can rebuild it."""

    base: dict[str, Any]
    space: dict[str, dict[str, Any]]
    root: str
    name: str
    metric: str
    direction: str
    trials: int
    pruner: str
    seed: int
    threads: int | None
    specs: dict[str, ParamSpec] = field(init=False)

    def __post_init__(self) -> None:
        self.specs = parse_space(self.space)

    @property
    def storage(self) -> str:
        """The SQLite URL of the study."""
        return f"sqlite:///{Path(self.root).resolve() / 'study.db'}"

    def load(self) -> Any:
        """Create or reopen the Optuna study."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if self.pruner == "median" else optuna.pruners.NopPruner()
        return optuna.create_study(study_name=self.name, storage=self.storage, direction=self.direction, load_if_exists=True,
                                   sampler=optuna.samplers.TPESampler(seed=self.seed), pruner=pruner)

    def objective(self, trial: Any) -> float:
        """Fine-tune with the trial's values and return the validation metric."""
        tree = copy.deepcopy(self.base)
        for key, spec in self.specs.items():
            set_key(tree, key, suggest(trial, key, spec))
        run = Path(self.root) / "trials" / f"trial-{trial.number:04d}"
        tree["output"].update(dir=str(run), name=f"trial-{trial.number:04d}", overwrite=True, report=False, tensorboard=False)
        if self.threads:
            tree["train"]["threads"] = self.threads
        try:
            result = finetune(tree, hooks=[PruneHook(trial, self.metric)])
        finally:
            shutil.rmtree(run / "checkpoints", ignore_errors=True)
        value = result.metrics.get("validation", {}).get(self.metric)
        if value is None:
            raise LmforgeError(f"trial {trial.number} has no validation {self.metric}; see {run / 'train.log'}")
        log.info("trial %d: %s=%.4f %s", trial.number, self.metric, value, trial.params)
        return float(value)

    def optimize(self) -> None:
        """Run trials until the study holds ``trials`` finished (complete or pruned) ones."""
        study = self.load()
        stop = optuna.study.MaxTrialsCallback(self.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if _finished(study) < self.trials:
            study.optimize(self.objective, callbacks=[stop], catch=(LmforgeError,))


def _finished(study: Any) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _worker(spec: str, index: int) -> None:
    """Search worker ``index``: run trials of the study described in ``spec`` until it has enough."""
    setup_logging(quiet=True)
    fields = json.loads(Path(spec).read_text(encoding="utf-8"))
    fields["seed"] += index  # workers with one sampler seed would propose the same values
    Study(**fields).optimize()


@dataclass
class SearchResult:
    """How a search ended.

    Attributes:
        run_dir: The search's folder.
        metric: The validation metric optimized.
        best_value: The best trial's metric.
        best_params: The best trial's values.
        best_run: The best trial's run directory.
        rows: One dict per trial (number, state, value, params, seconds).
    """

    run_dir: Path
    metric: str
    best_value: float | None
    best_params: dict[str, Any]
    best_run: Path | None
    rows: list[dict[str, Any]]


def _check_space(base: dict[str, Any], specs: dict[str, ParamSpec]) -> None:
    """Every key of the space must be a valid fine-tuning setting for each of its extreme values."""
    for key, spec in specs.items():
        for value in (spec.choices or []) if spec.type == "categorical" else (spec.low, spec.high):
            tree = copy.deepcopy(base)
            set_key(tree, key, int(value) if spec.type == "int" else value)
            config_mod.build(FinetuneConfig, tree, f"search space key {key}={value!r}")


def _close_stale(study: Any) -> None:
    """Trials left running by a search that was killed will never finish: mark them failed."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        log.warning("trial %d was left unfinished by an earlier run; marked failed", trial.number)


def _search_dir(cfg: SearchConfig) -> Path:
    path = Path(cfg.output.dir.format(name=cfg.output.name, time="{time}"))
    return run_directory(cfg.output, resume=(path / "study.db").is_file())


def search(config: Any, space: str | Path | dict[str, Any] | None = None, trials: int | None = None,
           overrides: list[str] | None = None, jobs: int | None = None) -> SearchResult:
    """Search hyperparameters of a fine-tuning config; rerunning continues the same study.

    Args:
        config: A YAML path, dict or :class:`SearchConfig` (a fine-tuning config with a ``search`` section).
        space: A YAML file or dict of the space; replaces ``search.space``.
        trials: Finished trials wanted in the study; replaces ``search.trials``.
        overrides: ``key.sub=value`` strings applied to the config.
        jobs: Trials at once; replaces ``search.jobs``.
    """
    cfg = config_mod.load(SearchConfig, config, overrides)
    raw_space = config_mod.read_yaml(space) if isinstance(space, (str, Path)) else (space or cfg.search.space)
    specs = parse_space(raw_space, str(space) if isinstance(space, (str, Path)) else "search.space")
    base = cfg.model_dump(mode="json", exclude={"search"})
    _check_space(base, specs)
    root = _search_dir(cfg)
    metric = get_task(cfg.task).default_metric if cfg.train.metric == "auto" else cfg.train.metric
    total = trials or cfg.search.trials
    workers = max(1, min(jobs or cfg.search.jobs or os.cpu_count() or 1, total))
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // workers)
    study = Study(base, {k: v.model_dump() for k, v in specs.items()}, str(root), cfg.output.name, metric,
                  "maximize" if metric_mode(metric) == "max" else "minimize", total, cfg.search.pruner,
                  cfg.search.sampler_seed, threads if workers > 1 else cfg.train.threads)
    loaded = study.load()
    _close_stale(loaded)
    done = _finished(loaded)
    if done:
        log.info("resuming study %s: %d of %d trials already finished", root / "study.db", done, total)
    _run(study, min(workers, max(1, total - done)))
    return finish(study, cfg)


def _run(study: Study, workers: int) -> None:
    """Run the study in this process, or in ``workers`` worker processes sharing the SQLite study."""
    if workers == 1:
        study.optimize()
        return
    spec = Path(study.root) / "search.json"
    spec.write_text(json.dumps({k: v for k, v in asdict(study).items() if k != "specs"}), encoding="utf-8")
    log.info("running trials in %d processes (their output: %s)", workers, Path(study.root) / "worker-*.log")
    procs = []
    for i in range(workers):
        with (Path(study.root) / f"worker-{i}.log").open("a", encoding="utf-8") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "lmforge.recipes.search", str(spec), str(i)], stdout=out,
                                          stderr=subprocess.STDOUT, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}))
    failed = [p.wait() for p in procs]
    if any(failed):
        bad = sum(1 for code in failed if code)
        raise LmforgeError(f"{bad} search worker(s) stopped with an error; see {Path(study.root)}/worker-*.log")


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, seconds and the trial's values."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        value = t.value if t.value is not None else (max(t.intermediate_values.items())[1] if t.intermediate_values else None)
        rows.append({"trial": t.number, "state": t.state.name.lower(), "value": value,
                     "seconds": None if seconds is None else round(seconds, 1), **t.params})
    return rows


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """The trials as CSV (the last value of pruned trials is the one they were stopped at)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def format_rows(rows: list[dict[str, Any]], metric: str) -> str:
    """The trials as an aligned text table."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in ("trial", "state", "value", "seconds")]
    head = f"{'trial':>5}  {'state':<8}  {metric:>10}  " + "  ".join(f"{k:>14}" for k in keys)
    lines = [head, "-" * len(head)]
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        cells = "  ".join(f"{_short(r.get(k)):>14}" for k in keys)
        lines.append(f"{r['trial']:>5}  {r['state']:<8}  {value:>10}  {cells}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def plot_trials(path: Path, rows: list[dict[str, Any]], metric: str, maximize: bool) -> Path | None:
    """The metric of each trial (pruned ones hollow) and the best so far."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not done:
        return None
    pruned = [r for r in rows if r["state"] == "pruned" and r["value"] is not None]
    fig, ax = new_figure((7.0, 4.0))
    ax.scatter([r["trial"] for r in done], [r["value"] for r in done], label="trial", zorder=3)
    if pruned:
        ax.scatter([r["trial"] for r in pruned], [r["value"] for r in pruned], facecolors="none", edgecolors="grey",
                   label="pruned (last value)", zorder=2)
    best, top, xs, ys = None, None, [], []
    for r in done:
        if best is None or (r["value"] > best if maximize else r["value"] < best):
            best, top = r["value"], r["trial"]
        xs.append(r["trial"])
        ys.append(best)
    last = max(r["trial"] for r in rows)
    if last > xs[-1]:  # trials after the last complete one (pruned, failed) keep the best so far
        xs.append(last)
        ys.append(ys[-1])
    ax.step(xs, ys, where="post", color="C1", label="best so far")
    ax.scatter([top], [best], marker="*", s=180, color="C1", edgecolors="black", label=f"best: trial {top}", zorder=4)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def finish(study: Study, cfg: SearchConfig) -> SearchResult:
    """Write the table, best config and plot; keep only the best trial's model unless asked otherwise."""
    loaded = study.load()
    root = Path(study.root)
    rows = trial_rows(loaded)
    write_table(root / "trials.csv", rows)
    plot_trials(root / "plots" / "search.png", rows, study.metric, study.direction == "maximize")
    complete = [t for t in loaded.get_trials(deepcopy=False) if t.value is not None and t.state.name == "COMPLETE"]
    if not complete:
        return SearchResult(root, study.metric, None, {}, None, rows)
    best = loaded.best_trial
    best_run = root / "trials" / f"trial-{best.number:04d}"
    tree = config_mod.load(FinetuneConfig, best_run / "config.yaml").model_dump(mode="json")
    tree["output"] = cfg.output.model_dump(mode="json") | {"name": f"{cfg.output.name}-best"}
    text = f"# recipe: finetune\n# best of {len(rows)} trials of {root}: {study.metric}={best.value:.4f}\n"
    (root / "best.yaml").write_text(text + config_mod.dump(config_mod.build(FinetuneConfig, tree)), encoding="utf-8")
    if not cfg.search.keep_models:
        for t in loaded.get_trials(deepcopy=False):
            if t.number != best.number:
                shutil.rmtree(root / "trials" / f"trial-{t.number:04d}" / "model", ignore_errors=True)
    return SearchResult(root, study.metric, best.value, dict(best.params), best_run, rows)


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]))
