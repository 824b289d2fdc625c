"""What the verbs of the command line share: the config arguments and the headline metric."""

from __future__ import annotations

import argparse
from typing import Any

RESUME = "continue the run from its newest checkpoint"
HEADLINE = ("accuracy", "micro_f1", "mse", "perplexity")


def config_args(p: argparse.ArgumentParser, configs: str, example: str, resume: str | None = None,
                optional: bool = False) -> None:
    """The ``CONFIG [key.sub=value ...] [--resume]`` arguments every recipe verb takes."""
    p.add_argument("config", nargs="?" if optional else None, help=f"YAML config (see {configs})")
    p.add_argument("overrides", nargs="*", help=f"key.sub=value overrides, e.g. {example}")
    if resume:
        p.add_argument("--resume", action="store_true", help=resume)


def headline(metrics: dict[str, Any]) -> str:
    """The metric to show first: accuracy, micro-F1, MSE or perplexity."""
    return next((m for m in HEADLINE if m in metrics), next(iter(metrics)))
