"""End-to-end fine-tuning on a tiny in-process model: files, reload equality, tasks, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lmforge
from forge_testing import tiny_config, toy_rows, write_csv


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


def test_multi_label_task(tiny_bert: Path, tmp_path: Path) -> None:
    rows = []
    for r in toy_rows(200):
        tags = [r["label"]] + (["long"] if len(r["text"].split()) > 5 else [])
        rows.append({"text": r["text"], "label": tags})
    data = tmp_path / "multi.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tiny_config(tiny_bert, data, tmp_path / "run", task={"multi_label": True}, train={"epochs": 6})
    result = lmforge.finetune(cfg)
    metrics = result.metrics["validation"]
    assert {"micro_f1", "macro_f1", "hamming_loss"} <= set(metrics) and metrics["micro_f1"] > 0.6
    pred = lmforge.load(result.run_dir).predict(["the movie was good and the story was very nice"])[0]
    assert set(pred["probabilities"]) == {"long", "negative", "positive"}
    assert pred["labels"] == [k for k, p in pred["probabilities"].items() if p >= 0.5]


def test_regression_task(tiny_bert: Path, tmp_path: Path) -> None:
    rows = [{"text": r["text"], "label": 1.0 if r["label"] == "positive" else -1.0} for r in toy_rows(200)]
    data = write_csv(tmp_path / "reg.csv", rows)
    cfg = tiny_config(tiny_bert, data, tmp_path / "run", task={"name": "regression"}, train={"epochs": 6})
    result = lmforge.finetune(cfg)
    metrics = result.metrics["validation"]
    assert {"mse", "pearson", "spearman"} <= set(metrics) and metrics["pearson"] > 0.5
    assert set(lmforge.load(result.run_dir).predict(["good"])[0]) == {"text", "value"}


def test_sentence_pair_task(tiny_bert: Path, tmp_path: Path) -> None:
    rows = []
    for i, r in enumerate(toy_rows(240)):
        other = toy_rows(1, seed=i)[0]
        rows.append({"a": r["text"], "b": other["text"], "same": "yes" if r["label"] == other["label"] else "no"})
    data = write_csv(tmp_path / "pairs.tsv", rows, "\t")
    cfg = tiny_config(tiny_bert, data, tmp_path / "run", train={"epochs": 2},
                      data={"text_column": "a", "text_pair_column": "b", "label_column": "same"})
    result = lmforge.finetune(cfg)
    assert result.metrics["validation"]["num_examples"] == 48
    model = lmforge.load(result.run_dir)
    assert model.data.text_pair_column == "b"
    preds = model.predict(["good film"], pairs=["bad plot"])
    assert preds[0]["label"] in ("yes", "no")
