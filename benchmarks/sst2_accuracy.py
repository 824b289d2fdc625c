"""SST-2 accuracy: lmforge fine-tunes minilm-l6 on the full training set, beside TF-IDF + LR.

Trains with configs/sst2.yaml on ../shared/data/sst2/train.tsv (60,614 phrases and sentences) and
reports accuracy on sst2/dev.tsv, the wall time, and a TF-IDF + logistic-regression baseline trained
in the same script. dev.tsv is cut from the same phrase pool as train.tsv, so its figures run above
those on unseen full sentences; the script also reports both on the dev texts of 20+ words, the
closest thing here to full sentences. For unseen full sentences it also scores both on the zoo's
Rotten Tomatoes critic snippets (fresh = positive) whose text is no SST-2 train or dev phrase: the
same domain and style, written as whole sentences. The saved run is ``run_dir``, for evaluation on other data:

    lmforge evaluate <run_dir> --data other.tsv --text-column sentence

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.lr=1e-4")
    parser.add_argument("--quick", action="store_true", help="2,000 training examples, one epoch")
    parser.add_argument("--reuse", type=Path, help="score this saved run instead of training (wall_s is then null)")
    args = parser.parse_args()
    if not SST2.is_dir():
        sys.exit(f"{SST2} not found: this benchmark needs ../shared/data/sst2")
    import lmforge
    from lmforge.evaluation.baselines import fit_tfidf_logreg
    from lmforge.logs import setup_logging

    setup_logging(False)
    overrides = [f"data.train={SST2 / 'train.tsv'}", f"data.test={SST2 / 'dev.tsv'}", "output.overwrite=true",
                 "output.baseline=false", *args.overrides]
    if args.quick:
        overrides += ["data.max_train_samples=2000", "train.epochs=1", "output.name=sst2-quick"]
    start = time.perf_counter()
    run_dir = args.reuse or lmforge.finetune(ROOT / "configs" / "sst2.yaml", overrides).run_dir
    wall = None if args.reuse else time.perf_counter() - start
    train, dev = read(SST2 / "train.tsv"), read(SST2 / "dev.tsv")
    model, baseline = lmforge.load(run_dir), fit_tfidf_logreg(*train)
    ours = [int(p["label"]) for p in model.predict(dev[0], batch_size=256)]
    base = baseline.predict(dev[0]).tolist()
    long = [len(t.split()) >= LONG for t in dev[0]]
    rt_texts, rt_gold = unseen_sentences(train[0], dev[0])
    rt_ours = [int(p["label"]) for p in model.predict(rt_texts, batch_size=256)]
    rt_base = baseline.predict(rt_texts).tolist()
    out = {
        "dev_accuracy": round(accuracy(ours, dev[1]), 4),
        "baseline_accuracy": round(accuracy(base, dev[1]), 4),
        "dev_long_accuracy": round(accuracy(ours, dev[1], long), 4),
        "baseline_long_accuracy": round(accuracy(base, dev[1], long), 4),
        "dev_long_examples": sum(long),
        "unseen_rt_accuracy": round(accuracy(rt_ours, rt_gold), 4),
        "baseline_unseen_rt_accuracy": round(accuracy(rt_base, rt_gold), 4),
        "unseen_rt_examples": len(rt_gold),
        "wall_s": None if wall is None else round(wall, 1),
        "run_dir": str(Path(run_dir).resolve()),
    }
    print(f"lmforge minilm-l6: dev accuracy {out['dev_accuracy']:.4f} ({out['dev_long_accuracy']:.4f} on the "
          f"{sum(long)} dev texts of {LONG}+ words; {out['unseen_rt_accuracy']:.4f} on {len(rt_gold)} unseen Rotten Tomatoes "
          f"sentences)" + ("" if wall is None else f", fine-tuning took {wall / 60:.1f} min"))
    print(f"TF-IDF + LR      : dev accuracy {out['baseline_accuracy']:.4f} ({out['baseline_long_accuracy']:.4f} on {LONG}+ words; "
          f"{out['baseline_unseen_rt_accuracy']:.4f} on the unseen sentences)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
