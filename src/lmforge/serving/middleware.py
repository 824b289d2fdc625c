"""One ASGI middleware for every route, built-in or added: request ids, the body-size limit, metrics, alerts, access logs.

It is plain ASGI (no ``BaseHTTPMiddleware``), so streamed responses pass through untouched and are
timed to their last byte.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from lmforge.serving.logs import access_line

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _route(scope: Scope) -> str:
    # The route template, not the raw path: metric labels stay few whatever paths clients try.
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def too_large(limit: int) -> HTTPException:
    """The 413 error of a body over ``limit`` bytes."""
    return HTTPException(413, f"the request body is larger than {limit} bytes; send fewer or shorter texts")


class ServiceMiddleware:
    """Wraps the app: ids, limits and observation for every HTTP request.

    Args:
        app: The ASGI app.
        service: The :class:`~lmforge.serving.http.Service` (config, metrics, alerts).
    """

    def __init__(self, app: ASGIApp, service: Any) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        limit = self.service.config.server.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._reject(send, request_id, 413, "too_large", str(too_large(limit).detail))
            self._observe(scope, 413, 0.0)
            return
        status = {"code": 500}
        start = time.perf_counter()
        received = {"bytes": 0}

        async def limited_receive() -> Message:
            message = await receive()
            received["bytes"] += len(message.get("body", b""))
            if received["bytes"] > limit:
                raise too_large(limit)
            return message

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                extra = [(b"x-request-id", request_id.encode())]
                if self.service.draining:
                    # The client learns with this answer that the connection ends, so it never sends on a closing one.
                    extra.append((b"connection", b"close"))
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        metrics = self.service.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, limited_receive, tagged_send)
        finally:
            metrics.in_flight.dec()
            self._observe(scope, status["code"], time.perf_counter() - start)

    async def _reject(self, send: Callable[[Message], Awaitable[None]], request_id: str, code: int, kind: str, message: str) -> None:
        body = json.dumps({"error": {"type": kind, "message": message, "request_id": request_id}}).encode()
        await send({"type": "http.response.start", "status": code,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", request_id.encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def _observe(self, scope: Scope, code: int, seconds: float) -> None:
        state = scope.get("state", {})
        route, model = _route(scope), state.get("model", "-")
        self.service.metrics.request(route, model, code, seconds)
        self.service.alerts.record(code, seconds)
        if self.service.config.logging.access_log:
            access_line(request_id=state.get("request_id"), method=scope.get("method"), route=route, status=code,
                        ms=round(seconds * 1000, 2), model=model, key=state.get("key_id"))
