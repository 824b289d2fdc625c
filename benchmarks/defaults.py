"""Defaults against TF-IDF: ``lmforge finetune`` with only a training file, a test file and a model, on every shared dataset.

A user's first run is with defaults, so nothing is tuned here: each dataset is written as a plain
``text,label`` CSV pair (training part, held-out test part) and fine-tuned with the config

    data: {train: train.csv, test: test.csv}
    model: {name: MODEL}

The run fits TF-IDF + logistic regression on the same training rows (C chosen on the same
validation rows) and scores it on the same test rows; that is the figure beside each accuracy.

| dataset | training part | held-out test part | model |
|---|---|---|---|
| sst2 | train.tsv without 10% of its sentence groups | the whole sentences of those groups | minilm-l6 |
| financial_phrasebank | 80% of train.csv (stratified, seed 0) | the other 20% | minilm-l6 |
| banking77 | 80% of train.csv (stratified, seed 0) | the other 20% | minilm-l6 |
| chnsenticorp | train.tsv | the dev.tsv reviews that are not in train.tsv | the encoder benchmarks/chinese_pretrain.py pretrains |

    PYTHONPATH=src python benchmarks/defaults.py [--only sst2,banking77] [--chinese-model RUN] [--quick]

Ends with one JSON line: ``<name>_accuracy``, ``<name>_tfidf_accuracy`` per dataset, ``all_beat_tfidf``
(and the settings each run chose, its wall time and the baseline's share of it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from _common import REPO, bench_home, emit, log, read_rows, setup_logging, shared_file, write_rows

DATASETS = ("sst2", "financial_phrasebank", "banking77", "chnsenticorp")


def stratified(rows: list[tuple[str, str]], seed: int = 0) -> tuple[list, list]:
    """80/20 split keeping label proportions."""
    from sklearn.model_selection import train_test_split

    keep, test = train_test_split(rows, test_size=0.2, random_state=seed, stratify=[y for _, y in rows])
    return list(keep), list(test)


def sst2_parts() -> tuple[list, list]:
    """SST-2 phrases of 90% of the sentence groups, and the whole sentences of the other 10%."""
    from lmforge.data.split import containing_groups, group_split_indices, longest_in_groups

    rows = read_rows(shared_file("sst2", "train.tsv"), "sentence", "label")
    rows = [(t.strip(), y) for t, y in rows]
    groups = containing_groups([t for t, _ in rows])
    kept, held = group_split_indices(groups, 0.1, 42)
    return [rows[i] for i in kept], [rows[i] for i in longest_in_groups([t for t, _ in rows], groups, held)]


def chnsenticorp_parts() -> tuple[list, list]:
    """ChnSentiCorp train.tsv, and the dev.tsv reviews that do not occur in it."""
    train = read_rows(shared_file("chnsenticorp", "train.tsv"), "text_a", "label")
    seen = {t for t, _ in train}
    return train, [r for r in read_rows(shared_file("chnsenticorp", "dev.tsv"), "text_a", "label") if r[0] not in seen]


def parts(name: str) -> tuple[list, list]:
    """(training rows, test rows) of a shared dataset."""
    if name == "sst2":
        return sst2_parts()
    if name == "chnsenticorp":
        return chnsenticorp_parts()
    column = {"financial_phrasebank": "label", "banking77": "category"}[name]
    return stratified(read_rows(shared_file(name, "train.csv"), "text", column))


def chinese_model(given: str | None) -> str:
    """The Chinese encoder: ``given``, or the newest one benchmarks/chinese_pretrain.py left in its cache."""
    if given:
        return given
    runs = sorted(bench_home("chinese_pretrain").glob("*/pretrain_result.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        sys.exit("no Chinese encoder: run benchmarks/chinese_pretrain.py first, or pass --chinese-model RUN")
    return str(runs[-1].parent / "pretrained")


def run(name: str, model: str, work: Path, quick: bool) -> dict[str, Any]:
    """Fine-tune with the minimal config; the figures of the JSON line for ``name``."""
    import lmforge

    train, test = parts(name)
    folder = work / name
    config = {"data": {"train": str(write_rows(folder / "train.csv", train)), "test": str(write_rows(folder / "test.csv", test))},
              "model": {"name": model}}
    overrides = [f"output.dir={folder / 'run'}", "output.overwrite=true"]
    if quick:
        overrides += ["data.max_train_samples=500", "train.epochs=1"]
    log(f"{name}: {len(train)} training rows, {len(test)} test rows, model {model}")
    start = time.perf_counter()
    metrics = lmforge.finetune(config, overrides).metrics
    wall = time.perf_counter() - start
    chosen = yaml.safe_load((folder / "run" / "config.yaml").read_text(encoding="utf-8"))["train"]
    ours, tfidf = metrics["test"], metrics["test (TF-IDF baseline)"]
    return {f"{name}_accuracy": round(ours["accuracy"], 4), f"{name}_tfidf_accuracy": round(tfidf["accuracy"], 4),
            f"{name}_test_rows": len(test), f"{name}_wall_s": round(wall, 1), f"{name}_baseline_share": tfidf["share_of_run"],
            f"{name}_chosen": {k: chosen[k] for k in ("epochs", "lr", "head_lr")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DATASETS), help="comma-separated datasets to run")
    parser.add_argument("--chinese-model", help="the Chinese encoder for chnsenticorp (default: chinese_pretrain.py's cached run)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 training rows, one epoch")
    args = parser.parse_args()
    setup_logging()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(DATASETS)
    if unknown:
        sys.exit(f"unknown datasets {sorted(unknown)}; choose from {', '.join(DATASETS)}")
    work = bench_home("defaults") / ("quick" if args.quick else "full")
    result: dict[str, Any] = {}
    for name in names:
        model = chinese_model(args.chinese_model) if name == "chnsenticorp" else "minilm-l6"
        result |= run(name, model, work, args.quick)
        log(json.dumps({k: v for k, v in result.items() if k.startswith(name)}))
    result["all_beat_tfidf"] = all(result[f"{n}_accuracy"] > result[f"{n}_tfidf_accuracy"] for n in names)
    result |= {"datasets": names, "quick": args.quick}
    full = not args.quick and names == list(DATASETS)
    emit(result, REPO / "benchmarks" / "results" / "defaults.json" if full else None)


if __name__ == "__main__":
    main()
