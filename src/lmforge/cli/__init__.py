"""``lmforge <verb>``: a table of verbs, each a thin wrapper over a recipe; the only place that knows argparse.

Each verb is an ``(add_parser, run)`` pair; ``run`` imports its recipe when called, so that
``lmforge --help`` answers without loading torch or transformers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from lmforge import __version__
from lmforge.cli import apps, compress, info, safety, serve, studio, train, use
from lmforge.errors import LmforgeError
from lmforge.logs import setup_logging

Verb = tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]

VERBS: dict[str, Verb] = {
    "finetune": (train.add_finetune, train.run_finetune),
    "evaluate": (use.add_evaluate, use.run_evaluate),
    "predict": (use.add_predict, use.run_predict),
    "prompt": (train.add_prompt, train.run_prompt),
    "ensemble": (train.add_ensemble, train.run_ensemble),
    "search": (train.add_search, train.run_search),
    "zoo": (info.add_zoo, info.run_zoo),
    "config": (info.add_config, info.run_config),
    "tokenizer": (train.add_tokenizer, train.run_tokenizer),
    "pretrain": (train.add_pretrain, train.run_pretrain),
    "generate": (use.add_generate, use.run_generate),
    "merge": (use.add_merge, use.run_merge),
    "serve": (serve.add_serve, serve.run_serve),
    "keys": (serve.add_keys, serve.run_keys),
    "compress": (compress.add_compress, compress.run_compress),
    "bench": (compress.add_bench, compress.run_bench),
    "app": (apps.add_app, apps.run_app),
    "explain": (safety.add_explain, safety.run_explain),
    "audit": (safety.add_audit, safety.run_audit),
    "studio": (studio.add_studio, studio.run_studio),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per verb."""
    p = argparse.ArgumentParser(prog="lmforge", description="From raw text to a deployed language model.")
    p.add_argument("--version", action="version", version=f"lmforge {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add, _ in VERBS.values():
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lmforge`` command."""
    args = parser().parse_args(argv)
    setup_logging(args.quiet)
    try:
        return VERBS[args.verb][1](args)
    except LmforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


__all__ = ["VERBS", "main", "parser", "setup_logging"]
