"""Fine-tuning throughput: lmforge vs Hugging Face Trainer (tutorial and well-tuned), same run.

Same model (minilm-l6), same 2,000 SST-2 sentences, same batch size, one process each:
  (a) Trainer the tutorial way: padding="max_length", max_length=128;
  (b) Trainer well tuned: dynamic padding and group_by_length sampling (fp32, its default);
  (c) lmforge's loop in fp32 (length-grouped dynamic padding, fused AdamW);
  (d) on CPUs with AMX bf16 tiles: lmforge's loop in bf16 (what ``precision: auto`` picks there),
      and (b) with ``bf16=True`` for reference.
Prints samples/s of each, the ratios, and lmforge's achieved GFLOP/s in fp32 as a share of this
machine's fp32 matmul peak measured in the same run. (b), (c) and (d) alternate over several rounds
and each side's best round counts. Every trained model is scored on the first 2,000 phrases of
sst2/dev.tsv (in the precision it trained in), so the speed figures come with their accuracy.
Ends with one JSON line.

    python benchmarks/finetune_throughput.py [--samples 2000] [--batch-size 32] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import SHARED  # noqa: E402

DATA = SHARED / "sst2" / "train.tsv"
DEV = SHARED / "sst2" / "dev.tsv"
EVAL_ROWS = 2000


def read_sst2(path: Path, n: int) -> tuple[list[str], list[int]]:
    """The first ``n`` sentences of an SST-2 file with their labels."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:n]
    return [r["sentence"].strip() for r in rows], [int(r["label"]) for r in rows]


def matmul_peak_gflops(n: int = 2048, repeats: int = 20) -> float:
    """Best-of fp32 GEMM rate with all threads: the machine's practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def train_flops(model: torch.nn.Module, lengths: np.ndarray) -> float:
    """Training FLOPs over real (unpadded) tokens: 6 x non-embedding params per token + attention scores."""
    cfg = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    dense = 6.0 * params * lengths.sum()
    attention = 12.0 * cfg.num_hidden_layers * cfg.hidden_size * float((lengths.astype(np.float64) ** 2).sum())
    return dense + attention


def dev_accuracy(model: torch.nn.Module, tok: object, bf16: bool) -> float:
    """Accuracy of a trained classifier on the first EVAL_ROWS phrases of sst2/dev.tsv, in its training precision."""
    texts, gold = read_sst2(DEV, EVAL_ROWS)
    model.eval()
    right = 0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(texts), 256):
            batch = tok(texts[i:i + 256], truncation=True, max_length=128, padding=True, return_tensors="pt")
            pred = model(**batch).logits.argmax(-1).tolist()
            right += sum(p == g for p, g in zip(pred, gold[i:i + 256]))
    return right / len(texts)


def hf_trainer(model_dir: str, texts: list[str], labels: list[int], batch: int, tuned: bool,
               bf16: bool = False) -> tuple[float, float | None]:
    """Samples/s of one epoch of ``transformers.Trainer``, and dev accuracy (tuned runs only)."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    tok = AutoTokenizer.from_pretrained(model_dir)
    padding = False if tuned else "max_length"
    ds = Dataset.from_dict({"text": texts, "label": labels})
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=128, padding=padding), batched=True, remove_columns=["text"])
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    extra = {"train_sampling_strategy": "group_by_length"} if tuned else {}
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, num_train_epochs=1, report_to=[],
                                 save_strategy="no", logging_steps=10_000, disable_tqdm=True, use_cpu=True, seed=0,
                                 bf16=bf16, **extra)
        trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
        start = time.perf_counter()
        trainer.train()
        rate = len(texts) / (time.perf_counter() - start)
    return rate, dev_accuracy(model, tok, bf16) if tuned else None


def lmforge_run(model_dir: str, texts: list[str], labels: list[int], batch: int, precision: str) -> tuple[float, float, float]:
    """Samples/s of one epoch of lmforge's loop in ``precision``, the GFLOP/s of useful work, and dev accuracy."""
    from lmforge.config import ModelConfig, TaskConfig, TrainConfig
    from lmforge.data.dataset import Split, SplitSource
    from lmforge.data.examples import Examples
    from lmforge.data.labels import LabelSpace
    from lmforge.data.tokenize import tokenize
    from lmforge.models.build import load_tokenizer
    from lmforge.tasks import get_task
    from lmforge.training.loop import fit

    tok = load_tokenizer(model_dir)
    task = get_task(TaskConfig())
    space = LabelSpace("single", ["0", "1"])
    examples = Examples(Path("sst2"), texts, None, labels, list(range(len(texts))))
    split = Split("train", examples, tokenize(tok, texts, None, 128), np.asarray(labels), int(tok.pad_token_id))
    torch.manual_seed(0)
    model = task.build_model(model_dir, space, ModelConfig(name=model_dir))
    flops = train_flops(model, split.lengths)
    source = SplitSource(split, task.collate, batch, "length_grouped", seed=0)
    cfg = TrainConfig(epochs=1, batch_size=batch, log_every=10_000, precision=precision)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = fit(model, source, task.loss, cfg, Path(out), tensorboard=False)
        seconds = time.perf_counter() - start
    return len(texts) / seconds, flops / seconds / 1e9, dev_accuracy(result.model, tok, precision == "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="256 sentences, a smoke run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="(b), (c) and (d) alternate this many times; each side's best round counts, so a busy moment hits none alone")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/sst2")
    from lmforge import zoo
    from lmforge.devices import cpu_bf16

    n = 256 if args.quick else args.samples
    model_dir = zoo.resolve_model("minilm-l6")
    texts, labels = read_sst2(DATA, n)
    amx, why = cpu_bf16()
    print(f"{n} SST-2 sentences, batch {args.batch_size}, {torch.get_num_threads()} threads; bf16: {amx} ({why})", file=sys.stderr)
    peak = matmul_peak_gflops()
    naive, _ = hf_trainer(model_dir, texts, labels, args.batch_size, tuned=False)
    best: dict[str, tuple] = {}
    for _ in range(1 if args.quick else args.rounds):
        runs = {"tuned": lambda: hf_trainer(model_dir, texts, labels, args.batch_size, tuned=True),
                "fp32": lambda: lmforge_run(model_dir, texts, labels, args.batch_size, "fp32")}
        if amx:
            runs["bf16"] = lambda: lmforge_run(model_dir, texts, labels, args.batch_size, "bf16")
            runs["tuned_bf16"] = lambda: hf_trainer(model_dir, texts, labels, args.batch_size, tuned=True, bf16=True)
        for name, run in runs.items():
            out = run()
            if name not in best or out[0] > best[name][0]:
                best[name] = out
            print(f"  {name}: {out[0]:.1f} samples/s", file=sys.stderr, flush=True)
    print(json.dumps(summary(best, naive, peak, n, 1 if args.quick else args.rounds, amx)))


def summary(best: dict[str, tuple], naive: float, peak: float, n: int, rounds: int, amx: bool) -> dict:
    """The JSON line (and a readable table on stderr) from each side's best round."""
    tuned, tuned_acc = best["tuned"]
    ours, gflops, acc = best["fp32"]
    result = {
        "naive_samples_per_s": round(naive, 2), "tuned_samples_per_s": round(tuned, 2), "lmforge_samples_per_s": round(ours, 2),
        "ratio_vs_naive": round(ours / naive, 3), "ratio_vs_tuned": round(ours / tuned, 3),
        "peak_gflops": round(peak, 1), "lmforge_gflops": round(gflops, 1), "peak_share": round(gflops / peak, 3),
        "samples": n, "rounds": rounds,
        "machine": f"{os.cpu_count()} CPU cores ({torch.backends.cpu.get_cpu_capability()}, {'AMX' if amx else 'no AMX'})",
        "tuned_accuracy": round(tuned_acc, 4), "lmforge_accuracy": round(acc, 4), "eval_rows": EVAL_ROWS,
    }
    lines = [f"(a) Trainer, max_length padding : {naive:8.1f} samples/s",
             f"(b) Trainer, tuned              : {tuned:8.1f} samples/s  dev acc {tuned_acc:.4f}",
             f"(c) lmforge fp32                : {ours:8.1f} samples/s  dev acc {acc:.4f}  "
             f"({ours / naive:.2f}x a, {ours / tuned:.2f}x b; {gflops:.1f} GFLOP/s = {100 * gflops / peak:.1f}% of fp32 peak {peak:.1f})"]
    if amx:
        bf16, _, bf16_acc = best["bf16"]
        tuned_bf16, tuned_bf16_acc = best["tuned_bf16"]
        result |= {"lmforge_bf16_samples_per_s": round(bf16, 2), "ratio_bf16_vs_tuned": round(bf16 / tuned, 3),
                   "lmforge_bf16_accuracy": round(bf16_acc, 4), "tuned_bf16_samples_per_s": round(tuned_bf16, 2),
                   "tuned_bf16_accuracy": round(tuned_bf16_acc, 4), "ratio_bf16_vs_tuned_bf16": round(bf16 / tuned_bf16, 3)}
        lines += [f"(d) lmforge bf16 (AMX)         : {bf16:8.1f} samples/s  dev acc {bf16_acc:.4f}  ({bf16 / tuned:.2f}x b)",
                  f"    Trainer tuned, bf16=True   : {tuned_bf16:8.1f} samples/s  dev acc {tuned_bf16_acc:.4f}"]
    print("\n".join(lines), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
