"""The ua.test-like split, validation carve-outs and held-out items."""

from __future__ import annotations

import numpy as np
import pytest
from lmforge.errors import DataError

from lmforge_recommend.data import Ratings
from lmforge_recommend.split import carve, concat, holdout_items, is_temporal, leave_last_n, leave_random_n, without_items


def ratings(rows: list[tuple[int, int, int]]) -> Ratings:
    users, items, stamps = (np.array(c) for c in zip(*rows))
    return Ratings(users, items, np.ones(len(rows), dtype=np.float32), stamps, "r")


def test_last_n_by_time_with_ties_broken_by_item_id() -> None:
    r = ratings([(1, 5, 100), (1, 3, 300), (1, 9, 300), (1, 7, 200), (1, 1, 50)])
    train, test = leave_last_n(r, 2)
    assert sorted(test.items.tolist()) == [3, 9]  # both at time 300
    train, test = leave_last_n(r, 3)
    assert sorted(test.items.tolist()) == [3, 7, 9]
    r_tie = ratings([(1, 8, 10), (1, 2, 10), (1, 4, 10)])
    _, test = leave_last_n(r_tie, 1)
    assert test.items.tolist() == [8]  # equal times: the largest id counts as the latest


def test_users_with_too_few_ratings_stay_in_training() -> None:
    r = ratings([(1, i, i) for i in range(1, 6)] + [(2, i, i) for i in range(1, 3)])
    train, test = leave_last_n(r, 2, min_history=1)
    assert test.users.tolist() == [1, 1]
    assert sorted(train.items[train.users == 2].tolist()) == [1, 2]
    assert len(train) + len(test) == len(r)


def test_split_is_deterministic_and_disjoint() -> None:
    rng = np.random.default_rng(0)
    r = ratings([(u, i, int(rng.integers(0, 5))) for u in range(1, 6) for i in range(1, 15)])
    a_train, a_test = leave_last_n(r, 10)
    b_train, b_test = leave_last_n(r, 10)
    assert a_test.items.tolist() == b_test.items.tolist()
    pairs = set(zip(a_train.users.tolist(), a_train.items.tolist()))
    assert not pairs & set(zip(a_test.users.tolist(), a_test.items.tolist()))
    assert np.bincount(a_test.users).tolist()[1:] == [10] * 5


def test_holdout_items_seeded() -> None:
    r = ratings([(1, i, i) for i in range(1, 101)])
    a, b, c = holdout_items(r, 0.1, 0), holdout_items(r, 0.1, 0), holdout_items(r, 0.1, 1)
    assert len(a) == 10 and a.tolist() == b.tolist() and a.tolist() != c.tolist()
    rest, cold = without_items(r, a)
    assert set(cold.items.tolist()) == set(a.tolist()) and len(concat(rest, cold)) == 100


def test_random_carve_out_and_temporal_check() -> None:
    r = ratings([(u, i, 100 * u + i) for u in range(1, 4) for i in range(1, 13)])
    train, test = leave_random_n(r, 3, seed=0)
    assert np.bincount(test.users).tolist()[1:] == [3, 3, 3]
    assert leave_random_n(r, 3, seed=0)[1].items.tolist() == test.items.tolist()
    assert sorted(test.items.tolist()) != sorted(leave_last_n(r, 3)[1].items.tolist())
    last_train, last_test = leave_last_n(r, 3)
    assert is_temporal(last_train, last_test) and not is_temporal(train, test)
    assert carve(r, "random", 3)[1].items.tolist() == test.items.tolist()
    with pytest.raises(DataError, match="unknown validation carve-out 'middle'"):
        carve(r, "middle")
