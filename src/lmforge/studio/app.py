"""The studio's FastAPI app: server-rendered pages (Jinja2) over the runs, the playground, launches and the applications.

``create_app(runs=[...])`` returns the app; ``lmforge studio`` runs it with uvicorn. Pages fetch
their live parts from the JSON endpoints of :mod:`lmforge.studio.api`; charts are drawn by the
Chart.js copy in ``static/vendor`` (no CDN: the studio works offline).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from lmforge import __version__, zoo
from lmforge.errors import LmforgeError
from lmforge.serving.auth import Authorizer
from lmforge.studio import api
from lmforge.studio.apps import AppLink, discover
from lmforge.studio.auth import middleware
from lmforge.studio.launch import Launcher
from lmforge.studio.playground import Playground
from lmforge.studio.runs import HEADLINE, RunIndex, RunInfo, compare_table, human_size, run_detail

HERE = Path(__file__).parent
TASKS = ("classification", "regression", "ner", "qa", "instruct")
METHODS = ("full", "lora", "ia3", "prefix", "prompt", "ptuning", "bitfit", "adapter")


@dataclass
class Studio:
    """What the studio's routes share.

    Attributes:
        index: The runs under the studio's roots.
        playground: Loaded models of the playground.
        launcher: Launched fine-tunes.
        apps: The applications in the navigation.
        templates: The page templates.
        authorizer: The key check when the studio is reachable beyond this machine, else None.
    """

    index: RunIndex
    playground: Playground
    launcher: Launcher
    apps: list[AppLink]
    templates: Jinja2Templates
    authorizer: Authorizer | None = None

    def find(self, run_id: str) -> RunInfo:
        """The run ``run_id``.

        Raises:
            LmforgeError: No such run under the studio's folders.
        """
        for info in self.index.scan():
            if info.id == run_id:
                return info
        roots = ", ".join(str(r) for r in self.index.roots)
        raise LmforgeError(f"no run named {run_id!r} under {roots}; the runs page lists them")

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render template ``name`` with the navigation's context."""
        base = {"apps": self.apps, "version": __version__, "signed_in": self.authorizer is not None, "page": name.removesuffix(".html")}
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def studio_of(request: Request) -> Studio:
    """The :class:`Studio` of the app serving ``request``."""
    return request.app.state.studio


def create_app(runs: list[Path] | None = None, authorizer: Authorizer | None = None, app_urls: dict[str, str] | None = None,
               jobs_dir: Path | None = None, playground: Playground | None = None) -> FastAPI:
    """The studio app.

    Args:
        runs: Folders holding run directories (default ``runs/``).
        authorizer: Checks API keys on every request (see :func:`lmforge.studio.auth.authorizer_for`); None admits all.
        app_urls: Application name -> URL of its page, for the navigation.
        jobs_dir: Where launched fine-tunes keep their config and log (default ``$LMFORGE_HOME/studio/jobs``).
        playground: The playground's model cache (a new one by default).
    """
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["size"] = human_size
    templates.env.globals["headline"] = HEADLINE
    studio = Studio(RunIndex(runs or [Path("runs")]), playground or Playground(),
                    Launcher(jobs_dir or zoo.home() / "studio" / "jobs"), discover(app_urls), templates, authorizer)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        studio.launcher.close()
        studio.playground.close()

    app = FastAPI(title="lmforge studio", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.studio = studio
    if authorizer is not None:
        app.middleware("http")(middleware(authorizer))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router)
    _pages(app)

    @app.exception_handler(LmforgeError)
    async def user_error(request: Request, exc: LmforgeError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": {"type": "bad_request", "message": str(exc)}}, 400)
        return studio.page(request, "error.html", message=str(exc), status_code=404)

    return app


def _pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    def runs_page(request: Request) -> HTMLResponse:
        studio = studio_of(request)
        rows = studio.index.scan()
        return studio.page(request, "runs.html", runs=rows, roots=studio.index.roots,
                           kinds=sorted({r.kind for r in rows if r.kind}), tasks=sorted({r.task for r in rows if r.task}))

    @app.get("/run/{run_id:path}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> HTMLResponse:
        studio = studio_of(request)
        detail = run_detail(studio.find(run_id))
        return studio.page(request, "run.html", run=detail["run"], detail=detail)

    @app.get("/plots/{name}")
    def plot(request: Request, name: str, run: str) -> FileResponse:
        folder = studio_of(request).find(run).path / "plots"
        file = folder / Path(name).name
        if file.suffix != ".png" or not file.is_file():
            raise LmforgeError(f"run {run} has no plot named {name}")
        return FileResponse(file)

    @app.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request, runs: list[str] = Query(default=[])) -> HTMLResponse:  # noqa: B008  (FastAPI's idiom)
        studio = studio_of(request)
        details = [run_detail(studio.find(r)) for r in dict.fromkeys(runs)]
        keys, best = compare_table(details)
        return studio.page(request, "compare.html", details=details, keys=keys, best=best, all_runs=studio.index.scan())

    @app.get("/playground", response_class=HTMLResponse)
    def playground_page(request: Request, run: str | None = None) -> HTMLResponse:
        studio = studio_of(request)
        rows = [r for r in studio.index.scan() if r.status == "complete"]
        return studio.page(request, "playground.html", runs=rows, selected=run)

    @app.get("/launch", response_class=HTMLResponse)
    def launch_page(request: Request) -> HTMLResponse:
        studio = studio_of(request)
        root = studio.index.roots[0]
        return studio.page(request, "launch.html", tasks=TASKS, methods=METHODS, jobs=studio.launcher.list(),
                           output_dir=str(root / "{name}"))

    @app.get("/apps", response_class=HTMLResponse)
    def apps_page(request: Request) -> HTMLResponse:
        return studio_of(request).page(request, "apps.html")

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002  (the query parameter's name)
        return studio_of(request).page(request, "login.html", next=next if next.startswith("/") and not next.startswith("//") else "/")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}
