"""What every route of the service shares: the :class:`Service`, the key check, errors and their one JSON shape.

Applications mount their own routers on the service's app (see :mod:`lmforge.serving.http`) and use
these pieces so that their endpoints get the same keys, limits and errors as the built-in ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from lmforge.errors import LmforgeError
from lmforge.serving import schemas
from lmforge.serving.alerts import AlertMonitor
from lmforge.serving.auth import Authorizer, KeyRecord
from lmforge.serving.batching import QueueFull, Stopped
from lmforge.serving.config import ServeConfig
from lmforge.serving.engine import Engine, RequestTimeout, UnknownModel, Unsupported
from lmforge.serving.logs import Transcript
from lmforge.serving.metrics import Metrics

_LOG = logging.getLogger("lmforge.serving")
_BEARER = HTTPBearer(auto_error=False, description="An API key from `lmforge keys create`: Authorization: Bearer lmf_...")
ERRORS = {code: {"model": schemas.ErrorResponse} for code in (401, 403, 404, 413, 422, 429, 503, 504)}


class ApiError(Exception):
    """An error answered with :class:`~lmforge.serving.schemas.ErrorResponse`.

    Args:
        status: HTTP status.
        kind: The error type (``unauthorized``, ``invalid_request``...).
        message: One sentence for the client.
        field: The request field at fault, for 422.
        retry_after: Seconds, sent as ``Retry-After`` (429, 503).
    """

    def __init__(self, status: int, kind: str, message: str, field: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.field, self.retry_after = status, kind, message, field, retry_after


@dataclass
class Caller:
    """Who is calling: the key's record, or None when the service runs without keys."""

    key: KeyRecord | None = None

    @property
    def key_id(self) -> str | None:
        """The key's id (logged; never the secret)."""
        return self.key.id if self.key else None


@dataclass
class Service:
    """What the routes share: the engine, config, keys, metrics, alerts and transcript. ``app.state.lmforge`` holds it."""

    engine: Engine
    config: ServeConfig
    metrics: Metrics
    authorizer: Authorizer | None
    alerts: AlertMonitor
    transcript: Transcript | None = None
    reload: Callable[[], Any] | None = None
    on_ready: Callable[[], None] | None = None
    draining: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def model_for(self, request: Request, caller: Caller, model: str | None, operation: str) -> str:
        """The model a request uses (the default when None), checked to exist, to do ``operation`` and to be in the key's scope."""
        slot = self.engine.slot(model, operation)
        if caller.key is not None and not caller.key.allows_model(slot.name):
            raise ApiError(403, "forbidden", f"key {caller.key.id} may not use model {slot.name!r}")
        request.state.model = slot.name
        return slot.name

    def check_texts(self, texts: Sequence[str], name: str) -> None:
        """422 naming the field when there are too many texts or one is too long."""
        limits = self.config.limits
        if len(texts) > limits.max_items:
            raise ApiError(422, "invalid_request", f"{name} has {len(texts)} items; the limit is {limits.max_items} per request",
                           name)
        for i, text in enumerate(texts):
            if len(text) > limits.max_text_chars:
                raise ApiError(422, "invalid_request", f"{name}[{i}] has {len(text)} characters; the limit is "
                               f"{limits.max_text_chars}", f"{name}[{i}]")

    def check_pairs(self, texts: Sequence[str], seconds: Sequence[str], name: str, first: str = "texts") -> None:
        """:meth:`check_texts` on ``seconds``, then 422 naming ``name`` unless there is one per text of ``first``."""
        self.check_texts(seconds, name)
        if len(seconds) != len(texts):
            raise ApiError(422, "invalid_request", f"{name} has {len(seconds)} texts for {len(texts)} {first}", name)

    async def run(self, operation: str, inputs: list[str], model: str, pairs: list[str] | None = None,
                  options: dict[str, Any] | None = None) -> list[Any]:
        """Queue one request on the engine and await its results, within the request timeout (504 past it)."""
        future = self.engine.submit(operation, inputs, model, pairs, options)
        timeout = self.config.server.request_timeout_s
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()
            raise RequestTimeout(f"no answer within {timeout:g} s; retry later or with fewer texts") from None

    def store(self, request: Request, record: dict[str, Any]) -> None:
        """Append a request and its outputs to the transcript, when ``logging.store`` is set (PII masked)."""
        if self.transcript is not None:
            self.transcript.write({"request_id": request.state.request_id, "key": getattr(request.state, "key_id", None), **record})

    def version(self, model: str) -> str | None:
        """The served version of ``model``."""
        slot = self.engine.slots.get(model)
        return slot.version if slot else None


def service_of(request: Request) -> Service:
    """The :class:`Service` of the app serving ``request`` (for applications' routes)."""
    return request.app.state.lmforge


def require_key(endpoint: str) -> Callable[..., Caller]:
    """A dependency that admits a request with a valid key scoped for ``endpoint``: ``Depends(require_key("classify"))``.

    Missing, malformed, unknown or revoked keys get 401, keys not scoped for the endpoint 403, keys
    over their rate 429 with ``Retry-After``. Model scopes are checked by :meth:`Service.model_for`.
    """

    def dependency(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> Caller:
        authorizer = service_of(request).authorizer
        if authorizer is None:
            return Caller()
        decision = authorizer.check(request.headers.get("authorization"), None, endpoint)
        request.state.key_id = decision.key.id if decision.key else None
        if decision.ok:
            return Caller(decision.key)
        kinds = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}
        raise ApiError(decision.status, kinds.get(decision.status, "unauthorized"), decision.message, retry_after=decision.retry_after)

    dependency.__name__ = f"require_key_{endpoint}"
    return dependency


def _error(request: Request, status: int, kind: str, message: str, field: str | None = None,
           retry_after: float | None = None) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, "request_id": getattr(request.state, "request_id", None)}}
    if field is not None:
        body["error"]["field"] = field
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status, headers=headers)


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def install_errors(app: FastAPI) -> None:
    """Answer every error with :class:`~lmforge.serving.schemas.ErrorResponse` and its status (and Retry-After)."""
    def handle(exc_type: type[BaseException], status: int, kind: str, retry: Callable[[Any], float | None] = lambda e: None) -> None:
        async def handler(request: Request, exc: Any) -> JSONResponse:
            return _error(request, status, kind, str(exc), retry_after=retry(exc))

        app.add_exception_handler(exc_type, handler)

    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.status, exc.kind, exc.message, exc.field, exc.retry_after)

    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = _field(first.get("loc", ()))
        # The message only: pydantic's error also holds the input, which may hold PII.
        return _error(request, 422, "invalid_request", f"{where}: {first.get('msg', 'invalid value')}", where)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "invalid_request", 413: "too_large"}
        return _error(request, exc.status_code, kinds.get(exc.status_code, "invalid_request"), str(exc.detail))

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        _LOG.exception("request %s failed", getattr(request.state, "request_id", "-"))
        return _error(request, 500, "internal", "the service failed on this request; the request id is in its log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    handle(QueueFull, 503, "overloaded", lambda e: e.retry_after)
    handle(Stopped, 503, "unavailable", lambda e: 1.0)
    handle(RequestTimeout, 504, "timeout")
    handle(UnknownModel, 404, "not_found")
    handle(Unsupported, 422, "invalid_request")
    handle(LmforgeError, 422, "invalid_request")
    app.add_exception_handler(Exception, internal)
