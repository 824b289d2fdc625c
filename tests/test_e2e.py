"""End to end on the real packaged MiniLM and real reviews (slow: downloads once, trains a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lmforge

pytestmark = pytest.mark.slow


def test_minilm_on_rotten_tomatoes_slice(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = {
        "data": {"train": "rotten_tomatoes", "split": {"validation": 0.1}, "max_train_samples": 800,
                 "max_eval_samples": 300, "max_length": 64},
        "model": {"name": "minilm-l6"},
        "train": {"epochs": 2, "batch_size": 32, "lr": 1e-4, "warmup_ratio": 0.1},
        "output": {"dir": str(tmp_path / "run"), "tensorboard": False},
    }
    result = lmforge.finetune(cfg)
    assert result.status == "completed"
    assert result.metrics["validation"]["accuracy"] > 0.7
    texts = ["A moving, beautifully acted film.", "Dull, overlong and utterly forgettable."]
    ours = lmforge.load(result.run_dir).predict(texts)
    assert [r["label"] for r in ours] == ["fresh", "rotten"]
    model = AutoModelForSequenceClassification.from_pretrained(result.run_dir / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(result.run_dir / "model")
    with torch.no_grad():
        probs = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    for row, p in zip(ours, probs):
        assert row["probabilities"]["fresh"] == pytest.approx(float(p[0]), abs=1e-5)
    assert (result.run_dir / "report.md").is_file()
