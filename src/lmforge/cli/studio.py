"""``lmforge studio``: the web application over runs, the playground, launches and the applications.

The studio is imported when the verb runs, so that ``lmforge --help`` does not load torch or FastAPI.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_studio(sub: argparse._SubParsersAction) -> None:
    """``lmforge studio [--runs DIR ...] [--host --port] [--app NAME=URL ...]``."""
    p = sub.add_parser("studio", help="a local web app: browse and compare runs, try them, launch fine-tunes, reach the apps")
    p.add_argument("--runs", nargs="+", default=["runs"], metavar="DIR", help="folders holding run directories (default runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other needs an API key)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--app", action="append", default=[], metavar="NAME=URL", help="link an application's page, e.g. support=http://127.0.0.1:8001/")
    p.add_argument("--keys", help="key store file for non-loopback hosts (default ~/.cache/lmforge/keys.json)")


def run_studio(args: argparse.Namespace) -> int:
    """Serve the studio until Ctrl-C."""
    from lmforge.studio.server import parse_app_urls, require_studio_extra, serve

    require_studio_extra()
    keys = Path(args.keys).expanduser() if args.keys else None
    return serve([Path(r) for r in args.runs], args.host, args.port, parse_app_urls(args.app), keys)
