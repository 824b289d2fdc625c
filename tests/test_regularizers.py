"""Label smoothing, R-Drop and EMA: losses on hand-computed examples, weight averaging, config wiring."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lmforge.config import TrainConfig
from lmforge.training.configured import build_hooks
from lmforge.training.hooks import StepContext
from lmforge.training.regularizers import EMA, RDrop, build_loss, smoothed_loss, symmetric_kl


def test_label_smoothing_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    p = torch.softmax(logits, -1)[0]
    # Target (1 - 0.2) on class 0 plus 0.2 / 2 on each class: [0.9, 0.1].
    expected = -(0.9 * math.log(p[0]) + 0.1 * math.log(p[1]))
    assert float(smoothed_loss(logits, torch.tensor([0]), 0.2)) == pytest.approx(expected, rel=1e-6)
    assert float(smoothed_loss(logits, torch.tensor([0]), 0.0)) == pytest.approx(-math.log(p[0]), rel=1e-6)


def test_multi_label_smoothing_moves_targets_toward_half() -> None:
    logits, labels = torch.tensor([[0.0, 3.0]]), torch.tensor([[0.0, 1.0]])
    s = torch.sigmoid(logits)[0]
    expected = -((0.05 * math.log(s[0]) + 0.95 * math.log(1 - s[0])) + (0.95 * math.log(s[1]) + 0.05 * math.log(1 - s[1]))) / 2
    assert float(smoothed_loss(logits, labels, 0.1, multi_label=True)) == pytest.approx(expected, rel=1e-6)


class Linear(nn.Module):
    """A 2-class 'model' with HF-style outputs and a dropout, for the loss wrappers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(3, 2)
        self.drop = nn.Dropout(0.5)
        self.config = SimpleNamespace(problem_type="single_label_classification")

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> SimpleNamespace:
        logits = self.layer(self.drop(x))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(logits=logits, loss=loss)


def task_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, object]:
    out = model(**batch)
    return out.loss, out


def test_build_loss_smooths_class_labels_only() -> None:
    model, batch = Linear().eval(), {"x": torch.randn(4, 3), "labels": torch.tensor([0, 1, 1, 0])}
    plain = build_loss(task_loss, TrainConfig())
    assert plain is task_loss
    smooth = build_loss(task_loss, TrainConfig(label_smoothing=0.1))
    loss, out = smooth(model, batch)
    expected = nn.functional.cross_entropy(out.logits, batch["labels"], label_smoothing=0.1)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()))
    regression = {"x": torch.randn(4, 3), "labels": torch.randn(4)}  # float targets keep the task's own loss
    sentinel = (torch.tensor(7.0), None)
    assert build_loss(lambda m, b: sentinel, TrainConfig(label_smoothing=0.1))(model, regression) is sentinel


def test_symmetric_kl_hand_computed() -> None:
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # p = [.5, .5], q = [.75, .25]
    kl_pq = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl_qp = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert float(symmetric_kl(a, b)) == pytest.approx((kl_pq + kl_qp) / 2, rel=1e-6)
    assert float(symmetric_kl(a, a)) == pytest.approx(0.0, abs=1e-7)


def test_rdrop_loss_averages_two_passes_and_adds_kl() -> None:
    model = Linear().train()
    batch = {"x": torch.randn(8, 3), "labels": torch.randint(0, 2, (8,))}
    torch.manual_seed(1)
    loss_1, out_1 = task_loss(model, batch)
    loss_2, out_2 = task_loss(model, batch)
    expected = (loss_1 + loss_2) / 2 + 2.0 * symmetric_kl(out_1.logits, out_2.logits)
    torch.manual_seed(1)
    loss, out = task_loss(model, batch)
    ctx = StepContext(task_loss, lambda x: None, 0, 10)
    got = RDrop(2.0).loss(ctx, model, batch, loss, out)
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert float(symmetric_kl(out_1.logits, out_2.logits).detach()) > 0  # dropout made the passes differ


def test_ema_is_a_running_mean_then_exponential() -> None:
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(decay=0.5)
    values = [1.0, 3.0, 5.0, 9.0]
    for step, value in enumerate(values, 1):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.after_step(model, step)
    # Steps 1-2: running mean (1, 2); decay min(0.5, (s-1)/s) = 0.5 afterwards: 0.5*2+0.5*5=3.5, 0.5*3.5+0.5*9=6.25.
    assert float(ema.shadow["weight"]) == pytest.approx(6.25)


def test_ema_swaps_in_for_evaluation_and_replaces_at_the_end() -> None:
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(decay=0.9)
    ema.total_steps = 3
    for step, value in enumerate([2.0, 4.0], 1):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.after_step(model, step)
    with ema.eval_weights(model):
        assert float(model.weight) == pytest.approx(3.0)
    assert float(model.weight) == pytest.approx(4.0)
    with torch.no_grad():
        model.weight.fill_(6.0)
    ema.after_step(model, 3)  # the last step: the average stays in the model
    assert float(model.weight) == pytest.approx(2 / 3 * 3.0 + 1 / 3 * 6.0)
    state = ema.state_dict()
    fresh = EMA(0.9)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.shadow["weight"], ema.shadow["weight"]) and fresh.total_steps == 3


def test_build_hooks_from_config() -> None:
    assert build_hooks(TrainConfig()) == []
    cfg = TrainConfig(rdrop_alpha=1.0, ema_decay=0.99, adversarial={"method": "pgd"})
    names = sorted(type(h).__name__ for h in build_hooks(cfg))
    assert names == ["EMA", "PGD", "RDrop"]
