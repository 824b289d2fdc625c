"""The SQL store on SQLite: profiles and events survive a restart; bad URLs and actions are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from lmforge.errors import ConfigError, LmforgeError

from lmforge_recommend.store import Store, default_url, who


def test_profiles_and_events_survive_a_restart(tmp_path: Path) -> None:
    url = default_url(tmp_path / "data")
    store = Store(url)
    store.save_profile("ana", [3, 1])
    store.record(who(None, "ana"), [5, 6], "served", "req-1")
    store.record(who(None, "ana"), [6], "dismissed")
    store.record(who(7, None), [2], "liked")
    store.close()
    again = Store(url)
    assert again.profile("ana") == [3, 1] and again.profile("bob") is None
    assert again.items("profile:ana", "served") == [5, 6]
    assert again.items("profile:ana", "dismissed") == [6] and again.items("user:7", "liked") == [2]
    assert again.save_profile("ana", [3, 1, 9])["liked_items"] == [3, 1, 9] and again.profile("ana") == [3, 1, 9]


def test_bad_urls_names_and_actions_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="store.url"):
        Store("nosuchdb://x")
    with pytest.raises(ConfigError, match="cannot open the database"):
        Store(f"sqlite:///{tmp_path}/missing/dir/x.sqlite")
    store = Store(default_url(tmp_path))
    with pytest.raises(LmforgeError, match="action must be one of"):
        store.record("user:1", [1], "loved")
    with pytest.raises(LmforgeError, match="profile name"):
        store.save_profile(" ", [1])
