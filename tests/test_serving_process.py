"""``lmforge serve`` as a process with two forked workers: hot reload under load (SIGHUP) and drain (SIGTERM)."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lmforge.cli import main
from lmforge.logs import setup_logging
from lmforge.serving.logs import setup_service_logging
from serving_support import bearer, build_classifier_run, free_port, make_keys

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tiny_bert: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("process")
    run = build_classifier_run(tiny_bert, tmp / "clf")
    secret = make_keys(tmp / "keys.json", all={"rate_per_minute": 0})["all"]
    port = free_port()
    config = tmp / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"clf": str(run), "gen": str(tiny_llama)}, "auth": {"keys": str(tmp / "keys.json")},
        "server": {"port": port, "workers": 2, "drain_timeout_s": 20},
        "batching": {"max_batch_size": 8, "max_wait_ms": 2}, "limits": {"max_new_tokens": 200}}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    log = (tmp / "serve.log").open("w")  # a file, not a pipe: a full pipe would stall the server
    process = subprocess.Popen([sys.executable, "-m", "lmforge", "serve", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"lmforge serve did not become ready: {(tmp / 'serve.log').read_text()[-2000:]}")
    yield {"url": url, "secret": secret, "process": process, "run": run, "base": tiny_bert}
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def _version(server: dict) -> str:
    models = httpx.get(server["url"] + "/v1/models", headers=bearer(server["secret"]), timeout=10).json()["models"]
    return next(m["version"] for m in models if m["name"] == "clf")


def test_sighup_reloads_a_new_version_of_the_run_under_load_without_losing_a_request(server: dict) -> None:
    old = _version(server)
    stop, codes, errors = threading.Event(), [], []

    def load() -> None:
        with httpx.Client(headers=bearer(server["secret"]), timeout=30) as client:
            while not stop.is_set():
                try:
                    codes.append(client.post(server["url"] + "/v1/classify", json={"texts": ["good movie"]}).status_code)
                except httpx.TransportError as exc:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        build_classifier_run(server["base"], server["run"], seed=1)  # a new version of the run, saved over the old one
        server["process"].send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while _version(server) == old and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the old workers drain while the load goes on
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert _version(server) != old
    assert errors == [] and len(codes) > 20 and set(codes) == {200}


def test_sigterm_drains_in_flight_requests_before_exiting(server: dict) -> None:
    def generate(i: int) -> tuple[int, float]:
        r = httpx.post(server["url"] + "/v1/generate", json={"model": "gen", "prompt": f"good {i}", "max_new_tokens": 200, "seed": i},
                       headers=bearer(server["secret"]), timeout=60)
        return r.status_code, time.monotonic()

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(generate, i) for i in range(6)]
        time.sleep(0.3)
        signalled = time.monotonic()
        server["process"].send_signal(signal.SIGTERM)
        answers = [f.result() for f in futures]
    assert [code for code, _ in answers] == [200] * 6
    assert max(done for _, done in answers) > signalled  # some were still running when the signal came
    assert server["process"].wait(30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(server["url"] + "/healthz", timeout=2)


def test_keys_command_creates_lists_and_revokes_without_showing_secrets_again(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = str(tmp_path / "keys.json")
    assert main(["keys", "--store", store, "create", "support-bot", "--models", "sentiment", "--endpoints", "classify,embed"]) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("lmf_") and "shown only now" in out
    assert main(["keys", "--store", store, "list"]) == 0
    listing = capsys.readouterr().out
    key_id = secret.split("_")[1]
    assert key_id in listing and "support-bot" in listing and "active" in listing and secret not in listing
    assert main(["keys", "--store", store, "revoke", key_id]) == 0
    assert main(["keys", "--store", store, "list", "--json"]) == 0
    assert '"revoked": true' in capsys.readouterr().out.splitlines()[-1]
    assert main(["keys", "--store", store, "revoke", "ffffffff"]) == 2


@pytest.mark.parametrize("setup", [setup_logging, lambda: setup_service_logging("info")], ids=["console", "service"])
def test_logs_follow_stderr_after_the_stream_they_started_on_is_closed(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    loggers = [logging.getLogger(), logging.getLogger("lmforge")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        setup()
        first.close()  # what a finished command's redirected (or a test's captured) stderr does
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("lmforge.serving").info("after the first stream closed")
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(level)
    assert "after the first stream closed" in second.getvalue() and "Logging error" not in second.getvalue()
