"""Few-shot training runs (pet, setfit, head), each on the project's one training loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.config import DataConfig, ModelConfig, TaskConfig, TrainConfig
from lmforge.data.dataset import Split, SplitSource
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.tokenize import tokenize
from lmforge.prompting.classifiers import HeadClassifier, SetFitClassifier
from lmforge.prompting.config import SetFitConfig
from lmforge.prompting.encoders import SentenceEncoder
from lmforge.prompting.mlm import Cloze, ClozeSource, pet_loss
from lmforge.prompting.setfit import LinearHead, PairSource, cosine_loss, make_pairs
from lmforge.training.loop import fit

log = logging.getLogger("lmforge.prompting")


def _fit(model: Any, source: Any, loss: Any, cfg: TrainConfig, run_dir: Path) -> Any:
    """Train quietly (no event files, no best-checkpoint tracking: few-shot runs have no validation set)."""
    torch.manual_seed(cfg.seed)
    result = fit(model, source, loss, cfg, run_dir, tensorboard=False)
    if result.status != "completed":
        from lmforge.errors import LmforgeError

        raise LmforgeError(f"few-shot training in {run_dir} ended as {result.status}; see {run_dir / 'metrics.jsonl'}")
    return result.model.eval()


def train_pet(cloze: Cloze, examples: Examples, targets: np.ndarray, cfg: TrainConfig, run_dir: Path) -> Cloze:
    """Prompt-based fine-tuning (PET / LM-BFF): train the whole masked LM through template and verbalizer."""
    inputs = cloze.encode(examples.texts, examples.pairs)
    source = ClozeSource(cloze, inputs, targets, cfg.batch_size, cfg.seed)
    cloze.model.train()
    cloze.model = _fit(cloze.model, source, pet_loss(cloze), cfg, run_dir)
    return cloze


def train_setfit(encoder: SentenceEncoder, examples: Examples, targets: np.ndarray, num_labels: int, cfg: SetFitConfig,
                 seed: int, run_dir: Path) -> SetFitClassifier:
    """SetFit: contrastive pairs from the examples tune the encoder; logistic regression on its embeddings."""
    pairs = make_pairs(targets, cfg.iterations, seed, cfg.max_pairs)
    log.info("setfit: %d pairs from %d examples", len(pairs), len(targets))
    source = PairSource(encoder, examples.texts, pairs, cfg.batch_size, seed)
    encoder.model.train()
    encoder.model = _fit(encoder.model, source, cosine_loss(encoder), cfg.train_config(seed), run_dir)
    encoder.clear_cache()
    x = encoder.embed(examples.texts, examples.pairs)
    return SetFitClassifier(encoder, LinearHead.fit(x, targets, num_labels, cfg.head_c, seed))


def train_head(source: str, name: str, examples: Examples, targets: np.ndarray, labels: LabelSpace, data: DataConfig,
               cfg: TrainConfig, run_dir: Path, device: str) -> HeadClassifier:
    """Standard fine-tuning: a new classification head on the encoder, trained with cross-entropy."""
    from lmforge.models.build import load_tokenizer
    from lmforge.tasks import get_task

    task = get_task(TaskConfig())
    tokenizer = load_tokenizer(source)
    torch.manual_seed(cfg.seed)
    model = task.build_model(source, labels, ModelConfig(name=name))
    enc = tokenize(tokenizer, examples.texts, examples.pairs, data.max_length)
    split = Split("train", examples, enc, targets, int(tokenizer.pad_token_id))
    batches = SplitSource(split, task.collate, cfg.batch_size, "random", cfg.seed)
    model = _fit(model, batches, task.loss, cfg, run_dir).to(device)
    return HeadClassifier(model, tokenizer, labels, data, name)
