"""The studio: run scanning, its pages and JSON endpoints (FastAPI TestClient), launches and API keys."""

from __future__ import annotations

import json
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("jinja2", reason="the studio needs the studio extra: pip install 'lmforge[studio]'")

from fastapi.testclient import TestClient  # noqa: E402

from lmforge.cli import parser  # noqa: E402
from lmforge.errors import ConfigError  # noqa: E402
from lmforge.serving.auth import Authorizer, KeyStore  # noqa: E402
from lmforge.studio import RunIndex, create_app, run_detail  # noqa: E402
from lmforge.studio.apps import discover  # noqa: E402
from lmforge.studio.auth import COOKIE, authorizer_for, is_loopback  # noqa: E402
from lmforge.studio.launch import Launcher, config_tree, log_tail, progress  # noqa: E402
from lmforge.studio.runs import confusion  # noqa: E402
from lmforge.studio.server import parse_app_urls  # noqa: E402
from serving_support import bearer, make_keys  # noqa: E402
from studio_support import build_runs  # noqa: E402


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, tiny_llama: Path) -> Path:
    return build_runs(tmp_path_factory.mktemp("studio") / "runs", tiny_bert, tiny_llama)


@pytest.fixture(scope="module")
def client(runs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app([runs_root], jobs_dir=tmp_path_factory.mktemp("jobs"))) as c:
        yield c


def test_scan_finds_every_run_with_its_kind_method_and_metrics(runs_root: Path) -> None:
    rows = {r.id: r for r in RunIndex([runs_root]).scan()}
    assert set(rows) == {"reviews", "sweep/lora", "lm", "broken"}
    assert (rows["reviews"].kind, rows["reviews"].method, rows["reviews"].task) == ("classifier", "full", "classification")
    assert rows["reviews"].split == "validation" and 0 <= rows["reviews"].metrics["accuracy"] <= 1
    assert (rows["sweep/lora"].kind, rows["sweep/lora"].method) == ("adapter", "lora")
    assert rows["lm"].kind == "generator" and rows["lm"].size_bytes > 0
    assert rows["broken"].status == "incomplete" and rows["broken"].kind == ""


def test_run_detail_has_curves_config_and_confusion(runs_root: Path) -> None:
    index = RunIndex([runs_root])
    info = next(r for r in index.scan() if r.id == "sweep/lora")
    detail = run_detail(info)
    assert len(detail["curves"]["train"]["loss"]) == 8 and detail["curves"]["eval"]["accuracy"] == [[8.0, 0.6]]
    assert detail["confusion"] == {"rows": ["negative", "positive"], "cols": ["negative", "positive"], "matrix": [[3, 1], [1, 3]],
                                   "split": "validation"}
    assert "lora" in detail["config"]
    real = run_detail(next(r for r in index.scan() if r.id == "reviews"))
    assert real["curves"]["train"]["loss"] and "accuracy" in real["metric_keys"] and real["meta"]["kind"] == "classifier"


def test_confusion_of_entity_results_adds_missed_and_spurious() -> None:
    results = {"validation": {"f1": 0.5, "confusion": {"types": ["LOC", "PER"], "table": {"LOC": {"LOC": 4, "PER": 1, "missed": 2},
               "PER": {"LOC": 0, "PER": 5, "missed": 1}}, "spurious": {"LOC": 3, "PER": 0}}}}
    found = confusion(results)
    assert found["rows"] == ["LOC", "PER", "spurious"] and found["cols"] == ["LOC", "PER", "missed"]
    assert found["matrix"] == [[4, 1, 2], [0, 5, 1], [3, 0, 0]]


def test_run_ids_of_several_roots_name_their_root(tmp_path: Path, runs_root: Path) -> None:
    other = tmp_path / "more"
    (other / "x").mkdir(parents=True)
    (other / "x" / "metrics.jsonl").write_text("", encoding="utf-8")
    ids = {r.id for r in RunIndex([runs_root, other]).scan()}
    assert "runs/reviews" in ids and "more/x" in ids


@pytest.mark.parametrize("path, text", [("/", "sweep/lora"), ("/run/reviews", "Resolved config"), ("/run/sweep/lora", "Confusion matrix"),
                                        ("/compare?runs=reviews&runs=sweep/lora", "compare-metrics"), ("/playground", "pg-run"),
                                        ("/launch", "launch-form"), ("/apps", "lmforge.apps"), ("/run/broken", "incomplete")])
def test_pages_render(client: TestClient, path: str, text: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and text in response.text
    assert "/static/vendor/chart.umd.min.js" in response.text


def test_static_chart_library_and_its_license_are_served(client: TestClient) -> None:
    assert "Chart.js" in client.get("/static/vendor/chart.umd.min.js").text[:200]
    assert "MIT License" in client.get("/static/vendor/chart.js-LICENSE.md").text


def test_unknown_run_is_a_404_page_and_a_400_json_error(client: TestClient) -> None:
    assert client.get("/run/nope").status_code == 404
    response = client.post("/api/predict", json={"run": "nope", "text": "x"})
    assert response.status_code == 400 and "no run named 'nope'" in response.json()["error"]["message"]


def test_api_runs_filters(client: TestClient) -> None:
    assert [r["id"] for r in client.get("/api/runs", params={"kind": "adapter"}).json()] == ["sweep/lora"]
    assert {r["id"] for r in client.get("/api/runs", params={"q": "tiny-llama"}).json()} == {"lm"}
    assert client.get("/api/runs/reviews").json()["run"]["kind"] == "classifier"


def test_predict_gives_probabilities_and_latency(client: TestClient) -> None:
    body = client.post("/api/predict", json={"run": "reviews", "text": "a good film"}).json()
    assert body["operation"] == "classify" and body["latency_ms"] >= 0
    assert set(body["result"]["probabilities"]) == {"negative", "positive"}
    assert abs(sum(body["result"]["probabilities"].values()) - 1) < 1e-4
    adapter = client.post("/api/predict", json={"run": "sweep/lora", "text": "a good film"}).json()
    assert adapter["result"]["label"] in ("negative", "positive")


@pytest.mark.parametrize("method", ["occlusion", "integrated_gradients"])
def test_explain_highlights_words(client: TestClient, method: str) -> None:
    if method == "integrated_gradients":
        pytest.importorskip("captum", reason="integrated gradients need Captum")
    assert method in client.get("/api/models/reviews").json()["explain"]
    body = client.post("/api/explain", json={"run": "reviews", "text": "a good <b>film</b>", "method": method}).json()
    assert body["explanation"]["words"][:2] == ["a", "good"] and body["explanation"]["method"] == method
    assert "<span" in body["html"] and "&lt;" in body["html"] and "<b>" not in body["html"]


def test_explain_refuses_a_generator(client: TestClient) -> None:
    response = client.post("/api/explain", json={"run": "lm", "text": "hello"})
    assert response.status_code == 400 and "cannot be explained" in response.json()["error"]["message"]


def test_generate_streams_server_sent_events(client: TestClient) -> None:
    assert client.get("/api/models/lm").json()["operations"] == ["generate"]
    response = client.get("/api/generate", params={"run": "lm", "prompt": "good", "max_new_tokens": 4})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.count("data: {\"text\"") >= 1 and response.text.rstrip().endswith("event: done\ndata: {}")
    refused = client.get("/api/generate", params={"run": "reviews", "prompt": "good"})
    assert refused.status_code == 400


def test_launch_preview_writes_the_cli_yaml_and_names_bad_keys(client: TestClient) -> None:
    body = client.post("/api/launch/preview", json={"fields": {"data.train": "x.csv", "train.epochs": "2", "model.name": ""},
                                                    "overrides": ["train.seed=3"]}).json()
    assert body["yaml"] == "data:\n  train: x.csv\ntrain:\n  epochs: 2\n  seed: 3\n"
    bad = client.post("/api/launch/preview", json={"fields": {"data.train": "x.csv", "train.epochz": "2"}})
    assert bad.status_code == 400 and "epochz" in bad.json()["error"]["message"]


def test_config_tree_needs_training_data() -> None:
    with pytest.raises(ConfigError, match="data.train"):
        config_tree({"train.epochs": "1"})


def test_progress_and_log_tail_read_the_progress_bar() -> None:
    text = "loading\ntraining:   0%|     | 0/20 [00:00<?]\rtraining:  45%|##   | 9/20 [00:03<00:04]\nsaved\n"
    assert progress(text) == {"step": 9, "total": 20, "fraction": 0.45}
    assert log_tail(text) == ["loading", "training:  45%|##   | 9/20 [00:03<00:04]", "saved"]
    assert progress("nothing yet") is None


def _fake_python(tmp_path: Path) -> str:
    """An interpreter stand-in that prints a progress bar and then waits (like a long fine-tune)."""
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\nprintf 'training:  10%%|#    | 1/10 [00:01<00:09]\\n'\nexec sleep 30\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_launcher_reports_progress_and_stops_a_job(tmp_path: Path) -> None:
    launcher = Launcher(tmp_path / "jobs", cwd=tmp_path, python=_fake_python(tmp_path))
    # As in a studio a shell started in the background (`lmforge studio &`): SIGINT ignored, which children would inherit.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job = launcher.start(config_tree({"data.train": "x.csv", "output.name": "demo", "output.dir": "runs/{name}"}))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (job.folder / "config.yaml").read_text(encoding="utf-8").startswith("data:\n  train: x.csv")
    assert job.run_dir == (tmp_path / "runs" / "demo").resolve()
    deadline = time.monotonic() + 10
    while launcher.status(job.id)["progress"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert launcher.status(job.id)["progress"]["step"] == 1 and launcher.status(job.id)["state"] == "running"
    launcher.stop(job.id)
    job.process.wait(10)
    assert launcher.status(job.id)["state"] == "stopped" and launcher.list()[0]["id"] == job.id


def test_launch_runs_lmforge_finetune_to_the_end(client: TestClient, runs_root: Path, tiny_bert: Path) -> None:
    data = runs_root.parent / "toy.csv"
    fields = {"data.train": str(data), "data.max_length": "16", "data.cache": "false", "model.name": str(tiny_bert),
              "train.epochs": "1", "train.batch_size": "64", "output.name": "launched", "output.dir": str(runs_root / "{name}"),
              "output.report": "false", "output.baseline": "false", "output.tensorboard": "false"}
    job = client.post("/api/launch", json={"fields": fields}).json()
    deadline = time.monotonic() + 120
    while (status := client.get(f"/api/jobs/{job['id']}").json())["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status["state"] == "completed", "\n".join(status["log"])
    assert status["run_id"] == "launched" and status["progress"]["fraction"] == 1.0
    assert json.loads((runs_root / "launched" / "model" / "lmforge.json").read_text())["kind"] == "classifier"


def test_loopback_needs_no_key_and_other_hosts_need_one(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert authorizer_for("127.0.0.1", tmp_path / "keys.json") is None
    with pytest.raises(ConfigError, match="lmforge keys create"):
        authorizer_for("0.0.0.0", tmp_path / "keys.json")
    make_keys(tmp_path / "keys.json", studio={"endpoints": ["studio"]})
    assert isinstance(authorizer_for("0.0.0.0", tmp_path / "keys.json"), Authorizer)


def test_keys_guard_pages_and_api_beyond_loopback(tmp_path: Path, runs_root: Path) -> None:
    secrets = make_keys(tmp_path / "keys.json", studio={"endpoints": ["studio"]}, other={"endpoints": ["classify"]})
    app = create_app([runs_root], Authorizer(KeyStore(tmp_path / "keys.json", scrypt_n=16)), jobs_dir=tmp_path / "jobs")
    with TestClient(app) as c:
        page = c.get("/run/reviews", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/run/reviews"
        assert c.get("/api/runs").status_code == 401
        assert c.get("/api/runs", headers=bearer(secrets["other"])).status_code == 403
        assert c.get("/api/runs", headers=bearer(secrets["studio"])).status_code == 200
        assert c.get("/login").status_code == 200 and c.get("/static/studio.js").status_code == 200
        assert c.post("/api/login", json={"key": "lmf_00000000_" + "x" * 32}).status_code == 401
        signed = c.post("/api/login", json={"key": secrets["studio"]})
        assert signed.status_code == 200 and COOKIE in signed.cookies
        assert c.get("/").status_code == 200


def test_apps_are_listed_installed_or_not(client: TestClient) -> None:
    apps = {a.name: a for a in discover({"support": "http://127.0.0.1:8001/"})}
    assert {"support", "monitor", "recommend"} <= set(apps) and apps["support"].url == "http://127.0.0.1:8001/"
    page = client.get("/").text
    for app in discover():
        assert app.title in page
        assert ("not installed" in page) or app.installed


def test_cli_parses_the_studio_verb() -> None:
    args = parser().parse_args(["studio", "--runs", "a", "b", "--port", "9000", "--app", "support=http://x/"])
    assert (args.runs, args.port, args.host, args.app) == (["a", "b"], 9000, "127.0.0.1", ["support=http://x/"])
    assert parse_app_urls(args.app) == {"support": "http://x/"}
    with pytest.raises(ConfigError, match="NAME=URL"):
        parse_app_urls(["support"])
