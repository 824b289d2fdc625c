"""Masked-LM pretraining speed: lmforge vs Hugging Face's run_mlm.py recipe, and memory while streaming 1 GB.

Both sides continue pretraining ``minilm-l6`` (its MLM head created, tied to the word
embeddings) on the same texts, in 128-token packed sequences, 32 per step, with fused AdamW:
lmforge through ``lmforge pretrain``; Hugging Face as ``run_mlm.py`` does it (``datasets``
map + ``group_texts``, ``DataCollatorForLanguageModeling``, ``Trainer``). The runs alternate
(lmforge, HF, lmforge, HF) and each side's tokens/s is the median over its timed steps, so
load from other processes on a shared machine hits both alike.

Then a generated 1 GB corpus is pretrained on by ``lmforge pretrain`` in a child process
(tokenized once, streaming, then a few steps) and the child's peak RSS is reported, beside
the same run on the small review corpus: memory is set by the model and batch, not the corpus.

    PYTHONPATH=src python benchmarks/pretrain_throughput.py           # writes benchmarks/results/pretrain_throughput.json
    PYTHONPATH=src python benchmarks/pretrain_throughput.py --quick   # smoke run (20 MB corpus, few steps)
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import REPO, bench_home, emit, log, setup_logging

SEQ, BATCH, LR = 128, 32, 1e-4


def corpus_texts() -> list[str]:
    """English review snippets from the zoo (the same texts for both sides)."""
    from lmforge.data.corpus import corpus_files, read_documents

    return [line for doc in read_documents(corpus_files(["rotten_tomatoes"]), desc=None) for line in doc]


def lmforge_run(corpus: Path, work: Path, steps: int) -> list[float]:
    """Seconds of each optimizer step of ``lmforge pretrain`` (from its per-step log rows)."""
    from lmforge.recipes.pretrain import pretrain

    cfg = {
        "data": {"train": [str(corpus)], "max_length": SEQ, "validation_share": 0.0, "cache": True},
        "model": {"name": "minilm-l6"},
        "objective": {"mlm": True},
        "train": {"max_steps": steps, "batch_size": BATCH, "lr": LR, "warmup_ratio": 0.0, "log_every": 1, "seed": 0},
        "output": {"dir": str(work / "lmforge_run"), "overwrite": True, "tensorboard": False, "report": False},
    }
    run = pretrain(cfg).run_dir
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [BATCH / r["samples_per_s"] for r in rows if r["split"] == "train"]


def hf_run(texts: list[str], work: Path, steps: int) -> list[float]:
    """Seconds of each optimizer step of the run_mlm.py recipe (from one step's end to the next)."""
    from datasets import Dataset
    from transformers import (
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from lmforge.zoo import resolve_model

    source = resolve_model("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.backend_tokenizer.no_padding()  # minilm's saved tokenizer pads everything to 128
    model = AutoModelForMaskedLM.from_pretrained(source)

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], return_special_tokens_mask=True)

    def group_texts(examples: dict[str, list]) -> dict[str, list]:  # as in run_mlm.py
        joined = {k: sum(examples[k], []) for k in examples}
        total = (len(joined["input_ids"]) // SEQ) * SEQ
        return {k: [t[i:i + SEQ] for i in range(0, total, SEQ)] for k, t in joined.items()}

    data = Dataset.from_dict({"text": texts}).map(tokenize, batched=True, remove_columns=["text"])
    data = data.map(group_texts, batched=True)
    ends: list[float] = []

    class Clock(TrainerCallback):
        # From one step's end to the next: batch collation (masking) included, as on lmforge's side.
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())

    args = TrainingArguments(output_dir=str(work / "hf_run"), per_device_train_batch_size=BATCH, max_steps=steps,
                             learning_rate=LR, warmup_steps=0, weight_decay=0.01, logging_steps=10_000, save_strategy="no",
                             report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    Trainer(model=model, args=args, train_dataset=data, data_collator=collator, callbacks=[Clock()]).train()
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def write_big_corpus(path: Path, size: int, texts: list[str]) -> None:
    """About ``size`` bytes of documents made of shuffled review sentences (seeded)."""
    rng = random.Random(0)
    written = 0
    with path.open("w", encoding="utf-8") as f:
        while written < size:
            doc = " ".join(rng.choices(texts, k=rng.randint(1, 8)))
            written += f.write(doc + "\n")


def child_peak_rss(corpus: Path, work: Path) -> tuple[float, float]:
    """Peak RSS (GB, the child's VmHWM) and wall time of a child ``lmforge pretrain`` run on ``corpus``.

    The child reads its own high-water mark: a forked child's ``ru_maxrss`` would include the
    parent's pages at fork time.
    """
    cfg = {
        "data": {"train": [str(corpus)], "max_length": SEQ, "validation_share": 0.0005, "cache": False},
        "model": {"name": "minilm-l6"},
        "train": {"max_steps": 5, "batch_size": BATCH, "lr": LR, "log_every": 1},
        "output": {"dir": str(work / "stream_run"), "overwrite": True, "tensorboard": False, "report": False},
    }
    code = ("import json, re, sys; sys.path.insert(0, 'src'); from lmforge.logs import setup_logging; setup_logging(False); "
            f"from lmforge.recipes.pretrain import pretrain; pretrain(json.loads({json.dumps(json.dumps(cfg))})); "
            "kb = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); print(json.dumps({'kb': kb}))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, stdout=subprocess.PIPE, text=True).stdout
    shutil.rmtree(work / "stream_run", ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])["kb"] / 1024**2, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few steps, 20 MB corpus")
    args = parser.parse_args()
    setup_logging()
    work = bench_home("pretrain_throughput")
    steps, rounds, size = (6, 1, 20 << 20) if args.quick else (25, 2, 1 << 30)
    texts = corpus_texts()
    corpus = work / "texts.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}: lmforge")
        ours += lmforge_run(corpus, work, steps)[2:]  # the first steps warm up caches and allocators
        log(f"round {r + 1}/{rounds}: Hugging Face Trainer")
        theirs += hf_run(texts, work, steps)[2:]
    tokens = SEQ * BATCH
    lm_tps, hf_tps = tokens / statistics.median(ours), tokens / statistics.median(theirs)
    log(f"lmforge {lm_tps:.0f} tokens/s, Hugging Face {hf_tps:.0f} tokens/s")
    big = work / "big_corpus.txt"
    if not big.is_file() or abs(big.stat().st_size - size) > 1 << 20:
        write_big_corpus(big, size, texts)
    log(f"streaming a {size / 2**30:.2f} GB corpus through lmforge pretrain in a child process")
    rss, wall = child_peak_rss(big, work)
    small_rss, _ = child_peak_rss(corpus, work)
    result = {
        "lmforge_tokens_per_s": round(lm_tps, 1),
        "hf_tokens_per_s": round(hf_tps, 1),
        "ratio_vs_hf": round(lm_tps / hf_tps, 3),
        "stream_peak_rss_gb": round(rss, 3),
        "stream_corpus_gb": round(size / 2**30, 3),
        "stream_wall_s": round(wall, 1),
        "small_corpus_peak_rss_gb": round(small_rss, 3),
        "timed_steps_per_side": len(ours),
        "model": "minilm-l6", "seq_len": SEQ, "batch_size": BATCH, "quick": args.quick,
    }
    emit(result, None if args.quick else REPO / "benchmarks" / "results" / "pretrain_throughput.json")


if __name__ == "__main__":
    main()
