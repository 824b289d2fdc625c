"""Hyperparameter search: tiny trials, resuming the study, pruning, space validation."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from forge_testing import tiny_config, toy_rows, write_csv
from lmforge import config
from lmforge.config import FinetuneConfig
from lmforge.errors import ConfigError
from lmforge.recipes.search import PruneHook, parse_space, search

SPACE = {"train.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}, "train.label_smoothing": [0.0, 0.1]}


def test_search_runs_trials_and_resumes(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lmforge.cli import main

    data = write_csv(tmp_path / "toy.csv", toy_rows(80))
    cfg = tiny_config(tiny_bert, data, tmp_path / "search", train={"epochs": 1}, output={"name": "tiny"})
    cfg["search"] = {"space": SPACE, "jobs": 1, "pruner": "none"}
    first = search(cfg, trials=2)
    assert [r["state"] for r in first.rows] == ["complete", "complete"]
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path), "--trials", "3"]) == 0  # the same study: one more trial, not three
    assert "best: accuracy=" in capsys.readouterr().out
    resumed = search(cfg, trials=3)  # nothing left to run: reads the study back
    assert len(resumed.rows) == 3 and resumed.rows[:2] == first.rows
    root = resumed.run_dir
    with (root / "trials.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in table] == [0, 1, 2] and {"train.lr", "train.label_smoothing"} <= set(table[0])
    assert (root / "plots" / "search.png").is_file()
    best = root / "best.yaml"
    assert best.read_text().startswith("# recipe: finetune")
    best_cfg = config.load(FinetuneConfig, best)
    assert best_cfg.train.lr == pytest.approx(resumed.best_params["train.lr"])
    kept = [p for p in (root / "trials").iterdir() if (p / "model").is_dir()]
    assert kept == [resumed.best_run]  # only the best trial keeps its model


def test_prune_hook_reports_and_stops() -> None:
    import optuna

    reported = []
    trial = SimpleNamespace(report=lambda v, s: reported.append((s, v)), should_prune=lambda: len(reported) > 1)
    hook = PruneHook(trial, "accuracy")
    hook.after_eval(10, {"accuracy": 0.6, "loss": 1.0})
    with pytest.raises(optuna.TrialPruned):
        hook.after_eval(20, {"accuracy": 0.5})
    assert reported == [(10, 0.6), (20, 0.5)]


def test_space_errors_name_the_key(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.lr needs low <= high"):
        parse_space({"train.lr": {"type": "float", "low": 1.0, "high": 0.1}})
    with pytest.raises(ConfigError, match="train.lr: unknown key 'kind'; allowed here: type, low"):
        parse_space({"train.lr": {"type": "float", "low": 0.1, "high": 1, "kind": 2}})
    data = write_csv(tmp_path / "toy.csv", toy_rows(20))
    cfg = tiny_config(tiny_bert, data, tmp_path / "s")
    with pytest.raises(ConfigError, match="search space key train.lrr"):
        search(cfg, space={"train.lrr": [0.1]}, trials=1)
    with pytest.raises(ConfigError, match="search space key train.lr=2.0"):
        search(cfg, space={"train.lr": [0.001, 2.0]}, trials=1)


def test_a_pruned_trial_stops_its_run(tiny_bert: Path, tmp_path: Path) -> None:
    import optuna

    from lmforge.recipes.search import Study

    data = write_csv(tmp_path / "toy.csv", toy_rows(60))
    base = tiny_config(tiny_bert, data, tmp_path / "unused", train={"epochs": 3})
    study = Study(base, {"train.lr": [1e-3]}, str(tmp_path / "s"), "s", "accuracy", "maximize", 1, "median", 0, None)
    reports: list = []
    trial = SimpleNamespace(number=0, params={}, suggest_categorical=lambda key, choices: choices[0],
                            report=lambda value, step: reports.append(step), should_prune=lambda: True)
    with pytest.raises(optuna.TrialPruned):
        study.objective(trial)
    run = tmp_path / "s" / "trials" / "trial-0000"
    assert len(reports) == 1 and (run / "train.log").is_file()  # stopped at its first evaluation
    assert not (run / "model").exists() and not (run / "checkpoints").exists()


def test_trial_plot_carries_the_best_past_the_last_complete_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lmforge.evaluation import report
    from lmforge.recipes import search as search_mod

    rows = [{"trial": 0, "state": "complete", "value": 0.80}, {"trial": 1, "state": "pruned", "value": 0.60},
            {"trial": 2, "state": "complete", "value": 0.85}, {"trial": 3, "state": "complete", "value": 0.82},
            {"trial": 4, "state": "pruned", "value": 0.70}, {"trial": 5, "state": "fail", "value": None}]
    drawn: dict[str, list] = {}
    real_save = report.save_figure

    def save(fig, path):  # record the best-so-far line and the legend, then write the file as usual
        ax = fig.axes[0]
        line = ax.get_lines()[0]
        drawn["x"], drawn["y"] = list(line.get_xdata()), list(line.get_ydata())
        drawn["labels"] = ax.get_legend_handles_labels()[1]
        return real_save(fig, path)

    monkeypatch.setattr(search_mod, "save_figure", save)
    assert search_mod.plot_trials(tmp_path / "s.png", rows, "accuracy", maximize=True) == tmp_path / "s.png"
    assert (tmp_path / "s.png").stat().st_size > 0
    assert drawn["x"] == [0, 2, 3, 5] and drawn["y"] == [0.80, 0.85, 0.85, 0.85]
    assert "best: trial 2" in drawn["labels"]
    assert search_mod.plot_trials(tmp_path / "n.png", rows[1:2], "accuracy", maximize=True) is None
