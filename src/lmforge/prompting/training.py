"""Few-shot training runs (pet, setfit, head), each on the project's one training loop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.config import DataConfig, ModelConfig, TaskConfig, TrainConfig
from lmforge.data.batching import plan_batches, shard
from lmforge.data.dataset import SplitSource
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.pipeline import to_split
from lmforge.errors import LmforgeError
from lmforge.models.build import load_tokenizer
from lmforge.prompting.classifiers import HeadClassifier, SetFitClassifier
from lmforge.prompting.config import SetFitConfig
from lmforge.prompting.encoders import SentenceEncoder
from lmforge.prompting.mlm import Cloze, pet_loss
from lmforge.prompting.setfit import LinearHead, cosine_loss, make_pairs, pair_batch
from lmforge.tasks import get_task
from lmforge.training.loop import Batch, fit

log = logging.getLogger("lmforge.prompting")


class RowBatches:
    """Shuffled batches of rows ``0..n-1`` for the training loop (a ``BatchSource``); ``make`` builds each batch.

    The order is :func:`~lmforge.data.batching.plan_batches` in ``random`` mode: the same per
    seed and epoch, so a resumed or repeated run sees the same batches.
    """

    def __init__(self, n: int, make: Callable[[np.ndarray], Batch], batch_size: int, seed: int) -> None:
        self.make, self.batch_size, self.seed = make, batch_size, seed
        self._rows = np.zeros(n, dtype=np.int64)  # a random plan reads only how many rows there are

    def plan(self, epoch: int) -> list[np.ndarray]:
        """The global batches of ``epoch``."""
        return plan_batches(self._rows, self.batch_size, "random", self.seed, epoch)

    def num_batches(self, epoch: int) -> int:
        """Global batches in ``epoch``."""
        return len(self.plan(epoch))

    def batches(self, epoch: int, start: int, rank: int, world: int) -> Iterator[tuple[Batch, int]]:
        """This process's share of batches ``start..`` of ``epoch`` with their global sizes."""
        for index in self.plan(epoch)[start:]:
            yield self.make(shard(index, rank, world)), len(index)


def _fit(model: Any, source: Any, loss: Any, cfg: TrainConfig, run_dir: Path) -> Any:
    """Train quietly (no event files, no best-checkpoint tracking: few-shot runs have no validation set)."""
    torch.manual_seed(cfg.seed)
    result = fit(model, source, loss, cfg, run_dir, tensorboard=False)
    if result.status != "completed":
        raise LmforgeError(f"few-shot training in {run_dir} ended as {result.status}; see {run_dir / 'metrics.jsonl'}")
    return result.model.eval()


def train_pet(cloze: Cloze, examples: Examples, targets: np.ndarray, cfg: TrainConfig, run_dir: Path) -> Cloze:
    """Prompt-based fine-tuning (PET / LM-BFF): train the whole masked LM through template and verbalizer."""
    inputs = cloze.encode(examples.texts, examples.pairs)

    def make(rows: np.ndarray) -> Batch:
        return cloze.batch(inputs, rows) | {"labels": torch.from_numpy(targets[rows])}

    source = RowBatches(len(targets), make, cfg.batch_size, cfg.seed)
    cloze.model.train()
    cloze.model = _fit(cloze.model, source, pet_loss(cloze), cfg, run_dir)
    return cloze


def train_setfit(encoder: SentenceEncoder, examples: Examples, targets: np.ndarray, num_labels: int, cfg: SetFitConfig,
                 seed: int, run_dir: Path) -> SetFitClassifier:
    """SetFit: contrastive pairs from the examples tune the encoder; logistic regression on its embeddings."""
    pairs = make_pairs(targets, cfg.iterations, seed, cfg.max_pairs)
    log.info("setfit: %d pairs from %d examples", len(pairs), len(targets))
    source = RowBatches(len(pairs), lambda rows: pair_batch(encoder, examples.texts, pairs[rows]), cfg.batch_size, seed)
    encoder.model.train()
    encoder.model = _fit(encoder.model, source, cosine_loss(encoder), cfg.train_config(seed), run_dir)
    encoder.clear_cache()
    x = encoder.embed(examples.texts, examples.pairs)
    return SetFitClassifier(encoder, LinearHead.fit(x, targets, num_labels, cfg.head_c, seed))


def train_head(source: str, name: str, examples: Examples, targets: np.ndarray, labels: LabelSpace, data: DataConfig,
               cfg: TrainConfig, run_dir: Path, device: str) -> HeadClassifier:
    """Standard fine-tuning: a new classification head on the encoder, trained with cross-entropy."""
    task = get_task(TaskConfig())
    tokenizer = load_tokenizer(source)
    torch.manual_seed(cfg.seed)
    model = task.build_model(source, labels, ModelConfig(name=name))
    split = to_split("train", examples, targets, tokenizer, data, None)
    batches = SplitSource(split, task.collate, cfg.batch_size, "random", cfg.seed)
    model = _fit(model, batches, task.loss, cfg, run_dir).to(device)
    return HeadClassifier(model, tokenizer, labels, data, name)
