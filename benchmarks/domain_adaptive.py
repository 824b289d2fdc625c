"""Domain-adaptive pretraining: does continued MLM on financial text help minilm-l6 classify it?

``financial_phrasebank/train.csv`` (sentences from financial news, negative / neutral /
positive) is split once into a fine-tuning part and a held-out test part (20%, stratified).
``minilm-l6`` (which ships without an MLM head: one is created, tied to the word embeddings)
continues masked-LM pretraining on the unlabeled sentences of the fine-tuning part only, so no
test sentence is seen in any form. Then the original and the adapted model are fine-tuned
on the same data with 3 seeds each, and test accuracy and macro-F1 are averaged. A word
1-2-gram TF-IDF + logistic regression baseline on the same split is reported beside them.
The zoo holds no other financial text, so the adaptation corpus is these sentences alone.

    PYTHONPATH=src python benchmarks/domain_adaptive.py           # writes benchmarks/results/domain_adaptive.json
    PYTHONPATH=src python benchmarks/domain_adaptive.py --quick   # smoke run (one seed, few steps)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    accuracy,
    bench_home,
    emit,
    key_of,
    log,
    macro_f1,
    predict_labels,
    read_rows,
    setup_logging,
    shared_file,
    tfidf_baseline,
    timer,
    write_rows,
)


def split(rows: list[tuple[str, str]], share: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """A stratified (fine-tune, test) split."""
    from sklearn.model_selection import train_test_split

    keep, test = train_test_split(rows, test_size=share, random_state=seed, stratify=[y for _, y in rows])
    return list(keep), list(test)


def adapt(work: Path, corpus: Path, quick: bool) -> tuple[Path, float]:
    """minilm-l6 after continued MLM on ``corpus`` (cached), and the wall time it took."""
    from lmforge.recipes.pretrain import pretrain

    done = work / "dapt.json"
    if done.is_file():
        return work / "dapt", json.loads(done.read_text())["wall_s"]
    cfg = {
        "data": {"train": [str(corpus)], "max_length": 64, "validation_share": 0.05, "dedup": True},
        "model": {"name": "minilm-l6"},
        "objective": {"mlm": True, "whole_word_masking": True},
        "train": {"epochs": 1 if quick else 8, "max_steps": 10 if quick else None, "batch_size": 32, "lr": 1e-4,
                  "head_lr": 2e-3, "warmup_ratio": 0.06, "log_every": 10, "seed": 0},
        "output": {"dir": str(work / "dapt"), "overwrite": True, "tensorboard": False},
    }
    with timer() as t:
        pretrain(cfg)
    done.write_text(json.dumps({"wall_s": t["s"]}))
    return work / "dapt", t["s"]


def finetune(model: str, train_csv: Path, out: Path, seed: int, quick: bool) -> Path:
    import lmforge

    cfg = {
        "data": {"train": str(train_csv), "split": {"validation": 0.1, "seed": seed}, "max_length": 96, "cache": False,
                 "max_train_samples": 300 if quick else None},
        "model": {"name": model},
        "task": {"name": "classification"},
        "train": {"epochs": 1 if quick else 4, "batch_size": 32, "lr": 5e-5, "warmup_ratio": 0.1, "seed": seed, "log_every": 20},
        "output": {"dir": str(out), "overwrite": True, "tensorboard": False, "report": False},
    }
    return lmforge.finetune(cfg).run_dir


def scores(model: str, name: str, work: Path, train_csv: Path, test: list[tuple[str, str]], seeds: list[int],
           quick: bool) -> dict[str, Any]:
    """Mean test accuracy and macro-F1 of ``model`` fine-tuned with each seed."""
    gold = [y for _, y in test]
    acc, f1 = [], []
    for seed in seeds:
        pred = predict_labels(finetune(model, train_csv, work / f"ft_{name}_{seed}", seed, quick), [t for t, _ in test])
        acc.append(accuracy(pred, gold))
        f1.append(macro_f1(pred, gold))
        log(f"{name} seed {seed}: accuracy {acc[-1]:.4f}, macro-F1 {f1[-1]:.4f}")
    return {f"{name}_accuracy": statistics.mean(acc), f"{name}_macro_f1": statistics.mean(f1),
            f"{name}_accuracy_per_seed": acc, f"{name}_macro_f1_per_seed": f1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one seed, few steps, small fine-tuning set")
    args = parser.parse_args()
    setup_logging()
    rows = read_rows(shared_file("financial_phrasebank", "train.csv"), "text", "label")
    keep, test = split(rows)
    seeds = [0] if args.quick else [0, 1, 2]
    work = bench_home("domain_adaptive") / key_of(len(rows), args.quick)
    train_csv = write_rows(work / "train.csv", keep)
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(t for t, _ in keep) + "\n", encoding="utf-8")
    log(f"financial_phrasebank: {len(keep)} for fine-tuning and adaptation, {len(test)} held out")
    tfidf = tfidf_baseline(keep, test)
    adapted, wall = adapt(work, corpus, args.quick)
    result = {
        **scores("minilm-l6", "without_dapt", work, train_csv, test, seeds, args.quick),
        **scores(str(adapted), "with_dapt", work, train_csv, test, seeds, args.quick),
        "tfidf_accuracy": accuracy(tfidf, [y for _, y in test]),
        "tfidf_macro_f1": macro_f1(tfidf, [y for _, y in test]),
        "dapt_wall_s": round(wall, 1), "test_examples": len(test), "seeds": seeds, "quick": args.quick,
    }
    order = ["with_dapt_accuracy", "without_dapt_accuracy", "with_dapt_macro_f1", "without_dapt_macro_f1"]
    out = None if args.quick else REPO / "benchmarks" / "results" / "domain_adaptive.json"
    emit({**{k: result.pop(k) for k in order}, **result}, out)


if __name__ == "__main__":
    main()
