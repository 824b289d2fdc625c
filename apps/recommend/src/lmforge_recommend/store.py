"""What the service keeps across restarts: new users' profiles (the films they said they like) and feedback.

SQLAlchemy Core over SQLite by default (one file in the application's data folder) or PostgreSQL
by URL (``store.url: postgresql+psycopg://...``). Two tables:

* ``profiles``: a name chosen by the client and its liked item ids, oldest first;
* ``events``: one row per film served, liked or dismissed, by a training user id or a profile name.

A profile's likes are its history in ``/v1/recommend``; dismissed films are never offered again
to that user or profile.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError, LmforgeError
from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table, create_engine, delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

ACTIONS = ("served", "liked", "dismissed")
metadata = MetaData()
profiles = Table("recommend_profiles", metadata, Column("name", String(100), primary_key=True), Column("liked", JSON, nullable=False),
                 Column("created", Float, nullable=False), Column("updated", Float, nullable=False))
events = Table("recommend_events", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
               Column("at", Float, nullable=False), Column("who", String(120), nullable=False, index=True),
               Column("item_id", Integer, nullable=False), Column("action", String(16), nullable=False),
               Column("request_id", String(64)))


def default_url(folder: Path) -> str:
    """The SQLite file ``recommend.sqlite`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'recommend.sqlite').resolve()}"


def who(user_id: int | None, profile: str | None) -> str:
    """The key events are filed under: ``user:ID`` for a training user, ``profile:NAME`` for a profile."""
    return f"profile:{profile}" if profile is not None else f"user:{user_id}"


class Store:
    """Profiles and events in one SQL database.

    Args:
        url: A SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://...``).

    Raises:
        ConfigError: The URL is malformed, its driver is not installed, or the database cannot be reached.
    """

    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
            metadata.create_all(self.engine)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigError(f"store.url {url!r} cannot be used ({exc}); give a SQLAlchemy URL such as sqlite:///recommend.sqlite") from None
        except OperationalError as exc:
            raise ConfigError(f"store.url: cannot open the database ({str(exc.orig).strip()}); check the URL and that the server runs") from None
        self.url = url

    def save_profile(self, name: str, liked: list[int]) -> dict[str, Any]:
        """Create or replace profile ``name`` with ``liked`` (item ids, oldest first)."""
        _check_name(name)
        now = time.time()
        with self.engine.begin() as db:
            old = db.execute(select(profiles.c.created).where(profiles.c.name == name)).scalar()
            db.execute(delete(profiles).where(profiles.c.name == name))
            db.execute(insert(profiles).values(name=name, liked=[int(i) for i in liked], created=old or now, updated=now))
        return {"name": name, "liked_items": [int(i) for i in liked]}

    def profile(self, name: str) -> list[int] | None:
        """The liked item ids of profile ``name``, or None when there is no such profile."""
        with self.engine.connect() as db:
            liked = db.execute(select(profiles.c.liked).where(profiles.c.name == name)).scalar()
        if liked is None:
            return None
        return [int(i) for i in (json.loads(liked) if isinstance(liked, str) else liked)]

    def record(self, key: str, item_ids: list[int], action: str, request_id: str | None = None) -> None:
        """Append one event per item (``served``, ``liked`` or ``dismissed``) for ``key`` (see :func:`who`)."""
        if action not in ACTIONS:
            raise LmforgeError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if not item_ids:
            return
        now = time.time()
        with self.engine.begin() as db:
            db.execute(insert(events), [{"at": now, "who": key, "item_id": int(i), "action": action, "request_id": request_id}
                                        for i in item_ids])

    def items(self, key: str, action: str) -> list[int]:
        """Item ids with ``action`` events for ``key``, oldest first, each once."""
        with self.engine.connect() as db:
            rows = db.execute(select(events.c.item_id).where(events.c.who == key, events.c.action == action).order_by(events.c.id))
            return list(dict.fromkeys(int(r[0]) for r in rows))

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise LmforgeError(f"profile name must be 1 to 100 characters, got {name!r}")
