"""The HTTP face: the chat, agent and analytics pages and the ``/v1/support`` API, mounted on lmforge's service app.

API routes need a key (``lmforge keys create``): customers' routes the ``support`` scope, the agent's
and analytics routes ``support-agent``. A conversation id is 128 random bits and the only handle on a
conversation, so one customer never reaches another's messages.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from lmforge.serving.http import ApiError, Caller, require_key
from lmforge.serving.privacy import mask_obj
from pydantic import BaseModel, Field

from lmforge_support import analytics
from lmforge_support.dialogue import Bot, Reply
from lmforge_support.kb import language
from lmforge_support.store import DuplicateMessage, Store

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"": "chat.html", "agent": "agent.html", "analytics": "analytics.html"}
# Module level: FastAPI resolves these annotations by name (the module uses postponed annotations).
CustomerKey = Annotated[Caller, Depends(require_key("support"))]
AgentKey = Annotated[Caller, Depends(require_key("support-agent"))]
WAITING = "A person from our team has your conversation and will answer here."


class NewConversation(BaseModel):
    language: str = Field("en", pattern="^(en|zh)$", description="Language of the greeting.")


class Message(BaseModel):
    text: str = Field(description="The customer's message.")
    message_id: str | None = Field(None, max_length=64, description="Client id of the message; a repeated id gets 409.")


class Feedback(BaseModel):
    turn_id: int = Field(description="The bot turn rated.")
    value: int = Field(ge=-1, le=1, description="1 thumbs up, -1 thumbs down, 0 clears.")


class AgentMessage(BaseModel):
    text: str = Field(min_length=1, max_length=4000, description="The agent's reply.")


class Assistant:
    """The bot over the store: one customer message in, the stored reply out (turns masked, state saved)."""

    def __init__(self, bot: Bot, store: Store, max_chars: int = 2000) -> None:
        self.bot, self.store, self.max_chars = bot, store, max_chars
        self.lock = threading.Lock()

    def check(self, text: str) -> str:
        """The message stripped, or an :class:`ApiError` saying what is wrong with it."""
        text = text.strip()
        if not text:
            raise ApiError(422, "invalid_request", "text is empty; type a question", "text")
        if len(text) > self.max_chars:
            raise ApiError(413, "too_large", f"text has {len(text)} characters; the limit is {self.max_chars}", "text")
        if any(ord(c) < 32 and c not in "\t\n\r" for c in text) or "\ufffd" in text:
            raise ApiError(422, "invalid_request", "text holds binary or undecodable characters; send plain UTF-8 text", "text")
        return text

    def conversation(self, conversation_id: str) -> Any:
        """The stored conversation, or 404."""
        conv = self.store.get(conversation_id) if len(conversation_id) <= 64 else None
        if conv is None:
            raise ApiError(404, "not_found", "no conversation with that id; start one with POST /v1/support/conversations")
        return conv

    def message(self, conversation_id: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        """Store the customer's message and the reply; the reply's fields with its turn id."""
        started = time.perf_counter()
        text = self.check(text)
        with self.lock:
            conv = self.conversation(conversation_id)
            if conv.status == "closed":
                raise ApiError(409, "conflict", "this conversation is closed; start a new one")
            try:
                asked = self.store.add_turn(conv.id, "customer", text, message_id)
            except DuplicateMessage:
                raise ApiError(409, "duplicate", f"message {message_id!r} was already received; send a new message_id") from None
            if conv.status in ("queued", "agent"):
                reply, state = Reply(WAITING, "waiting"), conv.state
            else:
                reply, state = self.bot.respond(text, conv.state, conv.id)
            status = "queued" if reply.handoff else None
            self.store.save_state(conv.id, mask_obj(state), status)
            if reply.handoff:
                self.store.hand_off(conv.id, reply.handoff)
            ms = (time.perf_counter() - started) * 1000
            turn = self.store.add_turn(conv.id, "bot", reply.text, kind=reply.kind, intent=reply.intent,
                                       confidence=reply.confidence, latency_ms=ms, reply_to=asked.id)
        return {"turn_id": turn.id, "conversation_id": conv.id, "status": "queued" if reply.handoff else conv.status,
                **reply.as_dict()}

    def transcript(self, conversation_id: str) -> dict[str, Any]:
        """The conversation's status and turns (masked as stored)."""
        conv = self.conversation(conversation_id)
        turns = [{"id": t.id, "role": t.role, "text": t.text, "kind": t.kind, "intent": t.intent, "confidence": t.confidence,
                  "feedback": t.feedback, "at": t.created.isoformat(timespec="seconds")} for t in self.store.turns(conv.id)]
        return {"id": conv.id, "status": conv.status, "turns": turns}


def assistant_of(request: Request) -> Assistant:
    """The :class:`Assistant` the app holds."""
    return request.app.state.support


def api_router() -> APIRouter:
    """The ``/v1/support`` routes."""
    router = APIRouter(prefix="/v1/support", tags=["support"])

    @router.post("/conversations")
    async def start(body: NewConversation, request: Request, _: CustomerKey) -> dict[str, Any]:
        """Start a conversation; its id is the only handle on it."""
        conv = assistant_of(request).store.create(body.language)
        hello = "您好！我是Larkspur银行的助手，请问有什么可以帮您？" if body.language == "zh" else \
            "Hello! I'm the Larkspur Bank assistant. How can I help?"
        return {"conversation_id": conv.id, "greeting": hello}

    @router.post("/conversations/{conversation_id}/messages")
    async def message(conversation_id: str, body: Message, request: Request, _: CustomerKey) -> dict[str, Any]:
        """Send a message; the bot's reply (or a note that a person has the conversation)."""
        return await asyncio.to_thread(assistant_of(request).message, conversation_id, body.text, body.message_id)

    @router.get("/conversations/{conversation_id}")
    async def transcript(conversation_id: str, request: Request, _: CustomerKey) -> dict[str, Any]:
        """The conversation's turns (customer, bot and agent)."""
        return assistant_of(request).transcript(conversation_id)

    @router.post("/conversations/{conversation_id}/feedback")
    async def feedback(conversation_id: str, body: Feedback, request: Request, _: CustomerKey) -> dict[str, Any]:
        """Thumbs up or down on one bot turn of this conversation."""
        a = assistant_of(request)
        a.conversation(conversation_id)
        if not a.store.feedback(conversation_id, body.turn_id, body.value):
            raise ApiError(404, "not_found", "no bot turn with that id in this conversation")
        return {"ok": True}

    @router.get("/queue")
    async def queue(request: Request, _: AgentKey) -> dict[str, Any]:
        """Conversations waiting for (or with) a person."""
        return {"conversations": assistant_of(request).store.queue()}

    @router.get("/agent/conversations/{conversation_id}")
    async def agent_transcript(conversation_id: str, request: Request, _: AgentKey) -> dict[str, Any]:
        """Any conversation's transcript, for the agent."""
        return assistant_of(request).transcript(conversation_id)

    @router.post("/agent/conversations/{conversation_id}/reply")
    async def reply(conversation_id: str, body: AgentMessage, request: Request, _: AgentKey) -> dict[str, Any]:
        """The agent answers the customer."""
        a = assistant_of(request)
        a.conversation(conversation_id)
        turn = a.store.agent_reply(conversation_id, a.check(body.text))
        return {"turn_id": turn.id}

    @router.post("/agent/conversations/{conversation_id}/close")
    async def close(conversation_id: str, request: Request, _: AgentKey) -> dict[str, Any]:
        """Close the conversation."""
        a = assistant_of(request)
        a.conversation(conversation_id)
        a.store.close(conversation_id)
        return {"ok": True}

    @router.get("/analytics")
    async def stats(request: Request, _: AgentKey) -> dict[str, Any]:
        """Containment, fallback and handoff rates, intents, feedback by day, unsure examples."""
        a = assistant_of(request)
        return analytics.summary(a.store, a.bot.cfg.confident)

    @router.get("/export.csv")
    async def export(request: Request, _: AgentKey) -> Response:
        """Unsure and thumbs-down customer messages as CSV, to label and retrain with."""
        a = assistant_of(request)
        return Response(analytics.export_csv(a.store, a.bot.cfg.confident), media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=support_to_label.csv"})

    return router


def page_router() -> APIRouter:
    """The pages and their static files (no key: they ask for one and send it with each API call)."""
    router = APIRouter(prefix="/support", include_in_schema=False)

    @router.get("/{page}", response_class=HTMLResponse)
    async def page(page: str) -> Any:
        if page not in PAGES:
            raise ApiError(404, "not_found", f"no page {page!r}; try /support/, /support/agent or /support/analytics")
        return FileResponse(STATIC / PAGES[page], media_type="text/html")

    @router.get("/", response_class=HTMLResponse)
    async def chat() -> Any:
        return FileResponse(STATIC / PAGES[""], media_type="text/html")

    @router.get("/static/{name}")
    async def static(name: str) -> Any:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise ApiError(404, "not_found", f"no static file {name!r}")
        return FileResponse(path)

    return router


def detect_language(text: str) -> str:
    """The language the reply should use."""
    return language(text)
