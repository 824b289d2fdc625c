"""Augmentation operations on words: the registry, the context operations share, and the text edits.

Each operation is a factory ``(context) -> fn(texts, targets, rng)`` registered in :data:`OPS`.
This module holds the model-free ones (swap, delete, typo) and the word edits the synonym-based
ones use; :mod:`lmforge.data.augment_models` registers those that need a model.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config import AugmentConfig
from lmforge.data.labels import LabelSpace
from lmforge.data.perturb import typos
from lmforge.data.segment import segment
from lmforge.errors import ConfigError
from lmforge.registry import Registry

# Words that carry no content: never replaced by synonyms (EDA's practice).
STOPWORDS = frozenset(
    "a an the and or but if of at by for with about to from in on is are was were be been being it its this that these "
    "those i me my we our you your he him his she her they them their what which who whom as so than too very can will "
    "just do does did has have had not no nor only own same such s t don should now "
    "的 了 在 是 和 也 就 都 而 及 与 着 或".split())


@dataclass
class AugmentContext:
    """What operations may need besides the texts.

    Attributes:
        cfg: The ``data.augment`` settings.
        labels: The task's label space.
        model_source: The model being fine-tuned (its embeddings give synonyms; it may be a
            masked LM or, for a run directory, the filter's labeler).
        load_labeler: Loads a trained run as a labeler (an object with ``predict(texts)``) for the
            filter; the recipe passes lmforge's artifact loader, so the data layer needs no
            knowledge of saved runs.
    """

    cfg: AugmentConfig
    labels: LabelSpace
    model_source: str | None = None
    load_labeler: Callable[[str], Any] | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        """One instance of a costly helper (synonym table, loaded model) per augmentation run."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]


# An operation: (context) -> fn(texts, targets, rng) -> new texts, None where it does not apply.
Operation = Callable[[list[str], np.ndarray, random.Random], list[str | None]]
OPS: Registry[Callable[[AugmentContext], Operation]] = Registry("augmentation operation")


def _count(n: int, rate: float) -> int:
    return max(1, round(rate * n))


def random_swap(units: list[str], rng: random.Random, rate: float) -> list[str] | None:
    """Swap ``rate * len`` random pairs of units."""
    if len(units) < 2:
        return None
    out = list(units)
    for _ in range(_count(len(out), rate)):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_delete(units: list[str], rng: random.Random, rate: float) -> list[str] | None:
    """Drop each unit with probability ``rate``; at least one is dropped and one kept."""
    if len(units) < 2:
        return None
    out = [u for u in units if rng.random() >= rate]
    if len(out) == len(units):
        drop = rng.randrange(len(units))
        out = units[:drop] + units[drop + 1:]
    return out or [rng.choice(units)]


def random_insert(units: list[str], rng: random.Random, rate: float, synonyms: Callable[[str], list[str]]) -> list[str] | None:
    """Insert a synonym of a random unit at a random position, ``rate * len`` times (at least once)."""
    out = list(units)
    candidates = [u for u in units if u.lower() not in STOPWORDS]
    inserted = 0
    for _ in range(_count(len(units), rate)):
        for word in rng.sample(candidates, len(candidates)):
            options = synonyms(word)
            if options:
                out.insert(rng.randrange(len(out) + 1), rng.choice(options))
                inserted += 1
                break
    return out if inserted else None


def synonym_replace(units: list[str], rng: random.Random, rate: float, synonyms: Callable[[str], list[str]]) -> list[str] | None:
    """Replace up to ``rate * len`` (at least one) content units by a synonym."""
    out = list(units)
    order = [i for i in rng.sample(range(len(units)), len(units)) if units[i].lower() not in STOPWORDS]
    budget, replaced = _count(len(units), rate), 0
    for i in order:
        options = synonyms(units[i])
        if options:
            out[i] = rng.choice(options)
            replaced += 1
            if replaced == budget:
                break
    return out if replaced else None


def unit_op(edit: Callable[..., list[str] | None],
            synonyms: Callable[[AugmentContext], Callable[[str], list[str]]] | None = None) -> Callable[[AugmentContext], Operation]:
    """An operation applying ``edit`` to each text's units (words, jieba words or characters).

    With ``synonyms`` (a context -> word -> synonyms factory), ``edit`` gets the synonym function too.
    """

    def factory(ctx: AugmentContext) -> Operation:
        extra = (ctx.shared("synonyms", lambda: synonyms(ctx)),) if synonyms else ()

        def apply(texts: list[str], targets: np.ndarray, rng: random.Random) -> list[str | None]:
            out: list[str | None] = []
            for text in texts:
                units, joiner = segment(text, ctx.cfg.units)
                edited = edit(units, rng, ctx.cfg.rate, *extra) if units else None
                out.append(joiner.join(edited) if edited else None)
            return out

        return apply

    return factory


OPS.add("swap", unit_op(random_swap))
OPS.add("delete", unit_op(random_delete))


@OPS.register("typo")
def _typo(ctx: AugmentContext) -> Operation:
    return lambda texts, targets, rng: [typos(t, rng, ctx.cfg.rate) for t in texts]


def read_word_list(path: str | Path) -> dict[str, list[str]]:
    """Synonym groups, one per line (``word syn1 syn2``, separated by spaces, tabs or commas); each word of a group
    gets the others as synonyms. Lines starting with ``#`` are comments."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data.augment.synonyms: word list {path} not found")
    table: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        group = [w for w in line.replace(",", " ").split() if w]
        for word in group:
            table.setdefault(word.lower(), []).extend(w for w in group if w.lower() != word.lower())
    if not table:
        raise ConfigError(f"data.augment.synonyms: {path} holds no word groups; write one group per line, e.g. 'good fine nice'")
    return table


def match_case(word: str, synonym: str) -> str:
    return synonym.capitalize() if word[:1].isupper() else synonym
