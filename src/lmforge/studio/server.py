"""Running the studio: checks that its extra is installed, the key check for non-loopback hosts, uvicorn."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import uvicorn

from lmforge.errors import ConfigError
from lmforge.studio.app import create_app
from lmforge.studio.auth import authorizer_for

log = logging.getLogger("lmforge")
EXTRA = ("fastapi", "uvicorn", "jinja2")


def require_studio_extra() -> None:
    """Raise unless the studio extra (FastAPI, uvicorn, Jinja2) is installed."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"lmforge studio needs {', '.join(missing)}: pip install 'lmforge[studio]'")


def parse_app_urls(items: list[str]) -> dict[str, str]:
    """``NAME=URL`` items of ``--app`` as a mapping.

    Raises:
        ConfigError: An item is not ``NAME=URL``.
    """
    urls = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ConfigError(f"--app {item!r} must look like NAME=URL, e.g. support=http://127.0.0.1:8001/")
        urls[name.strip()] = url.strip()
    return urls


def serve(runs: list[Path], host: str = "127.0.0.1", port: int = 7860, app_urls: dict[str, str] | None = None,
          keys: Path | None = None) -> int:
    """Serve the studio until Ctrl-C.

    Args:
        runs: Folders holding run directories.
        host: Address to listen on; anything but loopback requires an API key from ``keys``.
        port: Port.
        app_urls: Application name -> URL of its page, for the navigation.
        keys: The key store (default ``~/.cache/lmforge/keys.json``).
    """
    authorizer = authorizer_for(host, keys)
    app = create_app(runs, authorizer, app_urls)
    shown = f"[{host}]" if ":" in host else host
    log.info("lmforge studio on http://%s:%d/ (runs from %s)%s", shown, port, ", ".join(str(r) for r in runs),
             "; API keys required" if authorizer else "")
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
