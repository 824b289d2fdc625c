"""A Chinese encoder from scratch on CPU: tokenizer, MLM pretraining with jieba whole-word masking, fine-tuning.

Trains a WordPiece tokenizer (one token per Chinese character) and a small BERT-style encoder
(RoFormer, mini size, by default; about 70 minutes of pretraining on 2 cores) by masked LM on the
zoo's Chinese corpora (People's Daily news, product reviews; reviews that are also dev reviews
left out) plus the unlabeled text of chnsenticorp/train.tsv; then fine-tunes on
chnsenticorp/train.tsv both the pretrained model and the same architecture from random init, and
compares their chnsenticorp/dev.tsv accuracy with a character 1-3-gram TF-IDF + logistic
regression baseline from the same run.
Accuracy is also given on the dev texts that do not occur in train.tsv.

The pretrained checkpoint is cached under LMFORGE_HOME/bench/chinese_pretrain (keyed by the
settings), so a rerun skips pretraining and reports the wall time the cached run took.

    PYTHONPATH=src python benchmarks/chinese_pretrain.py            # full run, writes benchmarks/results/chinese_pretrain.json
    PYTHONPATH=src python benchmarks/chinese_pretrain.py --quick    # smoke run, minutes
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    accuracy,
    bench_home,
    emit,
    key_of,
    log,
    predict_labels,
    read_rows,
    setup_logging,
    shared_file,
    tfidf_baseline,
    timer,
    write_rows,
)


def decontaminated(path: Path, dev_texts: list[str], out: Path) -> tuple[Path, int]:
    """``path`` (the zoo's review corpus) without the reviews that are also in chnsenticorp/dev.tsv.

    The zoo's reviews contain most of ChnSentiCorp, dev texts included (942 of its 1,200 verbatim):
    pretraining on them would be pretraining on the evaluation set. Reviews match when their first
    30 characters agree after NFKC normalization with whitespace removed.
    """
    from lmforge.data.normalize import make_normalizer

    normalize = make_normalizer("nfkc")

    def key(text: str) -> str:
        return normalize(text).replace(" ", "")[:30]

    seen = {key(t) for t in dev_texts}
    rows = read_rows(path, "text", "label")
    kept = [(t, "") for t, _ in rows if key(t) not in seen]
    write_rows(out, kept)
    return out, len(rows) - len(kept)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that shapes the pretrained model (its hash names the cache folder)."""
    return {
        "vocab_size": 10000,
        # No dropout while pretraining (few passes over little data), none in attention at all
        # (lets PyTorch use its fused attention kernel).
        "model": {"arch": args.arch, "size": args.size, "dropout": 0.0, "attention_dropout": 0.0},
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "steps": 60 if args.quick else args.steps,
        "lr": args.lr,
        "max_documents": 3000 if args.quick else None,
        "decontaminated": True,
    }


def train_tokenizer(work: Path, corpus: list[str], s: dict[str, Any]) -> Path:
    from lmforge.data.tokenizer_training import train_tokenizer as train

    out = work / "tokenizer"
    if not (out / "tokenizer.json").is_file():
        train(corpus, out, "wordpiece", vocab_size=s["vocab_size"], text_column=["text", "text_a"], max_length=512)
    return out


def pretrain_config(work: Path, corpus: list[str], tokenizer: Path, s: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {"train": corpus, "text_column": ["text", "text_a"], "max_length": s["max_length"], "validation_share": 0.01,
                 "max_eval_sequences": 256, "max_documents": s["max_documents"]},
        "model": {**s["model"], "tokenizer": str(tokenizer)},
        "objective": {"mlm": True, "whole_word_masking": True, "chinese_words": "jieba"},
        "train": {"max_steps": s["steps"], "batch_size": s["batch_size"], "lr": s["lr"], "warmup_ratio": 0.06,
                  "weight_decay": 0.01, "eval_every": max(20, s["steps"] // 6), "log_every": 20, "seed": 0},
        "output": {"dir": str(work / "pretrained"), "overwrite": True, "tensorboard": False},
    }


def pretrained_model(work: Path, corpus: list[str], s: dict[str, Any]) -> tuple[Path, float, dict[str, Any]]:
    """The pretrained run (cached) and the wall time its tokenizer and pretraining took."""
    from lmforge.recipes.pretrain import pretrain

    done = work / "pretrain_result.json"
    if done.is_file():
        cached = json.loads(done.read_text())
        log(f"using the cached pretrained model in {work} (pretraining took {cached['wall_s']:.0f}s)")
        return work / "pretrained", cached["wall_s"], cached["metrics"]
    with timer() as t:
        tokenizer = train_tokenizer(work, corpus, s)
        result = pretrain(pretrain_config(work, corpus, tokenizer, s))
    done.write_text(json.dumps({"wall_s": t["s"], "metrics": result.metrics}))
    return result.run_dir, t["s"], result.metrics


def random_init_model(work: Path, s: dict[str, Any]) -> Path:
    """The same architecture and tokenizer with random weights, saved like a pretrained run."""
    from lmforge.models.build import load_tokenizer
    from lmforge.pretraining.config import ObjectiveConfig, PretrainModelConfig
    from lmforge.pretraining.model import new_model

    out = work / "random_init"
    if not (out / "config.json").is_file():
        tokenizer = load_tokenizer(str(work / "tokenizer"))
        cfg = PretrainModelConfig(**s["model"], tokenizer=str(work / "tokenizer"))
        model, _ = new_model(cfg, ObjectiveConfig(), tokenizer, s["max_length"])
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out


def finetune(model: Path, train_csv: Path, dev_csv: Path, out: Path, args: argparse.Namespace) -> Path:
    import lmforge

    quick = args.quick
    cfg = {
        # 30% of the reviews are longer than 128 characters, 5% longer than 256.
        "data": {"train": str(train_csv), "test": str(dev_csv), "split": {"validation": 0.1, "seed": 0},
                 "max_length": args.finetune_length, "max_train_samples": 600 if quick else None,
                 "max_eval_samples": 300 if quick else None, "cache": False},
        "model": {"name": str(model), "dropout": 0.1},
        "task": {"name": "classification"},
        "train": {"epochs": 1 if quick else args.finetune_epochs, "batch_size": 32, "lr": args.finetune_lr,
                  "warmup_ratio": 0.1, "seed": 0, "log_every": 20},
        "output": {"dir": str(out), "overwrite": True, "tensorboard": False, "report": False},
    }
    return lmforge.finetune(cfg).run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny corpus, few steps, small fine-tuning set")
    parser.add_argument("--fresh", action="store_true", help="ignore the cached pretrained model")
    parser.add_argument("--arch", default="roformer", help="encoder architecture: roformer (rotary positions) or bert")
    parser.add_argument("--size", default="mini", help="size preset of the BERT (tiny, mini, small, base)")
    parser.add_argument("--steps", type=int, default=7800, help="pretraining steps (0.5-1 s each on 2 cores)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per pretraining sequence")
    parser.add_argument("--batch-size", type=int, default=16, help="pretraining sequences per step")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak pretraining learning rate")
    parser.add_argument("--finetune-length", type=int, default=256, help="max tokens per review when fine-tuning")
    parser.add_argument("--finetune-epochs", type=float, default=5, help="fine-tuning epochs")
    parser.add_argument("--finetune-lr", type=float, default=2e-4, help="fine-tuning learning rate")
    args = parser.parse_args()
    setup_logging()
    s = settings(args)
    train_rows = read_rows(shared_file("chnsenticorp", "train.tsv"), "text_a", "label")
    dev_rows = read_rows(shared_file("chnsenticorp", "dev.tsv"), "text_a", "label")
    work = bench_home("chinese_pretrain") / key_of(s)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    train_csv, dev_csv = write_rows(work / "train.csv", train_rows), write_rows(work / "dev.csv", dev_rows)
    from lmforge.zoo import resolve_dataset

    reviews, dropped = decontaminated(resolve_dataset("chinese_reviews"), [t for t, _ in dev_rows], work / "reviews.csv")
    log(f"chinese_reviews: {dropped} reviews that are also in chnsenticorp/dev.tsv left out of the corpus")
    corpus = ["chinese_news", str(reviews), str(shared_file("chnsenticorp", "train.tsv"))]
    seen = {t for t, _ in train_rows}
    unseen = [i for i, (t, _) in enumerate(dev_rows) if t not in seen]
    gold = [y for _, y in dev_rows]
    log(f"chnsenticorp: {len(train_rows)} train, {len(dev_rows)} dev ({len(unseen)} not in train)")
    tfidf = tfidf_baseline(train_rows, dev_rows)
    run, wall, pre_metrics = pretrained_model(work, corpus, s)
    scores: dict[str, float] = {}
    for name, model in (("pretrained", run), ("random_init", random_init_model(work, s))):
        tuned = finetune(model, train_csv, dev_csv, work / f"finetune_{name}", args)
        pred = predict_labels(tuned, [t for t, _ in dev_rows])
        scores[f"{name}_dev_accuracy"] = accuracy(pred, gold)
        scores[f"{name}_unseen_dev_accuracy"] = accuracy(pred, gold, unseen)
        log(f"{name}: dev accuracy {scores[f'{name}_dev_accuracy']:.4f}")
    result = {
        **scores,
        "tfidf_dev_accuracy": accuracy(tfidf, gold),
        "tfidf_unseen_dev_accuracy": accuracy(tfidf, gold, unseen),
        "pretrain_wall_s": round(wall, 1),
        "pretrain_steps": s["steps"],
        "pretrain_tokens": s["steps"] * s["batch_size"] * s["max_length"],
        "heldout_mlm_accuracy": pre_metrics.get("mlm_accuracy"),
        "dev_examples": len(dev_rows),
        "unseen_dev_examples": len(unseen),
        "quick": args.quick,
    }
    emit(result, None if args.quick else REPO / "benchmarks" / "results" / "chinese_pretrain.json")


if __name__ == "__main__":
    main()
