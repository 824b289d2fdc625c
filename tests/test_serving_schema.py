"""Schemathesis over the service's OpenAPI spec: generated requests to every endpoint never get a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from lmforge.serving.config import load_serve_config
from lmforge.serving.engine import Engine
from lmforge.serving.http import create_app
from serving_support import ServerThread, bearer, build_classifier_run, make_keys

# Every endpoint but reload, which would swap the models on every generated example.
ENDPOINTS = ["classify", "embed", "generate", "models", "metrics"]


@pytest.fixture(scope="module")
def service(tiny_bert: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("schema")
    run = build_classifier_run(tiny_bert, tmp / "clf")
    secret = make_keys(tmp / "keys.json", fuzz={"endpoints": ENDPOINTS, "rate_per_minute": 0})["fuzz"]
    cfg = load_serve_config({"models": {"clf": str(run), "enc": str(tiny_bert), "gen": str(tiny_llama)}, "auth": {"keys": str(tmp / "keys.json")},
                             "limits": {"max_items": 8, "max_text_chars": 200, "max_new_tokens": 4}})
    with ServerThread(create_app(Engine.from_config(cfg, start=False), cfg)) as server:
        yield {"url": server.url, "secret": secret}


def test_generated_requests_to_every_endpoint_never_get_a_server_error(service: dict[str, Any]) -> None:
    # Hypothesis drives schemathesis' strategies directly: its pytest plugin does not run under this pytest.
    schema = schemathesis.openapi.from_url(service["url"] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def check(case: Any) -> None:
            case.call_and_validate(headers=bearer(service["secret"]), checks=[not_a_server_error], timeout=30)

        check()
