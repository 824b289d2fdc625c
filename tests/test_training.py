"""The training loop: resume equality, divergence, Ctrl-C, atomic checkpoints, early stopping, optimizer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

import lmforge
from forge_testing import tiny_config
from lmforge.config import TrainConfig
from lmforge.training import checkpoint as ckpt_mod
from lmforge.training.checkpoint import checkpoints
from lmforge.training.loop import fit
from lmforge.training.optim import SCHEDULES, layer_depth, param_groups
from lmforge.training.precision import resolve_precision


def _evals(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "eval"]


@contextlib.contextmanager
def loss_calls(at: int, action):
    """Run ``action`` when the task's training loss is computed for the ``at``-th time."""
    from lmforge.runs import finetune_run as recipe

    original, calls = recipe.get_task, {"n": 0}

    def get_task(task_cfg):
        task = original(task_cfg)
        loss = task.loss

        def loss_fn(model, batch):
            calls["n"] += 1
            if calls["n"] == at:
                action()
            return loss(model, batch)

        task.loss = loss_fn
        return task

    recipe.get_task = get_task
    try:
        yield
    finally:
        recipe.get_task = original


def _kill() -> None:
    raise RuntimeError("killed")


def test_resume_matches_uninterrupted_run(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    train = {"epochs": 3, "save_every": 7, "eval_every": 5, "keep_checkpoints": 5}
    full = lmforge.finetune(tiny_config(tiny_bert, toy_csv, tmp_path / "full", train=train))
    cfg = tiny_config(tiny_bert, toy_csv, tmp_path / "part", train=train)
    with loss_calls(25, _kill), pytest.raises(RuntimeError, match="killed"):
        lmforge.finetune(cfg)
    assert checkpoints(tmp_path / "part" / "checkpoints")[-1].name == "checkpoint-0000021"
    resumed = lmforge.finetune(cfg, resume=True)
    assert resumed.metrics["validation"] == full.metrics["validation"]
    assert _evals(tmp_path / "part") == _evals(full.run_dir)


def test_interrupted_run_saves_checkpoint_and_resumes(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_bert, toy_csv, tmp_path / "run", train={"epochs": 2})
    with loss_calls(3, lambda: os.kill(os.getpid(), signal.SIGINT)):
        result = lmforge.finetune(cfg)
    assert result.status == "interrupted"
    saved = checkpoints(result.run_dir / "checkpoints")
    assert [p.name for p in saved] == ["checkpoint-0000003"]
    assert lmforge.finetune(cfg, resume=True).status == "completed"


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class _Source:
    def num_batches(self, epoch: int) -> int:
        return 10

    def batches(self, epoch, start, rank, world):
        for i in range(start, 10):
            g = torch.Generator().manual_seed(epoch * 100 + i)
            yield {"x": torch.randn(8, 4, generator=g)}, 8


def _loss(nan_at: int | None = None):
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        out = model(batch["x"]).pow(2).mean()
        return (out * float("nan") if calls["n"] == nan_at else out), None

    return loss_fn


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = TrainConfig(epochs=1, save_every=2, lr=1e-2)
    with caplog.at_level("ERROR", logger="lmforge.train"):
        result = fit(_Toy(), _Source(), _loss(nan_at=5), cfg, tmp_path, tensorboard=False)
    assert result.status == "diverged" and result.state.step == 4
    assert [p.name for p in checkpoints(tmp_path / "checkpoints")] == ["checkpoint-0000002", "checkpoint-0000004"]
    assert "loss became nan at step 5" in caplog.text and "checkpoint-0000004" in caplog.text
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_crash_while_saving_leaves_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrainConfig(epochs=1, save_every=3, keep_checkpoints=1)
    real_save = ckpt_mod.Checkpointer.save

    def save(self, state):
        if state.step == 6:
            os.makedirs(self.root / ".tmp-checkpoint-0000006", exist_ok=True)
            raise OSError("disk full")
        return real_save(self, state)

    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", save)
    with pytest.raises(OSError):
        fit(_Toy(), _Source(), _loss(), cfg, tmp_path, tensorboard=False)
    assert [p.name for p in checkpoints(tmp_path / "checkpoints")] == ["checkpoint-0000003"]
    state = json.loads((tmp_path / "checkpoints" / "checkpoint-0000003" / "state.json").read_text())
    assert state["step"] == 3


def test_keep_last_k_checkpoints(tmp_path: Path) -> None:
    fit(_Toy(), _Source(), _loss(), TrainConfig(epochs=1, save_every=2, keep_checkpoints=2), tmp_path, tensorboard=False)
    assert [p.name for p in checkpoints(tmp_path / "checkpoints")] == ["checkpoint-0000008", "checkpoint-0000010"]


def test_early_stopping_and_best_weights(tmp_path: Path) -> None:
    scores = iter([0.5, 0.7, 0.6, 0.6, 0.9])
    seen = []

    def evaluate(model):
        seen.append(model.layer.weight.detach().clone())
        return {"accuracy": next(scores)}

    cfg = TrainConfig(epochs=1, eval_every=2, early_stopping_patience=2)
    result = fit(_Toy(), _Source(), _loss(), cfg, tmp_path, evaluate=evaluate, metric="accuracy", mode="max",
                 tensorboard=False)
    assert result.status == "early_stopped" and result.state.step == 8
    assert result.state.best_step == 4
    assert torch.equal(result.model.layer.weight, seen[1])


def test_param_groups_decay_and_layer_lr(tiny_bert: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    cfg = TrainConfig(lr=1e-3, layer_lr_decay=0.5, head_lr=1e-2, weight_decay=0.1)
    groups = param_groups(model, cfg)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["bert.encoder.layer.0.attention.self.query.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["bert.encoder.layer.0.output.LayerNorm.weight"])]["weight_decay"] == 0.0
    assert by_param[id(named["bert.encoder.layer.1.output.dense.weight"])]["weight_decay"] == 0.1
    assert by_param[id(named["bert.encoder.layer.1.output.dense.weight"])]["lr"] == pytest.approx(5e-4)
    assert by_param[id(named["bert.encoder.layer.0.output.dense.weight"])]["lr"] == pytest.approx(2.5e-4)
    assert by_param[id(named["bert.embeddings.word_embeddings.weight"])]["lr"] == pytest.approx(1.25e-4)
    assert by_param[id(named["classifier.weight"])]["lr"] == 1e-2
    assert layer_depth("model.layers.11.mlp.up_proj.weight", 12) == 12
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_schedules() -> None:
    linear, cosine, constant = (SCHEDULES.get(n) for n in ("linear", "cosine", "constant"))
    assert [round(linear(s, 2, 10), 3) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]
    assert cosine(2, 2, 10) == pytest.approx(1.0) and cosine(6, 2, 10) == pytest.approx(0.5) and cosine(10, 2, 10) == pytest.approx(0.0)
    assert constant(0, 4, 10) == 0.25 and constant(9, 4, 10) == 1.0


def test_precision_by_hardware() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "no"
    assert resolve_precision("fp16", cpu) == "no"
    from lmforge.training.precision import cpu_has_fast_bf16
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_fast_bf16() else "no")
