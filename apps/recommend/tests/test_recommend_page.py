"""The web page in headless Chromium: no console errors; recommend for a user, similar films, a new user's profile, errors shown."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge_recommend.app import LoopbackServer, create, service_config
from lmforge_recommend.config import RecommendConfig
from lmforge_recommend.store import Store, default_url
from recommend_testing import small_recommender, write_movies

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a temporary folder; LMFORGE_SCREENSHOTS=docs/images refreshes the ones the docs show.
IMAGES = Path(os.environ.get("LMFORGE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "lmforge-screenshots")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent (Debian's chromium package runs the page tests)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture(scope="module")
def url(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("page")
    config = RecommendConfig(service={"models": {"text": str(tiny_encoder)}, "auth": {"enabled": False}})
    app = create(small_recommender(write_movies(tmp / "movies")), Store(default_url(tmp / "data")), service_config(config))
    with LoopbackServer(app) as running:
        yield running.url + "/recommend"


@pytest.fixture
def page(url: str) -> Iterator[tuple[object, list[str]]]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        yield page, errors
        browser.close()


def test_a_user_gets_explained_films_and_similar_ones(page: tuple) -> None:
    page, errors = page
    page.fill("#user", "3")
    page.fill("#k", "5")
    page.click("#go")
    page.wait_for_selector("#results li .reason")
    reasons = page.locator("#results .reason").all_inner_texts()
    assert len(reasons) == 5 and all(r.startswith("because you watched ") for r in reasons)
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "recommend_user.png"), full_page=True)
    page.locator("#results li .similar").first.click()
    page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Films like')")
    assert page.locator("#results li").count() == 5
    assert errors == []


def test_a_new_user_picks_liked_films_saves_a_profile_and_filters(page: tuple) -> None:
    page, errors = page
    page.fill("#search", "love wedding")
    page.click("#find")
    page.wait_for_selector("#found li .add")
    page.locator("#found li .add").nth(0).click()
    page.locator("#found li .add").nth(1).click()
    assert page.locator("#liked li").count() == 2
    page.fill("#profile", "ana")
    page.click("#save-profile")
    page.wait_for_function("document.querySelector('#status').textContent === 'saved profile ana'")
    page.fill("#text", "love comedy")
    page.select_option("#genre", "Comedy")
    page.click("#go")
    page.wait_for_selector("#results li .reason")
    assert all("Comedy" in g for g in page.locator("#results .genres").all_inner_texts())
    page.screenshot(path=str(IMAGES / "recommend_new_user.png"), full_page=True)
    page.locator("#results li .dismiss").first.click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('dismissed')")
    assert errors == []


def test_bad_input_shows_the_services_message(page: tuple) -> None:
    page, errors = page
    page.fill("#user", "999")
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])")
    assert "user_id: user 999 has no ratings" in page.inner_text("#error")
    assert [e for e in errors if "404" not in e] == []  # the browser logs the failed fetch itself
