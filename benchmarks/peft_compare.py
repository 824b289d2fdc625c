"""Full fine-tuning against every parameter-efficient method on SST-2 with MiniLM-L6.

Trains each method on the same 10,000 sentences of ../shared/data/sst2/train.tsv (same
seed, batches and epochs; each method at its own usual learning rate) and evaluates the
saved run, reloaded with ``lmforge.load``, on all of sst2/dev.tsv. Every method runs in its
own process so that its peak RSS is its own. Baselines from the same data: the majority
class and TF-IDF + logistic regression.

Throughput is training samples over the training loop's own time (no setup, saving or
evaluation), both wall-clock and CPU seconds; runs use one thread each. Run it under the CPU lock
on an otherwise quiet machine and the wall-clock figures (``lora_speedup_wall``) are the ones that
count. Runs train in the precision ``train.precision: auto`` picks (bf16 on CPUs with AMX), the
same for every row. ``lora_checkpointing`` is LoRA with ``model.gradient_checkpointing: true``,
the option that trades recomputation for memory.

    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/peft_compare.py [--quick]

Ends with one JSON line (also written to benchmarks/results/peft_compare.json without --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, SHARED, emit

SST2 = SHARED / "sst2"
# Row name -> tuning block. Each method trains at its default learning rate (lmforge.tuning).
METHODS: dict[str, dict[str, Any]] = {
    "full": {"method": "full"},
    "lora": {"method": "lora"},
    "ia3": {"method": "ia3"},
    "prefix": {"method": "prefix"},
    "prompt": {"method": "prompt"},
    "ptuning": {"method": "ptuning"},
    "bitfit": {"method": "bitfit"},
    "adapter_houlsby": {"method": "adapter", "placement": "houlsby"},
    "adapter_pfeiffer": {"method": "adapter", "placement": "pfeiffer"},
    "lora_checkpointing": {"method": "lora"},
}
# Rows that differ from another row only in the model section.
MODEL_OPTIONS: dict[str, dict[str, Any]] = {"lora_checkpointing": {"gradient_checkpointing": True}}


def finetune_config(run: Path, name: str, train_rows: int, epochs: float) -> dict[str, Any]:
    """Row ``name``'s run: the same data, seed, batches and epochs for all."""
    tuning = METHODS[name]
    return {
        "data": {"train": str(SST2 / "train.tsv"), "text_column": "sentence", "max_train_samples": train_rows,
                 "split": {"validation": 0.0, "seed": 0}, "max_length": 64},
        "model": {"name": "minilm-l6", **MODEL_OPTIONS.get(name, {})},
        "task": {"name": "classification"},
        "train": {"epochs": epochs, "batch_size": 32, "seed": 0, "threads": 1, "log_every": 20},
        "tuning": tuning,
        "output": {"dir": str(run), "overwrite": True, "tensorboard": False, "report": False},
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_training_loop() -> dict[str, float]:
    """Wrap the training loop's ``run`` so its CPU and wall seconds (no setup, saving or evaluation) are recorded."""
    from lmforge.training import loop

    spent = {"cpu": 0.0, "wall": 0.0}
    run = loop.Loop.run

    def timed(self: Any) -> str:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return run(self)
        finally:
            spent["cpu"] += time.process_time() - cpu
            spent["wall"] += time.perf_counter() - wall

    loop.Loop.run = timed
    return spent


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def worker(name: str, train_rows: int, dev_rows: int | None, epochs: float, work: Path) -> dict[str, Any]:
    """Train and evaluate one method in this process; returns its row."""
    import lmforge

    run = work / name
    spent = time_training_loop()
    result = lmforge.finetune(finetune_config(run, name, train_rows, epochs))
    rss = peak_rss_mb()
    counts = json.loads((run / "tuning.json").read_text())
    dev = {"max_eval_samples": dev_rows} if dev_rows else {}
    metrics = lmforge.load(run, device="cpu").evaluate(SST2 / "dev.tsv", text_column="sentence", **dev)
    samples = epochs * train_rows  # every epoch sees every training sentence once
    return {
        "method": name, "status": result.status, "dev_accuracy": round(metrics["accuracy"], 4),
        "dev_macro_f1": round(metrics["macro_f1"], 4),
        "trainable_parameters": counts["trainable_parameters"], "total_parameters": counts["total_parameters"],
        "trainable_share": round(counts["trainable_share"], 6),
        "samples_per_s": round(samples / spent["wall"], 2), "samples_per_cpu_s": round(samples / spent["cpu"], 2),
        "train_wall_s": round(spent["wall"], 1), "train_cpu_s": round(spent["cpu"], 1), "peak_rss_mb": round(rss, 1),
        "saved_bytes": folder_bytes(run / "model"), "learning_rate": result_lr(run),
    }


def result_lr(run: Path) -> float:
    """The learning rate the run used (the method's default)."""
    import yaml

    return float(yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"])


def baselines(train_rows: int, dev_rows: int | None) -> dict[str, float]:
    """Majority class and TF-IDF + logistic regression on the same training sentences."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from lmforge.config import DataConfig
    from lmforge.data.pipeline import read_examples

    cfg = DataConfig(text_column="sentence")
    train = read_examples(str(SST2 / "train.tsv"), cfg)
    pick = np.sort(np.random.default_rng(0).permutation(len(train))[:train_rows])
    train = train.subset(pick)
    dev = read_examples(str(SST2 / "dev.tsv"), cfg)
    if dev_rows:
        dev = dev.subset(np.sort(np.random.default_rng(0).permutation(len(dev))[:dev_rows]))
    y_train, y_dev = [str(v) for v in train.labels], [str(v) for v in dev.labels]
    majority = max(set(y_train), key=y_train.count)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(vectorizer.fit_transform(train.texts), y_train)
    predicted = model.predict(vectorizer.transform(dev.texts))
    return {"majority_accuracy": round(float(np.mean([y == majority for y in y_dev])), 4),
            "tfidf_lr_accuracy": round(float(np.mean(predicted == np.array(y_dev))), 4)}


def run_worker(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run :func:`worker` in a fresh process so peak memory is the method's own."""
    cmd = [sys.executable, __file__, "--worker", name, "--work", str(work), "--train-rows", str(args.train_rows),
           "--epochs", str(args.epochs)] + (["--dev-rows", str(args.dev_rows)] if args.dev_rows else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{name:<17} acc={row['dev_accuracy']:.4f} share={100 * row['trainable_share']:.3f}% "
          f"samples/s={row['samples_per_s']:.1f} samples/cpu-s={row['samples_per_cpu_s']:.1f} "
          f"rss={row['peak_rss_mb']:.0f}MB saved={row['saved_bytes'] / 1e6:.2f}MB", file=sys.stderr, flush=True)
    return row


def summary(rows: list[dict[str, Any]], base: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    """The JSON line: headline ratios of LoRA against full fine-tuning, and every row."""
    from lmforge.devices import describe_precision

    by = {r["method"]: r for r in rows}
    full, lora = by["full"], by["lora"]
    return {
        "benchmark": "peft_compare", "model": "minilm-l6", "train": "sst2/train.tsv", "train_rows": args.train_rows,
        "eval": "sst2/dev.tsv", "dev_rows": args.dev_rows or "all", "epochs": args.epochs, "threads_per_run": 1,
        **base,
        "full_accuracy": full["dev_accuracy"], "lora_accuracy": lora["dev_accuracy"],
        "lora_trainable_share": lora["trainable_share"],
        "lora_speedup": round(lora["samples_per_cpu_s"] / full["samples_per_cpu_s"], 3),
        "lora_speedup_wall": round(lora["samples_per_s"] / full["samples_per_s"], 3),
        "lora_rss_ratio": round(lora["peak_rss_mb"] / full["peak_rss_mb"], 3),
        "lora_size_share": round(lora["saved_bytes"] / full["saved_bytes"], 5),
        **({"lora_checkpointing_rss_ratio": round(by["lora_checkpointing"]["peak_rss_mb"] / full["peak_rss_mb"], 3),
            "lora_checkpointing_speedup_wall": round(by["lora_checkpointing"]["samples_per_s"] / full["samples_per_s"], 3),
            "lora_checkpointing_accuracy": by["lora_checkpointing"]["dev_accuracy"]} if "lora_checkpointing" in by else {}),
        "precision": describe_precision("cpu"),
        "methods": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 600 sentences, 300 dev rows, 1 epoch")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), help="rows to run (full and lora are always run)")
    parser.add_argument("--train-rows", type=int, default=10000)
    parser.add_argument("--dev-rows", type=int, default=None, help="evaluate on a seeded subset of dev.tsv")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.train_rows, args.dev_rows, args.epochs, Path(args.work))))
        return
    if not (SST2 / "train.tsv").is_file():
        raise SystemExit(f"{SST2} is missing: this benchmark needs the shared SST-2 data")
    if args.quick:
        args.train_rows, args.dev_rows, args.epochs = 600, 300, 1.0
    names = ["full", "lora"] + [m for m in args.methods if m not in ("full", "lora")]
    base = baselines(args.train_rows, args.dev_rows)
    with tempfile.TemporaryDirectory(prefix="peft_compare-") as tmp:
        rows = [run_worker(name, args, Path(tmp)) for name in names]
    emit(summary(rows, base, args), None if args.quick else REPO / "benchmarks" / "results" / "peft_compare.json")


if __name__ == "__main__":
    main()
