"""The SQL store and the analytics over it: restart keeps everything, duplicates are refused, PII is masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge_support import analytics
from lmforge_support.store import DuplicateMessage, Store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or a fresh database on a PostgreSQL server started for the session (the repository's conftest.py)."""
    return f"sqlite:///{tmp_path}/s.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_support_store_survives_restart_and_masks(url: str) -> None:
    store = Store(url)
    conv = store.create()
    asked = store.add_turn(conv.id, "customer", "call me on +44 7700 900123 or mail a.b@example.com", "m1")
    store.add_turn(conv.id, "bot", "Sorry?", kind="fallback", intent="exchange_rate", confidence=0.2, reply_to=asked.id)
    with pytest.raises(DuplicateMessage):
        store.add_turn(conv.id, "customer", "again", "m1")
    store.hand_off(conv.id, "explicit")
    again = Store(url)
    turns = again.turns(conv.id)
    assert len(turns) == 2 and "[EMAIL]" in turns[0].text and "a.b@" not in turns[0].text and "7700" not in turns[0].text
    assert again.get(conv.id).status == "queued" and again.queue()[0]["reason"] == "explicit"


def test_support_analytics_rates_and_export(tmp_path: Path) -> None:
    store = Store("sqlite://")
    for i, (kind, conf, handed) in enumerate([("answer", 0.9, False), ("fallback", 0.1, True), ("answer", 0.8, False)]):
        conv = store.create()
        asked = store.add_turn(conv.id, "customer", f"question {i}")
        bot = store.add_turn(conv.id, "bot", "reply", kind=kind, intent="card_arrival", confidence=conf, reply_to=asked.id)
        if handed:
            store.hand_off(conv.id, "repeated_failure")
        if i == 2:
            assert store.feedback(conv.id, bot.id, -1)
            assert not store.feedback("other", bot.id, 1)
    s = analytics.summary(store)
    assert s["conversations"] == 3 and s["handoff_rate"] == pytest.approx(1 / 3) and s["containment"] == pytest.approx(2 / 3)
    assert s["fallback_rate"] == pytest.approx(1 / 3) and s["intents"] == {"card_arrival": 3} and s["feedback"]["down"] == 1
    lines = analytics.export_csv(store).splitlines()
    assert lines[0] == "text,category,confidence,feedback" and len(lines) == 3
    assert {line.split(",")[0] for line in lines[1:]} == {"question 1", "question 2"}
