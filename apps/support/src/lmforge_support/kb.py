"""The knowledge base: YAML entries per intent, retrieved by intent and by sentence-embedding similarity.

The index is a plain float32 matrix (entries x 384) searched with one matrix-vector product: the base
holds about a hundred entries, where a product takes microseconds and FAISS would add a dependency,
a build step and nothing measurable. Past some hundred thousand entries a FAISS index would pay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from lmforge.errors import ConfigError

Embed = Callable[[list[str]], np.ndarray]
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Function words that say nothing about the topic.
_ZH_STOP = set("我的了吗呢吧啊怎么办是在有要想请问你您这那个和也还就都")


def language(text: str) -> str:
    """``zh`` when the text holds Chinese characters, else ``en``."""
    return "zh" if _CJK.search(text) else "en"


def bigram_overlap(query: str, text: str) -> float:
    """Overlap of the query's CJK characters with ``text``: the mean of the shares of its bigrams and of its content characters."""
    chars = "".join(_CJK.findall(query))
    grams = {chars[i:i + 2] for i in range(len(chars) - 1)}
    content = set(chars) - _ZH_STOP
    if not grams and not content:
        return 0.0
    share = lambda items: sum(g in text for g in items) / len(items) if items else 0.0
    return 0.5 * share(grams) + 0.5 * share(content)


@dataclass(frozen=True)
class Entry:
    """One answer of the knowledge base."""

    intent: str
    title: str
    answer: str
    lang: str = "en"


def load_entries(path: str | Path) -> tuple[str, list[Entry]]:
    """The bank's name and the entries of a knowledge-base YAML.

    Raises:
        ConfigError: The file is missing or an entry lacks intent, title or answer.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"knowledge base {path} does not exist; set kb.file to a YAML file or leave it empty for the packaged one")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = []
    for i, item in enumerate(raw.get("entries") or []):
        missing = [k for k in ("intent", "title", "answer") if not item.get(k)]
        if missing:
            raise ConfigError(f"{path}: entry {i + 1} has no {missing[0]!r}; every entry needs intent, title and answer")
        entries.append(Entry(str(item["intent"]), str(item["title"]), str(item["answer"]), str(item.get("lang", "en"))))
    if not entries:
        raise ConfigError(f"{path} has no entries; add a list under 'entries:'")
    return str(raw.get("bank", "the bank")), entries


class KnowledgeBase:
    """Entries and their unit embeddings (N, D); ``embed`` maps texts to unit vectors."""

    def __init__(self, entries: Sequence[Entry], embed: Embed, bank: str = "the bank", intent_bonus: float = 0.5) -> None:
        self.entries, self.embed, self.bank, self.intent_bonus = list(entries), embed, bank, intent_bonus
        self.matrix = np.asarray(embed([f"{e.title}. {e.answer}" for e in self.entries]), dtype=np.float32)  # (N, D)
        self.intents = {e.intent for e in self.entries}

    @classmethod
    def from_file(cls, path: str | Path, embed: Embed, intent_bonus: float = 0.5) -> KnowledgeBase:
        """Load a knowledge-base YAML and embed its entries."""
        bank, entries = load_entries(path)
        return cls(entries, embed, bank, intent_bonus)

    def search(self, query: str, intent: str | None = None, lang: str = "en", k: int = 3) -> list[tuple[Entry, float]]:
        """The ``k`` best entries in ``lang`` with their similarity, best first.

        English: cosine of the sentence embeddings plus ``intent_bonus`` for entries of ``intent``. Other
        languages: character-bigram overlap, because the packaged encoder and intent model know English only.
        """
        langs = np.asarray([e.lang for e in self.entries])
        if lang != "en":
            scores = np.asarray([bigram_overlap(query, f"{e.title}{e.answer}") for e in self.entries])
            bonus = np.zeros(len(self.entries))
        else:
            scores = self.matrix @ np.asarray(self.embed([query]), dtype=np.float32)[0]  # (N,)
            bonus = np.asarray([self.intent_bonus if e.intent == intent else 0.0 for e in self.entries])
        total = np.where(langs == lang, scores + bonus, -np.inf)
        order = np.argsort(-total)[:k]
        return [(self.entries[i], float(scores[i])) for i in order if np.isfinite(total[i])]

    def has(self, intent: str | None, lang: str) -> bool:
        """Whether ``intent`` has an entry in ``lang``."""
        return intent is not None and any(e.intent == intent and e.lang == lang for e in self.entries)

    def answer(self, intent: str, lang: str = "en") -> Entry | None:
        """The first entry of ``intent`` in ``lang`` (English where it has none)."""
        for want in (lang, "en"):
            for e in self.entries:
                if e.intent == intent and e.lang == want:
                    return e
        return None
