"""The monitor's routes on lmforge's service: keys, pushed items, de-duplication, dashboard data."""

from __future__ import annotations

from typing import Any

import httpx

T0 = 1_736_000_000


def call(served: dict[str, Any], method: str, path: str, key: str | None = "key", **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {served[key]}"} if key else {}
    return httpx.request(method, served["url"] + path, headers=headers, timeout=30, **kwargs)


def test_ingest_needs_a_key_and_a_key_scoped_to_ingest_reads_nothing_else(served: dict[str, Any]) -> None:
    body = {"items": [{"timestamp": T0, "source": "push", "text": "Kone profit rose."}]}
    assert call(served, "POST", "/v1/monitor/ingest", key=None, json=body).status_code == 401
    assert call(served, "POST", "/v1/monitor/ingest", key="ingest_key", json=body).status_code == 200
    assert call(served, "GET", "/v1/monitor/stats", key="ingest_key").status_code == 403


def test_pushed_items_are_stored_once_and_feed_series_items_and_alerts(served: dict[str, Any]) -> None:
    items = [{"timestamp": T0 + i * 600, "text": f"Finnair shares plunged {i}.", "source": "push"} for i in range(4)]
    first = call(served, "POST", "/v1/monitor/ingest", json={"items": items}).json()
    again = call(served, "POST", "/v1/monitor/ingest", json={"items": items}).json()
    assert (first["stored"], again["stored"], again["duplicates"]) == (4, 0, 4)
    assert {a["rule"] for a in first["alerts"]} >= {"low"}
    series = call(served, "GET", "/v1/monitor/series?entity=FIA1S&bucket=hour").json()
    assert sum(p["n"] for p in series["points"]) == 4
    latest = call(served, "GET", "/v1/monitor/items?entity=FIA1S&limit=2").json()
    assert len(latest) == 2 and latest[0]["mentions"][0]["entity"] == "FIA1S"
    alerts = call(served, "GET", "/v1/monitor/alerts?entity=FIA1S").json()
    assert alerts and alerts[0]["items"] and "FIA1S" in alerts[0]["message"]
    entities = {e["ticker"]: e for e in call(served, "GET", "/v1/monitor/entities").json()}
    assert entities["FIA1S"]["mentions"] == 4 and entities["FIA1S"]["aliases"] == ["芬兰航空"]


def test_bad_pushed_items_are_counted_not_fatal_and_the_page_needs_no_key(served: dict[str, Any]) -> None:
    body = {"items": [{"timestamp": "not a time", "text": "Nokia rose."}, {"timestamp": T0 + 10 ** 9, "text": "Nokia fell."},
                      {"text": "芬兰航空 股价下跌。"}]}
    result = call(served, "POST", "/v1/monitor/ingest", json=body).json()
    assert result["rejected"] == {"bad_timestamp": 1, "future_timestamp": 1} and result["repaired"] == {"missing_timestamp": 1}
    assert call(served, "POST", "/v1/monitor/ingest", json={"items": []}).status_code == 422
    page = httpx.get(served["url"] + "/monitor", timeout=30)
    assert page.status_code == 200 and "/monitor/static/app.js" in page.text
    assert httpx.get(served["url"] + "/monitor/static/app.js", timeout=30).status_code == 200


def test_candidates_list_organizations_outside_the_watchlist(served: dict[str, Any]) -> None:
    items = [{"timestamp": T0 + 7200 + i, "text": f"Wartsila won an order with Kone ({i}).", "source": "push"} for i in range(3)]
    assert call(served, "POST", "/v1/monitor/ingest", json={"items": items}).json()["stored"] == 3
    found = call(served, "GET", "/v1/monitor/candidates?limit=5").json()
    assert found["ner"] is True
    assert {c["name"]: c["items"] for c in found["candidates"]}["Wartsila"] == 3
    assert "Kone" not in {c["name"] for c in found["candidates"]}
    assert call(served, "GET", "/v1/monitor/candidates", key="ingest_key").status_code == 403


def test_an_item_explains_the_words_that_drove_its_sentences(served: dict[str, Any]) -> None:
    body = {"items": [{"timestamp": T0 + 9000, "text": "Kone shares plunged after the warning. Nokia was flat.", "source": "push"}]}
    item_id = call(served, "POST", "/v1/monitor/ingest", json=body).json()["item_ids"][0]
    found = call(served, "GET", f"/v1/monitor/items/{item_id}/explain").json()
    assert found["method"] == "occlusion" and [s["text"] for s in found["sentences"]] == ["Kone shares plunged after the warning.",
                                                                                          "Nokia was flat."]
    first = found["sentences"][0]
    assert first["label"] == "negative" and {w for w, v in zip(first["words"], first["scores"]) if v > 0} == {"plunged", "warning."}
    assert call(served, "GET", "/v1/monitor/items/999999/explain").status_code == 404
    scorer = served["monitor"].scorer
    saved, scorer.explain = scorer.explain, None
    try:
        assert call(served, "GET", f"/v1/monitor/items/{item_id}/explain").status_code == 501
    finally:
        scorer.explain = saved
