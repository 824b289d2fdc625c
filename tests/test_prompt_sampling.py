"""The k-shot draws: stratified, seed-stable, nested across k; evaluation subsets are seeded."""

from __future__ import annotations

import numpy as np

from lmforge.prompting.sampling import draw_k_shot, eval_subset


def test_draw_is_stratified_and_seed_stable() -> None:
    targets = np.array([0] * 50 + [1] * 30 + [2] * 20)
    draw = draw_k_shot(targets, 8, seed=3)
    assert np.bincount(targets[draw]).tolist() == [8, 8, 8]
    assert np.array_equal(draw, draw_k_shot(targets, 8, seed=3))
    assert not np.array_equal(draw, draw_k_shot(targets, 8, seed=4))


def test_smaller_k_is_nested_in_larger_k() -> None:
    targets = np.random.default_rng(0).integers(0, 4, 400)
    assert set(draw_k_shot(targets, 4, seed=1)) <= set(draw_k_shot(targets, 16, seed=1))


def test_short_classes_give_all_they_have() -> None:
    targets = np.array([0] * 10 + [1] * 2)
    draw = draw_k_shot(targets, 5, seed=0)
    assert np.bincount(targets[draw]).tolist() == [5, 2]


def test_eval_subset() -> None:
    assert np.array_equal(eval_subset(10, None, 0), np.arange(10))
    sub = eval_subset(1000, 100, seed=7)
    assert len(sub) == 100 and np.array_equal(sub, np.sort(sub)) and np.array_equal(sub, eval_subset(1000, 100, 7))
