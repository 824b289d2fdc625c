"""Parameter-efficient fine-tuning with the real packaged models (slow): LoRA on MiniLM with SST-2
sentences, merged exactly; LoRA label generation and instruction tuning on SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lmforge
from forge_testing import shared_data
from lmforge.zoo import resolve_model

pytestmark = pytest.mark.slow


def test_lora_minilm_sst2_small_adapter_and_exact_merge(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from lmforge.recipes.merge import merge

    train, dev = shared_data("sst2", "train.tsv"), shared_data("sst2", "dev.tsv")
    cfg = {"data": {"train": str(train), "validation": str(dev), "text_column": "sentence", "max_train_samples": 1000,
                    "max_eval_samples": 300, "max_length": 48},
           "model": {"name": "minilm-l6"}, "tuning": {"method": "lora"},
           "train": {"epochs": 1, "batch_size": 32, "seed": 0},
           "output": {"dir": str(tmp_path / "run"), "tensorboard": False, "report": False}}
    result = lmforge.finetune(cfg)
    assert result.metrics["validation"]["accuracy"] > 0.75
    counts = json.loads((result.run_dir / "tuning.json").read_text())
    assert counts["trainable_share"] < 0.01
    base_bytes = (Path(resolve_model("minilm-l6")) / "model.safetensors").stat().st_size
    saved = sum(f.stat().st_size for f in (result.run_dir / "model").iterdir())
    assert saved < 0.02 * base_bytes
    adapter = lmforge.load(result.run_dir, device="cpu")
    batch = adapter.tokenizer(["a gorgeous, witty film", "tedious and overlong"], padding=True, return_tensors="pt")
    plain = AutoModelForSequenceClassification.from_pretrained(merge(result.run_dir, tmp_path / "merged")).eval()
    with torch.no_grad():
        np.testing.assert_allclose(plain(**batch).logits.numpy(), adapter.model(**batch).logits.numpy(), atol=1e-5, rtol=0)


def test_smollm2_label_generation_and_instruct_with_lora(tmp_path: Path) -> None:
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in [
        ("a gorgeous, moving film", "fresh"), ("dull and far too long", "rotten"), ("the cast is wonderful", "fresh"),
        ("a lazy, joyless sequel", "rotten"), ("sharp writing and real heart", "fresh"), ("i checked my watch twice", "rotten"),
    ] * 4), encoding="utf-8")
    common = {"model": {"name": "smollm2-135m"}, "tuning": {"method": "lora", "r": 8},
              "output": {"tensorboard": False, "report": False}}
    labels = lmforge.finetune({**common, "data": {"train": str(reviews), "split": {"validation": 0.25}, "max_length": 96},
                               "task": {"name": "label_generation"},
                               "train": {"max_steps": 3, "batch_size": 6, "eval_batch_size": 6},
                               "output": {**common["output"], "dir": str(tmp_path / "labels")}})
    assert labels.metrics["validation"]["accuracy"] > 0.5
    counts = json.loads((labels.run_dir / "tuning.json").read_text())
    # r=8 on every attention and feed-forward projection of the 135M decoder (the QLoRA placement): under 2%.
    assert 0 < counts["trainable_share"] < 0.02
    row = lmforge.load(labels.run_dir).predict(["an absolute delight"])[0]
    assert row["label"] in ("fresh", "rotten") and sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    examples = Path(__file__).resolve().parents[1] / "examples" / "instructions.jsonl"
    instruct = lmforge.finetune({**common, "data": {"train": str(examples), "text_column": "instruction",
                                                    "label_column": "response", "split": {"validation": 0.2}, "max_length": 96},
                                 "task": {"name": "instruct", "max_new_tokens": 8},
                                 "train": {"max_steps": 3, "batch_size": 8, "lr": 1e-3, "log_every": 1},
                                 "output": {**common["output"], "dir": str(tmp_path / "instruct")}})
    losses = [json.loads(line)["loss"] for line in (instruct.run_dir / "metrics.jsonl").read_text().splitlines()
              if '"train"' in line]
    assert losses[-1] < losses[0]
    answer = lmforge.load(instruct.run_dir).predict(["Give the plural of mouse."])[0]["response"]
    assert isinstance(answer, str) and answer
