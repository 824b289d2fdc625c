"""Span tasks behind the service: /v1/ner and /v1/qa on trained tiny runs, in the engine and over HTTP with keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import lmforge
from forge_testing import tiny_config
from lmforge.errors import LmforgeError
from lmforge.serving.config import load_serve_config
from lmforge.serving.engine import Engine, Unsupported
from lmforge.serving.http import create_app
from serving_support import ServerThread, bearer, make_keys
from span_data import toy_questions, toy_sentences, write_conll, write_squad

CONTEXT = "the story was very nice and the actor was sad"


@pytest.fixture(scope="module")
def span_runs(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A NER run (PER: Title-cased positive words, LOC: negative words) and a QA run ("what is good ?") trained on toy data."""
    tmp = tmp_path_factory.mktemp("span-runs")
    ner = tiny_config(tiny_bert, write_conll(tmp / "train.txt", toy_sentences(160)), tmp / "ner", task={"name": "ner"},
                      train={"epochs": 12, "batch_size": 16, "lr": 5e-3, "head_lr": 5e-3}, data={"split": {"validation": 0.2, "seed": 0}})
    qa = tiny_config(tiny_bert, write_squad(tmp / "train.json", toy_questions(240)), tmp / "qa", task={"name": "qa", "stride": 8},
                     train={"epochs": 6, "batch_size": 16, "lr": 3e-3, "head_lr": 3e-3},
                     data={"split": {"validation": 0.25, "seed": 0}, "max_length": 32})
    return {"ner": lmforge.finetune(ner).run_dir, "qa": lmforge.finetune(qa).run_dir}


def test_the_engine_tags_entities_and_answers_questions(span_runs: dict[str, Path], tiny_bert: Path) -> None:
    with Engine({"entities": span_runs["ner"], "answers": span_runs["qa"], "enc": tiny_bert}, max_wait_ms=1) as engine:
        ops = {m["name"]: m["operations"] for m in engine.models()}
        assert ops == {"entities": ["ner"], "answers": ["qa"], "enc": ["embed"]}
        found, empty = engine.ner(["the Good film was Bad", " "], model="entities")
        assert [(e["type"], e["text"], found["text"][e["start"]:e["end"]]) for e in found["entities"]] == [
            ("PER", "Good", "Good"), ("LOC", "Bad", "Bad")]
        assert empty["entities"] == []
        answer = engine.qa("what is good ?", CONTEXT, model="answers")[0]
        assert answer["answer"] == "nice" and CONTEXT[answer["start"]:answer["end"]] == "nice"
        # A span run refuses what it cannot do, naming what it can.
        with pytest.raises(Unsupported, match="cannot classify; it can ner"):
            engine.classify(["the Good film"], model="entities")
        with pytest.raises(LmforgeError, match="one context per question"):
            engine.qa(["what is good ?", "what ?"], [CONTEXT], model="answers")


def test_ner_offsets_index_the_masked_text_when_inputs_are_masked(span_runs: dict[str, Path]) -> None:
    with Engine({"entities": span_runs["ner"]}, redact_inputs=True, max_wait_ms=1) as engine:
        row = engine.ner(["mail me at ann@example.com , the Good film"])[0]
    assert "ann@example.com" not in row["text"] and "[EMAIL]" in row["text"]
    assert all(row["text"][e["start"]:e["end"]] == e["text"] for e in row["entities"])
    assert ("PER", "Good", row["text"].index("Good")) in [(e["type"], e["text"], e["start"]) for e in row["entities"]]


@pytest.fixture(scope="module")
def server(span_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("span-http")
    keys = make_keys(tmp / "keys.json", all={"rate_per_minute": 0}, ner_only={"endpoints": ["ner"], "rate_per_minute": 0})
    cfg = load_serve_config({"models": {"entities": str(span_runs["ner"]), "answers": str(span_runs["qa"])},
                             "auth": {"keys": str(tmp / "keys.json")}, "limits": {"max_items": 4, "max_text_chars": 200}})
    with ServerThread(create_app(Engine.from_config(cfg, start=False), cfg)) as running:
        yield {"url": running.url, "keys": keys}


def post(server: dict[str, Any], path: str, body: dict[str, Any], key: str = "all") -> httpx.Response:
    return httpx.post(server["url"] + path, json=body, headers=bearer(server["keys"][key]), timeout=60)


def test_http_ner_and_qa(server: dict[str, Any]) -> None:
    r = post(server, "/v1/ner", {"model": "entities", "texts": ["the Good film was Bad"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "entities" and body["version"]
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in body["results"][0]["entities"]] == [("PER", "Good", 4, 8), ("LOC", "Bad", 18, 21)]
    r = post(server, "/v1/qa", {"model": "answers", "questions": ["what is good ?"], "contexts": [CONTEXT]})
    assert r.status_code == 200, r.text
    answer = r.json()["results"][0]
    assert answer["answer"] == "nice" and CONTEXT[answer["start"]:answer["end"]] == "nice" and isinstance(answer["score"], float)
    models = httpx.get(server["url"] + "/v1/models", headers=bearer(server["keys"]["all"])).json()["models"]
    assert {m["name"]: (m["task"], m["operations"]) for m in models} == {"entities": ("ner", ["ner"]), "answers": ("qa", ["qa"])}


def test_http_span_errors_name_the_field_or_the_operation(server: dict[str, Any]) -> None:
    r = post(server, "/v1/qa", {"model": "answers", "questions": ["what is good ?", "what ?"], "contexts": [CONTEXT]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "contexts"
    r = post(server, "/v1/qa", {"model": "answers", "questions": ["what ?"], "contexts": ["x" * 201]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "contexts[0]"
    r = post(server, "/v1/ner", {"model": "answers", "texts": ["the Good film"]})
    assert r.status_code == 422 and "cannot ner; it can qa" in r.json()["error"]["message"]
    r = post(server, "/v1/classify", {"model": "entities", "texts": ["the Good film"]})
    assert r.status_code == 422 and "it can ner" in r.json()["error"]["message"]
    assert post(server, "/v1/ner", {"model": "entities", "texts": ["the Good film"]}, key="ner_only").status_code == 200
    r = post(server, "/v1/qa", {"model": "answers", "questions": ["what ?"], "contexts": [CONTEXT]}, key="ner_only")
    assert r.status_code == 403
