"""Deployment files: the Prometheus alert rules, the Kubernetes manifests and the Dockerfile, checked by parsing.

Nothing here runs a cluster or a container: the manifests are checked for the fields that matter
(probes, ports, the autoscaler's target), the rules with promtool where it is installed.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from lmforge.serving.alerts import AlertMonitor
from lmforge.serving.config import AlertsConfig, ServeConfig
from lmforge.serving.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _manifests() -> dict[str, dict]:
    docs = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return {doc["kind"]: doc for doc in docs}


def test_alert_rules_parse_cover_errors_latency_and_queue_and_name_real_metrics() -> None:
    rules = [r for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"] for r in group["rules"]]
    assert {"LmforgeHighErrorRate", "LmforgeHighP99Latency", "LmforgeQueueSaturated"} <= {r["alert"] for r in rules}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"} and rule["labels"]["severity"] in ("page", "warning")
    exported = {m.name for m in Metrics().registry.collect()}
    used = {name for r in rules for name in re.findall(r"\b(lmforge_[a-z_]+?)(?:_bucket|_total)?\b", r["expr"])}
    assert used and all(name in exported for name in used), used - exported


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_accepts_the_alert_rules() -> None:
    done = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_k8s_manifests_probe_ready_and_alive_and_scale_the_deployment() -> None:
    kinds = _manifests()
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap"} <= set(kinds)
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" and container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["targetPort"] for p in kinds["Service"]["spec"]["ports"]} <= set(ports)
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"] and hpa["minReplicas"] <= hpa["maxReplicas"]
    selector = kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert kinds["Service"]["spec"]["selector"] == selector == kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    serve = ServeConfig.model_validate(yaml.safe_load(kinds["ConfigMap"]["data"]["serve.yaml"]))
    assert ports == {"http": serve.server.port, "metrics": serve.server.metrics_port}
    grace = kinds["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > serve.server.drain_timeout_s + container["lifecycle"]["preStop"]["sleep"]["seconds"]


def test_dockerfile_installs_the_serve_extra_and_serves() -> None:
    text = (DEPLOY.parent / "Dockerfile").read_text()
    assert "[serve]" in text and 'ENTRYPOINT ["lmforge"]' in text and "USER 10001" in text and "/healthz" in text


def test_webhook_alert_fires_each_rule_once_per_cooldown() -> None:
    now, sent = [0.0], []
    monitor = AlertMonitor(AlertsConfig(webhook="http://127.0.0.1:9/hook", min_requests=10, p99_ms=100, cooldown_s=60),
                           queue_share=lambda: 0.9, send=sent.append, clock=lambda: now[0])
    for i in range(20):
        monitor.record(500 if i % 2 else 200, 0.5)
    assert {a.rule for a in monitor.check()} == {"error_rate", "p99_latency", "queue_saturation"}
    assert sent[0]["service"] == "lmforge" and 0 < sent[0]["value"] <= 1 and {p["rule"] for p in sent} == {"error_rate", "p99_latency",
                                                                                                           "queue_saturation"}
    now[0] = 30.0
    assert monitor.check() == []  # within the cooldown
    now[0] = 200.0  # the window has moved past the failures; the queue is still full
    assert [a.rule for a in monitor.check()] == ["queue_saturation"]


def test_webhook_alert_is_posted_as_json_to_a_loopback_receiver() -> None:
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  (the handler's interface)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monitor = AlertMonitor(AlertsConfig(webhook=f"http://127.0.0.1:{server.server_port}/hook"), queue_share=lambda: 1.0)
        assert [a.rule for a in monitor.check()] == ["queue_saturation"]
    finally:
        server.shutdown()
    assert received and received[0]["rule"] == "queue_saturation" and received[0]["threshold"] == 0.8
