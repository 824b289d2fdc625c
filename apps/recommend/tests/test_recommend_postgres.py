"""The store on a real PostgreSQL server started on loopback for the test (the repository's conftest.py; skipped where
PostgreSQL or psycopg is absent)."""

from __future__ import annotations

import pytest

from lmforge_recommend.store import Store

pytestmark = pytest.mark.slow


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
