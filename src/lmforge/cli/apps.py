"""``lmforge app NAME ...``: applications built on lmforge, found through the ``lmforge.apps`` entry-point group.

An application is its own installable project (``apps/<name>/`` in this repository) that declares
``[project.entry-points."lmforge.apps"] <name> = "package.cli:main"``; ``main(argv) -> int`` receives
everything after the application's name.
"""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint, entry_points

from lmforge.errors import LmforgeError

GROUP = "lmforge.apps"


def installed() -> dict[str, EntryPoint]:
    """The applications installed in this environment, by name."""
    return {point.name: point for point in entry_points(group=GROUP)}


def add_app(sub: argparse._SubParsersAction) -> None:
    """``lmforge app [NAME [ARGS ...]]``."""
    p = sub.add_parser("app", help="start an application built on lmforge (support, monitor, recommend); no name lists them")
    p.add_argument("name", nargs="?", help="the application; leave out to list the installed ones")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the application (see lmforge app NAME --help)")


def run_app(args: argparse.Namespace) -> int:
    """Hand the remaining arguments to the application's ``main``."""
    apps = installed()
    if args.name is None:
        if not apps:
            print("no applications installed; install one with: pip install -e apps/<name>")
        for name, point in sorted(apps.items()):
            print(f"{name:<12} {point.value}")
        return 0
    if args.name not in apps:
        known = ", ".join(sorted(apps)) or "none"
        raise LmforgeError(f"no application named {args.name!r} is installed (installed: {known}); install it with: pip install -e apps/{args.name}")
    return int(apps[args.name].load()(list(args.rest)) or 0)
