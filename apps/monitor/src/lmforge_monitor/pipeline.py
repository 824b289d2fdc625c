"""The monitor: check, de-duplicate, score, attribute to entities, store and alert, one transaction per batch.

Sentiment is attributed per entity from the sentences that name it: an entity's score in an item is
the mean signed score (p(positive) - p(negative)) of those sentences. A sentence naming two companies
counts for both with the same score (the model judges sentences, not targets); see the README.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmforge_monitor import store
from lmforge_monitor.alerts import AlertEngine
from lmforge_monitor.config import MonitorConfig
from lmforge_monitor.entities import Candidates, Watchlist, split_sentences
from lmforge_monitor.ingest import Clean, Raw, check
from lmforge_monitor.sentiment import Scorer

log = logging.getLogger("lmforge_monitor")


@dataclass
class BatchResult:
    """What one batch did: items stored, duplicates, rejected and repaired records by reason, new alerts."""

    stored: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        """Add another batch's counts to these."""
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected.update(other.rejected)
        self.repaired.update(other.repaired)
        self.alerts.extend(other.alerts)
        self.item_ids.extend(other.item_ids)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {"stored": self.stored, "duplicates": self.duplicates, "rejected": dict(self.rejected),
                "repaired": dict(self.repaired), "alerts": len(self.alerts)}


class Monitor:
    """Everything between a record and the database: one object per process."""

    def __init__(self, cfg: MonitorConfig, scorer: Scorer, watchlist: Watchlist, engine: Any | None = None,
                 candidates: Candidates | None = None) -> None:
        self.cfg = cfg
        self.scorer = scorer
        self.watchlist = watchlist
        self.candidates = candidates
        self.db = engine if engine is not None else store.open_store(cfg.store_url)
        self.alerts = AlertEngine(cfg.alerts, list(watchlist.entities))

    def _checked(self, records: Iterable[Raw], now: float, result: BatchResult) -> tuple[list[Clean], list[dict[str, Any]]]:
        clean, notes = [], []
        for raw in records:
            item, reason, repairs = check(raw, self.cfg.ingest, now)
            for r in repairs:
                result.repaired[r] += 1
                notes.append({"at": int(now), "source": raw.where[:200], "reason": f"repaired:{r}", "detail": raw.where})
            if reason is not None:
                result.rejected[reason] += 1
                notes.append({"at": int(now), "source": raw.where[:200], "reason": reason, "detail": (raw.problem or reason)[:500]})
                log.info("skipped %s: %s", raw.where, raw.problem or reason)
            else:
                clean.append(item)
        return clean, notes

    def _score(self, clean: Sequence[Clean]) -> list[store.NewItem]:
        sentences = [split_sentences(c.text) or [c.text] for c in clean]
        flat = [s for group in sentences for s in group]
        scores = self.scorer.score(flat)
        found = self.candidates.find(flat) if self.candidates is not None else [[] for _ in flat]
        out, pos = [], 0
        for c, group in zip(clean, sentences):
            mine = scores[pos:pos + len(group)]
            named: dict[str, dict[str, str]] = {}
            for i, per_sentence in enumerate(found[pos:pos + len(group)]):
                for cand in per_sentence:
                    named.setdefault(cand["key"], {**cand, "sentence": group[i][:500]})
            pos += len(group)
            by_entity: dict[str, list[int]] = {}
            for m in self.watchlist.find(group):
                by_entity.setdefault(m.ticker, []).append(m.sentence)
            mentions = []
            for ticker, idx in by_entity.items():
                value = statistics.fmean(mine[i].value for i in idx)
                label = mine[idx[0]].label if len(idx) == 1 else _label(value)
                mentions.append({"entity": ticker, "score": round(value, 4), "label": label,
                                 "sentences": [{"text": group[i][:500], "label": mine[i].label, "score": round(mine[i].value, 4)} for i in idx]})
            value = statistics.fmean(s.value for s in mine)
            label = mine[0].label if len(mine) == 1 else _label(value)
            out.append(store.NewItem(store.content_hash(c.text), c.ts, c.source, c.text, label, round(value, 4),
                                     c.title, c.url, mentions, list(named.values())))
        return out

    def ingest(self, records: Iterable[Raw], now: float | None = None, state: tuple[str, Any] | None = None) -> BatchResult:
        """Check, score and store ``records`` in one transaction, then deliver new alerts.

        Args:
            records: What was read.
            now: The wall-clock time that future timestamps are judged against.
            state: A (key, value) saved in the same transaction (a replay's position), so a crash loses nothing.
        """
        now = time.time() if now is None else now
        result = BatchResult()
        clean, notes = self._checked(records, now, result)
        with self.db.begin() as conn:
            # Duplicates within the batch and against the store are dropped before the model sees them.
            seen = store.known_hashes(conn, (store.content_hash(c.text) for c in clean))
            fresh: dict[str, Clean] = {}
            for c in clean:
                h = store.content_hash(c.text)
                if h in seen or h in fresh:
                    result.duplicates += 1
                    notes.append({"at": int(now), "source": c.where[:200], "reason": "duplicate", "detail": h})
                else:
                    fresh[h] = c
            new = self._score(list(fresh.values())) if fresh else []
            result.item_ids = store.add_items(conn, self.db, new, int(now))
            result.stored = len(result.item_ids)
            result.duplicates += len(new) - result.stored
            store.add_rejects(conn, notes)
            points = [(m["entity"], item.ts) for item in new for m in item.mentions]
            result.alerts = self.alerts.check(conn, points)
            if state is not None:
                store.set_state(conn, *state)
        for alert in result.alerts:
            self.alerts.deliver(alert)
        return result


def _label(value: float) -> str:
    return "negative" if value <= -0.33 else "positive" if value >= 0.33 else "neutral"
