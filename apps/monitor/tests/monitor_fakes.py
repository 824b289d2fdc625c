"""A keyword scorer instead of the model and a small watchlist and rule set (light: no web imports, for child processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge_monitor.config import MonitorConfig, load_config
from lmforge_monitor.sentiment import Score

NEGATIVE = ("fell", "loss", "plunged", "cut", "warning", "layoffs", "下跌", "亏损")
POSITIVE = ("rose", "profit", "grew", "record", "上涨")
WATCHLIST = """
companies:
  - {name: Nokia, ticker: NOKIA, aliases: [诺基亚]}
  - {name: Nokia Siemens Networks, ticker: NSN, aliases: [Nokia Siemens]}
  - {name: Siemens, ticker: SIE}
  - {name: Finnair, ticker: FIA1S, aliases: [芬兰航空]}
  - {name: Kone, ticker: KNEBV}
"""
RULES = [
    {"name": "low", "kind": "level", "window_s": 3600, "threshold": -0.5, "min_items": 3, "cooldown_s": 7200},
    {"name": "drop", "kind": "zscore", "window_s": 3600, "history_s": 86400, "threshold": -3.0, "min_items": 3, "cooldown_s": 7200},
    {"name": "busy", "kind": "volume", "window_s": 3600, "history_s": 86400, "threshold": 4.0, "min_items": 3, "cooldown_s": 7200},
    {"name": "shift", "kind": "cusum", "window_s": 3600, "history_s": 86400, "threshold": 2.0, "drift": 0.2, "min_items": 3, "cooldown_s": 7200},
]


def keyword_scores(texts: list[str]) -> list[Score]:
    """-0.9 when a negative word occurs, +0.8 for a positive one, else 0 (neutral)."""
    out = []
    for text in texts:
        low = text.lower()
        if any(w in low for w in NEGATIVE):
            out.append(Score("negative", -0.9, {"negative": 0.95, "neutral": 0.04, "positive": 0.01}))
        elif any(w in low for w in POSITIVE):
            out.append(Score("positive", 0.8, {"negative": 0.05, "neutral": 0.1, "positive": 0.85}))
        else:
            out.append(Score("neutral", 0.0, {"negative": 0.1, "neutral": 0.8, "positive": 0.1}))
    return out


def keyword_explain(texts: list[str]) -> list[dict[str, Any]]:
    """Attributions in the shape lmforge's Explainer gives: the keyword that decided the score gets 1, other words 0."""
    out = []
    for text, score in zip(texts, keyword_scores(texts)):
        words = text.split()
        scores = [1.0 if any(k in w.lower() for k in NEGATIVE + POSITIVE) else 0.0 for w in words]
        out.append({"text": text, "words": words, "offsets": [], "scores": scores, "target": 0, "label": score.label,
                    "probability": max(score.probabilities.values()), "method": "occlusion", "delta": None})
    return out


class FakeNer:
    """Stands for a NER run: tags a fixed set of organization and place names, as ``lmforge.load(ner_run)`` would."""

    NAMES = {"Outotec": "ORG", "Wartsila": "ORG", "Nokia": "ORG", "Helsinki": "LOC", "Metso": "ORG"}

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
        rows = []
        for text in texts:
            found = [{"type": kind, "text": name, "start": text.index(name), "end": text.index(name) + len(name),
                      "score": 0.3 if name == "Metso" else 0.9} for name, kind in self.NAMES.items() if name in text]
            rows.append({"text": text, "entities": sorted(found, key=lambda e: e["start"])})
        return rows


def make_config(tmp: Path, **over: Any) -> MonitorConfig:
    (tmp / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
    raw = {"paths": {"data_dir": str(tmp / "data"), "watchlist": str(tmp / "watchlist.yaml")}, "alerts": {"rules": RULES}, **over}
    return load_config(None, raw)
