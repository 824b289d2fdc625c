"""End-to-end fine-tuning on a tiny in-process model: files, reload equality, tasks, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lmforge
from conftest import tiny_config


def test_finetune_writes_a_complete_run(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_bert, toy_csv, tmp_path / "run", output={"tensorboard": True, "report": True, "baseline": True},
                      train={"epochs": 8})
    result = lmforge.finetune(cfg)
    run = result.run_dir
    assert result.status == "completed"
    for name in ("config.yaml", "metrics.jsonl", "report.md", "eval_results.json", "train.log",
                 "model/config.json", "model/model.safetensors", "model/lmforge.json", "plots/loss.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in rows if r["split"] == "train"]
    assert np.mean(train_losses[-5:]) < np.mean(train_losses[:5])
    assert result.metrics["validation"]["accuracy"] > 0.8
    assert len(result.predictions) == 5
    assert result.metrics["validation (TF-IDF baseline)"]["accuracy"] > 0.9
    assert "TF-IDF baseline" in (run / "report.md").read_text()


def test_saved_model_reloads_with_plain_transformers(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = lmforge.finetune(tiny_config(tiny_bert, toy_csv, tmp_path / "run")).run_dir
    texts = ["the movie was good", "a very bad plot", "it is nice"]
    ours = lmforge.load(run).predict(texts)
    model = AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    with torch.no_grad():
        probs = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    for row, p in zip(ours, probs):
        assert row["label"] == model.config.id2label[int(p.argmax())]
        assert row["probabilities"]["positive"] == pytest.approx(float(p[1]), abs=1e-5)
