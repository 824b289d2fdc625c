"""The watchlist (YAML: company, ticker, aliases in any language) and its matcher; NER candidates; sentence splitting.

Latin-script aliases match as whole words (``Nokia`` in ``Nokia's``, not in ``Nokians``); aliases in
scripts written without spaces (Chinese, Japanese) match as plain substrings, so nothing here assumes
English tokenization. Matching is case-sensitive by default because many tickers are ordinary words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lmforge.errors import ConfigError

# Sentence ends: CJK full stops split anywhere; Latin ones need a following space (so 22.70 stays whole).
_SENTENCE_END = re.compile(r"(?<=[。！？；])|(?<=[.!?])\s+(?=\S)")
_LATIN_EDGE = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class Entity:
    """One company on the watchlist."""

    ticker: str
    name: str
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def names(self) -> tuple[str, ...]:
        """Every string that names the company (its name first)."""
        return tuple(dict.fromkeys((self.name, *self.aliases)))


@dataclass(frozen=True)
class Mention:
    """An entity named in one sentence of an item."""

    ticker: str
    sentence: int
    start: int
    end: int


def split_sentences(text: str, limit: int = 50) -> list[str]:
    """The sentences of ``text`` (at most ``limit``; the rest are dropped), stripped, empty ones left out."""
    parts = [s.strip() for s in _SENTENCE_END.split(text)]
    return [s for s in parts if s][:limit]


def _pattern(alias: str) -> str:
    body = re.escape(alias)
    before = r"(?<![A-Za-z0-9])" if _LATIN_EDGE.match(alias[0]) else ""
    after = r"(?![A-Za-z0-9])" if _LATIN_EDGE.match(alias[-1]) else ""
    return before + body + after


class Watchlist:
    """Finds watchlist companies in sentences."""

    def __init__(self, entities: list[Entity], case_sensitive: bool = True) -> None:
        if not entities:
            raise ConfigError("the watchlist is empty; add companies (name, ticker, aliases) to watchlist.yaml")
        self.entities = {e.ticker: e for e in entities}
        self._alias_to_ticker: dict[str, str] = {}
        for e in entities:
            for alias in e.names:
                self._alias_to_ticker[alias if case_sensitive else alias.lower()] = e.ticker
        # Longest alias first, so "Nokia Siemens Networks" wins over "Nokia" where both are listed.
        aliases = sorted(self._alias_to_ticker, key=len, reverse=True)
        flags = 0 if case_sensitive else re.IGNORECASE
        self._regex = re.compile("|".join(_pattern(a) for a in aliases), flags)
        self._case_sensitive = case_sensitive

    @classmethod
    def from_yaml(cls, path: Path) -> Watchlist:
        """Read ``companies: [{name, ticker, aliases: [...]}]``.

        Raises:
            ConfigError: The file is missing, not YAML, or an entry lacks name or ticker.
        """
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; set paths.watchlist in config.yaml to a watchlist YAML file")
        try:
            raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
        entities = []
        for i, row in enumerate(raw.get("companies") or []):
            if not isinstance(row, dict) or not row.get("name") or not row.get("ticker"):
                raise ConfigError(f"{path}: companies[{i}] needs a name and a ticker, e.g. {{name: Nokia, ticker: NOKIA}}")
            entities.append(Entity(str(row["ticker"]), str(row["name"]), tuple(str(a) for a in row.get("aliases") or [])))
        tickers = [e.ticker for e in entities]
        if len(set(tickers)) != len(tickers):
            raise ConfigError(f"{path}: a ticker is listed twice; give each company its own ticker")
        return cls(entities, bool(raw.get("case_sensitive", True)))

    def names_any(self, text: str) -> bool:
        """Whether ``text`` contains a watchlist name or alias."""
        return self._regex.search(text) is not None

    def find(self, sentences: list[str]) -> list[Mention]:
        """Each (entity, sentence) pair once, at the first place the entity is named in that sentence."""
        found: dict[tuple[str, int], Mention] = {}
        for i, sentence in enumerate(sentences):
            for m in self._regex.finditer(sentence):
                key = m.group(0) if self._case_sensitive else m.group(0).lower()
                ticker = self._alias_to_ticker[key]
                found.setdefault((ticker, i), Mention(ticker, i, m.start(), m.end()))
        return list(found.values())


class Candidates:
    """Organizations a named-entity run finds that the watchlist does not name: companies to consider adding.

    Args:
        model: What ``lmforge.load`` returns for a ``ner`` run (anything whose ``predict(texts)`` gives
            ``{"entities": [{"type", "text", "score"...}]}`` per text).
        watchlist: Entities whose names or aliases occur in a found name are not candidates.
        types: Entity types kept (``ORG`` for CoNLL-style runs; any type names of the run).
        min_score: Least mean tag probability of a kept entity.
        batch: Sentences per model call.
    """

    def __init__(self, model: Any, watchlist: Watchlist, types: list[str], min_score: float = 0.5, batch: int = 64) -> None:
        self.model, self.watchlist, self.types, self.min_score, self.batch = model, watchlist, set(types), min_score, batch

    @classmethod
    def load(cls, run: Path, watchlist: Watchlist, types: list[str], min_score: float = 0.5, batch: int = 64) -> Candidates:
        """Load a NER run through lmforge.

        Raises:
            ConfigError: The run is not a named-entity run.
        """
        import lmforge

        model = lmforge.load(run)
        task = model.describe().get("task")
        if task != "ner":
            raise ConfigError(f"entities.ner_run {run} is a {task or model.kind} run; give a NER run (task: ner), "
                              "e.g. one trained with lmforge finetune on CoNLL data")
        return cls(model, watchlist, types, min_score, batch)

    def find(self, sentences: list[str]) -> list[list[dict[str, str]]]:
        """Per sentence, its candidates: ``{"name", "key", "type"}`` (``key`` compares names across case and spacing)."""
        if not sentences:
            return []
        found = []
        for row in self.model.predict(sentences, batch_size=self.batch):
            kept: dict[str, dict[str, str]] = {}
            for e in row["entities"]:
                name = " ".join(e["text"].split())
                if e["type"] in self.types and (e.get("score") or 0.0) >= self.min_score and len(name) > 1 \
                        and not self.watchlist.names_any(name):
                    kept.setdefault(name.lower(), {"name": name[:200], "key": name.lower()[:200], "type": e["type"][:32]})
            found.append(list(kept.values()))
        return found
