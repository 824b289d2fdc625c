"""Sequences cut from a token store, and the training loop's batch source over them.

With packing, the store's token stream (documents joined by their separators) is cut into
consecutive full-length pieces, so no position is spent on padding and every token is used
exactly once per epoch. Without it, each document is cut on its own and the last piece padded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch

from lmforge.data.batching import shard
from lmforge.pretraining.masking import IGNORE, Masker
from lmforge.pretraining.store import TokenStore

Batch = dict[str, torch.Tensor]


def packed_spans(num_tokens: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``[start, end)`` of consecutive pieces of ``length`` tokens covering ``num_tokens``; the last may be shorter."""
    starts = np.arange(0, num_tokens, length, dtype=np.int64)
    return starts, np.minimum(starts + length, num_tokens)


def document_spans(store: TokenStore, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Pieces of at most ``length`` tokens of each document (its separator included), never crossing documents."""
    first, last = store.doc_spans()
    last = last + 1
    counts = np.maximum(1, -(-(last - first) // length))
    starts = np.repeat(first, counts) + length * (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    return starts, np.minimum(starts + length, np.repeat(last, counts))


def batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The random generator of one batch: the same wherever the run starts or resumes."""
    return np.random.default_rng([seed, epoch, batch])


class Sequences(Protocol):
    """Numbered training sequences that become a model batch on request."""

    def __len__(self) -> int: ...

    def __call__(self, index: np.ndarray, rng: np.random.Generator) -> Batch: ...


class SequenceSource:
    """The training loop's batch source: shuffled batches of sequences, planned per epoch.

    Args:
        sequences: ``epoch -> Sequences`` (the same object every epoch, or fresh sentence pairs).
        batch_size: Global sequences per micro-batch.
        seed: Run seed (shuffling and masking).
        shuffle: Shuffle sequences each epoch.
    """

    def __init__(self, sequences: Callable[[int], Sequences], batch_size: int, seed: int, shuffle: bool = True) -> None:
        self.sequences, self.batch_size, self.seed, self.shuffle = sequences, batch_size, seed, shuffle
        self._epoch: tuple[int, Sequences] | None = None

    def of_epoch(self, epoch: int) -> Sequences:
        """The sequences of ``epoch`` (kept while that epoch runs)."""
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, self.sequences(epoch))
        return self._epoch[1]

    def plan(self, epoch: int) -> np.ndarray:
        """Sequence order of ``epoch``."""
        count = len(self.of_epoch(epoch))
        return np.random.default_rng([self.seed, epoch]).permutation(count) if self.shuffle else np.arange(count)

    def num_batches(self, epoch: int) -> int:
        """Global micro-batches in ``epoch``."""
        return math.ceil(len(self.of_epoch(epoch)) / self.batch_size)

    def batches(self, epoch: int, start: int, rank: int, world: int) -> Iterator[tuple[Batch, int]]:
        """This process's share of batches ``start..`` of ``epoch`` with their global sizes."""
        order, make = self.plan(epoch), self.of_epoch(epoch)
        for b in range(start, self.num_batches(epoch)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield make(shard(index, rank, world), batch_rng(self.seed, epoch, b)), len(index)

    def fixed_batches(self, limit: int) -> list[Batch]:
        """The first ``limit`` sequences of epoch 0 as batches: evaluation data that is the same every time."""
        order, make = self.plan(0)[:limit], self.of_epoch(0)
        return [make(order[i:i + self.batch_size], batch_rng(self.seed, 0, i)) for i in range(0, len(order), self.batch_size)]


def pad_rows(rows: list[np.ndarray], pad: int, prefix: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows (with ``prefix`` in front) right-padded into a (B, T) int64 array, and their lengths.

    Args:
        rows: One 1-D array per sequence.
        pad: Fills each row after its end.
        prefix: Put in front of every row (CLS), or None.
    """
    extra = 0 if prefix is None else 1
    lengths = np.array([len(r) + extra for r in rows], dtype=np.int64)
    out = np.full((len(rows), int(lengths.max())), pad, dtype=np.int64)
    for i, row in enumerate(rows):
        if prefix is not None:
            out[i, 0] = prefix
        out[i, extra:lengths[i]] = row
    return out, lengths


def finish_batch(ids: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> Batch:
    """Tensors of a batch; ``attention_mask`` only when some row is padded (full rows take the fast attention path)."""
    batch = {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}
    if (lengths < ids.shape[1]).any():
        batch["attention_mask"] = torch.from_numpy((np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64))
    return batch


class PackedSequences:
    """Turns span indices of a store into masked-LM or causal-LM batches.

    Args:
        store: The tokens.
        spans: ``(starts, ends)`` of every sequence (from :func:`packed_spans` or :func:`document_spans`).
        pad_id: Padding token.
        prefix_id: Token put before every sequence (CLS for encoders), or None.
        masker: Masked LM when given; causal LM (labels = inputs) when None.
    """

    def __init__(self, store: TokenStore, spans: tuple[np.ndarray, np.ndarray], pad_id: int, prefix_id: int | None = None,
                 masker: Masker | None = None) -> None:
        self.store, self.spans, self.pad_id, self.prefix_id, self.masker = store, spans, pad_id, prefix_id, masker

    def __len__(self) -> int:
        return len(self.spans[0])

    def rows(self, index: np.ndarray) -> list[np.ndarray]:
        """Token ids of sequences ``index``."""
        starts, ends = self.spans
        return [np.asarray(self.store.ids[starts[i]:ends[i]], dtype=np.int64) for i in index]

    def __call__(self, index: np.ndarray, rng: np.random.Generator) -> Batch:
        ids, lengths = pad_rows(self.rows(index), self.pad_id, self.prefix_id)
        if self.masker is None:
            labels = np.where(np.arange(ids.shape[1])[None, :] < lengths[:, None], ids, IGNORE)
            return finish_batch(ids, lengths, labels)
        starts = None
        if self.store.starts is not None:
            s0, s1 = self.spans
            flags = [np.asarray(self.store.starts[s0[i]:s1[i]], dtype=bool) for i in index]
            starts, _ = pad_rows(flags, 1, None if self.prefix_id is None else 1)
        inputs, labels = self.masker(ids, starts, rng)
        return finish_batch(inputs, lengths, labels)
