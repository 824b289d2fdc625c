"""Seeded, optionally stratified splits of one file's examples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from lmforge.data.examples import Examples
from lmforge.data.sources import BadRows
from lmforge.errors import DataError


def drop_singletons(examples: Examples, labels: np.ndarray, names: list[str], bad: BadRows) -> np.ndarray:
    """Indices of examples whose label has at least two examples; the rest are bad rows."""
    counts = Counter(labels.tolist())
    keep = []
    for i, label in enumerate(labels.tolist()):
        if counts[label] < 2:
            bad.report(f"{examples.where(examples.lines[i])}: label {names[label]!r} has only this one example, and a "
                       "stratified split needs at least 2 per label; add examples, remove the label, or set data.split.stratify=false")
            continue
        keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def split_indices(n: int, fraction: float, seed: int, strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (kept, held-out) with ``fraction`` held out, stratified by ``strata``.

    Every stratum with at least two members keeps one in each part when the fraction allows.
    """
    rng = np.random.default_rng(seed)
    if strata is None:
        order = rng.permutation(n)
        held = max(1, round(n * fraction))
        return np.sort(order[held:]), np.sort(order[:held])
    kept, out = [], []
    for value in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == value))
        held = min(len(members) - 1, max(1, round(len(members) * fraction)))
        out.append(members[:held])
        kept.append(members[held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(out))


def fold_indices(n: int, folds: int, fold: int, seed: int, strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (other folds, fold ``fold``) of a seeded k-fold partition, stratified by ``strata``.

    Each stratum is shuffled and dealt round-robin, so every fold gets its share of each label.
    """
    rng = np.random.default_rng(seed)
    assignment = np.empty(n, dtype=np.int64)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == v) for v in np.unique(strata)]
    offset = 0
    for members in groups:
        members = rng.permutation(members)
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)


def check_split_size(n: int, fraction: float, what: str) -> None:
    """Refuse splits that would leave nothing to train on or to hold out."""
    if n < 2 or round(n * fraction) >= n:
        raise DataError(f"cannot hold out {fraction:.0%} of {n} examples for {what}; give a {what} file or more data")


def group_split_indices(groups: Sequence[str], share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(groups))`` into (kept, held-out) whole groups, holding out about ``share`` of the items.

    Groups are shuffled with ``seed`` and held out until their items reach the share; one group always stays.

    Raises:
        DataError: Fewer than two groups.
    """
    names = list(dict.fromkeys(groups))
    if len(names) < 2:
        raise DataError(f"cannot hold out whole groups: all {len(groups)} items belong to one group; give a validation file")
    sizes = {name: 0 for name in names}
    for group in groups:
        sizes[group] += 1
    target, held, count = max(1, round(len(groups) * share)), set(), 0
    for k in np.random.default_rng(seed).permutation(len(names))[:-1]:
        if count >= target:
            break
        held.add(names[k])
        count += sizes[names[k]]
    mask = np.fromiter((g in held for g in groups), dtype=bool, count=len(groups))
    return np.flatnonzero(~mask), np.flatnonzero(mask)


CONTAINING = "containing_text"
_MAX_INDEXED_UNITS = 64  # longer texts index only themselves: their sub-spans would cost length^2 keys


def _units(text: str) -> list[str]:
    words = text.lower().split()
    # Text written without spaces (Chinese, Japanese) is compared character by character.
    return list(words[0]) if len(words) == 1 and not words[0].isascii() else words


def containing_groups(texts: Sequence[str]) -> list[str]:
    """For each text, the longest text of ``texts`` that contains it (word for word), as its group key.

    Datasets cut from larger texts (SST-2's phrases are spans of its sentences) leak through a random
    split: a validation phrase's sentence, or its other spans, sit in training. Splitting by these
    groups keeps each sentence and every span of it on one side. Texts are compared lowercased, by
    words (by characters when they hold no spaces).
    """
    order = sorted(range(len(texts)), key=lambda i: -len(_units(texts[i])))
    owner: dict[str, str] = {}
    groups = [""] * len(texts)
    for i in order:
        units = _units(texts[i])
        key = " ".join(units)
        if key in owner:
            groups[i] = owner[key]
            continue
        groups[i] = key
        if len(units) > _MAX_INDEXED_UNITS:
            owner[key] = key
            continue
        for start in range(len(units)):
            for end in range(start + 1, len(units) + 1):
                owner.setdefault(" ".join(units[start:end]), key)
    return groups


def longest_in_groups(texts: Sequence[str], groups: Sequence[str], index: Sequence[int]) -> np.ndarray:
    """The rows of ``index`` that are the longest text (in words, or characters without spaces) of their group.

    Held-out fragments score high for the wrong reason (a phrase of two words is easy), so a
    held-out split of sentences and their phrases is scored on the sentences alone.
    """
    size = {i: len(_units(texts[i])) for i in index}
    longest: dict[str, int] = {}
    for i in index:
        longest[groups[i]] = max(longest.get(groups[i], 0), size[i])
    return np.asarray([i for i in index if size[i] == longest[groups[i]]], dtype=np.int64)
