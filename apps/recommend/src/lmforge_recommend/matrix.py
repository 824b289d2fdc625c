"""Ratings -> the sparse user-item matrices every model trains on, rows and columns numbered once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from lmforge.errors import DataError

from lmforge_recommend.data import Catalogue, Ratings

log = logging.getLogger("lmforge.recommend")


@dataclass
class Interactions:
    """The training ratings as matrices over (users of the file) x (all catalogue items).

    Attributes:
        catalogue: The items; column ``j`` is catalogue row ``j``.
        user_ids: User ids (U,); row ``u`` is user ``user_ids[u]``.
        seen: Binary user-item matrix (U, I), CSR float32: who rated what.
        ratings: Rating values (U, I), CSR float32.
        times: Timestamps (U, I), CSR float64.
    """

    catalogue: Catalogue
    user_ids: np.ndarray
    seen: sp.csr_matrix
    ratings: sp.csr_matrix
    times: sp.csr_matrix
    _rows: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rows = {int(u): r for r, u in enumerate(self.user_ids)}

    @property
    def shape(self) -> tuple[int, int]:
        """(users, items)."""
        return self.seen.shape

    def has_user(self, user_id: int) -> bool:
        """Whether ``user_id`` has training ratings."""
        return int(user_id) in self._rows

    def row(self, user_id: int) -> int:
        """The matrix row of a known user id."""
        return self._rows[int(user_id)]

    def history(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items (columns), ratings and timestamps of user row ``row``, oldest first."""
        lo, hi = self.seen.indptr[row], self.seen.indptr[row + 1]
        items, values, stamps = self.seen.indices[lo:hi], self.ratings.data[lo:hi], self.times.data[lo:hi]
        order = np.lexsort((items, stamps))
        return items[order], values[order], stamps[order]

    def item_popularity(self) -> np.ndarray:
        """Ratings per item (I,)."""
        return np.asarray(self.seen.sum(axis=0)).ravel().astype(np.float32)


def build(ratings: Ratings, catalogue: Catalogue) -> Interactions:
    """Matrices of ``ratings`` (whose items must all be in ``catalogue``) with one row per user, sorted by id."""
    user_ids, rows = np.unique(ratings.users, return_inverse=True)
    cols = catalogue.index(ratings.items)
    shape = (len(user_ids), len(catalogue))

    def matrix(values: np.ndarray, dtype: type) -> sp.csr_matrix:
        out = sp.csr_matrix((values.astype(dtype), (rows, cols)), shape=shape)
        out.sort_indices()
        return out

    return Interactions(catalogue, user_ids, matrix(np.ones(len(ratings)), np.float32), matrix(ratings.ratings, np.float32),
                        matrix(ratings.timestamps, np.float64))


def targets(test: Ratings, train: Interactions) -> tuple[np.ndarray, sp.csr_matrix]:
    """The test users' rows and their relevant items (every test rating counts, whatever its value).

    Returns:
        ``(rows, relevant)``: training rows of the test users (T,) and a binary (T, I) CSR matrix.

    Raises:
        DataError: A test rating repeats a (user, item) pair of the training file.
    """
    known = np.asarray([train.has_user(u) for u in test.users])
    if not known.all():
        log.warning("%s: skipped %d ratings of %d users absent from training", test.source, int((~known).sum()),
                    len(np.unique(test.users[~known])))
    users, items = test.users[known], train.catalogue.index(test.items[known])
    rows = np.asarray([train.row(u) for u in users], dtype=np.int64)
    overlap = np.asarray(train.seen[rows, items]).ravel() > 0
    if overlap.any():
        first = int(np.flatnonzero(overlap)[0])
        raise DataError(f"{test.source}: user {users[first]} rated item {test.items[known][first]} in the training file too; "
                        f"test and training files must not share (user, item) pairs")
    test_rows, inverse = np.unique(rows, return_inverse=True)
    relevant = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (inverse, items)), shape=(len(test_rows), train.shape[1]))
    return test_rows, relevant
