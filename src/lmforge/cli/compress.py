"""Verbs that make runs smaller and compare them: ``compress``, ``bench``.

Recipes are imported when a verb runs, so that ``lmforge --help`` does not load torch.
"""

from __future__ import annotations

import argparse
from typing import Any

METHODS = ("quantize", "onnx", "prune", "distill")


def add_compress(sub: argparse._SubParsersAction) -> None:
    """``lmforge compress RUN --method M --out DIR [options] [key.sub=value ...]``."""
    p = sub.add_parser("compress", help="a smaller, faster copy of a run: int8, ONNX, pruned or distilled",
                       description="Writes a new run directory (--out must not exist) whose lmforge.json names the parent "
                                   "run and the method, and logs what the method cost on validation data.")
    p.add_argument("run", help="run directory (a zoo decoder such as smollm2-135m for quantize)")
    p.add_argument("overrides", nargs="*", help="key.sub=value settings, e.g. train.epochs=2 prune.sample=256")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--out", required=True, help="new run directory; must not exist")
    p.add_argument("--data", help="labeled file that measures the cost (default: the run's validation data)")
    p.add_argument("--train-data", help="labeled file for recovery and distillation (default: the run's training data)")
    p.add_argument("--train-samples", type=int, help="seeded subset of the training data")
    p.add_argument("--eval-samples", type=int, help="seeded subset of the validation data")
    p.add_argument("--epochs", type=float, help="epochs of recovery fine-tuning or distillation")
    p.add_argument("--device", help="cpu, cuda... (default: the GPU when there is one)")
    p.add_argument("--max-drop", type=float, help="quantize, onnx int8: largest accuracy loss (0.01 = one point); layers fall back to fp32")
    p.add_argument("--min-agreement", type=float,
                   help="quantize, onnx int8: least share of predictions equal to the fp32 model's (0.99); layers fall back to fp32")
    p.add_argument("--precision", choices=["fp32", "int8", "fp16"], help="onnx: weights of the graph (default int8)")
    p.add_argument("--calibration",
                   help="onnx: texts that calibrate static int8 quantization; quantize (language models): texts that set the smoothing")
    p.add_argument("--optimization", choices=["none", "basic", "extended", "all"], help="onnx: graph optimization level")
    p.add_argument("--heads", type=float, help="prune: share of attention heads to remove, e.g. 0.4")
    p.add_argument("--drop-layers", type=int, help="prune: number of layers to drop")
    p.add_argument("--sparsity", type=float, help="prune: share of weights zeroed by magnitude (smaller, not faster)")
    p.add_argument("--layers", type=int, help="distill: student layers, copied from the teacher's")
    p.add_argument("--student", help="distill: zoo model or folder to start the student from")
    p.add_argument("--temperature", type=float, help="distill: softmax temperature (default 2)")
    p.add_argument("--alpha", type=float, help="distill: weight of the KL term (default 0.5)")
    p.add_argument("--hidden-weight", type=float, help="distill: weight of hidden-state matching (default 0)")
    p.add_argument("--transfer", action="append", help="distill: unlabeled text file used as transfer data (repeatable)")


def compress_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config entries the flags set (flags left out keep the config's defaults)."""
    sections = {
        "quantize": {"max_drop": args.max_drop, "min_agreement": args.min_agreement, "calibration": args.calibration},
        "onnx": {"max_drop": args.max_drop, "min_agreement": args.min_agreement, "precision": args.precision,
                 "calibration": args.calibration, "optimization": args.optimization},
        "prune": {"heads": args.heads, "layers": args.drop_layers, "sparsity": args.sparsity},
        "distill": {"layers": args.layers, "student": args.student, "temperature": args.temperature, "alpha": args.alpha,
                    "hidden_weight": args.hidden_weight, "transfer": args.transfer},
        "train": {"epochs": args.epochs},
    }
    options: dict[str, Any] = {k: {n: v for n, v in s.items() if v is not None} for k, s in sections.items()}
    options |= {"data": args.data, "train_data": args.train_data, "train_samples": args.train_samples,
                "eval_samples": args.eval_samples, "device": args.device}
    return options


def run_compress(args: argparse.Namespace) -> int:
    """Compress and say where the new run is."""
    from lmforge.recipes.compress import compress

    out = compress(args.run, args.method, args.out, compress_options(args), args.overrides)
    print(f"compressed run: {out}  (model in {out / 'model'}; compare with: lmforge bench {args.run} {out})")
    return 0


def add_bench(sub: argparse._SubParsersAction) -> None:
    """``lmforge bench RUN [RUN ...] [--data FILE] [--json]``."""
    p = sub.add_parser("bench", help="size, load time, latency, throughput, memory and accuracy of runs side by side")
    p.add_argument("runs", nargs="+", help="run directories (the first is the reference for agreement)")
    p.add_argument("--data", help="labeled file to score on (default: each run's validation data)")
    p.add_argument("--json", action="store_true", help="one JSON line per run instead of the table")
    p.add_argument("--reference", help="run whose predictions the others are compared with (default: the first)")
    p.add_argument("--batch-size", type=int, default=32, help="batch of the throughput measurement")
    p.add_argument("--latency-samples", type=int, default=100, help="single texts timed for p50/p99 latency")
    p.add_argument("--max-samples", type=int, help="seeded subset of the data")
    p.add_argument("--plot", default="bench.png", help="bar chart PNG comparing the runs ('' for none)")
    p.add_argument("--device", help="cpu, cuda... (default: the GPU when there is one)")
    p.add_argument("--in-process", action="store_true", help="measure every run in this process (quicker; load time and "
                                                             "memory then include what earlier runs left)")


def run_bench(args: argparse.Namespace) -> int:
    """Measure the runs and print the table (or JSON lines)."""
    from lmforge.recipes.bench import bench, render

    rows = bench(args.runs, args.data, args.reference, args.batch_size, args.latency_samples, args.max_samples,
                 args.plot or None, isolate=not args.in_process, device=args.device)
    print(render(rows, args.json))
    if args.plot and not args.json:
        print(f"\nchart: {args.plot}")
    return 0
