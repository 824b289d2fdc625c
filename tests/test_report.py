"""write_report on synthetic runs: plots are real PNGs and report.md links and tabulates them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmforge.evaluation import classification_metrics, regression_metrics, write_report
from lmforge.evaluation.report import read_metrics_log

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ["negative", "neutral", "positive"]


def write_log(run_dir: Path, rows: list[dict[str, Any]], trailer: str = "") -> None:
    """Write ``rows`` as metrics.jsonl, optionally followed by raw text."""
    lines = [json.dumps(row) for row in rows]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n" + trailer, encoding="utf-8")


def training_rows(steps: int = 120, eval_every: int = 30) -> list[dict[str, Any]]:
    """A noisy decaying loss, warmup-then-decay lr and periodic eval rows."""
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        lr = 5e-5 * min(step / 10, (steps - step) / (steps - 10))
        loss = 1.1 * math.exp(-step / 40) + 0.2 + 0.08 * float(rng.standard_normal())
        epoch = step / 40
        rows.append({"split": "train", "step": step, "epoch": epoch, "loss": loss, "lr": lr,
                     "samples_per_s": 250.0})
        if step % eval_every == 0:
            acc = 0.55 + 0.3 * (1 - math.exp(-step / 50))
            rows.append({"split": "eval", "step": step, "epoch": epoch, "loss": loss + 0.1,
                         "accuracy": acc, "macro_f1": acc - 0.04, "nll": loss + 0.1,
                         "num_examples": 200, "labels": LABELS,
                         "per_class": {"negative": {"f1": 0.8}},
                         "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})
    return rows


def final_classification() -> dict[str, dict[str, Any]]:
    """Validation and test metrics from a fixed fake classifier."""
    rng = np.random.default_rng(1)
    out = {}
    for split in ("validation", "test"):
        y = rng.integers(0, 3, size=60)
        logits = rng.normal(size=(60, 3)) + 2.0 * np.eye(3)[y]
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        out[split] = classification_metrics(y, probs, LABELS)
    return out


def assert_png(path: Path) -> None:
    """The file exists, starts with the PNG signature and is not a blank stub."""
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1024


def test_full_report(tmp_path: Path) -> None:
    write_log(tmp_path, training_rows())
    final = final_classification()
    path = write_report(tmp_path, final, "SST-3 / LoRA", config_text="task: sst3\nlr: 5.0e-5\n")

    assert path == tmp_path / "report.md"
    for name in ("loss", "metrics", "lr", "confusion_validation", "confusion_test"):
        assert_png(tmp_path / "plots" / f"{name}.png")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# SST-3 / LoRA\n")
    assert "Trained for **120** steps, **3** epochs" in text
    assert "best eval accuracy **" in text
    assert "| metric | validation | test |" in text
    acc = final["validation"]["accuracy"]
    assert f"| accuracy | {acc:.4f} | {final['test']['accuracy']:.4f} |" in text
    assert "| num_examples | 60 | 60 |" in text
    assert "### Per-class metrics (validation)" in text
    assert "### Per-class metrics (test)" in text
    assert "| label | precision | recall | f1 | support |" in text
    assert "| neutral | " in text
    for link in ("loss", "metrics", "lr", "confusion_validation", "confusion_test"):
        assert f"![{link}](plots/{link}.png)" in text
    assert "```yaml\ntask: sst3\nlr: 5.0e-5\n```" in text
    assert "per_class |" not in text and "confusion_matrix |" not in text


@pytest.mark.parametrize("content", [None, "", "\n\n"])
def test_missing_or_empty_log(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "metrics.jsonl").write_text(content, encoding="utf-8")
    path = write_report(tmp_path, final_classification(), "Empty run")

    text = path.read_text(encoding="utf-8")
    assert "No training log" in text
    assert "| metric | validation | test |" in text
    assert not (tmp_path / "plots" / "loss.png").exists()
    assert not (tmp_path / "plots" / "lr.png").exists()
    assert "![loss]" not in text and "```yaml" not in text
    assert_png(tmp_path / "plots" / "confusion_test.png")


def test_no_eval_rows_and_no_final_metrics(tmp_path: Path) -> None:
    write_log(tmp_path, [r for r in training_rows() if r["split"] == "train"])
    path = write_report(tmp_path, {}, "Train only")

    text = path.read_text(encoding="utf-8")
    assert_png(tmp_path / "plots" / "loss.png")
    assert_png(tmp_path / "plots" / "lr.png")
    assert not (tmp_path / "plots" / "metrics.png").exists()
    assert "![metrics]" not in text
    assert "No final metrics were recorded" in text


def test_regression_report(tmp_path: Path) -> None:
    rows = [{"split": "train", "step": s, "loss": 1 / s, "lr": 1e-4} for s in range(1, 30)]
    rows.append({"split": "eval", "step": 29, "loss": 0.1, "mse": 0.1, "spearman": 0.9})
    write_log(tmp_path, rows)
    final = {"test": regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 2.0])}
    text = write_report(tmp_path, final, "STS-B").read_text(encoding="utf-8")

    assert "| metric | test |" in text
    assert "| spearman | n/a |" not in text
    assert "| mse | 0.3333 |" in text
    assert not list((tmp_path / "plots").glob("confusion_*.png"))
    assert "Per-class" not in text
    assert "best eval mse **0.1000** (step 29)" in text
    assert_png(tmp_path / "plots" / "metrics.png")


def test_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    write_log(tmp_path, training_rows(steps=20, eval_every=10), trailer='{"split": "tra')
    rows = read_metrics_log(tmp_path / "metrics.jsonl")
    assert len(rows) == 22
    write_report(tmp_path, {}, "Crashed run")
    assert_png(tmp_path / "plots" / "loss.png")


def test_many_labels_confusion(tmp_path: Path) -> None:
    labels = [f"intent_{i:02d}" for i in range(40)]
    y = np.arange(200) % 40
    probs = np.full((200, 40), 0.1 / 39)
    probs[np.arange(200), (y + (np.arange(200) % 5 == 0)) % 40] = 0.9
    final = {"validation": classification_metrics(y, probs, labels)}
    text = write_report(tmp_path, final, "Intents | 40").read_text(encoding="utf-8")

    assert_png(tmp_path / "plots" / "confusion_validation.png")
    assert "# Intents | 40" in text
    assert text.count("| intent_") == 40


def test_split_names_are_safe_file_names(tmp_path: Path) -> None:
    final = {"test (ood)": final_classification()["test"]}
    text = write_report(tmp_path, final, "OOD").read_text(encoding="utf-8")
    assert_png(tmp_path / "plots" / "confusion_test_ood_.png")
    assert "(plots/confusion_test_ood_.png)" in text


def test_non_finite_values_are_skipped(tmp_path: Path) -> None:
    rows = [
        {"split": "train", "step": 1, "loss": float("nan"), "lr": 1e-4},
        {"split": "train", "step": 2, "loss": 0.5, "lr": 1e-4},
        {"split": "eval", "step": 2, "loss": float("inf"), "accuracy": float("nan")},
    ]
    write_log(tmp_path, rows)
    text = write_report(tmp_path, {}, "NaN run").read_text(encoding="utf-8")
    assert "final train loss **0.5000**" in text
    assert "best eval" not in text
    assert_png(tmp_path / "plots" / "loss.png")
    assert not (tmp_path / "plots" / "metrics.png").exists()
