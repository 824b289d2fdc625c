"""The store on a real PostgreSQL server started on loopback for the test (slow; skipped where PostgreSQL or psycopg is absent)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge_recommend.store import Store

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not BIN, reason="PostgreSQL is not installed (apt-get install postgresql)")]
pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'lmforge-recommend[postgres]')")


def _as_server_user(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres account there."""
    if os.geteuid() != 0:
        return args
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser to start PostgreSQL as another user")
    return ["runuser", "-u", "postgres", "--", *args]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    # Not under pytest's temporary folder: its parent is private to this user, and the server runs as postgres when we are root.
    root = Path(tempfile.mkdtemp(prefix="lmforge-recommend-pg-"))
    os.chmod(root, 0o777)
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = [f"{BIN[-1]}/pg_ctl", "-D", str(data)]
    subprocess.run(_as_server_user([f"{BIN[-1]}/initdb", "-D", str(data), "-A", "trust", "-U", "lmforge"]), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    subprocess.run(_as_server_user([*ctl, "-o", options, "-l", str(root / "log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://lmforge@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([*ctl, "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_profiles_and_events_survive_a_restart_on_postgresql(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.save_profile("ana", [3, 1])
    store.save_profile("ana", [3, 1, 9])
    store.record("profile:ana", [5, 6], "served", "req-1")
    store.record("profile:ana", [6], "dismissed")
    store.close()
    again = Store(postgres_url)
    assert again.profile("ana") == [3, 1, 9] and again.profile("bob") is None
    assert again.items("profile:ana", "served") == [5, 6] and again.items("profile:ana", "dismissed") == [6]
    again.close()
