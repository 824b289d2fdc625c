"""Guarded generation: blocklist, PII masking, length limits and the refusal, in the CLI recipe, the engine and /v1/generate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lmforge.cli import main
from lmforge.errors import ConfigError
from lmforge.generation import GenerateConfig
from lmforge.recipes.generate import generate_file, generate_prompts
from lmforge.serving.config import load_serve_config
from lmforge.serving.engine import Engine
from lmforge.serving.guard import Guard, GuardConfig, load_guard
from lmforge.serving.http import create_app

REFUSAL = "Refused."


class SpyGenerator:
    """A language model stub that records every prompt it is given and answers with a fixed text."""

    kind = "generator"
    capabilities = ("generate",)

    def __init__(self, answer: str = "an answer") -> None:
        self.seen: list[str] = []
        self.answer = answer

    def generate(self, prompts: Any, options: Any = None, stream: Any = None, **overrides: Any) -> Any:
        batch = [prompts] if isinstance(prompts, str) else list(prompts)
        self.seen += batch
        if callable(stream):
            stream(self.answer)
        return self.answer if isinstance(prompts, str) else [self.answer] * len(batch)


@pytest.fixture
def blocklist(tmp_path: Path) -> Path:
    path = tmp_path / "blocked.txt"
    path.write_text("# weapons\nbuild a bomb\nnapalm  # and its recipes\n\n炸弹\n", encoding="utf-8")
    return path


def test_guard_refuses_blocked_and_long_prompts_and_masks_pii(blocklist: Path) -> None:
    guard = Guard(GuardConfig(blocklist=str(blocklist), terms=["secret plan"], mask_pii=True, max_input_chars=60, refusal=REFUSAL))
    assert not guard.check_input("How do I BUILD A BOMB?").allowed
    assert not guard.check_input("告诉我怎么做炸弹").allowed
    assert not guard.check_input("the secret plan").allowed
    assert guard.check_input("napalmed is another word").allowed  # whole words only for Latin terms
    long = guard.check_input("x" * 61)
    assert not long.allowed and long.text == REFUSAL and "limit is 60" in long.reason
    ok = guard.check_input("mail me at jane.doe@example.com")
    assert ok.allowed and ok.text == "mail me at [EMAIL]"
    assert guard.check_output("here is napalm") == REFUSAL
    assert guard.check_output("call 415-555-0123 now") == "call [PHONE] now"


def test_load_guard_reads_a_file_and_flags_and_is_none_when_off(blocklist: Path, tmp_path: Path) -> None:
    assert load_guard(None) is None and load_guard({}) is None
    cfg = tmp_path / "guard.yaml"
    cfg.write_text(f"guard:\n  blocklist: {blocklist.name}\n  refusal: No.\n", encoding="utf-8")
    guard = load_guard(cfg, {"max_output_chars": 5, "mask_pii": None})
    assert guard is not None and guard.config.refusal == "No." and guard.config.max_output_chars == 5
    assert guard.blocked("napalm") == "napalm"
    with pytest.raises(ConfigError, match="not found"):
        load_guard({"blocklist": str(tmp_path / "missing.txt")})


def test_blocked_prompt_never_reaches_the_model_in_the_recipe(blocklist: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spy, guard = SpyGenerator("fine words and napalm"), load_guard({"blocklist": str(blocklist), "refusal": REFUSAL})
    outputs = generate_prompts(spy, ["how to build a bomb", "a poem"], GenerateConfig(), guard=guard)
    assert spy.seen == ["a poem"]  # the blocked prompt was never handed to the model
    assert outputs == [REFUSAL, REFUSAL]  # the second answer holds a blocked term
    assert capsys.readouterr().out.splitlines() == [REFUSAL, REFUSAL]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("napalm recipe\nhello there\n", encoding="utf-8")
    spy = SpyGenerator("hi")
    assert generate_file(spy, prompts, tmp_path / "out.jsonl", GenerateConfig(), guard=guard) == 2
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert spy.seen == ["hello there"] and [r["output"] for r in rows] == [REFUSAL, "hi"]


@pytest.fixture(scope="module")
def guarded_service(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("guard")
    (tmp / "blocked.txt").write_text("build a bomb\n", encoding="utf-8")
    cfg = load_serve_config({"models": {"gen": str(tiny_llama)}, "auth": {"enabled": False},
                             "guard": {"blocklist": str(tmp / "blocked.txt"), "mask_pii": True, "refusal": REFUSAL}})
    engine = Engine.from_config(cfg, start=False)
    spy = SpyGenerator("reach me at 415-555-0123")
    engine.slots["gen"].artifact.generate = spy.generate  # the model is replaced by the spy once warm-up is done
    return engine, cfg, spy


def test_blocked_prompt_never_reaches_the_model_behind_v1_generate(guarded_service: Any) -> None:
    engine, cfg, spy = guarded_service
    with TestClient(create_app(engine, cfg)) as http:
        spy.seen.clear()
        r = http.post("/v1/generate", json={"prompt": "please build a bomb", "max_new_tokens": 4})
        assert r.status_code == 200 and r.json()["text"] == REFUSAL and spy.seen == []
        r = http.post("/v1/generate", json={"prompt": "email a@example.com a poem", "max_new_tokens": 4})
        assert r.json()["text"] == "reach me at [PHONE]" and spy.seen == ["email [EMAIL] a poem"]
        with http.stream("POST", "/v1/generate", json={"prompt": "build a bomb", "stream": True}) as events:
            body = "".join(events.iter_text())
        assert f'data: {{"text": "{REFUSAL}"}}' in body and "event: done" in body and spy.seen == ["email [EMAIL] a poem"]


def test_cli_generate_takes_guard_flags(tiny_llama: Path, blocklist: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["generate", str(tiny_llama), "build a bomb", "--blocklist", str(blocklist), "--refusal", REFUSAL,
                 "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr().out.strip() == REFUSAL
