"""The k-shot draws: stratified, seed-stable, nested across k; evaluation subsets are seeded; training batches."""

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


def test_few_shot_training_batches_cover_every_row_once_per_epoch() -> None:
    from lmforge.prompting.training import RowBatches

    source = RowBatches(10, lambda rows: {"rows": rows}, batch_size=4, seed=3)
    assert source.num_batches(0) == 3
    epoch0 = [b["rows"] for b, _ in source.batches(0, 0, 0, 1)]
    assert sorted(np.concatenate(epoch0).tolist()) == list(range(10))
    assert all(np.array_equal(a, b["rows"]) for a, (b, _) in zip(epoch0, source.batches(0, 0, 0, 1), strict=True))
    assert not all(np.array_equal(a, b["rows"]) for a, (b, _) in zip(epoch0, source.batches(1, 0, 0, 1), strict=True))
    # two processes split each global batch between them and report its global size
    shares = [list(source.batches(0, 1, rank, 2)) for rank in range(2)]
    for (a, n), (b, m) in zip(*shares, strict=True):
        assert n == m == len(a["rows"]) + len(b["rows"])
    assert sorted(np.concatenate([s["rows"] for part in shares for s, _ in part]).tolist()) == sorted(
        np.concatenate(epoch0[1:]).tolist())
