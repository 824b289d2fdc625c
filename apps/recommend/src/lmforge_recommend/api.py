"""The HTTP face: ``POST /v1/recommend``, ``POST /v1/similar``, profiles, feedback, title search and the web page.

The routes are a FastAPI router mounted on lmforge's service app (``lmforge.serving.create_app``),
so they answer behind the same API keys (endpoint scope ``recommend``), rate limits, body limits,
Prometheus metrics and PII-masked access logs as lmforge's own endpoints, and errors have the
service's one JSON shape: an unknown user or item id is 404 naming the field, any other bad
request 422 naming the problem.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from lmforge.errors import LmforgeError
from lmforge.serving.api import ApiError, Caller, service_of
from lmforge.serving.http import require_key
from pydantic import BaseModel, ConfigDict, Field

from lmforge_recommend.recommender import Recommender, UnknownId
from lmforge_recommend.store import Store, who

STATIC = Path(__file__).parent / "static"
ENDPOINT = "recommend"
Key = Annotated[Caller, Depends(require_key(ENDPOINT))]  # every route but the page needs a key scoped for "recommend"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Body):
    """Who to recommend for (a training user, a saved profile, liked films, free text, or a mix) and the filters."""

    user_id: int | None = Field(None, description="a user of the training ratings")
    profile: str | None = Field(None, max_length=100, description="a saved profile: its liked films are the history")
    liked_items: list[int] | None = Field(None, max_length=500, description="item ids the user likes, oldest first")
    text: str | None = Field(None, max_length=500, description="free text, e.g. 'space adventure with robots'")
    k: int = Field(10, description="how many films (1 to serve.max_k)")
    genres: list[str] | None = Field(None, description="keep films of at least one of these genres")
    years: tuple[int, int] | None = Field(None, description="keep films released in [first, last]")


class SimilarRequest(_Body):
    """A film and how many like it."""

    item_id: int = Field(description="an item id of u.item")
    k: int = Field(10, description="how many films (1 to serve.max_k)")


class ProfileRequest(_Body):
    """A new user's stated likes, kept under a name of the client's choosing."""

    name: str = Field(min_length=1, max_length=100)
    liked_items: list[int] = Field(min_length=1, max_length=500)


class FeedbackRequest(_Body):
    """A reaction to a recommended film."""

    user_id: int | None = None
    profile: str | None = Field(None, max_length=100)
    item_id: int
    action: Literal["liked", "dismissed"]


def build_router(rec: Recommender, store: Store) -> APIRouter:
    """The application's routes over a fitted recommender and its store."""
    router = APIRouter(tags=["recommend"])

    @router.post("/v1/recommend")
    async def recommend(body: RecommendRequest, request: Request, caller: Key) -> dict[str, Any]:
        """The k best unseen films, each with the reason it was chosen ("because you watched X")."""
        if body.text is not None:
            service_of(request).check_texts([body.text], "text")
        liked, key = list(body.liked_items or []), who(body.user_id, body.profile)
        if body.profile is not None:
            stored = store.profile(body.profile)
            if stored is None:
                raise ApiError(404, "not_found", f"no profile named {body.profile!r}; create it with POST /v1/recommend/profiles", "profile")
            liked = stored + liked
        dismissed = store.items(key, "dismissed") if body.user_id is not None or body.profile is not None else []
        items = await _call(rec.recommend, user_id=body.user_id, liked_items=liked or body.liked_items, text=body.text, k=body.k,
                            genres=body.genres, years=body.years, exclude=dismissed)
        if body.user_id is not None or body.profile is not None:
            store.record(key, [r["item_id"] for r in items], "served", request.state.request_id)
        return {"items": items, "request_id": request.state.request_id}

    @router.post("/v1/similar")
    async def similar(body: SimilarRequest, request: Request, caller: Key) -> dict[str, Any]:
        """The k films most like a film: rated by the same users and alike in text."""
        return {"items": await _call(rec.similar, body.item_id, k=body.k), "request_id": request.state.request_id}

    @router.post("/v1/recommend/profiles")
    async def save_profile(body: ProfileRequest, caller: Key) -> dict[str, Any]:
        """Create or replace a new user's profile from the films they like."""
        await _call(rec.check_items, body.liked_items, "liked_items")
        return store.save_profile(body.name.strip(), body.liked_items)

    @router.get("/v1/recommend/profiles/{name}")
    async def get_profile(name: str, caller: Key) -> dict[str, Any]:
        """A saved profile's liked films."""
        liked = store.profile(name)
        if liked is None:
            raise ApiError(404, "not_found", f"no profile named {name!r}; create it with POST /v1/recommend/profiles", "name")
        return {"name": name, "liked_items": liked, "dismissed": store.items(who(None, name), "dismissed")}

    @router.post("/v1/recommend/feedback")
    async def feedback(body: FeedbackRequest, caller: Key) -> dict[str, Any]:
        """Record that a user or profile liked or dismissed a film; a profile's likes join its history."""
        if (body.user_id is None) == (body.profile is None):
            raise ApiError(422, "invalid_request", "give exactly one of user_id and profile", "user_id")
        await _call(rec.check_items, [body.item_id], "item_id")
        if body.user_id is not None:
            await _call(rec.check_user, body.user_id)
        elif store.profile(body.profile) is None:
            raise ApiError(404, "not_found", f"no profile named {body.profile!r}; create it with POST /v1/recommend/profiles", "profile")
        if body.profile is not None and body.action == "liked":
            store.save_profile(body.profile, [*store.profile(body.profile), body.item_id])
        store.record(who(body.user_id, body.profile), [body.item_id], body.action)
        return {"status": "recorded"}

    @router.get("/v1/recommend/items")
    async def search(caller: Key, q: Annotated[str, Query(max_length=100)] = "", limit: Annotated[int, Query(ge=1, le=50)] = 10) -> dict:
        """Films whose title contains ``q``, the most rated first."""
        return {"items": await _call(rec.search, q, limit)}

    @router.get("/recommend", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        """The web page (no key: the page asks for one and sends it with each call)."""
        options = "".join(f'<option value="{html.escape(g)}">{html.escape(g)}</option>' for g in rec.catalogue.genre_names)
        body = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{GENRES}}", options)
        return HTMLResponse(body.replace("{{MAX_K}}", str(rec.config.serve.max_k)))

    @router.get("/recommend/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        """The page's script and style sheet."""
        path = STATIC / name
        if name not in ("recommend.js", "recommend.css") or not path.is_file():
            raise ApiError(404, "not_found", f"no static file {name!r}")
        return FileResponse(path)

    return router


async def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a recommender call off the event loop; its errors become 404 (unknown id) or 422 naming the field."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except UnknownId as exc:
        raise ApiError(404, "not_found", str(exc), exc.field) from None
    except LmforgeError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
