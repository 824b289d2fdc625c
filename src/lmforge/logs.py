"""lmforge's console log: plain lines on stderr, other libraries' chatter hidden."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

_QUIET = {"on": False}


class StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record arrives, as logging's last-resort handler does.

    A handler bound to the stream of the moment it was made keeps writing to that stream after it is replaced and
    closed (a console redirected for one command, a test's captured output), and every later record then fails.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        """The current ``sys.stderr``."""
        return sys.stderr


def setup_logging(quiet: bool = False) -> None:
    """Plain log lines on stderr (warnings only when ``quiet``); transformers' and accelerate's chatter hidden."""
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    _QUIET["on"] = quiet
    root = logging.getLogger("lmforge")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def progress(iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "", unit: str = "it",
             min_total: int = 0, leave: bool = False) -> tqdm:
    """A progress bar with rate and time left, hidden under ``-q`` and for work smaller than ``min_total``."""
    size = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)  # type: ignore[arg-type]
    hidden = _QUIET["on"] or (size is not None and size < min_total)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=hidden, leave=leave, dynamic_ncols=True,
                unit_scale=unit == "row")
