"""The service's logs: JSON lines with PII masked, access lines without bodies, and the optional transcript file.

Every handler of the root, ``lmforge`` and ``uvicorn`` loggers gets a
:class:`~lmforge.serving.privacy.RedactingFilter`, so no e-mail, phone, ID, card or IP number reaches
a log, whatever logged it. Access lines carry the request id, route, model, key id, status and
milliseconds, never the request or response body.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from pathlib import Path
from typing import Any, TextIO

from lmforge.logs import StderrHandler
from lmforge.serving.privacy import RedactingFilter, mask_obj

ACCESS = logging.getLogger("lmforge.serving.access")
_SERVICE_LOGGERS = ("lmforge", "uvicorn", "uvicorn.error", "uvicorn.access", "ray.serve")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the traceback, masked by the filter)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line; access records are already JSON and pass through."""
        if record.name == ACCESS.name:
            return record.getMessage()
        entry: dict[str, Any] = {"ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
            timespec="milliseconds"), "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        if record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup_service_logging(level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Send the service's logs to ``stream`` (the current stderr when None) as JSON lines, with PII masked on every handler.

    Returns:
        The handler (tests read what it wrote).
    """
    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _SERVICE_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level.upper())
    ACCESS.setLevel(logging.INFO)
    return handler


def mask_handlers() -> None:
    """Add a PII filter to every handler already attached to the root and the service's loggers."""
    for logger in [logging.getLogger()] + [logging.getLogger(n) for n in _SERVICE_LOGGERS]:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def access_line(**fields: Any) -> None:
    """Log one access line (JSON) at info level."""
    if ACCESS.isEnabledFor(logging.INFO):
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        ACCESS.info(json.dumps({"ts": stamp, "type": "access", **fields}, ensure_ascii=False))


class Transcript:
    """An append-only JSONL file of requests and their outputs, PII masked (``logging.store``).

    Args:
        path: The file; its folder is created.
        kinds: PII kinds to mask (all when None).
    """

    def __init__(self, path: str | Path, kinds: list[str] | None = None) -> None:
        self.path, self.kinds = Path(path), kinds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record, every string in it masked."""
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        line = json.dumps({"ts": stamp, **mask_obj(record, self.kinds)}, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
