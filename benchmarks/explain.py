"""Faithfulness and cost of word attributions, and the safety numbers, for a MiniLM SST-2 classifier.

The model: minilm-l6 fine-tuned for one epoch on the SST-2 training set (max length 128, batch 32,
lr 5e-5), cached under LMFORGE_HOME/bench/explain and reused by reruns (``--reuse RUN`` takes any
saved run instead). Then, on a seeded sample of 200 SST-2 dev sentences of at least 8 words:

- comprehensiveness gap of integrated gradients and of occlusion: the mean drop of the predicted
  class's probability when the top-attributed 20% of words are deleted, minus the drop when a random
  20% are deleted (5 draws per sentence);
- milliseconds per sentence of each method (the process's torch threads; 2 on the reference machine);
- the counterfactual flip rate over the shipped English templates (gendered words, names,
  nationality, ethnicity and religion swapped);
- the expected calibration error (15 bins) on the sample.

    flock /tmp/lmforge-cpu.lock python benchmarks/explain.py      # writes benchmarks/results/explain.json
    python benchmarks/explain.py --reuse runs/sst2 --sample 50    # a quicker look at an existing run
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
from _common import REPO, bench_home, emit, log, read_rows, setup_logging, shared_file

import lmforge
from lmforge.devices import describe_precision
from lmforge.evaluation.audit import bias_probe, calibration
from lmforge.evaluation.explain import comprehensiveness
from lmforge.evaluation.explainer import Explainer


def train_run(folder: Path) -> Path:
    """The MiniLM SST-2 run (fine-tuned once; reruns reuse it)."""
    run = folder / "minilm-sst2"
    if (run / "model" / "lmforge.json").is_file():
        return run
    config = {"data": {"train": str(shared_file("sst2", "train.tsv")), "text_column": "sentence", "label_column": "label",
                       "split": {"validation": 0.03}, "max_length": 128},
              "model": {"name": "minilm-l6"}, "task": {"name": "classification"},
              "train": {"epochs": 1, "batch_size": 32, "lr": 5e-5, "eval_every": 1000, "save_every": 1000, "seed": 42},
              "output": {"dir": str(run), "overwrite": True, "report": False, "baseline": False}}
    log("fine-tuning minilm-l6 on SST-2 (one epoch)")
    return lmforge.finetune(config).run_dir


def dev_sample(size: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded sample of dev sentences with at least 8 words (shorter ones leave too few words to delete 20% of)."""
    rows = [r for r in read_rows(shared_file("sst2", "dev.tsv"), "sentence", "label") if len(r[0].split()) >= 8]
    rows = random.Random(seed).sample(rows, min(size, len(rows)))
    return [t for t, _ in rows], [y for _, y in rows]


def timed(fn: Any, n: int) -> tuple[Any, float]:
    """``fn()`` and its milliseconds per item."""
    start = time.perf_counter()
    result = fn()
    return result, 1000 * (time.perf_counter() - start) / n


def measure(run: Path, size: int, seed: int) -> dict[str, Any]:
    """Every number of the benchmark for one run."""
    explainer = Explainer(lmforge.load(run, device="cpu"))
    names = explainer.label_names
    texts, gold = dev_sample(size, seed)
    probs = explainer.predict_proba(texts)  # (N, C)
    y = [names.index(g) for g in gold]
    explainer.explain(texts[:2], "ig")  # warm-up: the first backward pass pays for lazy initialisation
    ig, ig_ms = timed(lambda: explainer.explain(texts, "ig"), len(texts))
    occ, occ_ms = timed(lambda: explainer.explain(texts, "occlusion"), len(texts))
    ig_faith = comprehensiveness(explainer.predict_proba, texts, ig, seed=seed)
    occ_faith = comprehensiveness(explainer.predict_proba, texts, occ, seed=seed)
    bias = bias_probe(explainer.predict_proba, None, "en", names)
    calib = calibration(probs, y)
    log(f"ig {ig_faith} occlusion {occ_faith}")
    return {"num_texts": len(texts), "accuracy": round(calib["accuracy"], 4),
            "ig_top_drop": round(ig_faith["top_drop"], 4), "ig_random_drop": round(ig_faith["random_drop"], 4),
            "occlusion_top_drop": round(occ_faith["top_drop"], 4), "occlusion_random_drop": round(occ_faith["random_drop"], 4),
            "occlusion_ms_per_sentence": round(occ_ms, 1), "counterfactual_pairs": bias["overall"]["pairs"],
            "counterfactual_mean_abs_shift": round(bias["overall"]["mean_abs_shift"], 4),
            "ig_comprehensiveness_gap": round(ig_faith["gap"], 4), "occlusion_comprehensiveness_gap": round(occ_faith["gap"], 4),
            "ig_ms_per_sentence": round(ig_ms, 1), "counterfactual_flip_rate": round(bias["overall"]["flip_rate"], 4),
            "ece": round(calib["ece"], 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reuse", type=Path, help="a saved SST-2 classifier run to measure instead of the cached one")
    p.add_argument("--sample", type=int, default=200, help="dev sentences explained")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "explain.json")
    args = p.parse_args()
    setup_logging()
    run = args.reuse or train_run(bench_home("explain"))
    result = measure(run, args.sample, args.seed)
    result["machine"] = f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, {describe_precision('cpu')}"
    result["run"] = "reused run" if args.reuse else "minilm-l6, 1 epoch on SST-2 train"
    emit(result, args.out if args.sample >= 200 else None)


if __name__ == "__main__":
    main()
