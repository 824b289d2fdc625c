"""The shipped config on MovieLens 100K with the real sentence encoder (slow; skipped without the shared data)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import sync_playwright

from lmforge_recommend.app import LoopbackServer, build
from lmforge_recommend.recommender import Recommender
from recommend_testing import SHARED_DATA
from test_recommend_page import ARGS, CHROMIUM, IMAGES

ML = SHARED_DATA / "ml-100k"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (ML / "ua.base").is_file(), reason=f"{ML} is absent (shared data)")]


def test_shipped_config_recommends_on_movielens() -> None:
    rec = Recommender.from_config(Path(__file__).resolve().parents[1] / "config.yaml", data_dir=ML)
    out = rec.recommend(user_id=1, k=10)
    assert len(out) == 10 and all(r["because"] is not None for r in out)
    space = rec.recommend(text="space adventure with robots", k=10, genres=["Sci-Fi"])
    assert len(space) == 10 and all("Sci-Fi" in r["genres"] for r in space)
    assert "Nightmare on Elm Street" in " ".join(rec.catalogue.titles)  # month names repaired


def test_the_service_answers_on_movielens_and_the_page_shows_it(tmp_path: Path) -> None:
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(shipped | {"store": {"url": f"sqlite:///{tmp_path / 'store.sqlite'}"}}))
    app, _ = build(config, ["auth.enabled=false", "logging.access_log=false"], ML)
    with LoopbackServer(app) as server:
        body = {"text": "space adventure with robots", "genres": ["Sci-Fi"], "k": 5}
        items = httpx.post(server.url + "/v1/recommend", json=body, timeout=60).json()["items"]
        assert len(items) == 5 and all("Sci-Fi" in r["genres"] for r in items)
        assert httpx.post(server.url + "/v1/recommend", json={"user_id": 1, "k": 3}, timeout=60).status_code == 200
        if not CHROMIUM.is_file():
            return
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.goto(server.url + "/recommend")
            page.fill("#user", "1")
            page.fill("#text", "space adventure with robots")
            page.fill("#k", "8")
            page.click("#go")
            page.wait_for_selector("#results li .reason")
            page.screenshot(path=str(IMAGES / "recommend_movielens.png"), full_page=True)
            browser.close()
