"""LoRA on a decoder: SmolLM2-135M-Instruct for label generation and for instruction following.

1. Label generation on Rotten Tomatoes reviews (zoo dataset, fresh/rotten): the model answers
   with the label through its chat template. Test accuracy of the untrained model (zero-shot,
   same prompt and label scoring), of LoRA after one epoch, and of TF-IDF + logistic regression
   trained on the same sentences.
2. Instruction tuning on BANKING77 turned into instruction/response rows (a customer message
   -> its intent name, 77 of them): response loss and exact match of greedy answers on held-out
   rows, before and after LoRA.

    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/peft_decoder.py [--quick]

Ends with one JSON line (also written to benchmarks/results/peft_decoder.json without --quick).
CPU only and slow: a few hundred examples each.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, SHARED, emit

BANKING = SHARED / "banking77"
INTENT_PROMPT = "Which banking intent does this customer message express? Answer with the intent name only.\n\nMessage: {text}"
LABEL_PROMPT = "Is this movie review fresh or rotten? Answer with one word.\n\nReview: {text}"


def base_config(run: Path, data: dict[str, Any], task: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """A SmolLM2 + LoRA finetune config."""
    return {"data": {"max_length": 128, **data}, "model": {"name": "smollm2-135m"}, "task": task,
            "tuning": {"method": "lora", "r": 8},
            "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "lr": 1e-3, "seed": 0, "log_every": 5, **train},
            "output": {"dir": str(run), "overwrite": True, "tensorboard": False, "report": False}}


def untrained(cfg_tree: dict[str, Any], split_name: str) -> tuple[Any, Any, Any, Any]:
    """The base model, task, tokenizer and tokenized ``split_name`` of a config, without training."""
    from lmforge import config
    from lmforge.config import FinetuneConfig
    from lmforge.data.pipeline import labeled_splits
    from lmforge.models.build import load_tokenizer, resolve
    from lmforge.tasks import get_task
    from lmforge.tasks.base import make_split

    cfg = config.load(FinetuneConfig, cfg_tree)
    task, source = get_task(cfg.task), resolve(cfg.model.name)
    tokenizer = load_tokenizer(source)
    examples, labels = labeled_splits(cfg.data, task)
    split = make_split(task, split_name, *examples[split_name], tokenizer, cfg.data, labels, None)
    model = task.build_model(source, labels, cfg.model).eval()
    return model, task, tokenizer, (split, labels, examples)


def tfidf_accuracy(examples: dict[str, Any]) -> float:
    """TF-IDF + logistic regression on the same train/test sentences."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    (train, y_train), (test, y_test) = examples["train"], examples["test"]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(vectorizer.fit_transform(train.texts), y_train)
    return float(np.mean(model.predict(vectorizer.transform(test.texts)) == y_test))


def label_generation(work: Path, train_rows: int, test_rows: int) -> dict[str, Any]:
    """Zero-shot vs LoRA vs TF-IDF on Rotten Tomatoes test reviews."""
    import lmforge

    tree = base_config(work / "labels", {"train": "rotten_tomatoes", "max_train_samples": train_rows,
                                         "max_eval_samples": test_rows, "split": {"validation": 0.0, "test": 0.1, "seed": 0}},
                       {"name": "label_generation", "prompt": LABEL_PROMPT}, {})
    model, task, _, (split, labels, examples) = untrained(tree, "test")
    zero_shot = task.metrics(task.infer(model, split, 16), split.targets, labels)["accuracy"]
    del model
    start = time.perf_counter()
    result = lmforge.finetune(tree)
    counts = json.loads((result.run_dir / "tuning.json").read_text())
    return {"train_rows": train_rows, "test_rows": len(split), "zero_shot_accuracy": round(zero_shot, 4),
            "lora_accuracy": round(result.metrics["test"]["accuracy"], 4),
            "tfidf_lr_accuracy": round(tfidf_accuracy(examples), 4),
            "trainable_share": round(counts["trainable_share"], 5), "train_wall_s": round(time.perf_counter() - start, 1),
            "adapter_bytes": sum(f.stat().st_size for f in (result.run_dir / "model").iterdir())}


def banking_jsonl(out: Path, rows: int, seed: int = 0) -> Path:
    """A seeded sample of BANKING77 as instruction/response JSONL."""
    with (BANKING / "train.csv").open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    pick = np.random.default_rng(seed).permutation(len(table))[:rows]
    with out.open("w", encoding="utf-8") as f:
        for i in pick:
            row = {"instruction": INTENT_PROMPT.format(text=table[i]["text"]), "response": table[i]["category"]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def exact_match(predictor_generate: Any, split: Any) -> float:
    """Share of held-out rows whose greedy answer is exactly the reference response."""
    answers = predictor_generate(split)
    return float(np.mean([a.strip() == str(r).strip() for a, r in zip(answers, split.examples.labels, strict=True)]))


def instruct(work: Path, train_rows: int, test_rows: int) -> dict[str, Any]:
    """Response loss and exact match on held-out BANKING77 instructions, before and after LoRA."""
    import lmforge
    from lmforge.tasks import chat

    data = banking_jsonl(work / "banking77.jsonl", train_rows + test_rows)
    tree = base_config(work / "instruct", {"train": str(data), "text_column": "instruction", "label_column": "response",
                                           "split": {"validation": 0.0, "test": test_rows / (train_rows + test_rows), "seed": 0}},
                       {"name": "instruct", "max_new_tokens": 12}, {})
    model, task, tokenizer, (split, labels, _) = untrained(tree, "test")
    before_loss = task.metrics(task.infer(model, split, 16), split.targets, labels)["loss"]
    before_em = exact_match(lambda s: chat.generate(model, tokenizer, s, 16, 12), split)
    model = None  # free the untrained copy before training
    start = time.perf_counter()
    result = lmforge.finetune(tree)
    wall = time.perf_counter() - start
    trained = lmforge.load(result.run_dir, device="cpu")
    after_em = exact_match(lambda s: chat.generate(trained.model, trained.tokenizer, s, 16, 12), split)
    return {"train_rows": train_rows, "test_rows": len(split), "intents": 77,
            "response_loss_before": round(before_loss, 4), "response_loss_after": round(result.metrics["test"]["loss"], 4),
            "exact_match_before": round(before_em, 4), "exact_match_after": round(after_em, 4), "train_wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 training and 24 test rows per part")
    parser.add_argument("--train-rows", type=int, default=400)
    parser.add_argument("--test-rows", type=int, default=200)
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.test_rows = 32, 24
    if not (BANKING / "train.csv").is_file():
        raise SystemExit(f"{BANKING} is missing: this benchmark needs the shared BANKING77 data")
    with tempfile.TemporaryDirectory(prefix="peft_decoder-") as tmp:
        labels = label_generation(Path(tmp), args.train_rows, args.test_rows)
        print(f"label generation: {labels}", flush=True)
        tuned = instruct(Path(tmp), args.train_rows, args.test_rows)
        print(f"instruct: {tuned}", flush=True)
    result = {"benchmark": "peft_decoder", "model": "smollm2-135m", "method": "lora r=8",
              "label_generation": labels, "instruct": tuned}
    emit(result, None if args.quick else REPO / "benchmarks" / "results" / "peft_decoder.json")


if __name__ == "__main__":
    main()
