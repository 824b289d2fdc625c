"""Fine-tuning throughput: lmforge vs Hugging Face Trainer (tutorial and well-tuned), same run.

Same model (minilm-l6), same 2,000 SST-2 sentences, same batch size, one process each:
  (a) Trainer the tutorial way: padding="max_length", max_length=128;
  (b) Trainer well tuned: dynamic padding and group_by_length sampling;
  (c) lmforge's loop (length-grouped dynamic padding, fused AdamW).
Prints samples/s of each, the ratios, and lmforge's achieved GFLOP/s as a share of this machine's
fp32 matmul peak measured in the same run. (b) and (c) alternate over several rounds and each
side's best round counts. Ends with one JSON line.

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


def read_sst2(path: Path, n: int) -> tuple[list[str], list[int]]:
    """The first ``n`` sentences of SST-2 train with their labels."""
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


def hf_trainer(model_dir: str, texts: list[str], labels: list[int], batch: int, tuned: bool) -> float:
    """Samples/s of one epoch of ``transformers.Trainer``."""
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
                                 save_strategy="no", logging_steps=10_000, disable_tqdm=True, use_cpu=True, seed=0, **extra)
        trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
        start = time.perf_counter()
        trainer.train()
        return len(texts) / (time.perf_counter() - start)


def lmforge_run(model_dir: str, texts: list[str], labels: list[int], batch: int) -> tuple[float, float]:
    """Samples/s of one epoch of lmforge's loop, and the training FLOPs it did."""
    from lmforge.config import TaskConfig, TrainConfig
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
    from lmforge.config import ModelConfig

    model = task.build_model(model_dir, space, ModelConfig(name=model_dir))
    flops = train_flops(model, split.lengths)
    source = SplitSource(split, task.collate, batch, "length_grouped", seed=0)
    cfg = TrainConfig(epochs=1, batch_size=batch, log_every=10_000)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        fit(model, source, task.loss, cfg, Path(out), tensorboard=False)
        seconds = time.perf_counter() - start
    return len(texts) / seconds, flops / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="256 sentences, a smoke run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="(b) and (c) alternate this many times; each side's best round counts, so a busy moment hits neither alone")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/sst2")
    from lmforge import zoo

    n = 256 if args.quick else args.samples
    model_dir = zoo.resolve_model("minilm-l6")
    texts, labels = read_sst2(DATA, n)
    print(f"{n} SST-2 sentences, batch {args.batch_size}, {torch.get_num_threads()} threads", file=sys.stderr)
    peak = matmul_peak_gflops()
    naive = hf_trainer(model_dir, texts, labels, args.batch_size, tuned=False)
    tuned, ours, gflops = 0.0, 0.0, 0.0
    for _ in range(1 if args.quick else args.rounds):
        tuned = max(tuned, hf_trainer(model_dir, texts, labels, args.batch_size, tuned=True))
        rate, rate_gflops = lmforge_run(model_dir, texts, labels, args.batch_size)
        if rate > ours:
            ours, gflops = rate, rate_gflops
    result = {
        "naive_samples_per_s": round(naive, 2), "tuned_samples_per_s": round(tuned, 2), "lmforge_samples_per_s": round(ours, 2),
        "ratio_vs_naive": round(ours / naive, 3), "ratio_vs_tuned": round(ours / tuned, 3),
        "peak_gflops": round(peak, 1), "lmforge_gflops": round(gflops, 1), "peak_share": round(gflops / peak, 3),
        "samples": n, "rounds": 1 if args.quick else args.rounds,
    }
    print(f"(a) Trainer, max_length padding : {naive:8.1f} samples/s")
    print(f"(b) Trainer, tuned              : {tuned:8.1f} samples/s")
    print(f"(c) lmforge                     : {ours:8.1f} samples/s  ({ours / naive:.2f}x a, {ours / tuned:.2f}x b)")
    print(f"lmforge {gflops:.1f} GFLOP/s = {100 * gflops / peak:.1f}% of the {peak:.1f} GFLOP/s fp32 matmul peak")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
