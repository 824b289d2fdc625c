"""The studio in a real browser: Debian's Chromium driven by Playwright; screenshots go to $LMFORGE_SCREENSHOTS (see DEVELOPERS.md)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

pytest.importorskip("jinja2", reason="the studio needs the studio extra: pip install 'lmforge[studio]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need Playwright for Python: pip install playwright")

from lmforge.studio import create_app  # noqa: E402
from serving_support import ServerThread  # noqa: E402
from studio_support import build_runs  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]
# Screenshots go to a temporary folder; LMFORGE_SCREENSHOTS=docs/images refreshes the ones the docs show.
IMAGES = Path(os.environ.get("LMFORGE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "lmforge-screenshots")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (install Debian's chromium package)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, tiny_llama: Path) -> Iterator[ServerThread]:
    root = build_runs(tmp_path_factory.mktemp("studio-browser") / "runs", tiny_bert, tiny_llama)
    app = create_app([root], jobs_dir=tmp_path_factory.mktemp("jobs"), app_urls={"support": "http://127.0.0.1:9/"})
    with ServerThread(app) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.set_default_timeout(60_000)
    yield tab
    context.close()


def shot(page: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"studio_{name}.png"), full_page=True)


@pytest.mark.parametrize("path, name", [("/", "runs"), ("/run/reviews", "run"), ("/run/sweep/lora", None), ("/run/broken", None),
                                        ("/compare", None), ("/playground", None), ("/launch", None), ("/apps", "apps")])
def test_each_page_loads_without_console_errors(server: ServerThread, page: Any, path: str, name: str | None) -> None:
    page.goto(server.url + path)
    page.wait_for_load_state("networkidle")
    assert page.locator("nav.top a.brand").inner_text() == "lmforge studio"
    if path.startswith("/run/") and path != "/run/broken":
        page.wait_for_selector("#charts canvas")
    if name:
        shot(page, name)
    assert page.errors == []


def test_runs_table_filters_and_starts_a_comparison(server: ServerThread, page: Any) -> None:
    page.goto(server.url + "/")
    page.select_option("#filter-kind", "adapter")
    assert page.locator("#runs tbody tr:visible").count() == 1
    page.select_option("#filter-kind", "")
    page.check("input.pick[value='reviews']")
    page.check("input.pick[value='sweep/lora']")
    page.click("#compare-selected")
    # The picked runs go in table order (newest first), which depends on which tiny run finished last.
    page.wait_for_url(lambda url: urlparse(url).path == "/compare" and sorted(parse_qs(urlparse(url).query)["runs"]) == ["reviews", "sweep/lora"])
    page.wait_for_selector("#charts canvas")
    assert page.errors == []


def test_comparison_renders_its_charts(server: ServerThread, page: Any) -> None:
    page.goto(server.url + "/compare?runs=reviews&runs=sweep/lora")
    page.wait_for_function("Number(document.body.dataset.charts || 0) >= 2")
    assert page.locator("#charts canvas").count() >= 2
    assert page.locator("#compare-metrics th a").all_inner_texts() == ["reviews", "sweep/lora"]
    # Chart.js drew something: the canvas is not blank.
    painted = page.evaluate("() => { const c = document.querySelector('#charts canvas'); const d = c.getContext('2d')"
                            ".getImageData(0, 0, c.width, c.height).data; return d.some((v, i) => i % 4 === 3 && v > 0); }")
    assert painted
    shot(page, "compare")
    assert page.errors == []


def test_playground_prediction_and_explanation_appear(server: ServerThread, page: Any) -> None:
    page.goto(server.url + "/playground?run=reviews")
    page.wait_for_selector("body[data-ready='reviews']")
    page.fill("#pg-text", "a good film")
    page.click("#pg-predict")
    page.wait_for_selector("#pg-label")
    assert page.locator("#pg-label").inner_text() in ("negative", "positive")
    assert page.locator(".prob").count() == 2 and "ms" in page.locator("#pg-latency").inner_text()
    page.click("#pg-explain")
    page.wait_for_selector("#pg-explained span")
    assert "good" in page.locator("#pg-explained").inner_text()
    shot(page, "playground")
    assert page.errors == []


def test_playground_streams_a_generator(server: ServerThread, page: Any) -> None:
    page.goto(server.url + "/playground?run=lm")
    page.wait_for_selector("body[data-ready='lm']")
    assert page.locator("#pg-generate").is_visible() and not page.locator("#pg-explain").is_visible()
    page.fill("#pg-text", "good")
    page.fill("#pg-max-tokens", "6")
    page.click("#pg-generate")
    page.wait_for_selector("#pg-generated[data-done='1']")
    assert "total" in page.locator("#pg-latency").inner_text()
    assert page.errors == []


def test_launch_form_shows_the_yaml(server: ServerThread, page: Any) -> None:
    page.goto(server.url + "/launch")
    page.fill("input[name='data.train']", "data/reviews.csv")
    page.fill("input[name='train.epochs']", "2")
    page.wait_for_function("document.getElementById('launch-yaml').textContent.includes('reviews.csv')")
    text = page.locator("#launch-yaml").inner_text()
    assert "data:\n  train: data/reviews.csv" in text and "epochs: 2" in text and "method: full" in text
    shot(page, "launch")
    assert page.errors == []
