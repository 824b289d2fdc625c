"""Conversations, turns and handoffs in SQL (SQLAlchemy 2): SQLite by default, PostgreSQL by URL.

Texts reach the store already masked (:func:`lmforge.serving.privacy.mask_pii`); the store masks
again on write so that no caller can store PII by mistake.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmforge.serving.privacy import mask_pii
from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def now() -> dt.datetime:
    """The current UTC time (naive, as SQLite keeps it)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of the support tables."""


class Conversation(Base):
    """One customer's conversation; ``status`` is bot, queued (waiting for a person), agent or closed."""

    __tablename__ = "support_conversations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    updated: Mapped[dt.datetime] = mapped_column(DateTime, default=now, onupdate=now)
    status: Mapped[str] = mapped_column(String(16), default="bot")
    language: Mapped[str] = mapped_column(String(8), default="en")
    state: Mapped[dict] = mapped_column(JSON, default=dict)


class Turn(Base):
    """One message: the customer's, the bot's or an agent's."""

    __tablename__ = "support_turns"
    __table_args__ = (UniqueConstraint("conversation_id", "message_id", name="uq_support_message"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("support_conversations.id"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    reply_to: Mapped[int | None] = mapped_column(Integer, nullable=True)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    feedback: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


class Handoff(Base):
    """A conversation queued for a person, and why."""

    __tablename__ = "support_handoffs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("support_conversations.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    answered: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class DuplicateMessage(Exception):
    """A message id that the conversation already holds."""


class Store:
    """The support tables behind one SQLAlchemy URL.

    Args:
        url: ``sqlite:///path.db`` (its folder is made), ``postgresql+psycopg://...``, or ``sqlite://`` in memory.
    """

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = create_engine(url, **kwargs)
        Base.metadata.create_all(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as s:
            yield s

    def create(self, language: str = "en") -> Conversation:
        """A new conversation with an unguessable id (it is the customer's only handle on it)."""
        with self.session() as s:
            conv = Conversation(id=secrets.token_hex(16), language=language, state={})
            s.add(conv)
        return conv

    def get(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        with self.session() as s:
            return s.get(Conversation, conversation_id)

    def save_state(self, conversation_id: str, state: dict[str, Any], status: str | None = None) -> None:
        """Replace the dialogue state (and the status)."""
        with self.session() as s:
            conv = s.get(Conversation, conversation_id)
            conv.state = dict(state)
            if status is not None:
                conv.status = status

    def add_turn(self, conversation_id: str, role: str, text: str, message_id: str | None = None, **fields: Any) -> Turn:
        """Append a turn (text masked); raises :class:`DuplicateMessage` for a message id seen before."""
        try:
            with self.session() as s:
                turn = Turn(conversation_id=conversation_id, role=role, text=mask_pii(text), message_id=message_id, **fields)
                s.add(turn)
                s.flush()
        except IntegrityError:
            raise DuplicateMessage(message_id) from None
        return turn

    def has_message(self, conversation_id: str, message_id: str) -> bool:
        """Whether the conversation already holds ``message_id``."""
        with self.session() as s:
            return s.scalar(select(Turn.id).where(Turn.conversation_id == conversation_id, Turn.message_id == message_id)) is not None

    def turns(self, conversation_id: str) -> list[Turn]:
        """The conversation's turns, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(Turn).where(Turn.conversation_id == conversation_id).order_by(Turn.id)))

    def feedback(self, conversation_id: str, turn_id: int, value: int) -> bool:
        """Store thumbs up (1) or down (-1) on a bot turn of this conversation; False when there is no such turn."""
        with self.session() as s:
            turn = s.get(Turn, turn_id)
            if turn is None or turn.conversation_id != conversation_id or turn.role != "bot":
                return False
            turn.feedback = value
        return True

    def hand_off(self, conversation_id: str, reason: str) -> None:
        """Queue the conversation for a person."""
        with self.session() as s:
            s.add(Handoff(conversation_id=conversation_id, reason=reason))
            s.get(Conversation, conversation_id).status = "queued"

    def queue(self) -> list[dict[str, Any]]:
        """Conversations waiting for or with a person, oldest first, with their handoff reason."""
        with self.session() as s:
            rows = s.execute(select(Conversation, Handoff).join(Handoff, Handoff.conversation_id == Conversation.id)
                             .where(Conversation.status.in_(("queued", "agent"))).order_by(Handoff.id)).all()
            seen: dict[str, dict[str, Any]] = {}
            for conv, handoff in rows:
                seen[conv.id] = {"id": conv.id, "status": conv.status, "reason": handoff.reason,
                                 "since": handoff.created.isoformat(timespec="seconds"), "language": conv.language}
            return list(seen.values())

    def agent_reply(self, conversation_id: str, text: str) -> Turn:
        """An agent's message; the conversation is then with the agent."""
        with self.session() as s:
            s.get(Conversation, conversation_id).status = "agent"
            for h in s.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id, Handoff.answered.is_(None))):
                h.answered = now()
        return self.add_turn(conversation_id, "agent", text, kind="agent")

    def close(self, conversation_id: str) -> None:
        """Mark the conversation closed."""
        with self.session() as s:
            s.get(Conversation, conversation_id).status = "closed"

    def all_turns(self) -> list[Turn]:
        """Every turn (for analytics)."""
        with self.session() as s:
            return list(s.scalars(select(Turn).order_by(Turn.id)))

    def all_handoffs(self) -> list[Handoff]:
        """Every handoff (for analytics)."""
        with self.session() as s:
            return list(s.scalars(select(Handoff).order_by(Handoff.id)))
