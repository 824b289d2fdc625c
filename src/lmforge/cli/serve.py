"""Verbs of the service: ``serve`` (an HTTP service for runs) and ``keys`` (its API keys).

The service is imported when a verb runs, so that ``lmforge --help`` does not load torch or FastAPI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_serve(sub: argparse._SubParsersAction) -> None:
    """``lmforge serve RUN_OR_CONFIG [key=value ...] [--host --port --workers --engine]``."""
    p = sub.add_parser("serve", help="serve runs over HTTP: classify, embed, generate, ner, qa, with keys, limits and metrics")
    p.add_argument("source", help="serve.yaml, or a run directory / model folder / zoo name to serve alone")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. batching.max_batch_size=64")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--workers", type=int, help="worker processes sharing one copy of the weights (default 1)")
    p.add_argument("--engine", choices=["local", "ray"], help="local processes, or a Ray Serve deployment (lmforge[cluster])")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on this port without a key")
    p.add_argument("--no-auth", action="store_true", help="serve without API keys (only on a trusted network)")


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C."""
    started = time.perf_counter()
    from lmforge.serving.config import require_serve_extra
    from lmforge.serving.server import serve

    require_serve_extra()
    flags = {"server.host": args.host, "server.port": args.port, "server.workers": args.workers, "server.engine": args.engine,
             "server.metrics_port": args.metrics_port, "auth.enabled": False if args.no_auth else None}
    overrides = list(args.overrides) + [f"{key}={value}" for key, value in flags.items() if value is not None]
    return serve(args.source, overrides, started)


def add_keys(sub: argparse._SubParsersAction) -> None:
    """``lmforge keys create NAME | list | revoke ID``."""
    p = sub.add_parser("keys", help="create, list or revoke the service's API keys")
    p.add_argument("--store", help="key store file (default ~/.cache/lmforge/keys.json; serve.yaml's auth.keys)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print its secret (shown this once)")
    create.add_argument("name", help="a label for people, e.g. support-bot")
    create.add_argument("--models", default="*", help="comma-separated model names the key may use (default: all)")
    create.add_argument("--endpoints", default="*",
                        help="comma-separated endpoints: classify, embed, generate, ner, qa, explain, models, metrics, admin, ... (default: all)")
    create.add_argument("--rate", type=int, default=600, help="requests per minute; 0 for no limit (default 600)")
    create.add_argument("--burst", type=int, help="requests allowed at once (default: ten seconds' worth of the rate)")
    listing = actions.add_parser("list", help="list the keys (ids, names, scopes, limits; never secrets)")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    revoke = actions.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("id", help="the key's id (lmforge keys list shows them)")


def run_keys(args: argparse.Namespace) -> int:
    """Create, list or revoke keys."""
    from lmforge.serving.auth import KeyStore, default_store_path, list_keys, revoke_key

    store = Path(args.store).expanduser() if args.store else None
    if args.action == "create":
        split = lambda text: [part.strip() for part in text.split(",") if part.strip()]
        record, secret = KeyStore(store or default_store_path()).create(args.name, split(args.models), split(args.endpoints),
                                                                      args.rate, args.burst)
        print(f"created key {record.id} ({record.name}); its secret, shown only now:\n{secret}")
        return 0
    if args.action == "revoke":
        revoke_key(store, args.id)
        print(f"revoked key {args.id}")
        return 0
    keys = list_keys(store)
    if args.json:
        print(json.dumps(keys))
        return 0
    print(f"{'id':<10}{'name':<20}{'models':<20}{'endpoints':<24}{'rate/min':<10}{'created':<27}status")
    for k in keys:
        print(f"{k['id']:<10}{k['name'][:19]:<20}{','.join(k['models'])[:19]:<20}{','.join(k['endpoints'])[:23]:<24}"
              f"{k['rate_per_minute']:<10}{k['created']:<27}{'revoked' if k['revoked'] else 'active'}")
    return 0
