"""The sample stream: PhraseBank sentences given timestamps, with injected synthetic negative bursts and bad records.

Generated at run time into the app's data folder from the shared data (nothing of it is in the
repository). The burst sentences are synthetic (written here from templates, not news); the file
``<name>.bursts.json`` beside the stream says which company, when, and which items, so that alert
precision, recall and delay can be measured on a replay.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lmforge_monitor.entities import Entity

START = int(datetime(2025, 1, 6, tzinfo=timezone.utc).timestamp())
TEMPLATES = (
    "{name} shares plunged after the company issued a profit warning for the full year.",
    "{name} cut its outlook and said operating profit would fall sharply.",
    "Analysts downgraded {name} after its quarterly sales missed expectations by a wide margin.",
    "{name} announced layoffs of 1,200 employees as orders collapsed.",
    "{name} reported an operating loss, compared with a profit a year earlier.",
    "Regulators opened an investigation into accounting irregularities at {name}.",
    "{name} warned that net sales will decrease significantly this year.",
    "The share price of {name} fell 14 percent after the company suspended its dividend.",
    "{name} lost a major contract and lowered its earnings guidance.",
    "Credit agency cut the rating of {name} to junk, citing rising debt.",
)


def _burst_items(entity: Entity, start: int, size: int, span_s: int, rng: random.Random, tag: str) -> list[dict[str, Any]]:
    times = sorted(start + rng.randrange(span_s) for _ in range(size))
    texts = rng.sample(TEMPLATES, size) if size <= len(TEMPLATES) else [rng.choice(TEMPLATES) for _ in range(size)]
    return [{"timestamp": t, "source": "synthetic-burst", "text": f"{text.format(name=entity.name)} ({tag} {i + 1})"}
            for i, (t, text) in enumerate(zip(times, texts))]


def bad_records(rng: random.Random, now: int) -> list[bytes]:
    """One of each kind of bad input the ingest must count: malformed, missing/future time, huge, non-UTF-8, duplicate.

    ``now`` is the wall-clock time: the future timestamp is a year after it.
    """
    rows = [b'{"timestamp": "2025-01-07T10:00:00Z", "source": "wire", "text": "broken line\n',
            json.dumps({"source": "wire", "text": "Markets were closed for the holiday."}).encode(),
            json.dumps({"timestamp": now + 365 * 86400, "source": "wire", "text": "A post from the future."}).encode(),
            json.dumps({"timestamp": START + 3600, "source": "wire", "text": "Long post. " * 5000}).encode(),
            b'{"timestamp": "2025-01-08T09:00:00Z", "source": "wire", "text": "Caf\xe9 chain Rob\xe9rt says results were stable."}',
            json.dumps({"timestamp": "2025-01-08T09:00:00Z", "source": "wire", "text": "Markets were closed for the holiday."}).encode()]
    rng.shuffle(rows)
    return rows


def build_stream(rows: Sequence[tuple[str, str]], entities: Sequence[Entity], out: Path, *, days: float = 30, bursts: int = 3,
                 burst_size: int = 8, burst_span_s: int = 7200, seed: int = 0, now: int | None = None) -> dict[str, Any]:
    """Write a JSONL stream of ``rows`` (label, text) spread over ``days``, with bursts for the most mentioned entities.

    Returns:
        The burst truth written to ``<out>.bursts.json``: entity, start, end and the burst texts.
    """
    rng = random.Random(seed)
    span = int(days * 86400)
    base = [{"timestamp": START + rng.randrange(span), "source": rng.choice(["newswire", "blog", "forum"]), "text": text}
            for _, text in rows]
    counts = {e.ticker: sum(any(n in r["text"] for n in e.names) for r in base) for e in entities}
    chosen = sorted(entities, key=lambda e: -counts[e.ticker])[:bursts]
    truth = []
    for k, entity in enumerate(chosen):
        start = START + int(span * (k + 1) / (bursts + 1)) + rng.randrange(3600)
        items = _burst_items(entity, start, burst_size, burst_span_s, rng, f"synthetic burst {k + 1}")
        base.extend(items)
        truth.append({"entity": entity.ticker, "start": start, "end": start + burst_span_s, "texts": [i["text"] for i in items]})
    base.sort(key=lambda r: r["timestamp"])
    # A few items arrive late (up to two hours), as they do from slow feeds.
    for i in rng.sample(range(len(base) - 1), max(1, len(base) // 50)):
        base[i], base[i + 1] = base[i + 1], base[i]
    lines = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in base]
    for record in bad_records(rng, now or int(time.time())):
        lines.insert(rng.randrange(len(lines)), record)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"\n".join(lines) + b"\n")
    meta = {"stream": out.name, "items": len(base), "bad_records": 6, "bursts": truth, "synthetic": True,
            "note": "PhraseBank sentences with made-up timestamps; burst sentences are synthetic templates"}
    out.with_suffix(".bursts.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta
