"""``lmforge app monitor [--config FILE] [serve|train|sample|ingest|replay|stats] ...`` (also ``python -m lmforge_monitor``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import uvicorn
from lmforge.errors import LmforgeError
from lmforge.serving import Engine
from lmforge.serving.config import ServeConfig
from lmforge.serving.http import create_app

from lmforge_monitor import sample, sentiment, store
from lmforge_monitor.config import MonitorConfig, load_config
from lmforge_monitor.entities import Candidates, Watchlist
from lmforge_monitor.ingest import read_any
from lmforge_monitor.pipeline import Monitor
from lmforge_monitor.replay import parse_speed, replay
from lmforge_monitor.web import build_router

log = logging.getLogger("lmforge_monitor")
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmforge app monitor", description="Financial sentiment monitor: ingest, score, alert, dashboard.")
    p.add_argument("--config", default=None, help="config.yaml (default: the one beside the app's source, apps/monitor/config.yaml)")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="train on first start if needed, then serve /monitor and the API (the default)")
    s.add_argument("--port", type=int, default=None, help="override service.port")
    sub.add_parser("train", help="train the sentiment model unless a run exists")
    g = sub.add_parser("sample", help="write the sample stream (PhraseBank sentences + synthetic bursts) into the data folder")
    g.add_argument("--out", default=None, help="stream file (default: <data_dir>/sample_stream.jsonl)")
    g.add_argument("--source", default=None, help="labeled CSV to draw sentences from (default: paths.phrasebank)")
    g.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("ingest", help="ingest CSV/JSONL files or RSS/Atom feeds (files or URLs)")
    i.add_argument("files", nargs="+")
    i.add_argument("--source", default=None, help="source name for records without one")
    r = sub.add_parser("replay", help="replay a stream in time order (resumes after a crash)")
    r.add_argument("file", nargs="?", default=None, help="stream file (default: the sample stream, generated when absent)")
    r.add_argument("--speed", default="100x", help="100x plays 100 seconds of the stream per second; max does not wait")
    r.add_argument("--batch", type=int, default=128)
    sub.add_parser("stats", help="counts of items, mentions, alerts and rejected input")
    return p


def build_monitor(cfg: MonitorConfig, scorer: sentiment.Scorer | None = None) -> Monitor:
    """A monitor with the configured store, watchlist and NER run (the sentiment model trained first if needed)."""
    watchlist = Watchlist.from_yaml(cfg.path(cfg.paths.watchlist))
    if scorer is None:
        scorer = sentiment.Scorer.from_run(sentiment.ensure_model(cfg), cfg.model.batch, cfg.model.precision)
    e = cfg.entities
    candidates = Candidates.load(cfg.path(e.ner_run), watchlist, e.types, e.min_score, cfg.model.batch) if e.ner_run else None
    return Monitor(cfg, scorer, watchlist, candidates=candidates)


def sample_stream(cfg: MonitorConfig, out: Path | None = None, source: str | None = None, seed: int = 0) -> Path:
    """Write the sample stream (and its burst truth) into the data folder; returns its path."""
    out = out or cfg.data_dir / "sample_stream.jsonl"
    rows = sentiment.read_labeled(Path(source) if source else cfg.phrasebank)
    watchlist = Watchlist.from_yaml(cfg.path(cfg.paths.watchlist))
    meta = sample.build_stream(rows, list(watchlist.entities.values()), out, seed=seed)
    log.info("wrote %s: %d items, %d synthetic bursts (%s)", out, meta["items"], len(meta["bursts"]),
             ", ".join(b["entity"] for b in meta["bursts"]))
    return out


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def _progress(pos: int, total: int, result: Any) -> None:
    for alert in result.alerts:
        print(f"alert  {alert['message']}", flush=True)
    if pos == total or pos % 1000 < len(result.item_ids) + result.duplicates + sum(result.rejected.values()):
        print(f"replay {pos}/{total}", file=sys.stderr, flush=True)


def serve(cfg: MonitorConfig, port: int | None) -> int:
    """Load the model into lmforge's serving engine and serve the monitor's routes on its app."""
    run = sentiment.ensure_model(cfg)
    serve_cfg = ServeConfig(models={"sentiment": str(run)}, auth={"enabled": cfg.service.auth, "keys": cfg.service.keys},
                            server={"host": cfg.service.host, "port": port if port is not None else cfg.service.port})
    engine = Engine.from_config(serve_cfg)
    scorer = sentiment.Scorer(lambda texts: [sentiment.Score(r["label"], sentiment.signed(r["probabilities"]), r["probabilities"])
                                             for r in engine.classify(texts)], cfg.model.batch)
    monitor = build_monitor(cfg, scorer)
    app = create_app(engine, serve_cfg, extra_routers=[build_router(monitor)])
    log.info("dashboard: http://%s:%d/monitor", serve_cfg.server.host, serve_cfg.server.port)
    uvicorn.run(app, host=serve_cfg.server.host, port=serve_cfg.server.port, log_level="warning")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lmforge app monitor``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config or DEFAULT_CONFIG)
        command = args.command or "serve"
        if command == "serve":
            return serve(cfg, getattr(args, "port", None))
        if command == "train":
            _print({"run": str(sentiment.ensure_model(cfg))})
        elif command == "sample":
            _print({"stream": str(sample_stream(cfg, Path(args.out) if args.out else None, args.source, args.seed))})
        elif command == "ingest":
            monitor = build_monitor(cfg)
            for name in args.files:
                _print({"file": name, **monitor.ingest(read_any(Path(name), args.source)).summary()})
        elif command == "replay":
            path = Path(args.file) if args.file else cfg.data_dir / "sample_stream.jsonl"
            if args.file is None and not path.is_file():
                sample_stream(cfg, path)
            speed = parse_speed(args.speed)
            _print({"file": str(path), **replay(build_monitor(cfg), path, speed, args.batch, progress=_progress).summary()})
        elif command == "stats":
            with store.open_store(cfg.store_url).connect() as conn:
                _print(store.counts(conn))
        return 0
    except LmforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
