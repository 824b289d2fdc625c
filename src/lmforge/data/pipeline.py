"""From config to tokenized splits: read, validate, label, split, subsample, tokenize."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lmforge import zoo
from lmforge.config import DataConfig
from lmforge.data.augment import augment_split
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples, extract
from lmforge.data.labels import LabelSpace
from lmforge.data.normalize import make_normalizer
from lmforge.data.sources import BadRows, read_table
from lmforge.data.split import (
    CONTAINING,
    check_split_size,
    containing_groups,
    drop_singletons,
    fold_indices,
    group_split_indices,
    longest_in_groups,
    split_indices,
)
from lmforge.data.tokenize import tokenize
from lmforge.errors import DataError

log = logging.getLogger("lmforge.data")


def normalizer(cfg: DataConfig) -> Any:
    """The text normalizer ``cfg`` asks for."""
    return make_normalizer(cfg.normalize, cfg.lowercase, cfg.fullwidth_to_halfwidth)


def read_examples(source: str, cfg: DataConfig, labeled: bool = True, text_column: str | None = None,
                  label_column: str | None = None) -> Examples:
    """Read and validate one file (or zoo dataset) into :class:`Examples`."""
    path = zoo.resolve_dataset(source)
    bad = BadRows(cfg.on_bad_rows)
    table = read_table(path, cfg.format, cfg.encoding, cfg.on_bad_rows)
    bad.count, bad.examples = table.skipped, list(table.problems)
    label_col = (label_column or cfg.label_column) if labeled else None
    group = cfg.split.group_by if cfg.split.group_by not in (None, CONTAINING) and labeled else None
    examples = extract(table, text_column or cfg.text_column, cfg.text_pair_column, label_col, normalizer(cfg), bad, group)
    bad.summary(path)
    if not len(examples):
        raise_empty(path)
    return examples


def raise_empty(path: Path) -> None:
    """Every row of a file was unusable."""
    raise DataError(f"{path}: no usable rows left after skipping bad ones; check the column names and the file")


def encode_labels(examples: Examples, labels: LabelSpace, cfg: DataConfig) -> tuple[Examples, np.ndarray]:
    """Encode labels, reporting (or skipping) rows with unknown or malformed labels."""
    bad = BadRows(cfg.on_bad_rows)
    examples, targets = labels.encode(examples, bad)
    bad.summary(examples.path)
    if not len(examples):
        raise_empty(examples.path)
    return examples, targets


def _hold_out(examples: Examples, targets: np.ndarray, fraction: float, cfg: DataConfig, labels: LabelSpace,
              what: str) -> tuple[tuple[Examples, np.ndarray], tuple[Examples, np.ndarray]]:
    """Split (examples, targets) into kept and held-out parts: by groups when ``data.split.group_by`` says so."""
    if cfg.split.group_by:
        groups = examples.groups if examples.groups is not None else containing_groups(examples.texts)
        kept, held = group_split_indices(groups, fraction, cfg.split.seed)
        log.info("%s: %d of %d groups held out (data.split.group_by=%s)", what, len(set(groups[i] for i in held)),
                 len(set(groups)), cfg.split.group_by)
        if cfg.split.held_out == "longest":
            rows = len(held)
            held = longest_in_groups(examples.texts, groups, held)
            log.info("%s: the longest text of each held-out group kept, %d of %d rows (data.split.held_out=longest)",
                     what, len(held), rows)
        return (examples.subset(kept), targets[kept]), (examples.subset(held), targets[held])
    stratify = cfg.split.stratify and labels.kind == "single"
    if stratify:
        bad = BadRows(cfg.on_bad_rows)
        keep = drop_singletons(examples, targets, labels.names, bad)
        bad.summary(examples.path)
        examples, targets = examples.subset(keep), targets[keep]
    check_split_size(len(examples), fraction, what)
    kept, held = split_indices(len(examples), fraction, cfg.split.seed, targets if stratify else None)
    return (examples.subset(kept), targets[kept]), (examples.subset(held), targets[held])


def _fold_out(examples: Examples, targets: np.ndarray, cfg: DataConfig,
              labels: LabelSpace) -> tuple[tuple[Examples, np.ndarray], tuple[Examples, np.ndarray]]:
    """Split (examples, targets) into the other folds and fold ``data.split.fold`` (cross-validation)."""
    folds = cfg.split.folds
    if len(examples) < folds:
        raise DataError(f"{examples.path}: {len(examples)} examples cannot fill data.split.folds={folds} folds")
    strata = targets if cfg.split.stratify and labels.kind == "single" else None
    kept, held = fold_indices(len(examples), folds, cfg.split.fold, cfg.split.seed, strata)
    return (examples.subset(kept), targets[kept]), (examples.subset(held), targets[held])


def _subsample(name: str, pair: tuple[Examples, np.ndarray], limit: int | None, seed: int) -> tuple[Examples, np.ndarray]:
    examples, targets = pair
    if limit is None or limit >= len(examples):
        return pair
    option = "max_train_samples" if name == "train" else "max_eval_samples"
    log.info("using a subset: %d of %d %s examples (data.%s)", limit, len(examples), name, option)
    index = np.sort(np.random.default_rng(seed).permutation(len(examples))[:limit])
    return examples.subset(index), targets[index]


def labeled_splits(cfg: DataConfig, task: Any, model_source: str | None = None,
                   load_labeler: Callable[[str], Any] | None = None) -> tuple[dict[str, tuple[Examples, np.ndarray]], LabelSpace]:
    """Train/validation(/test) examples with encoded targets, and the label space.

    ``data.augment`` adds augmented copies to the training split only; ``model_source`` (the model
    being fine-tuned) gives the augmentation its embedding synonyms, masked LM or label filter, which
    ``load_labeler`` loads when it is a trained run.
    """
    train = read_examples(cfg.train, cfg)
    labels = task.label_space(train, cfg)
    splits = {"train": encode_labels(train, labels, cfg)}
    for name, fraction in (("test", cfg.split.test), ("validation", cfg.split.validation)):
        source = getattr(cfg, name)
        if source:
            splits[name] = encode_labels(read_examples(source, cfg), labels, cfg)
        elif name == "validation" and cfg.split.folds:
            splits["train"], splits[name] = _fold_out(*splits["train"], cfg, labels)
        elif fraction > 0:
            splits["train"], splits[name] = _hold_out(*splits["train"], fraction, cfg, labels, name)
    splits = {name: _subsample(name, pair, cfg.max_train_samples if name == "train" else cfg.max_eval_samples, cfg.split.seed)
              for name, pair in splits.items()}
    if cfg.augment.ops:
        splits["train"] = augment_split(*splits["train"], cfg.augment, labels, model_source, load_labeler)
    log.info("data: %s", ", ".join(f"{name} {len(pair[0])}" for name, pair in splits.items()))
    return splits, labels


def to_split(name: str, examples: Examples, targets: np.ndarray | None, tokenizer: Any, cfg: DataConfig,
             cache_dir: Path | None) -> Split:
    """Tokenize examples into a :class:`Split`."""
    encoded = tokenize(tokenizer, examples.texts, examples.pairs, cfg.max_length, cache_dir if cfg.cache else None,
                       desc=f"tokenizing {name}")
    return Split(name, examples, encoded, targets, int(tokenizer.pad_token_id))
