"""The HTTP face of an engine: a FastAPI app with keys, limits, metrics, PII-safe logs and streaming.

``create_app(engine, config)`` returns the app; uvicorn runs it (``lmforge serve``). Endpoints:
``POST /v1/classify``, ``/v1/embed``, ``/v1/generate`` (server-sent events with ``stream: true``),
``POST /v1/ner`` (entities with character offsets), ``POST /v1/qa`` (answers picked from contexts),
``POST /v1/explain`` (word attributions, token log-probabilities), ``GET /v1/models``, ``/healthz``, ``/readyz``,
``/metrics``, ``POST /v1/admin/reload``, and the OpenAPI docs at ``/docs``. Everything but ``/healthz`` and ``/readyz`` needs a key.

Applications add their own endpoints on the same app, behind the same keys, limits, metrics and logs:

.. code-block:: python

    from typing import Annotated
    from fastapi import APIRouter, Depends, Request
    from lmforge.serving.http import Caller, create_app, require_key, service_of

    router = APIRouter(prefix="/v1/support")

    @router.post("/answer")
    async def answer(body: Question, request: Request, caller: Annotated[Caller, Depends(require_key("support"))]):
        service = service_of(request)
        model = service.model_for(request, caller, "chat", "generate")
        service.check_texts([body.question], "question")
        text = (await service.run("generate", [body.question], model, options={"max_new_tokens": 200}))[0]
        return {"answer": text}

    app = create_app(engine, config, extra_routers=[router])
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from lmforge import __version__
from lmforge.evaluation.explainer import Explainer
from lmforge.serving import schemas
from lmforge.serving.alerts import AlertMonitor
from lmforge.serving.api import ERRORS, ApiError, Caller, Service, install_errors, require_key, service_of
from lmforge.serving.auth import Authorizer, KeyStore
from lmforge.serving.config import ServeConfig
from lmforge.serving.engine import Engine, RequestTimeout
from lmforge.serving.logs import Transcript, mask_handlers
from lmforge.serving.metrics import Metrics
from lmforge.serving.middleware import ServiceMiddleware
from lmforge.serving.privacy import mask_pii

_END = object()
router = APIRouter()


@router.get("/healthz", response_model=schemas.Health, response_model_exclude_none=True, tags=["operations"])
async def healthz() -> schemas.Health:
    """The process is alive (no key needed)."""
    return schemas.Health(status="ok")


@router.get("/readyz", response_model=schemas.Health, tags=["operations"], responses={503: {"model": schemas.Health}})
async def readyz(request: Request) -> Any:
    """Every model is loaded and warmed up and the service is not draining (no key needed)."""
    service = service_of(request)
    if service.draining or not service.engine.ready:
        status = "draining" if service.draining else "loading"
        return JSONResponse({"status": status}, 503)
    return schemas.Health(status="ready", models=len(service.engine.slots))


@router.get("/v1/models", response_model=schemas.ModelsResponse, tags=["models"], responses=ERRORS)
async def models(request: Request, caller: Annotated[Caller, Depends(require_key("models"))]) -> schemas.ModelsResponse:
    """The served models (those the key may use): kind, operations, labels, base model, version."""
    engine = service_of(request).engine
    visible = [m for m in engine.models() if caller.key is None or caller.key.allows_model(m["name"])]
    return schemas.ModelsResponse(default=engine.default_model, models=[schemas.ModelInfo(**m) for m in visible])


@router.post("/v1/classify", response_model=schemas.ClassifyResponse, response_model_exclude_none=True, tags=["inference"],
             responses=ERRORS)
async def classify(body: schemas.ClassifyRequest, request: Request,
                   caller: Annotated[Caller, Depends(require_key("classify"))]) -> schemas.ClassifyResponse:
    """Labels, probabilities and the top-k labels of each text (or text pair)."""
    service = service_of(request)
    model = service.model_for(request, caller, body.model, "classify")
    service.check_texts(body.texts, "texts")
    if body.pairs is not None:
        service.check_pairs(body.texts, body.pairs, "pairs")
    results = await service.run("classify", body.texts, model, body.pairs, {"top_k": body.top_k})
    service.store(request, {"route": "classify", "model": model, "inputs": body.texts, "outputs": results})
    return schemas.ClassifyResponse(model=model, version=service.version(model), results=results)


@router.post("/v1/embed", response_model=schemas.EmbedResponse, tags=["inference"], responses=ERRORS)
async def embed(body: schemas.EmbedRequest, request: Request,
                caller: Annotated[Caller, Depends(require_key("embed"))]) -> schemas.EmbedResponse:
    """One unit-length vector per text."""
    service = service_of(request)
    model = service.model_for(request, caller, body.model, "embed")
    service.check_texts(body.texts, "texts")
    vectors = [v.tolist() for v in await service.run("embed", body.texts, model)]
    return schemas.EmbedResponse(model=model, version=service.version(model), dim=len(vectors[0]), embeddings=vectors)


@router.post("/v1/ner", response_model=schemas.NerResponse, tags=["inference"], responses=ERRORS)
async def ner(body: schemas.NerRequest, request: Request,
              caller: Annotated[Caller, Depends(require_key("ner"))]) -> schemas.NerResponse:
    """The named entities of each text, with their types and character offsets (a ``ner`` run)."""
    service = service_of(request)
    model = service.model_for(request, caller, body.model, "ner")
    service.check_texts(body.texts, "texts")
    results = await service.run("ner", body.texts, model)
    service.store(request, {"route": "ner", "model": model, "inputs": body.texts, "outputs": results})
    return schemas.NerResponse(model=model, version=service.version(model), results=results)


@router.post("/v1/qa", response_model=schemas.QaResponse, tags=["inference"], responses=ERRORS)
async def qa(body: schemas.QaRequest, request: Request,
             caller: Annotated[Caller, Depends(require_key("qa"))]) -> schemas.QaResponse:
    """The answer to each question, picked from its context with its character offsets (a ``qa`` run)."""
    service = service_of(request)
    model = service.model_for(request, caller, body.model, "qa")
    service.check_texts(body.questions, "questions")
    service.check_pairs(body.questions, body.contexts, "contexts", "questions")
    results = await service.run("qa", body.questions, model, body.contexts)
    service.store(request, {"route": "qa", "model": model, "inputs": body.questions, "outputs": results})
    return schemas.QaResponse(model=model, version=service.version(model), results=results)


@router.post("/v1/generate", response_model=schemas.GenerateResponse, tags=["inference"],
             responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "JSON, or events with stream: true"}})
async def generate(body: schemas.GenerateRequest, request: Request,
                   caller: Annotated[Caller, Depends(require_key("generate"))]) -> Any:
    """Continue a prompt; with ``stream: true``, server-sent events ``data: {"text": ...}`` then ``event: done``."""
    service = service_of(request)
    model = service.model_for(request, caller, body.model, "generate")
    service.check_texts([body.prompt], "prompt")
    limit = service.config.limits.max_new_tokens
    if body.max_new_tokens > limit:
        raise ApiError(422, "invalid_request", f"max_new_tokens is {body.max_new_tokens}; the limit is {limit}", "max_new_tokens")
    if body.stream:
        return StreamingResponse(_events(service, request, model, body), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    text = (await service.run("generate", [body.prompt], model, options=body.options()))[0]
    service.store(request, {"route": "generate", "model": model, "inputs": [body.prompt], "outputs": [text]})
    return schemas.GenerateResponse(model=model, version=service.version(model), text=text)


@router.post("/v1/explain", response_model=schemas.ExplainResponse, response_model_exclude_none=True, tags=["inference"],
             responses=ERRORS)
async def explain(body: schemas.ExplainRequest, request: Request,
                  caller: Annotated[Caller, Depends(require_key("explain"))]) -> schemas.ExplainResponse:
    """Word attributions of a classifier's prediction (integrated gradients or occlusion), or a language model's token log-probabilities."""
    service = service_of(request)
    slot = service.engine.slots.get(body.model or service.engine.default_model)
    model = service.model_for(request, caller, body.model, "classify" if slot and "classify" in slot.operations else "generate")
    service.check_texts(body.texts, "texts")
    explainer = _explainer(service, model)
    texts = [mask_pii(t, service.config.privacy.kinds) for t in body.texts] if service.config.privacy.redact_inputs else body.texts
    timeout = service.config.server.request_timeout_s
    try:
        if explainer.mode == "generator":
            rows = await asyncio.wait_for(asyncio.to_thread(explainer.logprobs, texts), timeout)
            return schemas.ExplainResponse(model=model, version=service.version(model), kind="logprobs",
                                           logprobs=[r.to_dict() for r in rows])
        rows = await asyncio.wait_for(asyncio.to_thread(explainer.explain, texts, body.method, body.target, body.steps), timeout)
    except asyncio.TimeoutError:
        raise RequestTimeout(f"no explanation within {timeout:g} s; send fewer texts or use method occlusion") from None
    return schemas.ExplainResponse(model=model, version=service.version(model), kind="attributions",
                                   explanations=[r.to_dict() for r in rows])


def _explainer(service: Service, model: str) -> Explainer:
    """The explainer of the served version of ``model``, made once per version (a reload makes a new one)."""
    slot = service.engine.slots[model]
    cache = service.extra.setdefault("explainers", {})
    key = (model, slot.version, id(slot.artifact))
    if key not in cache:
        cache[key] = Explainer(slot.artifact)
    return cache[key]


async def _events(service: Service, request: Request, model: str, body: schemas.GenerateRequest) -> AsyncIterator[str]:
    loop, pieces = asyncio.get_running_loop(), asyncio.Queue()
    future = service.engine.submit("generate", [body.prompt], model, options=body.options(),
                                   stream=lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece))
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, _END))
    deadline = loop.time() + service.config.server.request_timeout_s
    try:
        while (piece := await asyncio.wait_for(pieces.get(), max(0.0, deadline - loop.time()))) is not _END:
            yield f"data: {json.dumps({'text': piece}, ensure_ascii=False)}\n\n"
        text = future.result()[0]
    except (asyncio.TimeoutError, RequestTimeout):
        future.cancel()
        yield f"event: error\ndata: {json.dumps({'type': 'timeout', 'message': 'generation did not finish in time'})}\n\n"
        return
    except Exception as exc:  # noqa: BLE001  (the status is already sent: the error goes in the stream)
        yield f"event: error\ndata: {json.dumps({'type': 'error', 'message': str(exc)}, ensure_ascii=False)}\n\n"
        return
    service.store(request, {"route": "generate", "model": model, "inputs": [body.prompt], "outputs": [text]})
    yield f"event: done\ndata: {json.dumps({'model': model, 'version': service.version(model)})}\n\n"


@router.post("/v1/admin/reload", tags=["operations"], responses=ERRORS)
async def reload(request: Request, _: Annotated[Caller, Depends(require_key("admin"))]) -> dict[str, Any]:
    """Load new versions of the served runs and swap them in without dropping a request (every worker)."""
    service = service_of(request)
    if service.reload is not None:
        return {"status": "reloading", "detail": await asyncio.to_thread(service.reload)}
    names = await asyncio.to_thread(service.engine.reload)
    return {"status": "reloaded", "models": {n: service.version(n) for n in names}}


async def _metrics(request: Request, _: Annotated[Caller, Depends(require_key("metrics"))]) -> Response:
    body, content_type = service_of(request).metrics.render()
    return Response(body, media_type=content_type)


def _lifespan(service: Service) -> Callable[[FastAPI], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not service.engine.ready:
            # Worker threads and warm-up start here, in the process that serves (after a fork).
            await asyncio.to_thread(service.engine.start)
        service.alerts.start()
        if service.on_ready is not None:
            service.on_ready()
        yield
        service.draining = True
        service.alerts.stop()
        await asyncio.to_thread(service.engine.close, True, service.config.server.drain_timeout_s)

    return lifespan


def create_app(engine: Engine, config: ServeConfig, *, metrics: Metrics | None = None,
               extra_routers: Sequence[APIRouter] = (), authorizer: Authorizer | None = None,
               reload: Callable[[], Any] | None = None, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The service's FastAPI app over ``engine``.

    Args:
        engine: The engine (started or not: the app's startup starts it).
        config: The service config (limits, keys, logging, alerts).
        metrics: The metrics the engine reports to; when None, the engine's own, or new ones it then reports to.
        extra_routers: Applications' routers, mounted with the same keys (:func:`require_key`), limits, metrics and logs.
        authorizer: The key check; built from ``config.auth`` when None (no keys when ``auth.enabled`` is false).
        reload: What ``POST /v1/admin/reload`` does; ``engine.reload`` when None (a multi-worker server reloads every worker).
        on_ready: Called once the engine is warm (the worker tells its supervisor).
    """
    if metrics is None:
        metrics = engine.observer if isinstance(engine.observer, Metrics) else Metrics()
        engine.observer = metrics
        for slot in engine.slots.values():
            metrics.model_loaded(slot.name, slot.load_seconds)
    if authorizer is None and config.auth.enabled:
        authorizer = Authorizer(KeyStore(config.auth.store_path()))
    alerts = AlertMonitor(config.alerts, lambda: engine.batcher.depth / engine.batcher.queue_size)
    transcript = Transcript(config.logging.store, config.privacy.kinds) if config.logging.store else None
    service = Service(engine, config, metrics, authorizer, alerts, transcript, reload, on_ready)
    mask_handlers()
    app = FastAPI(title="lmforge", version=__version__, lifespan=_lifespan(service),
                  description="Classify, embed and generate with lmforge runs. Send `Authorization: Bearer lmf_...`.")
    app.state.lmforge = service
    install_errors(app)
    app.include_router(router)
    if config.server.metrics_port is None:
        app.add_api_route("/metrics", _metrics, methods=["GET"], tags=["operations"], response_class=Response, responses=ERRORS)
    for extra in extra_routers:
        app.include_router(extra)
    app.add_middleware(ServiceMiddleware, service=service)
    return app


__all__ = ["ApiError", "Caller", "Service", "create_app", "require_key", "router", "service_of"]
