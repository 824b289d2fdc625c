"""Who may use the studio: anyone on this machine when it listens on loopback, holders of the service's API keys otherwise.

The keys are the service's own (``lmforge keys create NAME --endpoints studio``, or a key for all
endpoints). Programs send ``Authorization: Bearer lmf_...``; a browser signs in once on ``/login``
and keeps the key in an HttpOnly, same-site cookie, checked on every request like the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from lmforge.errors import ConfigError
from lmforge.serving.auth import Authorizer, KeyStore, default_store_path

ENDPOINT = "studio"
COOKIE = "lmforge_studio_key"
# Reachable without a key: the sign-in page and what it needs.
OPEN_PATHS = ("/login", "/api/login", "/static/", "/healthz")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def authorizer_for(host: str, store_path: Path | None) -> Authorizer | None:
    """The key check for a studio bound to ``host``: None on loopback, the key store's otherwise.

    Raises:
        ConfigError: The studio would listen beyond this machine while the key store holds no active key.
    """
    if is_loopback(host):
        return None
    store = KeyStore(store_path or default_store_path())
    if not any(not record.revoked for record in store.list()):
        raise ConfigError(f"the studio listens on {host}, beyond this machine, and needs an API key: create one with "
                          f"lmforge keys create studio --endpoints studio (key store {store.path}), or use --host 127.0.0.1")
    return Authorizer(store)


def header_of(request: Request) -> str | None:
    """The request's ``Authorization`` header, or the signed-in browser's cookie made into one."""
    header = request.headers.get("authorization")
    if header:
        return header
    cookie = request.cookies.get(COOKIE)
    return f"Bearer {cookie}" if cookie else None


def middleware(authorizer: Authorizer) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """An HTTP middleware admitting requests with a valid key; pages redirect to ``/login``, API calls get a JSON error."""

    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS):
            return await call_next(request)
        decision = authorizer.check(header_of(request), None, ENDPOINT)
        if decision.ok:
            return await call_next(request)
        if path.startswith("/api/"):
            headers = {"Retry-After": f"{decision.retry_after:.0f}"} if decision.retry_after else None
            return JSONResponse({"error": {"type": "unauthorized", "message": decision.message}}, decision.status, headers)
        return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)

    return check
