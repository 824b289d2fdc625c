"""A tokenized split and the batch source the training loop draws from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from lmforge.data.batching import attention_mask, pad, plan_batches, shard
from lmforge.data.examples import Examples
from lmforge.data.tokenize import Encoded


@dataclass
class Split:
    """One split, ready for batching.

    Attributes:
        name: train, validation or test.
        examples: The validated texts (with file lines).
        encoded: Token ids.
        targets: Encoded labels, or None for unlabeled data.
        pad_id: Padding token id.
    """

    name: str
    examples: Examples
    encoded: Encoded
    targets: np.ndarray | None
    pad_id: int

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per example."""
        return self.encoded.input_ids.lengths

    def inputs(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Model inputs of rows ``index``, padded to the longest of them."""
        ids = self.encoded.input_ids
        batch = {"input_ids": pad(ids, index, self.pad_id), "attention_mask": attention_mask(ids, index)}
        if self.encoded.token_type_ids is not None:
            batch["token_type_ids"] = pad(self.encoded.token_type_ids, index, 0)
        return batch


Collate = Callable[[Split, np.ndarray], dict[str, torch.Tensor]]


class SplitSource:
    """Training batches over a :class:`Split`, planned per epoch from the run seed.

    Args:
        split: The training split.
        collate: Builds a model batch from row indices.
        batch_size: Global examples per micro-batch.
        mode: Batching mode (see :func:`lmforge.data.batching.plan_batches`).
        seed: Run seed.
        max_tokens: Token budget per batch in ``token_budget`` mode.
    """

    def __init__(self, split: Split, collate: Collate, batch_size: int, mode: str, seed: int, max_tokens: int | None = None) -> None:
        self.split, self.collate, self.batch_size = split, collate, batch_size
        self.mode, self.seed, self.max_tokens = mode, seed, max_tokens
        self._plans: dict[int, list[np.ndarray]] = {}

    def plan(self, epoch: int) -> list[np.ndarray]:
        """The global batches of ``epoch``."""
        if epoch not in self._plans:
            self._plans = {epoch: plan_batches(self.split.lengths, self.batch_size, self.mode, self.seed, epoch, self.max_tokens)}
        return self._plans[epoch]

    def num_batches(self, epoch: int) -> int:
        """Global micro-batches in ``epoch``."""
        return len(self.plan(epoch))

    def batches(self, epoch: int, start: int, rank: int, world: int) -> Iterator[tuple[dict[str, torch.Tensor], int]]:
        """This process's share of batches ``start..`` of ``epoch`` with their global sizes."""
        for batch in self.plan(epoch)[start:]:
            yield self.collate(self.split, shard(batch, rank, world)), len(batch)
