"""``lmforge app support [--config FILE] [serve|train|export]`` (also ``python -m lmforge_support``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from lmforge.errors import LmforgeError
from lmforge.serving import Engine, create_app, load_serve_config
from lmforge.serving.logs import setup_service_logging

from lmforge_support import analytics, intents
from lmforge_support.config import SupportConfig, load_config
from lmforge_support.dialogue import Bot, Classifier, Span
from lmforge_support.kb import KnowledgeBase
from lmforge_support.store import Store
from lmforge_support.web import Assistant, api_router, page_router

log = logging.getLogger("lmforge.support")
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def build_app(cfg: SupportConfig, models: dict[str, str], classifier: Classifier | None = None,
              span: Span | None = None) -> FastAPI:
    """The service app: lmforge's routes over ``models`` (one named ``encoder``) plus the support routes and pages.

    Args:
        cfg: The resolved config.
        models: Served models by name: ``encoder`` embeds the knowledge base; ``intents`` (a run) classifies;
            ``answers`` (a QA run, ``kb.qa`` when not given) picks the answering span of a retrieved answer.
        classifier: The intent classifier; the calibrated ``intents`` run when None.
        span: Picks the answering span of a passage; the ``answers`` QA model when None and there is one.
    """
    models = dict(models)
    if cfg.kb.qa:
        models.setdefault("answers", cfg.kb.qa)
    serve_cfg = load_serve_config({"models": models, "default_model": "intents" if "intents" in models else "encoder",
                                   "auth": {"enabled": cfg.service.auth, "keys": cfg.service.keys},
                                   "server": {"host": cfg.service.host, "port": cfg.service.port}})
    engine = Engine.from_config(serve_cfg, start=False)
    if classifier is None:
        model = intents.IntentModel(engine.slots["intents"].artifact, embed=lambda texts: engine.slots["encoder"].artifact.embed(texts))
        model.calibrate(Path(models["intents"]).parent, cfg.intents)
        classifier = model
    kb = KnowledgeBase.from_file(cfg.kb.file, lambda texts: engine.slots["encoder"].artifact.embed(texts), cfg.kb.intent_bonus)
    if span is None and "answers" in models:
        span = lambda question, passage: engine.qa(question, passage, model="answers")[0]  # noqa: E731
    bot = Bot(classifier, kb, cfg.dialogue, span, cfg.kb.qa_min_score)
    app = create_app(engine, serve_cfg, extra_routers=[api_router(), page_router()])
    app.state.support = Assistant(bot, Store(cfg.store.url), cfg.dialogue.max_message_chars)
    return app


def intent_run(cfg: SupportConfig) -> Path:
    """The intent run (trained now on first start)."""
    return Path(cfg.intents.run) if cfg.intents.run else intents.train(cfg.intents, cfg.home)


def serve(cfg: SupportConfig) -> int:
    """Train what is missing, then serve until interrupted."""
    run = intent_run(cfg)
    app = build_app(cfg, {"intents": str(run / "model"), "encoder": cfg.kb.encoder})
    print(f"support: chat http://{cfg.service.host}:{cfg.service.port}/support/  agent /support/agent  analytics /support/analytics",
          file=sys.stderr)
    uvicorn.run(app, host=cfg.service.host, port=cfg.service.port, log_config=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lmforge app support``."""
    parser = argparse.ArgumentParser(prog="lmforge app support", description="Customer-service assistant on lmforge.")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None,
                        help="config.yaml (default: apps/support/config.yaml of a source checkout, else the built-in defaults)")
    parser.add_argument("command", nargs="?", default="serve", choices=("serve", "train", "export"),
                        help="serve (default; trains first when needed), train, or export the CSV of turns to label")
    parser.add_argument("overrides", nargs="*", help="key.sub=value settings over the config")
    parser.add_argument("--out", default="support_to_label.csv", help="export: the CSV file to write")
    args = parser.parse_args(argv)
    setup_service_logging("info")
    try:
        cfg = load_config(args.config, args.overrides)
        return _run(args, cfg)
    except LmforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: Any, cfg: SupportConfig) -> int:
    if args.command == "serve":
        return serve(cfg)
    if args.command == "train":
        print(intent_run(cfg))
        return 0
    Path(args.out).write_text(analytics.export_csv(Store(cfg.store.url), cfg.dialogue.confident), encoding="utf-8")
    print(args.out)
    return 0
