"""lmforge's console log: plain lines on stderr, other libraries' chatter hidden."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(quiet: bool = False) -> None:
    """Plain log lines on stderr (warnings only when ``quiet``); transformers' and accelerate's chatter hidden."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    root = logging.getLogger("lmforge")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
