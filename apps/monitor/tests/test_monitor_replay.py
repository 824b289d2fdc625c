"""Replay: event-time order, speed, and a restart after a crash or a kill loses and duplicates nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lmforge.errors import LmforgeError

from lmforge_monitor import store
from lmforge_monitor.config import MonitorConfig
from lmforge_monitor.entities import Entity, Watchlist
from lmforge_monitor.pipeline import Monitor
from lmforge_monitor.replay import parse_speed, replay
from lmforge_monitor.sample import build_stream
from lmforge_monitor.sentiment import Scorer
from monitor_fakes import keyword_scores, make_config

ROWS = [("neutral", f"Nokia said item {i} was stable.") for i in range(60)] + [("neutral", f"Finnair route {i} opened.") for i in range(60)]


def stream(tmp: Path) -> tuple[Path, dict]:
    entities = [Entity("NOKIA", "Nokia"), Entity("FIA1S", "Finnair")]
    meta = build_stream(ROWS, entities, tmp / "s.jsonl", days=5, bursts=2, burst_size=6, burst_span_s=1800, now=int(time.time()))
    return tmp / "s.jsonl", meta


def stored_texts(monitor: Monitor) -> list[str]:
    with monitor.db.connect() as conn:
        return [t for (t,) in conn.execute(store.select(store.items.c.text)).all()]


def test_speed_parses_factors_and_max() -> None:
    assert parse_speed("100x") == 100 and parse_speed("max") == float("inf")
    with pytest.raises(LmforgeError, match="--speed"):
        parse_speed("fast")


def test_a_replay_stores_every_good_item_once_counts_the_bad_ones_and_fires_on_the_bursts(monitor: Monitor, tmp_path: Path) -> None:
    path, meta = stream(tmp_path)
    result = replay(monitor, path)
    assert result.stored == meta["items"] + 3  # repaired: the huge, the non-UTF-8 and the missing-time record
    assert result.rejected == {"malformed": 1, "future_timestamp": 1} and result.duplicates == 1
    assert set(result.repaired) == {"huge", "non_utf8", "missing_timestamp"}
    for burst in meta["bursts"]:
        assert any(a["entity"] == burst["entity"] and burst["start"] <= a["ts"] <= burst["end"] for a in result.alerts)
    assert replay(monitor, path).stored == 0


def test_a_replay_waits_in_proportion_to_event_time(monitor: Monitor, tmp_path: Path) -> None:
    path, _ = stream(tmp_path)
    now = [0.0]
    replay(monitor, path, speed=86400.0, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert 4.0 < now[0] < 5.1  # five days at one day per second


def test_a_crash_mid_replay_then_a_restart_loses_and_repeats_nothing(cfg, tmp_path: Path) -> None:
    path, meta = stream(tmp_path)
    calls = {"n": 0}

    def failing(texts: list[str]) -> list:
        calls["n"] += 1
        if calls["n"] == 12:
            raise RuntimeError("power cut")
        return keyword_scores(texts)

    crashing = Monitor(cfg, Scorer(failing, batch=8), _watchlist(cfg))
    with pytest.raises(RuntimeError):
        replay(crashing, path, batch=10)
    assert 0 < len(stored_texts(crashing)) < meta["items"]
    fresh = Monitor(cfg, Scorer(keyword_scores), _watchlist(cfg))
    replay(fresh, path, batch=10)
    texts = stored_texts(fresh)
    assert len(texts) == len(set(texts)) == meta["items"] + 3


def test_a_killed_replay_process_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    path, meta = stream(tmp_path)
    child = [sys.executable, str(Path(__file__).parent / "monitor_child.py"), str(tmp_path), str(path)]
    proc = subprocess.Popen([*child, "0.05"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if int(line.split()[0]) >= 40 or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = subprocess.run([*child, "0"], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1].startswith("done")
    db = store.open_store(make_config(tmp_path).store_url)
    with db.connect() as conn:
        texts = [t for (t,) in conn.execute(store.select(store.items.c.text)).all()]
        alerts = conn.execute(store.select(store.alerts.c.rule, store.alerts.c.entity, store.alerts.c.ts)).all()
    assert len(texts) == len(set(texts)) == meta["items"] + 3
    assert len(alerts) == len(set(alerts))
    json.dumps(meta)


def _watchlist(cfg: MonitorConfig) -> Watchlist:
    return Watchlist.from_yaml(cfg.path(cfg.paths.watchlist))
