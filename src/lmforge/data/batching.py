"""Batch plans (random, length-grouped, token-budget) and dynamic-padding collation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lmforge.data.tokenize import Ragged

MEGABATCH = 50  # batches sorted together: enough to group lengths, few enough to stay random


def _chunks(index: np.ndarray, size: int) -> list[np.ndarray]:
    return [index[i:i + size] for i in range(0, len(index), size)]


def _budget_chunks(index: np.ndarray, lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Greedy batches of length-sorted ``index`` whose padded size stays within ``max_tokens``."""
    batches, start, longest = [], 0, 0
    for end, i in enumerate(index):
        longest = max(longest, int(lengths[i]))
        if end > start and longest * (end - start + 1) > max_tokens:
            batches.append(index[start:end])
            start, longest = end, int(lengths[i])
    batches.append(index[start:])
    return batches


def plan_batches(lengths: np.ndarray, batch_size: int, mode: str = "length_grouped", seed: int = 0, epoch: int = 0,
                 max_tokens: int | None = None) -> list[np.ndarray]:
    """The training batches of one epoch, as index arrays; the same for the same seed and epoch.

    Args:
        lengths: Token count of every example.
        batch_size: Examples per batch (random and length_grouped).
        mode: ``random``, ``length_grouped`` (sort within mega-batches, shuffle batches)
            or ``token_budget`` (like length_grouped, with batches filled up to ``max_tokens``).
        seed: Run seed.
        epoch: Epoch number, so each epoch gets its own order.
        max_tokens: Padded-token budget per batch in ``token_budget`` mode.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if mode == "random":
        return _chunks(order, batch_size)
    batches: list[np.ndarray] = []
    for mega in _chunks(order, batch_size * MEGABATCH):
        mega = mega[np.argsort(-lengths[mega], kind="stable")]
        if mode == "token_budget":
            batches += _budget_chunks(mega, lengths, max_tokens or batch_size * int(lengths.max()))
        else:
            batches += _chunks(mega, batch_size)
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Length-sorted batches for inference; callers restore the input order from the indices."""
    order = np.argsort(-lengths, kind="stable")
    return _chunks(order, batch_size)


def shard(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This process's contiguous share of a global batch."""
    return np.array_split(batch, world)[rank] if world > 1 else batch


def pad(rows: Ragged, index: Sequence[int], value: int) -> torch.Tensor:
    """Rows ``index`` of ``rows`` right-padded with ``value`` to the longest of them, shape (B, T)."""
    lengths = rows.lengths[index]
    out = np.full((len(index), int(lengths.max())), value, dtype=np.int64)
    for j, i in enumerate(index):
        out[j, :lengths[j]] = rows[i]
    return torch.from_numpy(out)


def attention_mask(rows: Ragged, index: Sequence[int]) -> torch.Tensor:
    """1 for real tokens, 0 for padding, shape (B, T)."""
    lengths = torch.from_numpy(rows.lengths[index])
    return (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long()
