"""``lmforge serve --engine ray``: the same app as a Ray Serve deployment with autoscaling, on a local Ray instance."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lmforge.serving.config import load_serve_config
from serving_support import bearer, build_classifier_run, free_port, make_keys


@pytest.mark.slow
def test_ray_serve_deployment_answers_with_keys_and_autoscaling(tiny_bert: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'lmforge[cluster]')")
    from lmforge.serving.ray_serve import build_application, start_ray, stop_ray

    run = build_classifier_run(tiny_bert, tmp_path / "clf")
    secret = make_keys(tmp_path / "keys.json", all={"rate_per_minute": 0})["all"]
    cfg = load_serve_config({"models": {"clf": str(run)}, "auth": {"keys": str(tmp_path / "keys.json")},
                             "server": {"port": free_port()}, "ray": {"min_replicas": 1, "max_replicas": 2, "num_cpus": 0.5}})
    app = build_application(cfg)
    assert app._bound_deployment._deployment_config.autoscaling_config.max_replicas == 2
    url = start_ray(cfg)
    try:
        assert httpx.get(url + "/readyz", timeout=30).json()["status"] == "ready"
        assert httpx.post(url + "/v1/classify", json={"texts": ["good"]}, timeout=30).status_code == 401
        r = httpx.post(url + "/v1/classify", json={"texts": ["good", "bad"]}, headers=bearer(secret), timeout=30)
        assert r.status_code == 200 and r.json()["model"] == "clf" and len(r.json()["results"]) == 2
    finally:
        stop_ray()
