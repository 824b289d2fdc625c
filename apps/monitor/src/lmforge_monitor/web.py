"""HTTP: the monitor's routes on lmforge's service app (same keys, limits, metrics and masked logs), and the dashboard.

``POST /v1/monitor/ingest`` takes pushed items; ``GET /v1/monitor/{entities,candidates,series,items,alerts,stats}``
and ``GET /v1/monitor/items/{id}/explain`` (the words that drove each sentence's score)
feed the dashboard at ``GET /monitor`` (a page and a small script; the data routes need a key, which
the page asks for once and keeps in the browser).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from lmforge.serving.http import ApiError, Caller, require_key
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from lmforge_monitor import alerts, store
from lmforge_monitor.entities import split_sentences
from lmforge_monitor.ingest import Raw
from lmforge_monitor.pipeline import Monitor

STATIC = Path(__file__).parent / "static"
EXPLAINED_SENTENCES = 8  # occlusion costs one forward pass per word: a long item explains its first sentences


class PushedItem(BaseModel):
    timestamp: str | float | None = Field(None, description="ISO 8601 or epoch seconds; the arrival time when absent.")
    source: str = Field("api", max_length=200, description="Where the item comes from.")
    text: str = Field(description="The news text or post.")
    title: str | None = None
    url: str | None = None


class IngestRequest(BaseModel):
    items: list[PushedItem] = Field(min_length=1, max_length=1000)


def item_rows(conn: Any, ids: list[int] | None = None, entity: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Items (newest first, or the given ids) with their mentions and the sentences that scored them."""
    query = select(store.items).order_by(store.items.c.ts.desc(), store.items.c.id.desc()).limit(limit)
    if ids is not None:
        query = select(store.items).where(store.items.c.id.in_(ids))
    elif entity:
        query = query.where(store.items.c.id.in_(select(store.mentions.c.item_id).where(store.mentions.c.entity == entity)))
    rows = [dict(r._mapping) for r in conn.execute(query).all()]
    found = {r["id"]: r for r in rows}
    for r in rows:
        r["mentions"] = []
    if found:
        for m in conn.execute(select(store.mentions).where(store.mentions.c.item_id.in_(list(found)))).all():
            found[m.item_id]["mentions"].append({"entity": m.entity, "score": m.score, "label": m.label, "sentences": m.sentences})
    return rows


def build_router(monitor: Monitor) -> APIRouter:
    """The monitor's routes over one :class:`Monitor`."""
    router = APIRouter(tags=["monitor"])
    db = monitor.db

    @router.post("/v1/monitor/ingest")
    async def ingest(body: IngestRequest, request: Request, _: Annotated[Caller, Depends(require_key("ingest"))]) -> dict[str, Any]:
        """Store pushed items (re-sending one changes nothing); returns counts and the alerts they fired."""
        records = [Raw(i.model_dump(), f"api#{n}") for n, i in enumerate(body.items)]
        result = await asyncio.to_thread(monitor.ingest, records)
        return {**result.summary(), "item_ids": result.item_ids, "alerts": result.alerts}

    @router.get("/v1/monitor/entities")
    async def entities(_: Annotated[Caller, Depends(require_key("monitor"))]) -> list[dict[str, Any]]:
        """The watchlist with each company's mention count and mean sentiment."""
        with db.connect() as conn:
            stats = {e: (n, m) for e, n, m in conn.execute(
                select(store.mentions.c.entity, func.count(), func.avg(store.mentions.c.score))
                .group_by(store.mentions.c.entity)).all()}
        return [{"ticker": t, "name": e.name, "aliases": list(e.aliases), "mentions": stats.get(t, (0, None))[0],
                 "mean": None if stats.get(t, (0, None))[1] is None else round(stats[t][1], 4)}
                for t, e in monitor.watchlist.entities.items()]

    @router.get("/v1/monitor/candidates")
    async def candidate_list(_: Annotated[Caller, Depends(require_key("monitor"))],
                             limit: Annotated[int, Query(ge=1, le=500)] = 20) -> dict[str, Any]:
        """Organizations the NER run found that the watchlist does not name (most items first), and whether a NER run is set."""
        with db.connect() as conn:
            return {"ner": monitor.candidates is not None, "candidates": store.candidate_rows(conn, limit)}

    @router.get("/v1/monitor/series")
    async def series(_: Annotated[Caller, Depends(require_key("monitor"))], entity: str | None = None,
                     bucket: Literal["hour", "day"] = "day") -> dict[str, Any]:
        """Mean sentiment and volume per hour or day, for one entity or for every item."""
        with db.connect() as conn:
            return {"entity": entity, "bucket": bucket, "points": store.series(conn, entity, bucket)}

    @router.get("/v1/monitor/items")
    async def items(_: Annotated[Caller, Depends(require_key("monitor"))], entity: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
        """The latest items with their scores and the sentences that named each entity."""
        with db.connect() as conn:
            return item_rows(conn, entity=entity, limit=limit)

    @router.get("/v1/monitor/items/{item_id}/explain")
    async def explain(item_id: int, _: Annotated[Caller, Depends(require_key("monitor"))]) -> dict[str, Any]:
        """Word attributions (occlusion) of the sentences that scored the item: positive words push towards the sentence's label."""
        if monitor.scorer.explain is None:
            raise ApiError(501, "unavailable", "this monitor's scorer cannot explain its scores (it is not an lmforge run)")
        with db.connect() as conn:
            rows = item_rows(conn, ids=[item_id])
        if not rows:
            raise ApiError(404, "not_found", f"no item {item_id}")
        sentences = list(dict.fromkeys(s["text"] for m in rows[0]["mentions"] for s in m["sentences"]))
        sentences = sentences or split_sentences(rows[0]["text"])[:EXPLAINED_SENTENCES] or [rows[0]["text"][:500]]
        explained = await asyncio.to_thread(monitor.scorer.explain, sentences[:EXPLAINED_SENTENCES])
        return {"item_id": item_id, "method": "occlusion", "sentences": explained}

    @router.get("/v1/monitor/alerts")
    async def alert_list(_: Annotated[Caller, Depends(require_key("monitor"))], entity: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
        """The newest alerts, each with the items that caused it."""
        with db.connect() as conn:
            rows = alerts.recent(conn, limit, entity)
            for a in rows:
                a["items"] = item_rows(conn, ids=list(a["item_ids"])[:10])
        return rows

    @router.get("/v1/monitor/stats")
    async def stats(_: Annotated[Caller, Depends(require_key("monitor"))]) -> dict[str, Any]:
        """Counts of items, mentions, alerts, and rejected or repaired input by reason."""
        with db.connect() as conn:
            return store.counts(conn)

    @router.get("/monitor", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @router.get("/monitor/static/{name}", include_in_schema=False)
    async def static(name: Literal["app.js", "style.css"]) -> FileResponse:
        return FileResponse(STATIC / name)

    return router
