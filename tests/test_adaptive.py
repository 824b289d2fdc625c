"""Settings chosen from the data when the config leaves them at 'auto': epochs and the head's learning rate."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

import lmforge
from forge_testing import tiny_config
from lmforge.config import TrainConfig
from lmforge.training.adaptive import HEAD_LR_MAX, auto_epochs, auto_head_lr, resolve_auto


def test_small_sets_get_more_epochs_within_bounds() -> None:
    assert auto_epochs(60_000, 32)[0] == 3.0  # 1,875 steps per epoch: the minimum of 3
    assert auto_epochs(8_000, 32)[0] == 4.0  # 250 steps per epoch: 4 reach 1,000 steps
    assert auto_epochs(1_000, 32)[0] == 10.0  # 32 steps per epoch: capped at 10
    assert auto_epochs(8_000, 16, grad_accum=2)[0] == 4.0


def test_head_rate_grows_with_labels_between_body_rate_and_cap() -> None:
    assert auto_head_lr(5e-5, 2)[0] == pytest.approx(5e-5)
    assert auto_head_lr(5e-5, 3)[0] == pytest.approx(7.5e-5)
    assert auto_head_lr(5e-5, 77)[0] == pytest.approx(1.925e-3)
    assert auto_head_lr(5e-5, 200)[0] == pytest.approx(HEAD_LR_MAX)
    assert auto_head_lr(2e-3, 77)[0] == pytest.approx(2e-3)  # a method's own high rate is never lowered


def test_resolve_auto_keeps_given_values_and_logs_choices(caplog: pytest.LogCaptureFixture) -> None:
    given = TrainConfig(epochs=2, head_lr=None)
    assert resolve_auto(given, 100, 5) is given
    with caplog.at_level(logging.INFO, logger="lmforge.train"):
        chosen = resolve_auto(TrainConfig(), 8_000, 77)
    assert (chosen.epochs, chosen.head_lr) == (4.0, pytest.approx(1.925e-3))
    assert "train.epochs auto: 4" in caplog.text and "train.head_lr auto" in caplog.text


def test_finetune_saves_the_chosen_values(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_bert, toy_csv, tmp_path / "run")
    cfg["train"] = {k: v for k, v in cfg["train"].items() if k != "epochs"} | {"max_steps": 2}
    result = lmforge.finetune(cfg)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())["train"]
    assert saved["epochs"] == 10.0 and saved["head_lr"] == pytest.approx(1e-3)  # 2 labels: the body's rate
