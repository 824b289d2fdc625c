"""Seeded text perturbations (typos, case, word swaps): robustness copies, typo augmentation, the text adversary.

Each perturbation maps ``(text, rng, rate)`` to a new text; the same seed gives the same
perturbed copy, so scores of different models on it are comparable.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from lmforge.data.segment import is_chinese, segment
from lmforge.registry import Registry

Perturbation = Callable[[str, random.Random, float], str]
PERTURBATIONS: Registry[Perturbation] = Registry("perturbation")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEAR = {c: row[max(0, i - 1):i] + row[i + 1:i + 2] for row in _KEYBOARD_ROWS for i, c in enumerate(row)}


def _picked(n: int, rng: random.Random, rate: float) -> list[int]:
    """Indices chosen with probability ``rate`` each; at least one when ``n`` > 0."""
    picks = [i for i in range(n) if rng.random() < rate]
    return picks or ([rng.randrange(n)] if n else [])


def typo_word(word: str, rng: random.Random) -> str:
    """One keyboard slip in ``word``: swap two neighbours, drop, double or mistype a character."""
    if len(word) < 2:
        return word
    i = rng.randrange(len(word) - 1)
    kind = rng.choice(("swap", "drop", "double", "near"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    lower = word[i].lower()
    near = _NEAR.get(lower) or string.ascii_lowercase
    return word[:i] + rng.choice(near) + word[i + 1:]


@PERTURBATIONS.register("typos")
def typos(text: str, rng: random.Random, rate: float = 0.2) -> str:
    """Keyboard slips in a share ``rate`` of the words (of the characters for Chinese, which get dropped or doubled)."""
    if is_chinese(text):
        chars, _ = segment(text, "char")
        for i in sorted(_picked(len(chars), rng, rate / 2), reverse=True):
            chars[i] = "" if rng.random() < 0.5 else chars[i] * 2
        return "".join(chars) or text
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 3]
    for j in _picked(len(candidates), rng, rate):
        words[candidates[j]] = typo_word(words[candidates[j]], rng)
    return " ".join(words)


@PERTURBATIONS.register("case")
def case(text: str, rng: random.Random, rate: float = 0.2) -> str:
    """Upper-, lower- or title-case a share ``rate`` of the words."""
    words = text.split(" ")
    for i in _picked(len(words), rng, rate):
        words[i] = rng.choice((str.upper, str.lower, str.title))(words[i])
    return " ".join(words)


@PERTURBATIONS.register("swap")
def swap(text: str, rng: random.Random, rate: float = 0.2) -> str:
    """Swap a share ``rate`` of the words (jieba words for Chinese) with their right neighbour."""
    words, joiner = segment(text, "word")
    if len(words) < 2:
        return text
    for i in _picked(len(words) - 1, rng, rate):
        words[i], words[i + 1] = words[i + 1], words[i]
    return joiner.join(words)


def perturb_texts(texts: list[str], name: str, rate: float = 0.2, seed: int = 0) -> list[str]:
    """Perturbed copies of ``texts``; text ``i`` gets its own generator seeded by (seed, name, i)."""
    fn = PERTURBATIONS.get(name)
    return [fn(text, random.Random(f"{seed}:{name}:{i}"), rate) for i, text in enumerate(texts)]
