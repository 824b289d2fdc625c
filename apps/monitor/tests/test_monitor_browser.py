"""The dashboard in headless Chromium: key entry, charts, company filter, alert details, no console errors; screenshots."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from lmforge_monitor.entities import Entity
from lmforge_monitor.replay import replay
from lmforge_monitor.sample import build_stream

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a temporary folder; LMFORGE_SCREENSHOTS=docs/images refreshes the ones the docs show.
IMAGES = Path(os.environ.get("LMFORGE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "lmforge-screenshots")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
WORDS = ["rose on strong demand", "was stable", "opened a new plant", "grew its profit", "kept its guidance", "fell on weak orders"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]


@pytest.fixture(scope="module")
def filled(served: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rows = [("neutral", f"{name} {WORDS[i % len(WORDS)]} (report {i}).") for i in range(90) for name in ("Nokia", "Finnair", "Kone")]
    entities = [Entity("NOKIA", "Nokia"), Entity("FIA1S", "Finnair"), Entity("KNEBV", "Kone")]
    path = tmp_path_factory.mktemp("stream") / "stream.jsonl"
    build_stream(rows, entities, path, days=14, bursts=2, burst_size=6, burst_span_s=1800, now=int(time.time()))
    replay(served["monitor"], path)
    return served


def test_the_dashboard_shows_series_items_and_alerts_without_console_errors(filled: dict[str, Any]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(filled["url"] + "/monitor", timeout=30_000)
            page.wait_for_selector("#status:has-text('key')", timeout=15_000)
            page.fill("#key", filled["key"])
            page.click("#keyform button")
            page.wait_for_selector("#alerts li.alert", timeout=15_000)
            assert page.locator("#sentiment circle").count() >= 10 and page.locator("#volume rect").count() >= 10
            assert page.locator("#items li").count() == 30 and page.locator("#candidates li").count() >= 1
            page.select_option("#entity", "NOKIA")
            page.wait_for_function("document.querySelectorAll('#alerts li.alert b')[0]?.textContent.startsWith('NOKIA')", timeout=15_000)
            IMAGES.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(IMAGES / "monitor_dashboard.png"), full_page=True)
            page.locator("#items li.item .why-button").first.click()
            page.wait_for_selector("#items .why p", timeout=15_000)
            assert page.locator("#items .why span").count() >= 2
            page.locator("#alerts li.alert").first.click()
            assert page.locator("#alerts li.alert.open .linked li").count() >= 3
            page.select_option("#bucket", "hour")
            page.wait_for_timeout(500)
            page.screenshot(path=str(IMAGES / "monitor_alert.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
