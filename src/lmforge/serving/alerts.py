"""A built-in alert for deployments without Prometheus: rules checked on recent traffic, a JSON POST to a webhook.

The same three rules as ``deploy/prometheus/alerts.yml``: the share of 5xx answers, the 99th-percentile
latency and the share of the request queue in use, over the last ``window_s`` seconds. A rule that
fires is posted once, then not again for ``cooldown_s`` seconds. Each worker process watches its
own traffic.
"""

from __future__ import annotations

import datetime
import json
import logging
import socket
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lmforge.serving.config import AlertsConfig

_LOG = logging.getLogger("lmforge.serving.alerts")


@dataclass(frozen=True)
class Alert:
    """One rule that fired.

    Attributes:
        rule: ``error_rate``, ``p99_latency`` or ``queue_saturation``.
        value: The measured value (a share in 0-1, or milliseconds).
        threshold: The configured threshold it crossed.
        message: One sentence for people.
    """

    rule: str
    value: float
    threshold: float
    message: str


def post_json(url: str, payload: dict[str, Any], timeout: float = 5.0) -> None:
    """POST ``payload`` as JSON to ``url`` (the default webhook sender)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  (the operator's configured URL)
        response.read()


class AlertMonitor:
    """Keeps the recent requests, checks the rules, and posts the ones that fire.

    Args:
        cfg: Thresholds, window, cooldown and the webhook URL.
        queue_share: Returns the share of the request queue in use now (0-1).
        send: Delivers one alert payload; :func:`post_json` to ``cfg.webhook`` by default.
        clock: Seconds from a fixed origin; tests pass a fake one.
    """

    def __init__(self, cfg: AlertsConfig, queue_share: Callable[[], float] = lambda: 0.0,
                 send: Callable[[dict[str, Any]], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.queue_share, self.clock = cfg, queue_share, clock
        self.send = send or (lambda payload: post_json(str(cfg.webhook), payload))
        self._requests: deque[tuple[float, int, float]] = deque()
        self._fired: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, status: int, seconds: float) -> None:
        """Note one answered request."""
        now = self.clock()
        with self._lock:
            self._requests.append((now, status, seconds))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._requests and self._requests[0][0] < now - self.cfg.window_s:
            self._requests.popleft()

    def evaluate(self) -> list[Alert]:
        """The rules that hold now (before the cooldown is applied)."""
        with self._lock:
            self._trim(self.clock())
            recent = list(self._requests)
        alerts, cfg = [], self.cfg
        if len(recent) >= cfg.min_requests:
            errors = sum(1 for _, status, _ in recent if status >= 500) / len(recent)
            if errors > cfg.error_rate:
                alerts.append(Alert("error_rate", errors, cfg.error_rate,
                                    f"{errors:.1%} of the last {len(recent)} requests failed with 5xx (threshold {cfg.error_rate:.1%})"))
            p99 = float(np.percentile([s for _, _, s in recent], 99)) * 1000
            if p99 > cfg.p99_ms:
                alerts.append(Alert("p99_latency", p99, cfg.p99_ms, f"p99 latency is {p99:.0f} ms (threshold {cfg.p99_ms:.0f} ms)"))
        share = self.queue_share()
        if share >= cfg.queue_saturation:
            alerts.append(Alert("queue_saturation", share, cfg.queue_saturation,
                                f"the request queue is {share:.0%} full (threshold {cfg.queue_saturation:.0%})"))
        return alerts

    def check(self) -> list[Alert]:
        """Evaluate the rules and send those past their cooldown; returns what was sent."""
        now, sent = self.clock(), []
        for alert in self.evaluate():
            if now - self._fired.get(alert.rule, -float("inf")) < self.cfg.cooldown_s:
                continue
            self._fired[alert.rule] = now
            payload = {"service": "lmforge", "host": socket.gethostname(), "window_s": self.cfg.window_s,
                       "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **asdict(alert)}
            try:
                self.send(payload)
            except OSError as exc:
                _LOG.warning("could not post alert %s to the webhook (%s)", alert.rule, exc)
            _LOG.warning("alert %s: %s", alert.rule, alert.message)
            sent.append(alert)
        return sent

    def start(self) -> None:
        """Check every ``check_every_s`` seconds on a daemon thread (only when a webhook is configured)."""
        if self.cfg.webhook is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="lmforge-alerts", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.cfg.check_every_s):
            self.check()

    def stop(self) -> None:
        """Stop the checking thread."""
        self._stop.set()
