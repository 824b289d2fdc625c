"""Replay: feed a historical stream in event-time order, at a chosen speed, resumable after a crash.

The position in the sorted stream is saved in the same transaction as each batch, so a process killed
mid-replay resumes where the last committed batch ended: nothing is lost, and nothing is counted twice
(the content hash would drop a repeated item anyway).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from lmforge.errors import LmforgeError

from lmforge_monitor import store
from lmforge_monitor.ingest import TIME_KEYS, Raw, parse_time, read_any
from lmforge_monitor.pipeline import BatchResult, Monitor

log = logging.getLogger("lmforge_monitor")


def parse_speed(text: str) -> float:
    """``100x`` or ``100`` -> 100.0; ``max`` -> infinity (no waiting).

    Raises:
        LmforgeError: Not a positive number or ``max``.
    """
    if text.strip().lower() == "max":
        return float("inf")
    try:
        value = float(text.strip().lower().rstrip("x"))
    except ValueError:
        value = -1.0
    if value <= 0:
        raise LmforgeError(f"--speed {text!r} is not a speed; give a factor like 100x, or max")
    return value


def _event_time(raw: Raw) -> int | None:
    value = next((raw.fields[k] for k in TIME_KEYS if raw.fields.get(k) not in (None, "")), None)
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError):
        return None


def ordered(records: list[Raw]) -> list[tuple[int | None, Raw]]:
    """Records sorted by event time; one without a usable time keeps the time of the record before it.

    A time in the future (which the ingest rejects) counts as no time, so it does not hold the replay up.
    """
    keyed, last, future = [], 0, time.time() + 86400
    for raw in records:
        ts = _event_time(raw)
        ts = None if ts is not None and ts > future else ts
        last = ts if ts is not None else last
        keyed.append((last, ts, raw))
    keyed.sort(key=lambda k: k[0])
    return [(ts, raw) for _, ts, raw in keyed]


def replay(monitor: Monitor, path: Path, speed: float = float("inf"), batch: int = 128,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
           progress: Callable[[int, int, BatchResult], None] | None = None) -> BatchResult:
    """Ingest ``path`` in event-time order, ``speed`` times faster than it happened; resumes a replay cut short."""
    stream = ordered(list(read_any(path)))
    key = f"replay:{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    with monitor.db.connect() as conn:
        pos = int(store.get_state(conn, key) or 0)
    if pos:
        log.info("resuming the replay of %s at record %d of %d", path, pos, len(stream))
    total = BatchResult()
    first = next((ts for ts, _ in stream[pos:] if ts is not None), None)
    started = clock()
    while pos < len(stream):
        chunk = stream[pos:pos + batch]
        if first is not None and speed != float("inf"):
            # A batch spans at most one wall-clock second of the replay, so alerts fire at their replayed moment.
            horizon = first + (clock() - started + 1.0) * speed
            chunk = chunk[:next((i for i, c in enumerate(chunk) if i and c[0] is not None and c[0] > horizon), len(chunk))]
            last = max((ts for ts, _ in chunk if ts is not None), default=first)
            wait = (last - first) / speed - (clock() - started)
            if wait > 0:
                sleep(wait)
        result = monitor.ingest([raw for _, raw in chunk], state=(key, pos + len(chunk)))
        pos += len(chunk)
        total.add(result)
        if progress is not None:
            progress(pos, len(stream), result)
    return total
