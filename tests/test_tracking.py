"""Trackers of a training run (output.trackers): TensorBoard and MLflow get the same scalars and the resolved config; hints."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import lmforge
from forge_testing import tiny_config
from lmforge.config import OutputConfig
from lmforge.errors import ConfigError
from lmforge.training import loggers
from lmforge.training.loggers import check_trackers, flat_config, tracking_of

needs_wandb = pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed (lmforge[track])")
needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed (lmforge[track])")


def test_tracking_defaults_follow_the_tensorboard_switch() -> None:
    assert tracking_of(OutputConfig()).trackers == ["tensorboard"]
    assert tracking_of(OutputConfig(tensorboard=False)).trackers == []
    chosen = tracking_of(OutputConfig(trackers=["mlflow", "wandb", "mlflow"], name="r1"), {"train": {"lr": 0.1}})
    assert chosen.trackers == ["mlflow", "wandb"] and chosen.name == "r1" and chosen.wandb_mode == "offline"
    with pytest.raises(ValueError):
        OutputConfig(trackers=["neptune"])


def test_flat_config_dots_nested_keys_and_stringifies_lists() -> None:
    flat = flat_config({"train": {"lr": 0.001, "adam_betas": [0.9, 0.999]}, "model": {"name": "m", "dropout": None}})
    assert flat == {"train.lr": 0.001, "train.adam_betas": "[0.9, 0.999]", "model.name": "m", "model.dropout": None}


def test_a_missing_tracker_package_gives_a_one_line_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"output.trackers lists wandb, which is not installed: pip install 'lmforge\[track\]'") as err:
        check_trackers(["tensorboard", "wandb"])
    assert "\n" not in str(err.value)


@needs_mlflow
def test_finetune_reports_the_same_scalars_and_config_to_tensorboard_and_mlflow(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient  # optional: lmforge[track]

    uri = (tmp_path / "mlruns").as_uri()
    cfg = tiny_config(tiny_bert, toy_csv, tmp_path / "run", train={"epochs": 1},
                      output={"trackers": ["tensorboard", "mlflow"], "mlflow_uri": uri, "name": "tracked", "project": "tests"})
    run = lmforge.finetune(cfg).run_dir
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    train_steps = [r["step"] for r in rows if r["split"] == "train" and "loss" in r]

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tests")
    (mlrun,) = client.search_runs([experiment.experiment_id])
    assert mlrun.info.run_name == "tracked" and mlrun.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(mlrun.info.run_id, "train/loss")] == train_steps
    resolved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert mlrun.data.params["train.lr"] == str(resolved["train"]["lr"]) and mlrun.data.params["model.name"] == str(tiny_bert)

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == train_steps
    assert list((run / "tensorboard").glob("*/hparams.yml"))


@needs_wandb
def test_wandb_logs_offline_into_the_run_directory(tiny_bert: Path, toy_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config(tiny_bert, toy_csv, tmp_path / "run", train={"epochs": 1}, output={"trackers": ["wandb"], "name": "offline"})
    run = lmforge.finetune(cfg).run_dir
    (offline,) = (run / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb")) and not (run / "tensorboard").exists()
