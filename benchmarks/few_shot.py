"""Few-shot benchmark: every prompting method on the same k-shot draws of SST-2 and BANKING77.

SST-2: k examples per class drawn from ``sst2/train.tsv`` (k = 0, 8, 16, 32; 5 seeds), scored on
``sst2/dev.tsv``: encoder methods on all 6,735 rows, decoder methods on a seeded 500 of them.
BANKING77: a stratified 20% of ``banking77/train.csv`` held out; k = 5 and 10 per intent (and the
zero-shot similarity). The baseline, TF-IDF + logistic regression, is fitted on the same draws;
its score on the whole training file is printed beside it for scale.

    PYTHONPATH=src python benchmarks/few_shot.py            # full run (hours on 2 busy cores)
    PYTHONPATH=src python benchmarks/few_shot.py --quick    # smoke run (minutes)
    PYTHONPATH=src python benchmarks/few_shot.py --datasets sst2 --k 0 --out a.json   # a partial run
    PYTHONPATH=src python benchmarks/few_shot.py --merge a.json b.json --out all.json # partial runs in one table

Ends with one JSON line; the full run's is stored in benchmarks/results/few_shot.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import SHARED  # noqa: E402

from lmforge import config as config_mod  # noqa: E402
from lmforge.prompting import protocol  # noqa: E402
from lmforge.prompting.config import PromptConfig  # noqa: E402
from lmforge.prompting.methods import check_templates  # noqa: E402
from lmforge.prompting.sampling import draw_k_shot  # noqa: E402
from lmforge.recipes.prompt import load_data, make_context  # noqa: E402

DATA = SHARED
SST2_METHODS = ["cloze", "similarity", "likelihood", "generate", "icl", "pet", "pet_decoder", "setfit", "head"]
BANKING_METHODS = ["similarity", "pet", "setfit", "head"]


def sst2_config(data: Path, quick: bool, run_dir: Path) -> dict[str, Any]:
    return {
        "data": {"train": str(data / "sst2" / "train.tsv"), "validation": str(data / "sst2" / "dev.tsv"),
                 "text_column": "sentence", "max_length": 64, "max_eval_samples": 300 if quick else None, "cache": False},
        "prompt": {"task": "sentiment", "calibrate": "both"},
        "methods": SST2_METHODS,
        "shots": {"k": [0, 8] if quick else [0, 8, 16, 32], "seeds": [0] if quick else [0, 1, 2, 3, 4],
                  "decoder_eval_samples": 60 if quick else 500},
        "pet": {"max_steps": 10 if quick else 150},
        "pet_decoder": {"max_steps": 4 if quick else 40},
        "head": {"max_steps": 10 if quick else 150},
        "setfit": {"max_pairs": 64 if quick else 3000},
        "output": {"dir": str(run_dir / "sst2"), "report": False},
        "save": "none",
    }


def banking_config(data: Path, quick: bool, run_dir: Path) -> dict[str, Any]:
    return {
        "data": {"train": str(data / "banking77" / "train.csv"), "label_column": "category", "max_length": 64,
                 "split": {"validation": 0.2, "seed": 42, "stratify": True}, "max_eval_samples": 300 if quick else None,
                 "cache": False},
        "prompt": {"task": "intent", "calibrate": "both"},
        "methods": BANKING_METHODS,
        "shots": {"k": [0, 5] if quick else [0, 5, 10], "seeds": [0] if quick else [0, 1, 2, 3, 4]},
        "pet": {"max_steps": 10 if quick else 300, "batch_size": 16},
        "head": {"max_steps": 10 if quick else 300, "batch_size": 16},
        "setfit": {"max_pairs": 64 if quick else 3000},
        "output": {"dir": str(run_dir / "banking77"), "report": False},
        "save": "none",
    }


def tfidf_cells(pool: Any, evaluation: Any, ks: list[int], seeds: list[int],
                num_labels: int) -> tuple[list[protocol.Cell], float]:
    """TF-IDF + logistic regression on the same k-shot draws, and on the whole pool for scale."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    (examples, targets), (eval_examples, eval_targets) = pool, evaluation
    full = np.arange(len(eval_examples))

    class Tfidf:
        def __init__(self, index: np.ndarray) -> None:
            self.vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
            x = self.vec.fit_transform([examples.texts[i] for i in index])
            self.clf = LogisticRegression(C=10.0, max_iter=2000).fit(x, targets[index])

        def label_scores(self, texts: list[str], pairs: Any = None) -> np.ndarray:
            out = np.full((len(texts), num_labels), -1e9)
            out[:, self.clf.classes_] = self.clf.predict_log_proba(self.vec.transform(texts))
            return out

    cells = []
    for k in [k for k in ks if k > 0]:
        cell = protocol.Cell("tfidf_lr", k)
        for seed in seeds:
            start = time.perf_counter()
            draw = draw_k_shot(targets, k, seed, num_labels)
            result = protocol.score(Tfidf(draw), eval_examples, eval_targets, full, num_labels)
            cell.runs.append({"seed": seed, **result, "seconds": round(time.perf_counter() - start, 1)})
        cells.append(cell)
    whole = protocol.score(Tfidf(np.arange(len(examples))), eval_examples, eval_targets, full, num_labels)
    return cells, whole["accuracy"]


def picked(have: list[Any], option: str, wanted: str | None) -> list[Any]:
    """The values of ``have`` named in ``wanted`` (comma-separated; all when None); none matching is an error."""
    if not wanted:
        return have
    kept = [v for v in have if str(v) in wanted.split(",")]
    if not kept:
        sys.exit(f"--{option} {wanted}: this dataset has {', '.join(map(str, have))}")
    return kept


def narrowed(tree: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``tree`` restricted to the methods, k and seeds given on the command line (for partial runs)."""
    tree["methods"] = picked(tree["methods"], "methods", args.methods)
    tree["shots"]["k"] = picked(tree["shots"]["k"], "k", args.k)
    if args.seeds:
        tree["shots"]["seeds"] = list(range(args.seeds))
    return tree


def run_dataset(name: str, tree: dict[str, Any]) -> dict[str, Any]:
    cfg = config_mod.load(PromptConfig, tree)
    run_dir = Path(cfg.output.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pool, evaluation, labels = load_data(cfg)
    ctx = make_context(cfg, labels, pool[0], run_dir)
    check_templates(ctx, cfg.methods)
    start = time.perf_counter()
    cells = protocol.run(ctx, pool, evaluation, cfg.methods, cfg.shots.k, cfg.shots.seeds)
    baseline, whole = tfidf_cells(pool, evaluation, cfg.shots.k, cfg.shots.seeds, len(labels.names))
    cells += baseline
    table = protocol.format_cells(cells, cfg.shots.k)
    print(f"\n{name}: accuracy (%), mean ± std over {len(cfg.shots.seeds)} seeds; TF-IDF+LR on the whole pool: "
          f"{100 * whole:.1f}\n{table}\n", flush=True)
    return {"cells": cells, "tfidf_whole_pool": whole, "eval_size": len(evaluation[0]), "pool_size": len(pool[0]),
            "seconds": round(time.perf_counter() - start)}


def best_of(cells: list[protocol.Cell], k: int, exclude: tuple[str, ...] = ("tfidf_lr",)) -> dict[str, Any] | None:
    found = protocol.best([c for c in cells if c.method not in exclude], k)
    return None if found is None else {"method": found[0], "accuracy_mean": round(found[1], 4)}


def summary(results: dict[str, dict[str, Any]], quick: bool, threads: int) -> dict[str, Any]:
    sst2, bank = (results[name]["cells"] if name in results else [] for name in ("sst2", "banking77"))

    def mean(cells: list[protocol.Cell], k: int) -> float | None:
        found = best_of(cells, k)
        return found["accuracy_mean"] if found else None

    return {
        "benchmark": "few_shot", "quick": quick, "torch_threads": threads,
        "sst2_zero_shot_best": mean(sst2, 0), "sst2_8shot_best_mean": mean(sst2, 8),
        "sst2_16shot_best_mean": mean(sst2, 16), "sst2_32shot_best_mean": mean(sst2, 32),
        "banking77_5shot_best_mean": mean(bank, 5), "banking77_10shot_best_mean": mean(bank, 10),
        "best_methods": {f"{name}_k{k}": best_of(res["cells"], k) for name, res in results.items()
                         for k in sorted({c.k for c in res["cells"]})},
        "tfidf_lr_whole_pool": {name: res["tfidf_whole_pool"] for name, res in results.items()},
        "eval_sizes": {name: res["eval_size"] for name, res in results.items()},
        "wall_seconds": {name: res["seconds"] for name, res in results.items()},
        "table": {name: [{k: v for k, v in c.summary().items() if k != "runs"} for c in res["cells"]]
                  for name, res in results.items()},
        "runs": {name: [c.summary() for c in res["cells"]] for name, res in results.items()},
    }


def merged(parts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-dataset results rebuilt from the JSON of partial runs (a cell run twice is kept once: same draws)."""
    results: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, cells in part["runs"].items():
            res = results.setdefault(name, {"cells": [], "tfidf_whole_pool": part["tfidf_lr_whole_pool"][name],
                                            "eval_size": part["eval_sizes"][name], "seconds": 0})
            have = {(c.method, c.k) for c in res["cells"]}
            res["cells"] += [protocol.Cell(c["method"], c["k"], c["runs"]) for c in cells
                             if (c["method"], c["k"]) not in have]
            res["seconds"] += part["wall_seconds"][name]
    return results


def write_plots(out: dict[str, Any], stem: Path) -> None:
    """``<stem>_<dataset>.png``: accuracy against k per method, from the summary's per-seed runs."""
    from lmforge.prompting.report import plot_accuracy

    for name, cells in out["runs"].items():
        rebuilt = [protocol.Cell(c["method"], c["k"], c["runs"]) for c in cells]
        plot_accuracy(rebuilt, stem.parent / f"{stem.name}_{name}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: k = 0 and 8 (5), one seed, small evaluation sets")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy shared CPU)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: ../shared/data)")
    parser.add_argument("--datasets", default="sst2,banking77", help="comma-separated: sst2, banking77")
    parser.add_argument("--methods", help="comma-separated subset of the methods (a partial run)")
    parser.add_argument("--k", help="comma-separated subset of the k values (a partial run)")
    parser.add_argument("--seeds", type=int, help="number of seeds (default 5, 1 with --quick)")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="run nothing: combine the --out files of partial runs into one summary")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(path.read_text(encoding="utf-8")) for path in args.merge]
        return emit(summary(merged(parts), any(p["quick"] for p in parts), args.threads), args.out)
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("lmforge.train", "accelerate", "lmforge.data"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not (args.data / "sst2" / "dev.tsv").is_file():
        print(f"{args.data} is not available; this benchmark needs the shared data folder (--data DIR)", file=sys.stderr)
        return 2
    configs = {"sst2": ("SST-2", sst2_config), "banking77": ("BANKING77", banking_config)}
    for option, known in (("datasets", set(configs)), ("methods", {*SST2_METHODS, *BANKING_METHODS})):
        if unknown := set((getattr(args, option) or "").split(",")) - known - {""}:
            print(f"--{option}: {', '.join(sorted(unknown))} unknown (known: {', '.join(sorted(known))})", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="few-shot-") as tmp:
        results = {key: run_dataset(title, narrowed(make(args.data, args.quick, Path(tmp)), args))
                   for key, (title, make) in configs.items() if key in args.datasets.split(",")}
    return emit(summary(results, args.quick, args.threads), args.out)


def emit(out: dict[str, Any], path: str | None) -> int:
    """Print the summary as one JSON line; with ``path``, also write it there with its plots."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_plots(out, Path(path).with_suffix(""))
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
