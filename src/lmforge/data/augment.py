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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config import AugmentConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.segment import is_chinese, segment
from lmforge.errors import ConfigError, LmforgeError
from lmforge.registry import Registry

log = logging.getLogger("lmforge.data")

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
    """

    cfg: AugmentConfig
    labels: LabelSpace
    model_source: str | None = None
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


def _unit_op(edit: Callable[..., list[str] | None], needs_synonyms: bool = False) -> Callable[[AugmentContext], Operation]:
    """An operation applying ``edit`` to each text's units (words, jieba words or characters)."""

    def factory(ctx: AugmentContext) -> Operation:
        extra = (ctx.shared("synonyms", lambda: synonym_source(ctx)),) if needs_synonyms else ()

        def apply(texts: list[str], targets: np.ndarray, rng: random.Random) -> list[str | None]:
            out: list[str | None] = []
            for text in texts:
                units, joiner = segment(text, ctx.cfg.units)
                edited = edit(units, rng, ctx.cfg.rate, *extra) if units else None
                out.append(joiner.join(edited) if edited else None)
            return out

        return apply

    return factory


OPS.add("swap", _unit_op(random_swap))
OPS.add("delete", _unit_op(random_delete))
OPS.add("insert", _unit_op(random_insert, needs_synonyms=True))
OPS.add("synonym", _unit_op(synonym_replace, needs_synonyms=True))


@OPS.register("typo")
def _typo(ctx: AugmentContext) -> Operation:
    from lmforge.evaluation.perturb import typos

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


def _match_case(word: str, synonym: str) -> str:
    return synonym.capitalize() if word[:1].isupper() else synonym


def synonym_source(ctx: AugmentContext) -> Callable[[str], list[str]]:
    """``word -> synonyms`` from the user's word list, else from the model's embedding neighbours."""
    if ctx.cfg.synonyms:
        table = read_word_list(ctx.cfg.synonyms)
        return lambda word: [_match_case(word, s) for s in table.get(word.lower(), [])]
    if not ctx.model_source:
        raise ConfigError("data.augment.synonyms is not set and there is no model to take embedding neighbours from; "
                          "give a word list file")
    from lmforge.data.augment_models import EmbeddingNeighbours

    neighbours = EmbeddingNeighbours(ctx.model_source, ctx.cfg.neighbours)
    return lambda word: [_match_case(word, s) for s in neighbours(word)]


def build_ops(ctx: AugmentContext) -> dict[str, Operation]:
    """The configured operations, by name; unknown names are config errors."""
    import lmforge.data.augment_models  # noqa: F401  (registers contextual, paraphrase, back_translation)

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
                  model_source: str | None = None) -> tuple[Examples, np.ndarray]:
    """The training examples plus their augmented copies (appended), with the copies' targets.

    Args:
        examples: Training examples.
        targets: Their encoded labels.
        cfg: ``data.augment``.
        labels: The label space (for the paraphrase filter).
        model_source: The model being fine-tuned.
    """
    if not cfg.ops or cfg.factor == 0:
        return examples, targets
    from lmforge.data.augment_models import label_filter

    rng = random.Random(cfg.seed)
    ctx = AugmentContext(cfg, labels, model_source)
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
