"""``lmforge app recommend [--config FILE] [serve|recommend|similar] ...`` (also ``python -m lmforge_recommend``).

``serve`` (the default) fits the recommender and serves the API and the web page at
``/recommend``; ``recommend`` and ``similar`` print one answer as JSON, without a server.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import uvicorn
from lmforge.errors import LmforgeError

from lmforge_recommend.app import build
from lmforge_recommend.recommender import Recommender

SHIPPED = Path(__file__).resolve().parents[2] / "config.yaml"


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="lmforge app recommend", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=SHIPPED, help=f"config.yaml (default: {SHIPPED})")
    p.add_argument("--data-dir", type=Path, help="folder of the MovieLens files (default: data.dir of the config)")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve /v1/recommend, /v1/similar and the page /recommend")
    serve.add_argument("--host", help="address (default: service.server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: service.server.port, 8000)")
    serve.add_argument("--no-auth", action="store_true", help="serve without API keys (only on a trusted machine)")
    serve.add_argument("overrides", nargs="*", help="service key=value overrides, e.g. limits.max_text_chars=500")
    rec = sub.add_parser("recommend", help="print recommendations as JSON")
    rec.add_argument("--user", type=int, help="a user id of the training ratings")
    rec.add_argument("--liked", type=lambda s: [int(x) for x in s.split(",") if x], help="liked item ids, e.g. 50,181,172")
    rec.add_argument("--text", help="free text, e.g. 'space adventure with robots'")
    rec.add_argument("--genre", action="append", help="keep films of this genre (repeatable)")
    rec.add_argument("-k", type=int, default=10, help="how many films")
    similar = sub.add_parser("similar", help="print the films most like one film as JSON")
    similar.add_argument("item", type=int, help="an item id of u.item")
    similar.add_argument("-k", type=int, default=10, help="how many films")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; user errors print one line and return 2."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command in (None, "serve"):
            return _serve(args)
        rec = Recommender.from_config(args.config, data_dir=args.data_dir)
        out = rec.similar(args.item, k=args.k) if args.command == "similar" else \
            rec.recommend(user_id=args.user, liked_items=args.liked, text=args.text, k=args.k, genres=args.genre)
    except LmforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1, ensure_ascii=False))
    return 0


def _serve(args: argparse.Namespace) -> int:
    overrides = list(getattr(args, "overrides", None) or [])
    overrides += ["auth.enabled=false"] if getattr(args, "no_auth", False) else []
    app, cfg = build(args.config, overrides, args.data_dir)
    host, port = getattr(args, "host", None) or cfg.server.host, getattr(args, "port", None) or cfg.server.port
    print(f"serving http://{host}:{port}/recommend (API: /v1/recommend, /v1/similar; keys: lmforge keys create NAME)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
