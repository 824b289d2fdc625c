"""The chat, agent and analytics pages in headless Chromium (Playwright): no console errors, the main interactions work."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from lmforge.errors import LmforgeError

from lmforge_support.cli import build_app
from lmforge_support.config import load_config
from support_fakes import ZOO_ENCODER, KeywordClassifier, number_span

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a temporary folder; LMFORGE_SCREENSHOTS=docs/images refreshes the ones the docs show.
IMAGES = Path(os.environ.get("LMFORGE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "lmforge-screenshots")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                                                  "(apt-get install -y chromium)")]


@pytest.fixture
def server(tmp_path: Path, keys: dict) -> Iterator[str]:
    """The application on a free port of 127.0.0.1, stopped after the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_config({"data_dir": str(tmp_path), "service": {"keys": str(keys["path"]), "port": port}})
    try:
        app = build_app(cfg, {"encoder": ZOO_ENCODER}, KeywordClassifier(), span=number_span)
    except LmforgeError as exc:
        pytest.skip(f"the zoo encoder {ZOO_ENCODER} is not available here ({exc})")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_support_chat_and_agent_pages(server: str, keys: dict) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        errors: list[str] = []
        chat = browser.new_page(viewport={"width": 900, "height": 760})
        chat.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        chat.on("pageerror", lambda e: errors.append(str(e)))
        chat.goto(server + "/support/")
        chat.fill("#key", keys["customer"])
        chat.dispatch_event("#key", "change")
        chat.click("#send")
        assert "Type a question" in chat.inner_text("#error")
        chat.fill("#text", "My card did not arrive")
        chat.click("#send")
        chat.wait_for_selector(".turn.bot >> text=working days", timeout=15000)
        assert chat.inner_text(".turn.bot mark.span") == "5 working days"  # the answering span is marked
        chat.click(".thumb-up")
        chat.wait_for_selector(".thumb-up.on", timeout=5000)
        chat.fill("#text", "I need to cancel a transfer")
        chat.press("#text", "Enter")
        chat.wait_for_selector("text=How much was it", timeout=15000)
        chat.fill("#text", "I want to talk to a human")
        chat.press("#text", "Enter")
        chat.wait_for_selector(".turn.notice", timeout=15000)
        chat.screenshot(path=str(IMAGES / "support_chat.png"))

        agent = browser.new_page(viewport={"width": 900, "height": 760})
        agent.on("pageerror", lambda e: errors.append(str(e)))
        agent.goto(server + "/support/agent")
        agent.fill("#key", keys["agent"])
        agent.dispatch_event("#key", "change")
        agent.click("#refresh")
        agent.wait_for_selector(".queued-row a", timeout=10000)
        agent.click(".queued-row a")
        agent.wait_for_selector("#transcript >> text=talk to a human", timeout=10000)
        agent.fill("#text", "Hello, this is Sam from Larkspur. I can help.")
        agent.click("#send")
        agent.wait_for_selector("#transcript >> text=this is Sam", timeout=10000)
        agent.screenshot(path=str(IMAGES / "support_agent.png"))

        chat.wait_for_selector(".turn.agent", timeout=15000)
        agent.goto(server + "/support/analytics")
        agent.wait_for_selector("#intents tr", timeout=10000)
        agent.screenshot(path=str(IMAGES / "support_analytics.png"), full_page=True)
        browser.close()
    assert not errors, errors
