"""SST-2 accuracy on sentences no model has seen: lmforge fine-tunes minilm-l6 beside TF-IDF + LR.

``sst2/train.tsv`` holds every phrase of its sentences, and ``sst2/dev.tsv`` is cut from the same
pool, so a score on dev.tsv is a score on phrases whose sentence (or other phrases) were trained
on. configs/sst2.yaml therefore splits train.tsv by ``data.split.group_by: containing_text`` (each
phrase goes with the longest training text that contains it) into training groups, validation
groups and test groups, and keeps only each held-out group's longest text (``held_out: longest``):
validation (which picks the checkpoint) and test are whole sentences none of whose words-spans
were trained on. ``unseen_sentence_accuracy`` is the test figure; TF-IDF + logistic regression is
fitted on the same training groups (C chosen on the same validation sentences).

Beside it, for comparison with earlier figures: accuracy on all of ``sst2/dev.tsv`` (leaky), on its
texts of 20+ words, and on the zoo's Rotten Tomatoes critic snippets that are no SST-2 phrase (noisier
labels: fresh/rotten verdicts). The saved run is ``run_dir``.

Usage: python benchmarks/sst2_accuracy.py [key.sub=value ...] [--quick] [--reuse RUN]. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
from _common import SHARED  # noqa: E402

SST2 = SHARED / "sst2"
LONG = 20


def read(path: Path) -> tuple[list[str], list[int]]:
    """Sentences and labels of an SST-2 TSV file."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["sentence"].strip() for r in rows], [int(r["label"]) for r in rows]


def accuracy(pred: list[int], gold: list[int], keep: list[bool] | None = None) -> float:
    """Accuracy over the examples where ``keep`` is true (all by default)."""
    pairs = [(p, g) for i, (p, g) in enumerate(zip(pred, gold)) if keep is None or keep[i]]
    return sum(p == g for p, g in pairs) / max(1, len(pairs))


def unseen_sentences(*phrase_sets: list[str]) -> tuple[list[str], list[int]]:
    """Rotten Tomatoes critic snippets (zoo) that are none of the given SST-2 phrases, with 1 = fresh."""
    from lmforge.zoo import resolve_dataset

    def key(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()

    seen = {key(t) for phrases in phrase_sets for t in phrases}
    with open(resolve_dataset("rotten_tomatoes"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if key(r["text"]) not in seen]
    return [r["text"] for r in rows], [int(r["label"] == "fresh") for r in rows]


def run_splits(run_dir: Path) -> dict[str, tuple[list[str], list[int]]]:
    """The run's train/validation/test texts and label ids, rebuilt from its resolved config (the split is seeded)."""
    from lmforge.config import DataConfig, TaskConfig
    from lmforge.data.pipeline import labeled_splits
    from lmforge.tasks import get_task

    data = DataConfig(**yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))["data"])
    splits, labels = labeled_splits(data, get_task(TaskConfig()))
    return {name: (ex.texts, [int(labels.names[t]) for t in y]) for name, (ex, y) in splits.items()}


def predict(run_dir: Path, texts: list[str]) -> list[int]:
    """Labels the saved run predicts (it is loaded once and cached)."""
    import lmforge

    if run_dir not in _MODELS:
        _MODELS[run_dir] = lmforge.load(run_dir)
    return [int(p["label"]) for p in _MODELS[run_dir].predict(texts, batch_size=256)]


_MODELS: dict[Path, Any] = {}


def scores(run_dir: Path) -> dict[str, Any]:
    """Every figure of the JSON line but the wall time."""
    from lmforge.evaluation.baselines import fit_tfidf_logreg

    splits = run_splits(run_dir)
    baseline = fit_tfidf_logreg(*splits["train"], validation=splits["validation"])
    out: dict[str, Any] = {}
    for name, key in (("test", "unseen_sentence"), ("validation", "validation_sentence")):
        texts, gold = splits[name]
        out[f"{key}_accuracy"] = round(accuracy(predict(run_dir, texts), gold), 4)
        out[f"baseline_{key}_accuracy"] = round(accuracy(baseline.predict(texts).tolist(), gold), 4)
        out[f"{key}_examples"] = len(texts)
    dev = read(SST2 / "dev.tsv")
    ours, base = predict(run_dir, dev[0]), baseline.predict(dev[0]).tolist()
    long = [len(t.split()) >= LONG for t in dev[0]]
    rt_texts, rt_gold = unseen_sentences(read(SST2 / "train.tsv")[0], dev[0])
    out |= {
        "dev_accuracy": round(accuracy(ours, dev[1]), 4), "baseline_accuracy": round(accuracy(base, dev[1]), 4),
        "dev_long_accuracy": round(accuracy(ours, dev[1], long), 4),
        "baseline_long_accuracy": round(accuracy(base, dev[1], long), 4), "dev_long_examples": sum(long),
        "unseen_rt_accuracy": round(accuracy(predict(run_dir, rt_texts), rt_gold), 4),
        "baseline_unseen_rt_accuracy": round(accuracy(baseline.predict(rt_texts).tolist(), rt_gold), 4),
        "unseen_rt_examples": len(rt_gold), "train_examples": len(splits["train"][0]),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.lr=1e-4")
    parser.add_argument("--quick", action="store_true", help="2,000 training examples, one epoch")
    parser.add_argument("--reuse", type=Path, help="score this saved run instead of training (wall_s is then null)")
    args = parser.parse_args()
    if not SST2.is_dir():
        sys.exit(f"{SST2} not found: this benchmark needs ../shared/data/sst2")
    import lmforge
    from lmforge.devices import describe_precision
    from lmforge.logs import setup_logging

    setup_logging(False)
    overrides = [f"data.train={SST2 / 'train.tsv'}", "output.overwrite=true", "output.baseline=false", *args.overrides]
    if args.quick:
        overrides += ["data.max_train_samples=2000", "train.epochs=1", "output.name=sst2-quick"]
    start = time.perf_counter()
    run_dir = args.reuse or lmforge.finetune(ROOT / "configs" / "sst2.yaml", overrides).run_dir
    wall = None if args.reuse else time.perf_counter() - start
    out = scores(Path(run_dir))
    config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))["train"]
    out |= {"wall_s": None if wall is None else round(wall, 1), "run_dir": str(Path(run_dir).resolve()),
            "epochs": config["epochs"], "machine": f"{os.cpu_count()} CPU cores, {describe_precision('cpu')}"}
    print(f"lmforge minilm-l6: {out['unseen_sentence_accuracy']:.4f} on {out['unseen_sentence_examples']} unseen sentences "
          f"(TF-IDF + LR {out['baseline_unseen_sentence_accuracy']:.4f}); leaky dev.tsv {out['dev_accuracy']:.4f} "
          f"(TF-IDF {out['baseline_accuracy']:.4f}); Rotten Tomatoes {out['unseen_rt_accuracy']:.4f}"
          + ("" if wall is None else f"; fine-tuning took {wall / 60:.1f} min"), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
