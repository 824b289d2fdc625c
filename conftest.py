"""Fixtures every test folder shares (the library's and the applications'): a throwaway PostgreSQL server.

``postgres_url`` gives each test a fresh, empty database on one server started on loopback for the
session (``initdb`` in a temporary folder, trust authentication, stopped and deleted at the end). It
skips, saying why, where PostgreSQL's binaries or psycopg are absent.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_server_user(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres account there."""
    if os.geteuid() != 0:
        return args
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser to start PostgreSQL as another user")
    return ["runuser", "-u", "postgres", "--", *args]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql+psycopg://lmforge@127.0.0.1:PORT`` of a server running for the session."""
    if not POSTGRES_BIN:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    # Not under pytest's temporary folder: its parent is private to this user, and the server runs as postgres when we are root.
    root = Path(tempfile.mkdtemp(prefix="lmforge-pg-"))
    os.chmod(root, 0o777)
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = [f"{POSTGRES_BIN[-1]}/pg_ctl", "-D", str(data)]
    subprocess.run(_as_server_user([f"{POSTGRES_BIN[-1]}/initdb", "-D", str(data), "-A", "trust", "-U", "lmforge"]), check=True,
                   capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    subprocess.run(_as_server_user([*ctl, "-o", options, "-l", str(root / "log"), "-w", "-t", "60", "start"]), check=True,
                   capture_output=True)
    try:
        yield f"postgresql+psycopg://lmforge@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_server_user([*ctl, "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A new, empty database for this test on the session's server."""
    import psycopg

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    with psycopg.connect(postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"
