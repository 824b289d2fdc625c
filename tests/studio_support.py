"""What the studio's tests share: a folder of tiny runs of several kinds, built in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from forge_testing import tiny_config, toy_rows, write_csv
from lmforge.artifacts import write_meta
from lmforge.runs import finetune
from serving_support import build_adapter_run


def _curves(run_dir: Path, steps: int, slope: float) -> None:
    rows = [{"split": "train", "step": s, "epoch": s / steps, "loss": 1.0 - slope * s / steps, "lr": 1e-3 * (1 - s / steps)}
            for s in range(1, steps + 1)]
    rows += [{"split": "eval", "step": steps, "epoch": 1.0, "loss": 0.7, "accuracy": 0.5 + slope / 4, "macro_f1": 0.4 + slope / 4}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def build_runs(root: Path, tiny_bert: Path, tiny_llama: Path) -> Path:
    """``root`` with runs: ``reviews`` (a real tiny fine-tune), ``sweep/lora`` (an adapter), ``lm`` (a generator), ``broken`` (incomplete)."""
    data = write_csv(root.parent / "toy.csv", toy_rows(120))
    finetune(tiny_config(tiny_bert, data, root / "reviews", train={"epochs": 1, "batch_size": 32, "log_every": 1}))
    lora = build_adapter_run(tiny_bert, root / "sweep" / "lora")
    _curves(lora, 8, 0.4)
    (lora / "config.yaml").write_text("model:\n  name: tiny\ntuning:\n  method: lora\n", encoding="utf-8")
    (lora / "eval_results.json").write_text(json.dumps({"validation": {"accuracy": 0.6, "macro_f1": 0.55, "loss": 0.69,
                                                                       "confusion_matrix": [[3, 1], [1, 3]], "labels": ["negative", "positive"]}}))
    lm = root / "lm"
    shutil.copytree(tiny_llama, lm / "model")
    write_meta(lm / "model", "generator", "tiny-llama")
    broken = root / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("model:\n  name: tiny\n", encoding="utf-8")
    (broken / "train.log").write_text("started\n", encoding="utf-8")
    _curves(broken, 3, 0.1)
    return root
