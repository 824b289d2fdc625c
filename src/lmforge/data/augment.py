"""Augment the training split: token edits, synonyms, typos, masked-LM refills and paraphrases.

``data.augment`` lists operations; each augmented copy of an example gets one of them, picked
at random with the seed. Copies keep the example's label (and its pair text); the validation
and test splits are never touched. Operations on words use jieba words for Chinese text, or
characters with ``units: char``. Model-based operations live in :mod:`lmforge.data.augment_models`.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from lmforge.config import AugmentConfig
from lmforge.data.augment_models import label_filter
from lmforge.data.augment_ops import (
    OPS,
    AugmentContext,
    Operation,
    random_delete,
    random_insert,
    random_swap,
    read_word_list,
    synonym_replace,
)
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.segment import is_chinese
from lmforge.errors import ConfigError, LmforgeError

log = logging.getLogger("lmforge.data")

__all__ = ["AugmentContext", "augment_split", "build_ops", "plan_copies", "random_delete", "random_insert", "random_swap",
           "read_word_list", "synonym_replace"]


def build_ops(ctx: AugmentContext) -> dict[str, Operation]:
    """The configured operations, by name; unknown names are config errors."""
    ops = {}
    for name in ctx.cfg.ops:
        try:
            factory = OPS.get(name)
        except LmforgeError as exc:
            raise ConfigError(f"data.augment.ops: {exc}") from None
        ops[name] = factory(ctx)
    return ops


def plan_copies(n: int, factor: float, ops: list[str], rng: random.Random) -> list[tuple[int, str]]:
    """(example index, operation) of every copy: ``floor(factor)`` rounds over all examples plus a random share."""
    whole, part = int(math.floor(factor)), factor - math.floor(factor)
    sources = [i for _ in range(whole) for i in range(n)]
    sources += sorted(rng.sample(range(n), round(part * n)))
    return [(i, rng.choice(ops)) for i in sources]


def augment_split(examples: Examples, targets: np.ndarray, cfg: AugmentConfig, labels: LabelSpace,
                  model_source: str | None = None, load_labeler: Callable[[str], Any] | None = None) -> tuple[Examples, np.ndarray]:
    """The training examples plus their augmented copies (appended), with the copies' targets.

    Args:
        examples: Training examples.
        targets: Their encoded labels.
        cfg: ``data.augment``.
        labels: The label space (for the paraphrase filter).
        model_source: The model being fine-tuned.
        load_labeler: Loads a trained run for the label-keeping filter (see :class:`AugmentContext`).
    """
    if not cfg.ops or cfg.factor == 0:
        return examples, targets
    rng = random.Random(cfg.seed)
    ctx = AugmentContext(cfg, labels, model_source, load_labeler)
    ops = build_ops(ctx)
    keep = label_filter(ctx)
    plan = plan_copies(len(examples), cfg.factor, list(ops), rng)
    made: list[tuple[int, str, str]] = []
    for name, op in ops.items():
        index = [i for i, op_name in plan if op_name == name]
        outputs = keep(op([examples.texts[i] for i in index], targets[index], rng), targets[index]) if index else []
        made += [(i, name, text) for i, text in zip(index, outputs, strict=True) if text and text != examples.texts[i]]
    made.sort(key=lambda item: item[0])
    source = [i for i, _, _ in made]
    # The originals, then each copy with its source's pair text, label and line.
    merged = examples.subset(list(range(len(examples))) + source)
    merged.texts = examples.texts + [text for _, _, text in made]
    _log_summary(examples, made, len(plan), cfg.log_samples, rng)
    return merged, np.concatenate([targets, targets[source]]) if source else targets


def _log_summary(examples: Examples, made: list[tuple[int, str, str]], planned: int, samples: int, rng: random.Random) -> None:
    counts = Counter(name for _, name, _ in made)
    language = "Chinese" if examples.texts and is_chinese(examples.texts[0]) else "text"
    log.info("augmentation (%s): %d training examples + %d augmented copies (%s); %d of %d planned copies "
             "could not be made or were filtered out", language, len(examples), len(made),
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), planned - len(made), planned)
    for i, name, text in rng.sample(made, min(samples, len(made))):
        log.info("  %s: %r -> %r", name, examples.texts[i], text)
