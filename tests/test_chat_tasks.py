"""Chat tasks on a tiny in-process Llama: prompt masking, instruction tuning and label generation
with LoRA and the other methods, reload equality, and merging a decoder adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lmforge
from forge_testing import instruct_rows, tiny_config, toy_rows, write_csv
from lmforge.config import DataConfig, TaskConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.models.build import load_tokenizer
from lmforge.tasks import get_task
from lmforge.tasks.chat import IGNORE, fit_length, render

PROMPTS = ["classify the movie was good", "classify a very bad plot"]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def instructions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "instructions.jsonl", instruct_rows(240))


def instruct_config(model: Path, data: Path, run: Path, tuning: dict[str, Any], **train: Any) -> dict[str, Any]:
    return tiny_config(model, data, run, data={"text_column": "instruction", "label_column": "response", "max_length": 48},
                       task={"name": "instruct", "max_new_tokens": 4}, tuning=tuning,
                       train={"epochs": 2, "lr": 1e-2, "eval_every": 10, **train})


def test_prompt_tokens_are_masked(tiny_llama: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_llama))
    examples = Examples(Path("x.jsonl"), ["classify the film good", "classify a plot"], ["bad", None], ["good", "bad"], [1, 2])
    task = get_task(TaskConfig(name="instruct"))
    split = task.make_split("train", examples, np.arange(2), tokenizer, DataConfig(max_length=64), LabelSpace("text"))
    batch = task.collate(split, np.arange(2))
    for row in range(2):
        start, length = int(split.prompt_lengths[row]), int(batch["attention_mask"][row].sum())
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        assert (labels[:start] == IGNORE).all() and (labels[length:] == IGNORE).all()
        assert torch.equal(labels[start:length], ids[start:length])
        answer = tokenizer.decode(ids[start:length])
        assert answer == examples.labels[row] + "<|im_end|>\n"
        assert tokenizer.decode(ids[:start]).endswith("<|im_start|>assistant\n")
    assert "classify the film good\n\nbad<|im_end|>" in tokenizer.decode(batch["input_ids"][0])


def test_plain_layout_without_chat_template(tiny_llama: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_llama))
    tokenizer.chat_template = None
    prompt, answer = render(tokenizer, "say hi", "be brief", "hi")
    assert prompt == "be brief\n\n### Instruction:\nsay hi\n\n### Response:\n" and answer == "hi" + tokenizer.eos_token


def test_long_examples_keep_the_answer() -> None:
    assert fit_length(list(range(10)), [100, 101], 8) == (list(range(4, 10)), [100, 101])
    prompt, answer = fit_length(list(range(10)), list(range(100, 120)), 8)
    assert answer == list(range(100, 104)) and prompt == list(range(6, 10))


def test_instruct_lora_learns_and_generates(tiny_llama: Path, instructions: Path, tmp_path: Path) -> None:
    result = lmforge.finetune(instruct_config(tiny_llama, instructions, tmp_path / "run", {"method": "lora", "r": 8}, epochs=8))
    evals = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals[-1]["loss"] < 0.8 * evals[0]["loss"]
    assert set(result.metrics["validation"]) >= {"loss", "perplexity", "response_tokens"}
    predictor = lmforge.load(result.run_dir)
    answers = predictor.predict(PROMPTS)
    assert [a["text"] for a in answers] == PROMPTS and all(isinstance(a["response"], str) for a in answers)
    again = predictor.evaluate(instructions)
    assert again["response_tokens"] > 0 and np.isfinite(again["loss"])


@pytest.mark.parametrize("method", ["prompt", "prefix", "ptuning", "ia3", "adapter"])
def test_other_methods_train_reload_and_generate(method: str, tiny_llama: Path, instructions: Path, tmp_path: Path) -> None:
    tuning = {"method": method, **({"num_virtual_tokens": 4} if method in ("prompt", "prefix", "ptuning") else {})}
    valid = write_jsonl(tmp_path / "valid.jsonl", instruct_rows(20, seed=3))
    cfg = instruct_config(tiny_llama, instructions, tmp_path / "run", tuning, max_steps=4)
    cfg["data"]["validation"] = str(valid)
    result = lmforge.finetune(cfg)
    predictor = lmforge.load(result.run_dir)
    assert predictor.evaluate(valid)["loss"] == pytest.approx(result.metrics["validation"]["loss"], abs=1e-5)
    answers = predictor.predict(PROMPTS)
    assert [a["text"] for a in answers] == PROMPTS and all(isinstance(a["response"], str) for a in answers)


def test_label_generation_scores_every_label(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "toy.csv", toy_rows(120))
    cfg = tiny_config(tiny_llama, data, tmp_path / "run", task={"name": "label_generation"},
                      tuning={"method": "lora", "r": 4}, train={"max_steps": 6, "lr": 1e-2})
    result = lmforge.finetune(cfg)
    assert 0.0 <= result.metrics["validation"]["accuracy"] <= 1.0
    rows = lmforge.load(result.run_dir).predict(["the film was good"], top_k=2)
    assert rows[0]["label"] in ("negative", "positive")
    assert set(rows[0]["probabilities"]) == {"negative", "positive"}
    assert sorted(t["label"] for t in rows[0]["top_k"]) == ["negative", "positive"]
    assert rows[0]["label"] == rows[0]["top_k"][0]["label"]
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    run_meta = json.loads((result.run_dir / "model" / "lmforge.json").read_text())
    assert run_meta["task"]["name"] == "label_generation" and run_meta["labels"]["names"] == ["negative", "positive"]


def test_decoder_classification_head_with_lora(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "toy.csv", toy_rows(120))
    valid = write_csv(tmp_path / "valid.csv", toy_rows(40, seed=2))
    cfg = tiny_config(tiny_llama, data, tmp_path / "run", tuning={"method": "lora", "r": 4},
                      data={"validation": str(valid)}, train={"max_steps": 6})
    result = lmforge.finetune(cfg)
    adapter = json.loads((result.run_dir / "model" / "adapter_config.json").read_text())
    assert "score" in adapter["modules_to_save"]
    again = lmforge.load(result.run_dir).evaluate(valid)
    assert again["loss"] == pytest.approx(result.metrics["validation"]["loss"], abs=1e-5)


def test_merged_decoder_matches_adapter(tiny_llama: Path, instructions: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from lmforge.recipes.merge import merge

    run = lmforge.finetune(instruct_config(tiny_llama, instructions, tmp_path / "run", {"method": "lora", "r": 4},
                                           max_steps=4)).run_dir
    adapter = lmforge.load(run, device="cpu")
    ids = adapter.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    plain = AutoModelForCausalLM.from_pretrained(merge(run, tmp_path / "merged")).eval()
    with torch.no_grad():
        np.testing.assert_allclose(plain(**ids).logits.numpy(), adapter.model(**ids).logits.numpy(), atol=1e-5, rtol=0)
    assert lmforge.load(tmp_path / "merged").predict(PROMPTS) == adapter.predict(PROMPTS)
