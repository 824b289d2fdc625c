"""The studio's JSON endpoints: runs, the playground (predict, explain, streamed generation), launches and sign-in.

Endpoints that compute (loading a model, predicting, explaining) are plain functions, which FastAPI
runs in its thread pool, so one slow model never blocks the pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from lmforge.errors import LmforgeError
from lmforge.studio.auth import COOKIE, ENDPOINT
from lmforge.studio.launch import config_tree, config_yaml
from lmforge.studio.runs import run_detail

router = APIRouter(prefix="/api")


class PredictRequest(BaseModel):
    """A playground request: the run, the text (and the second text of pair tasks, e.g. a question's context)."""

    run: str
    text: str = Field(min_length=1, max_length=20_000)
    pair: str | None = Field(None, max_length=100_000)
    top_k: int = Field(5, ge=1, le=100)


class ExplainRequest(BaseModel):
    """Attributions of a classifier's prediction for one text."""

    run: str
    text: str = Field(min_length=1, max_length=5_000)
    method: str = "occlusion"


class LaunchRequest(BaseModel):
    """The launch form: dotted config keys with their values, and extra ``key=value`` lines."""

    fields: dict[str, Any] = Field(default_factory=dict)
    overrides: list[str] = Field(default_factory=list)


class LoginRequest(BaseModel):
    """An API key typed on the sign-in page."""

    key: str = Field(min_length=1, max_length=200)


def _studio(request: Request) -> Any:
    return request.app.state.studio


@router.get("/runs")
def list_runs(request: Request, kind: str | None = None, task: str | None = None, q: str | None = None) -> list[dict[str, Any]]:
    """Every run (newest first), optionally only of one ``kind`` or ``task``, or whose id or base model contains ``q``."""
    rows = _studio(request).index.scan()
    rows = [r for r in rows if (not kind or r.kind == kind) and (not task or r.task == task)
            and (not q or q.lower() in f"{r.id} {r.base_model} {r.method}".lower())]
    return [r.to_dict() for r in rows]


@router.get("/runs/{run_id:path}")
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    """One run's row, curves, config, final metrics, confusion matrix and report."""
    return run_detail(_studio(request).find(run_id))


@router.get("/models/{run_id:path}")
def describe_model(request: Request, run_id: str) -> dict[str, Any]:
    """What the playground can do with a run (loads it)."""
    studio = _studio(request)
    return studio.playground.describe(run_id, studio.find(run_id).path)


@router.post("/predict")
def predict(request: Request, body: PredictRequest) -> dict[str, Any]:
    """The run's prediction for a text: labels with probabilities, entities, an answer or generated text; with its latency."""
    studio = _studio(request)
    return studio.playground.predict(body.run, studio.find(body.run).path, body.text, body.pair, body.top_k)


@router.post("/explain")
def explain(request: Request, body: ExplainRequest) -> dict[str, Any]:
    """Per-word attributions of a classifier's predicted label (occlusion or integrated gradients), as scores and HTML."""
    studio = _studio(request)
    return studio.playground.explain(body.run, studio.find(body.run).path, body.text, body.method)


@router.get("/generate")
def generate(request: Request, run: str, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0) -> StreamingResponse:
    """Server-sent events: ``data: {"text": piece}`` as tokens are decoded, then ``event: done`` (or ``event: error``)."""
    studio = _studio(request)
    if not 1 <= max_new_tokens <= 1024:
        raise LmforgeError(f"max_new_tokens must be between 1 and 1024; got {max_new_tokens}")
    path = studio.find(run).path
    # Loaded here, so that a run that cannot generate is refused with a JSON error before the stream starts.
    if "generate" not in studio.playground.engine(run, path).slots[run].operations:
        raise LmforgeError(f"run {run} does not generate text; use Predict")
    return StreamingResponse(_events(studio, run, path, prompt, max_new_tokens, temperature), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _events(studio: Any, run: str, path: Any, prompt: str, max_new_tokens: int, temperature: float) -> Iterator[str]:
    try:
        for piece in studio.playground.stream(run, path, prompt, max_new_tokens, temperature):
            yield f"data: {json.dumps({'text': piece}, ensure_ascii=False)}\n\n"
    except LmforgeError as exc:
        yield f"event: error\ndata: {json.dumps({'message': str(exc)}, ensure_ascii=False)}\n\n"
        return
    yield "event: done\ndata: {}\n\n"


@router.post("/launch/preview")
def launch_preview(body: LaunchRequest) -> dict[str, Any]:
    """The YAML the form makes (what ``lmforge finetune`` will read), checked to be a valid config."""
    return {"yaml": config_yaml(config_tree(body.fields, body.overrides))}


@router.post("/launch")
def launch(request: Request, body: LaunchRequest) -> dict[str, Any]:
    """Start ``lmforge finetune`` on the form's config; the job's status follows on ``/api/jobs/{id}``."""
    launcher = _studio(request).launcher
    return launcher.status(launcher.start(config_tree(body.fields, body.overrides)).id)


@router.get("/jobs")
def jobs(request: Request) -> list[dict[str, Any]]:
    """The fine-tunes launched from this studio, newest first."""
    return _studio(request).launcher.list()


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str) -> dict[str, Any]:
    """A launched fine-tune's state, progress and log tail, with the run's id once the runs page lists it."""
    studio = _studio(request)
    status = studio.launcher.status(job_id)
    run_dir = status["run_dir"]
    status["run_id"] = next((r.id for r in studio.index.scan() if run_dir and str(r.path) == run_dir), None)
    return status


@router.post("/jobs/{job_id}/stop")
def stop(request: Request, job_id: str) -> dict[str, Any]:
    """Stop a launched fine-tune as Ctrl-C would (it can be resumed with ``--resume``)."""
    return _studio(request).launcher.stop(job_id)


@router.post("/login")
def login(request: Request, body: LoginRequest) -> JSONResponse:
    """Check an API key and keep it in an HttpOnly cookie for this browser."""
    authorizer = _studio(request).authorizer
    if authorizer is None:
        return JSONResponse({"status": "open", "message": "this studio listens on loopback and needs no key"})
    decision = authorizer.check(f"Bearer {body.key.strip()}", None, ENDPOINT)
    if not decision.ok:
        return JSONResponse({"error": {"type": "unauthorized", "message": decision.message}}, decision.status)
    response = JSONResponse({"status": "signed_in", "key": decision.key.id if decision.key else None})
    response.set_cookie(COOKIE, body.key.strip(), httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout() -> JSONResponse:
    """Forget this browser's key."""
    response = JSONResponse({"status": "signed_out"})
    response.delete_cookie(COOKIE)
    return response
