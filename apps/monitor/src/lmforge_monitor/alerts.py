"""Alert rules from YAML, checked in event time (the newest item's timestamp), with cool-down and de-duplication.

Rules, per entity, over the mentions with ``T - window_s < ts <= T``:

- ``level``: mean sentiment <= ``threshold``.
- ``zscore``: ``(window mean - history mean) / (history sd / sqrt(n))`` <= ``threshold``, history being the
  ``history_s`` before the window (a drop against the entity's own past).
- ``volume``: mentions in the window / mean mentions per window-length of history >= ``threshold``.
- ``cusum``: a one-sided lower CUSUM over the window's scores in time order, reference the history mean
  and allowance ``drift``; fires when it falls to ``-threshold``.

An alert is stored once per (rule, entity, time); the same rule does not fire again for the same
entity within ``cooldown_s`` of event time, so a replay after a restart fires nothing twice.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from lmforge_monitor import store
from lmforge_monitor.config import AlertsConfig, RuleConfig

log = logging.getLogger("lmforge_monitor")
MAX_LINKED = 50


def _stats(history: Sequence[float]) -> tuple[float, float] | None:
    if len(history) < 3:
        return None
    return statistics.fmean(history), max(statistics.pstdev(history), 0.05)


def evaluate(rule: RuleConfig, window: Sequence[float], history: Sequence[float], history_windows: float) -> float | None:
    """The rule's value when it fires on these scores, else None.

    Args:
        rule: The rule.
        window: Scores in the window, in time order.
        history: Scores in the history before the window.
        history_windows: How many window lengths the history spans (for ``volume``).
    """
    if len(window) < rule.min_items:
        return None
    mean = statistics.fmean(window)
    if rule.kind == "level":
        return mean if mean <= rule.threshold else None
    if rule.kind == "volume":
        base = max(len(history) / max(history_windows, 1.0), 1.0 / max(history_windows, 1.0))
        ratio = len(window) / base
        return ratio if ratio >= rule.threshold else None
    stats = _stats(history)
    if stats is None:
        return None
    mu, sd = stats
    if rule.kind == "zscore":
        z = (mean - mu) / (sd / math.sqrt(len(window)))
        return z if z <= rule.threshold else None
    s = lowest = 0.0
    for x in window:
        s = min(0.0, s + (x - mu + rule.drift))
        lowest = min(lowest, s)
    return lowest if lowest <= -rule.threshold else None


def _message(rule: RuleConfig, entity: str, value: float, n: int) -> str:
    what = {"level": f"mean sentiment {value:+.2f}", "zscore": f"sentiment drop z={value:.1f}",
            "volume": f"volume {value:.1f}x the usual", "cusum": f"CUSUM {value:.2f}"}[rule.kind]
    return f"{entity}: {what} over {n} mentions in {rule.window_s / 3600:g} h ({rule.name})"


class AlertEngine:
    """Checks the rules after each ingest batch and delivers new alerts to the log and a webhook."""

    def __init__(self, cfg: AlertsConfig, tickers: Sequence[str]) -> None:
        self.cfg = cfg
        self.tickers = list(tickers)

    def check(self, conn: Any, points: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        """New alerts at each (entity, event time) point, in time order (written in the caller's transaction).

        The pipeline passes the new mentions, so every rule is checked at the moment each item arrived,
        however the items were batched.
        """
        fired = []
        for entity, now in sorted(set(points), key=lambda p: (p[1], p[0])):
            for rule in self.cfg.rules:
                if rule.entities is not None and entity not in rule.entities:
                    continue
                alert = self._check_one(conn, rule, entity, now)
                if alert is not None:
                    fired.append(alert)
        return fired

    def _check_one(self, conn: Any, rule: RuleConfig, entity: str, now: int) -> dict[str, Any] | None:
        # Late items are checked at their own time, so the cool-down looks both ways in event time.
        near = conn.execute(select(func.count()).where(
            store.alerts.c.rule == rule.name, store.alerts.c.entity == entity,
            store.alerts.c.ts > now - rule.cooldown_s, store.alerts.c.ts < now + rule.cooldown_s)).scalar()
        if near:
            return None
        start = now - int(rule.window_s)
        window = store.window_scores(conn, entity, start, now)
        if len(window) < rule.min_items:
            return None
        history = store.window_scores(conn, entity, start - int(rule.history_s), start) if rule.kind != "level" else []
        value = evaluate(rule, [s for _, _, s in window], [s for _, _, s in history], rule.history_s / rule.window_s)
        if value is None:
            return None
        linked = [i for i, _, s in sorted(window, key=lambda w: w[2])][:MAX_LINKED]
        row = {"rule": rule.name, "kind": rule.kind, "entity": entity, "ts": now, "value": round(float(value), 4),
               "message": _message(rule, entity, value, len(window)), "item_ids": linked, "created_at": int(time.time())}
        result = conn.execute(store.alerts.insert().values(**row).returning(store.alerts.c.id))
        return {"id": result.scalar(), **row}

    def deliver(self, alert: dict[str, Any]) -> None:
        """Log the alert and POST it to the webhook (a failed delivery is logged, never raised)."""
        log.warning("ALERT %s", alert["message"])
        if not self.cfg.webhook:
            return
        body = json.dumps(alert).encode("utf-8")
        request = urllib.request.Request(self.cfg.webhook, body, {"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except OSError as exc:
            log.error("alert webhook %s failed: %s", self.cfg.webhook, exc)


def recent(conn: Any, limit: int = 50, entity: str | None = None) -> list[dict[str, Any]]:
    """The newest alerts (by event time) with their linked items' ids."""
    query = select(store.alerts).order_by(store.alerts.c.ts.desc(), store.alerts.c.id.desc()).limit(limit)
    if entity:
        query = query.where(store.alerts.c.entity == entity)
    return [dict(r._mapping) for r in conn.execute(query).all()]
