"""Helpers shared by the benchmarks: where the shared data is, clean data copies, the TF-IDF baseline, timing, the JSON line."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LMFORGE_SHARED_DATA") or REPO.parent / "shared" / "data")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(REPO / "src"))


def setup_logging(quiet: bool = False) -> None:
    """lmforge's log on stderr, so the JSON line on stdout stays alone."""
    from lmforge.logs import setup_logging as lmforge_logging

    lmforge_logging(quiet)


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or exit with a clear message."""
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        sys.exit(f"{path} is missing: this benchmark needs the shared data folder")
    return path


def read_rows(path: Path, text: str, label: str) -> list[tuple[str, str]]:
    """(text, label) rows of a CSV or TSV; TSV is read without quoting (a stray '"' must not merge rows)."""
    tsv = path.suffix == ".tsv"
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        return [(row[text], row[label]) for row in reader]


def write_rows(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    """Write ``text,label`` rows as a properly quoted CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def tfidf_baseline(train: Sequence[tuple[str, str]], test: Sequence[tuple[str, str]], seed: int = 0) -> list[str]:
    """Predictions of lmforge's TF-IDF + logistic regression baseline (C tuned on ``train``) for the ``test`` texts."""
    from lmforge.evaluation.baselines import tfidf_predict

    return [str(y) for y in tfidf_predict([t for t, _ in train], [y for _, y in train], [t for t, _ in test], seed)]


def accuracy(pred: Sequence[str], gold: Sequence[str], index: Sequence[int] | None = None) -> float:
    """Share of ``index`` (all by default) where ``pred`` equals ``gold``."""
    index = range(len(gold)) if index is None else index
    return sum(str(pred[i]) == str(gold[i]) for i in index) / max(1, len(index))


def macro_f1(pred: Sequence[str], gold: Sequence[str]) -> float:
    """Macro-averaged F1."""
    from sklearn.metrics import f1_score

    return float(f1_score([str(g) for g in gold], [str(p) for p in pred], average="macro"))


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t:`` ... ``t["s"]`` is the wall time in seconds."""
    out = {"s": 0.0}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def key_of(*parts: Any) -> str:
    """A short hash of JSON-able parts, for cache folder names."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def bench_home(name: str) -> Path:
    """A cache folder for benchmark artifacts under LMFORGE_HOME (reruns reuse what is there)."""
    from lmforge.zoo import home

    path = home() / "bench" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def predict_labels(run: Path, texts: list[str]) -> list[str]:
    """Labels predicted by a fine-tuned lmforge run."""
    import lmforge

    return [row["label"] for row in lmforge.load(run).predict(texts, batch_size=128)]


def log(message: str) -> None:
    """A progress line on stderr."""
    logging.getLogger("lmforge").info("[bench] %s", message)


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print the result as the last JSON line, and store it when ``out`` is given."""
    line = json.dumps(result, ensure_ascii=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)


