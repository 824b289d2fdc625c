"""The command line: finetune, evaluate --json, predict (texts and files), zoo list, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from forge_testing import tiny_config, toy_rows, write_csv
from lmforge.cli import main


@pytest.fixture(scope="module")
def trained_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    data = write_csv(base / "train.csv", toy_rows(240))
    cfg = base / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_bert, data, base / "run", train={"epochs": 8})))
    assert main(["finetune", str(cfg), "train.seed=1"]) == 0
    assert yaml.safe_load((base / "run" / "config.yaml").read_text())["train"]["seed"] == 1
    return base / "run"


def test_evaluate_json_with_other_columns(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = [{"review": r["text"], "sentiment": r["label"].upper()} for r in toy_rows(60, seed=5)]
    data = write_csv(tmp_path / "eval.tsv", rows, "\t")
    capsys.readouterr()
    assert main(["evaluate", str(trained_run), "--data", str(data), "--json",
                 "--text-column", "review", "--label-column", "sentiment"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "macro_f1", "micro_f1", "per_class", "confusion_matrix", "roc_auc"):
        assert key in result
    assert result["num_examples"] == 60 and result["accuracy"] > 0.8
    assert set(result["per_class"]) == {"negative", "positive"}


def test_predict_file_keeps_input_order(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    texts = ["a", "the movie was very good and the actor was nice", "bad", "it is an awful plot", "fine"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained_run), "--file", str(src), "--out", str(out), "--top-k", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == texts and [r["line"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(len(r["top_k"]) == 2 and abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    capsys.readouterr()
    assert main(["predict", str(trained_run), "it is good", "so bad"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["text"] for p in printed] == ["it is good", "so bad"]


def test_user_errors_have_no_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  train: nowhere.csv\ntrain:\n  lrr: 1\n")
    proc = subprocess.run([sys.executable, "-m", "lmforge", "finetune", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
    assert "train.lrr" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  train: {tmp_path / 'nowhere.csv'}\noutput:\n  dir: {tmp_path / 'run'}\n")
    assert main(["finetune", str(cfg)]) == 2
    assert "nowhere.csv' not found" in capsys.readouterr().err


def test_zoo_list(capsys: pytest.CaptureFixture) -> None:
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("minilm-l6", "smollm2-135m", "rotten_tomatoes", "chinese_reviews", "chinese_news"):
        assert name in out
