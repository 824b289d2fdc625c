"""Entities, sentence splitting, input checks, the split, alert rules and aggregates (keyword scorer, temporary SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lmforge.errors import ConfigError

from lmforge_monitor import store
from lmforge_monitor.alerts import evaluate
from lmforge_monitor.config import IngestConfig, RuleConfig, load_config
from lmforge_monitor.entities import Candidates, Watchlist, split_sentences
from lmforge_monitor.ingest import Raw, check, parse_time, read_any
from lmforge_monitor.sentiment import grouped_split

T0 = 1_736_000_000


def raw(text: str | None = "Nokia profit rose.", ts: object = T0, **extra: object) -> Raw:
    return Raw({"timestamp": ts, "source": "wire", "text": text, **extra}, "test:1")


def test_watchlist_matches_whole_latin_words_chinese_substrings_and_the_longest_alias(monitor) -> None:
    wl = monitor.watchlist
    found = wl.find(["Nokia's sales grew", "Nokians and NOKIA are not Nokia", "诺基亚股价下跌", "Nokia Siemens Networks cut jobs"])
    assert [(m.ticker, m.sentence) for m in found] == [("NOKIA", 0), ("NOKIA", 1), ("NOKIA", 2), ("NSN", 3)]


def test_ner_candidates_are_organizations_the_watchlist_does_not_name(monitor) -> None:
    from monitor_fakes import FakeNer

    monitor.candidates = Candidates(FakeNer(), monitor.watchlist, ["ORG"], min_score=0.5)
    result = monitor.ingest([raw("Outotec and Nokia signed a deal in Helsinki. Metso was quiet."),
                             raw("Outotec profit rose. Outotec shares too.", ts=T0 + 60), raw("Kone grew.", ts=T0 + 120)])
    assert result.stored == 3
    with monitor.db.connect() as conn:
        rows = store.candidate_rows(conn)
        assert store.counts(conn)["candidates"] == 1
    # Nokia is on the watchlist, Helsinki is a place, Metso scored under min_score; the same name twice in one item counts once.
    assert [(r["name"], r["type"], r["items"], r["first_ts"], r["last_ts"]) for r in rows] == [("Outotec", "ORG", 2, T0, T0 + 60)]
    assert rows[0]["example"] == "Outotec profit rose."


def test_sentences_split_on_latin_and_chinese_stops_but_not_inside_numbers() -> None:
    assert split_sentences("Shares rose 22.70 eur. Profit fell! 诺基亚上涨。芬兰航空下跌") == [
        "Shares rose 22.70 eur.", "Profit fell!", "诺基亚上涨。", "芬兰航空下跌"]


@pytest.mark.parametrize(("record", "reason", "repairs"), [
    (Raw({}, "x", "malformed: bad json"), "malformed", []),
    (raw(text="  "), "empty_text", []),
    (raw(ts="yesterday"), "bad_timestamp", []),
    (raw(ts=T0 + 10 * 86400), "future_timestamp", []),
    (raw(ts=None), None, ["missing_timestamp"]),
    (raw(text="x" * 300), None, ["huge"]),
])
def test_bad_input_is_rejected_or_repaired_with_a_reason(record: Raw, reason: str | None, repairs: list[str]) -> None:
    item, why, fixed = check(record, IngestConfig(max_chars=100), now=T0)
    assert why == reason and fixed == repairs
    if item is not None:
        assert len(item.text) <= 100 and item.ts <= T0


def test_times_parse_from_iso_epoch_seconds_and_milliseconds() -> None:
    assert parse_time("2025-01-06T00:00:00Z") == parse_time("2025-01-06T00:00:00") == 1736121600
    assert parse_time(1736121600) == parse_time("1736121600000") == 1736121600
    assert parse_time("") is None


def test_files_of_every_kind_are_read_and_bad_lines_do_not_stop_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b'{"timestamp": 1, "text": "ok"}\nnot json\n{"timestamp": 2, "text": "Caf\xe9"}\n')
    (tmp_path / "b.csv").write_text("timestamp,source,text\n2025-01-06T00:00:00Z,wire,Nokia profit rose\n", encoding="utf-8")
    (tmp_path / "c.xml").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><item><title>Finnair cut routes</title>'
        "<description>Losses widened.</description><pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate></item></channel></rss>",
        encoding="utf-8")
    jsonl = list(read_any(tmp_path / "a.jsonl"))
    assert [r.problem is None for r in jsonl] == [True, False, True] and jsonl[2].fields["text"] == "Café"
    assert jsonl[2].repairs == ["non_utf8"]
    assert next(iter(read_any(tmp_path / "b.csv"))).fields["source"] == "wire"
    feed = next(iter(read_any(tmp_path / "c.xml")))
    assert feed.fields["timestamp"] == parse_time("2025-01-06T10:00:00Z") and feed.fields["text"].startswith("Finnair cut routes")


def test_the_split_keeps_repeated_sentences_on_one_side() -> None:
    rows = [("positive", f"Sentence {i} rose.") for i in range(40)] + [("negative", f"Sentence {i} fell.") for i in range(40)]
    rows += [("negative", "Sentence 3 rose."), ("negative", "sentence  3 rose.")]
    fit, test = grouped_split(rows, 0.25, seed=0)
    fit_keys, test_keys = {t.lower().replace("  ", " ") for _, t in fit}, {t.lower().replace("  ", " ") for _, t in test}
    assert not fit_keys & test_keys and len(fit) + len(test) == 80


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("alerts: {rules: [{name: a, kind: nope}]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alerts.rules.0.kind"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="companies\\[0\\]"):
        (tmp_path / "w.yaml").write_text("companies: [{name: X}]\n", encoding="utf-8")
        Watchlist.from_yaml(tmp_path / "w.yaml")


def test_each_rule_kind_fires_on_a_negative_run_and_not_on_a_calm_one() -> None:
    calm = [0.1, -0.1, 0.2, 0.0, 0.1, -0.2, 0.15, 0.05] * 3
    burst = [-0.9, -0.8, -0.95, -0.9]
    for kind, threshold in [("level", -0.5), ("zscore", -3.0), ("cusum", 2.0)]:
        rule = RuleConfig(name=kind, kind=kind, threshold=threshold, min_items=3, drift=0.2)
        assert evaluate(rule, burst, calm, 24) is not None and evaluate(rule, calm[:4], calm, 24) is None
    volume = RuleConfig(name="v", kind="volume", threshold=4.0, min_items=3)
    assert evaluate(volume, burst * 2, calm, 24) is not None and evaluate(volume, calm[:3], calm, 24) is None


def test_resending_items_changes_nothing_and_entities_get_their_sentences_scores(monitor) -> None:
    items = [raw("Nokia profit rose. Finnair posted a loss.", T0), raw("Nokia and Kone shares fell.", T0 + 60)]
    first = monitor.ingest(items, now=T0 + 100)
    again = monitor.ingest(items + [raw("Nokia  and Kone shares fell.", T0 + 90)], now=T0 + 100)
    assert (first.stored, again.stored, again.duplicates) == (2, 0, 3)
    with monitor.db.connect() as conn:
        rows = conn.execute(store.select(store.mentions.c.entity, store.mentions.c.score).order_by(store.mentions.c.id)).all()
        counts = store.counts(conn)
    assert [(e, s) for e, s in rows] == [("NOKIA", 0.8), ("FIA1S", -0.9), ("NOKIA", -0.9), ("KNEBV", -0.9)]
    assert counts["items"] == 2 and counts["rejected"] == {"duplicate": 3}


def test_hourly_and_daily_aggregates_come_from_sql(monitor) -> None:
    monitor.ingest([raw(f"Nokia profit rose {i}.", T0 + i * 1800) for i in range(4)] + [raw("Nokia fell.", T0 + 86400)], now=T0 + 2 * 86400)
    with monitor.db.connect() as conn:
        hours = store.series(conn, "NOKIA", "hour")
        days = store.series(conn, "NOKIA", "day")
        overall = store.series(conn, None, "day")
    assert [p["n"] for p in hours] == [2, 2, 1] or [p["n"] for p in hours] == [1, 2, 1, 1]
    assert sum(p["n"] for p in days) == 5 and days[-1]["mean"] == -0.9 and days[-1]["negative"] == 1
    assert sum(p["n"] for p in overall) == 5


def test_a_burst_fires_each_rule_once_with_linked_items_and_a_cooldown(monitor) -> None:
    calm = [raw(f"Nokia update {i}.", T0 + i * 3600) for i in range(30)]
    burst = [raw(f"Nokia shares plunged {i}.", T0 + 30 * 3600 + i * 300) for i in range(6)]
    monitor.ingest(calm, now=T0 + 40 * 3600)
    fired = monitor.ingest(burst, now=T0 + 40 * 3600).alerts
    assert sorted(a["rule"] for a in fired) == ["busy", "drop", "low", "shift"]
    assert all(a["entity"] == "NOKIA" and a["item_ids"] for a in fired)
    more = monitor.ingest([raw(f"Nokia shares plunged again {i}.", T0 + 31 * 3600 + i * 60) for i in range(4)], now=T0 + 40 * 3600)
    assert more.alerts == []
    json.dumps(fired)


@pytest.mark.slow
def test_the_store_aggregates_deduplicates_and_alerts_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    from lmforge_monitor.pipeline import Monitor
    from lmforge_monitor.sentiment import Scorer
    from monitor_fakes import FakeNer, keyword_scores, make_config

    cfg = make_config(tmp_path, store={"url": postgres_url})
    watchlist = Watchlist.from_yaml(cfg.path(cfg.paths.watchlist))
    monitor = Monitor(cfg, Scorer(keyword_scores, batch=8), watchlist, candidates=Candidates(FakeNer(), watchlist, ["ORG"]))
    assert monitor.db.dialect.name == "postgresql"
    records = [raw(f"Finnair shares plunged {i}. Outotec was quiet.", ts=T0 + 600 * i) for i in range(5)]
    first = monitor.ingest(records, now=T0 + 4000)
    again = monitor.ingest(records, now=T0 + 4000)
    assert (first.stored, again.stored, again.duplicates) == (5, 0, 5)
    assert {a["rule"] for a in first.alerts} >= {"low"}
    with monitor.db.connect() as conn:
        hours = store.series(conn, "FIA1S", "hour")
        assert sum(p["n"] for p in hours) == 5 and all(p["mean"] == pytest.approx(-0.9) for p in hours)
        assert store.candidate_rows(conn)[0]["name"] == "Outotec" and store.candidate_rows(conn)[0]["items"] == 5
        assert store.counts(conn)["items"] == 5
