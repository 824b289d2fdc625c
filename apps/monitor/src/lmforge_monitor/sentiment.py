"""The three-class sentiment model: a grouped, stratified split of the PhraseBank, training with lmforge, scoring.

The PhraseBank repeats a few sentences (some with two labels), so the split keeps every copy of a
sentence (compared after lowercasing and collapsing spaces) on one side and gives the group its most
common label. Training is ``lmforge.finetune`` on the fitting part; the held-out part is never seen.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmforge
import torch
from lmforge.devices import cpu_has_fast_bf16
from lmforge.errors import DataError
from lmforge.evaluation.explainer import Explainer
from sklearn.model_selection import train_test_split

from lmforge_monitor.config import MonitorConfig

log = logging.getLogger("lmforge_monitor")
LABELS = ("negative", "neutral", "positive")


def normalize(text: str) -> str:
    """The grouping key of a sentence: lowercase, single spaces."""
    return re.sub(r"\s+", " ", text.strip().lower())


def read_labeled(path: Path) -> list[tuple[str, str]]:
    """(label, text) rows of a PhraseBank-format CSV (header ``label,text``).

    Raises:
        DataError: The file is missing or lacks the columns.
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist; set paths.phrasebank in config.yaml to the Financial PhraseBank train.csv")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"label", "text"} <= set(reader.fieldnames or []):
            raise DataError(f"{path} line 1: needs the columns label,text (found {reader.fieldnames}); use the PhraseBank format")
        return [(row["label"].strip(), row["text"]) for row in reader if row["text"] and row["label"]]


def grouped_split(rows: Sequence[tuple[str, str]], test_share: float, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split rows so that copies of one sentence stay together; stratified by each group's most common label.

    Returns:
        (fit rows, held-out rows); the held-out rows carry one row per sentence with the group's label.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for label, text in rows:
        groups.setdefault(normalize(text), []).append((label, text))
    keys = sorted(groups)
    majority = [Counter(lab for lab, _ in groups[k]).most_common(1)[0][0] for k in keys]
    fit_keys, test_keys = train_test_split(keys, test_size=test_share, random_state=seed, stratify=majority)
    label_of = dict(zip(keys, majority))
    fit = [(label_of[k], text) for k in fit_keys for _, text in groups[k][:1]]
    test = [(label_of[k], groups[k][0][1]) for k in test_keys]
    return fit, test


def write_rows(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    """Write (label, text) rows as a PhraseBank-format CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "text"])
        writer.writerows(rows)
    return path


def prepare_split(cfg: MonitorConfig) -> tuple[Path, Path]:
    """Write ``<data_dir>/split/fit.csv`` and ``heldout.csv`` (once; the same seed gives the same files)."""
    folder = cfg.data_dir / "split"
    fit_path, test_path = folder / "fit.csv", folder / "heldout.csv"
    if not (fit_path.is_file() and test_path.is_file()):
        fit, test = grouped_split(read_labeled(cfg.phrasebank), cfg.model.test_share, cfg.model.seed)
        write_rows(fit_path, fit)
        write_rows(test_path, test)
        log.info("split %s: %d sentences to fit, %d held out", cfg.paths.phrasebank, len(fit), len(test))
    return fit_path, test_path


def finetune_config(cfg: MonitorConfig, fit_path: Path, test_path: Path, out_dir: Path) -> dict[str, Any]:
    """The ``lmforge.finetune`` config of the sentiment run (validation: 10% of the fitting part)."""
    m = cfg.model
    return {
        "data": {"train": str(fit_path), "test": str(test_path), "labels": list(LABELS), "max_length": m.max_length,
                 "split": {"validation": 0.1, "test": 0.0, "seed": m.seed}},
        "model": {"name": m.base},
        "train": {"epochs": m.epochs, "batch_size": m.batch_size, "lr": m.lr, "warmup_ratio": 0.06, "weight_decay": 0.01,
                  "seed": m.seed},
        "output": {"dir": str(out_dir), "name": "sentiment", "overwrite": True, "tensorboard": False},
    }


def run_dir(cfg: MonitorConfig) -> Path:
    """Where the sentiment run is (configured, or under the data folder)."""
    return cfg.path(cfg.model.run) if cfg.model.run else cfg.data_dir / "runs" / "sentiment"


def ensure_model(cfg: MonitorConfig) -> Path:
    """The sentiment run: reused when it exists, else trained now (lmforge logs progress)."""
    out = run_dir(cfg)
    if (out / "lmforge.json").is_file() or (out / "model" / "lmforge.json").is_file():
        return out
    if cfg.model.run:
        raise DataError(f"model.run {cfg.model.run} has no trained run; unset model.run to train one on first start")
    fit_path, test_path = prepare_split(cfg)
    log.info("no sentiment run at %s: fine-tuning %s on %s (first start only)", out, cfg.model.base, fit_path)
    result = lmforge.finetune(finetune_config(cfg, fit_path, test_path, out))
    log.info("sentiment run %s: %s, test %s", result.run_dir, result.status, result.metrics.get("test"))
    return out


@dataclass
class Score:
    """A sentence's label, its signed score p(positive) - p(negative) in [-1, 1], and the three probabilities."""

    label: str
    value: float
    probabilities: dict[str, float]


def signed(probabilities: dict[str, float]) -> float:
    """p(positive) - p(negative)."""
    return float(probabilities.get("positive", 0.0) - probabilities.get("negative", 0.0))


class Scorer:
    """Scores sentences with a saved lmforge classifier run (or any ``texts -> [Score]`` function in tests)."""

    def __init__(self, predict: Callable[[list[str]], list[Score]], batch: int = 64,
                 explain: Callable[[list[str]], list[dict[str, Any]]] | None = None) -> None:
        self._predict = predict
        self.batch = batch
        self.explain = explain

    @classmethod
    def from_run(cls, path: Path, batch: int = 64, precision: str = "auto") -> Scorer:
        """A scorer over ``lmforge.load(path)``; ``auto`` runs in bf16 on CPUs with AMX tiles (several times faster there)."""
        model = lmforge.load(str(path), device="cpu")
        if precision == "bf16" or (precision == "auto" and cpu_has_fast_bf16()):
            model.model.to(torch.bfloat16)

        def predict(texts: list[str]) -> list[Score]:
            out = []
            for r in model.predict(texts, batch_size=batch):
                out.append(Score(r["label"], signed(r["probabilities"]), r["probabilities"]))
            return out

        explainer = Explainer(model)

        def explain(texts: list[str]) -> list[dict[str, Any]]:
            # Occlusion: one forward pass per word, no gradients, so it works on the bf16 model too.
            return [r.to_dict() for r in explainer.explain(texts, "occlusion")]

        return cls(predict, batch, explain)

    def score(self, texts: Sequence[str]) -> list[Score]:
        """One score per text, in order."""
        out: list[Score] = []
        for i in range(0, len(texts), self.batch):
            out.extend(self._predict(list(texts[i:i + self.batch])))
        return out
