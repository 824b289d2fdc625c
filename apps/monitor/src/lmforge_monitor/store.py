"""The database: items, entity mentions, NER candidates, alerts, rejected input and replay positions (SQLAlchemy Core).

SQLite by default, PostgreSQL by URL. Times are UTC epoch seconds in integer columns, so the hourly
and daily aggregates are the same integer arithmetic in every database. An item's key is the
SHA-256 of its normalized text: inserting it again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

BUCKETS = {"hour": 3600, "day": 86400}
metadata = MetaData()

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("source", String(200), nullable=False),
    Column("title", Text),
    Column("url", Text),
    Column("text", Text, nullable=False),
    Column("label", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("ingested_at", BigInteger, nullable=False),
)
mentions = Table(
    "mentions", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("score", Float, nullable=False),
    Column("label", String(16), nullable=False),
    Column("sentences", JSON, nullable=False),
    UniqueConstraint("item_id", "entity"),
    Index("ix_mentions_entity_ts", "entity", "ts"),
)
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True),
    Column("rule", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("item_ids", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("rule", "entity", "ts"),
    Index("ix_alerts_rule_entity_ts", "rule", "entity", "ts"),
)
candidates = Table(
    "candidates", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("type", String(32), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("sentence", Text, nullable=False),
    UniqueConstraint("item_id", "key"),
    Index("ix_candidates_key", "key"),
)
rejects = Table(
    "rejects", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("source", String(200), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("detail", Text, nullable=False),
)
state = Table(
    "state", metadata,
    Column("key", String(300), primary_key=True),
    Column("value", Text, nullable=False),
)


def content_hash(text: str) -> str:
    """SHA-256 of the text with runs of whitespace collapsed (the de-duplication key)."""
    return hashlib.sha256(re.sub(r"\s+", " ", text).strip().encode("utf-8")).hexdigest()


@dataclass
class NewItem:
    """An item ready to store: checked, scored, with its entity mentions."""

    hash: str
    ts: int
    source: str
    text: str
    label: str
    score: float
    title: str | None = None
    url: str | None = None
    mentions: Sequence[dict[str, Any]] = ()
    candidates: Sequence[dict[str, Any]] = ()


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_store(url: str) -> Engine:
    """An engine on ``url`` with the tables created."""
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    return engine


def _insert_ignore(engine: Engine, table: Table) -> Any:
    """INSERT that skips rows whose unique key exists (SQLite and PostgreSQL spell it the same way)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def known_hashes(conn: Any, hashes: Iterable[str]) -> set[str]:
    """The hashes among ``hashes`` already stored."""
    wanted = list(set(hashes))
    found: set[str] = set()
    for i in range(0, len(wanted), 500):
        found.update(conn.execute(select(items.c.hash).where(items.c.hash.in_(wanted[i:i + 500]))).scalars())
    return found


def add_items(conn: Any, engine: Engine, new: Sequence[NewItem], now: int) -> list[int]:
    """Insert items and their mentions; an item whose hash exists is skipped. Returns the ids of the inserted ones."""
    ids: list[int] = []
    for item in new:
        row = {"hash": item.hash, "ts": item.ts, "source": item.source, "title": item.title, "url": item.url,
               "text": item.text, "label": item.label, "score": item.score, "ingested_at": now}
        result = conn.execute(_insert_ignore(engine, items).values(**row).returning(items.c.id))
        item_id = result.scalar()
        if item_id is None:
            continue
        ids.append(item_id)
        if item.mentions:
            conn.execute(insert(mentions), [{**m, "item_id": item_id, "ts": item.ts} for m in item.mentions])
        if item.candidates:
            conn.execute(insert(candidates), [{**c, "item_id": item_id, "ts": item.ts} for c in item.candidates])
    return ids


def candidate_rows(conn: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Organizations the NER model found that are not on the watchlist: most items first, with first and last sighting."""
    query = (select(candidates.c.key, func.min(candidates.c.name), func.min(candidates.c.type), func.count(),
                    func.min(candidates.c.ts), func.max(candidates.c.ts), func.max(candidates.c.id))
             .group_by(candidates.c.key).order_by(func.count().desc(), func.max(candidates.c.ts).desc()).limit(limit))
    rows = conn.execute(query).all()
    examples = dict(conn.execute(select(candidates.c.id, candidates.c.sentence).where(
        candidates.c.id.in_([r[6] for r in rows]))).all()) if rows else {}
    return [{"name": name, "type": kind, "items": n, "first_ts": first, "last_ts": last, "example": examples.get(latest)}
            for _, name, kind, n, first, last, latest in rows]


def add_rejects(conn: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Record rejected or repaired input (at, source, reason, detail)."""
    if rows:
        conn.execute(insert(rejects), list(rows))


def get_state(conn: Any, key: str) -> Any:
    """A JSON value saved under ``key``, or None."""
    value = conn.execute(select(state.c.value).where(state.c.key == key)).scalar()
    return None if value is None else json.loads(value)


def set_state(conn: Any, key: str, value: Any) -> None:
    """Save a JSON value under ``key`` (in the caller's transaction)."""
    conn.execute(state.delete().where(state.c.key == key))
    conn.execute(insert(state).values(key=key, value=json.dumps(value)))


def series(conn: Any, entity: str | None, bucket: str, since: int | None = None) -> list[dict[str, Any]]:
    """Per bucket (``hour`` or ``day``): start time, mean sentiment, item count, negative and positive counts.

    With ``entity`` the mentions of that entity; without, every item.
    """
    size = BUCKETS[bucket]
    table = mentions if entity else items
    start = (table.c.ts // size) * size
    query = select(start.label("t"), func.avg(table.c.score), func.count(), func.sum((table.c.label == "negative").cast(Integer)),
                   func.sum((table.c.label == "positive").cast(Integer)))
    if entity:
        query = query.where(mentions.c.entity == entity)
    if since is not None:
        query = query.where(table.c.ts >= since)
    rows = conn.execute(query.group_by(start).order_by(start)).all()
    return [{"t": int(t), "mean": round(float(m), 4), "n": int(n), "negative": int(neg or 0), "positive": int(pos or 0)}
            for t, m, n, neg, pos in rows]


def window_scores(conn: Any, entity: str, start: int, end: int) -> list[tuple[int, int, float]]:
    """(item id, ts, score) of an entity's mentions with start < ts <= end, in time order."""
    query = (select(mentions.c.item_id, mentions.c.ts, mentions.c.score)
             .where(mentions.c.entity == entity, mentions.c.ts > start, mentions.c.ts <= end)
             .order_by(mentions.c.ts, mentions.c.item_id))
    return [(int(i), int(t), float(s)) for i, t, s in conn.execute(query).all()]


def max_ts(conn: Any) -> int | None:
    """The latest item time stored (the event-time clock of the alert rules)."""
    return conn.execute(select(func.max(items.c.ts))).scalar()


def counts(conn: Any) -> dict[str, Any]:
    """Items, mentions, alerts, and rejected/repaired input by reason."""
    reasons = dict(conn.execute(select(rejects.c.reason, func.count()).group_by(rejects.c.reason)).all())
    return {"items": conn.execute(select(func.count()).select_from(items)).scalar(),
            "mentions": conn.execute(select(func.count()).select_from(mentions)).scalar(),
            "candidates": conn.execute(select(func.count(func.distinct(candidates.c.key)))).scalar(),
            "alerts": conn.execute(select(func.count()).select_from(alerts)).scalar(),
            "rejected": {k: int(v) for k, v in sorted(reasons.items())}}
