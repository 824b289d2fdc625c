"""The intent model: splits of BANKING77, the fine-tuning recipe, temperature scaling and a TF-IDF mix.

``IntentModel.open(cfg)`` trains on first start (``lmforge.finetune``, with its progress bars) and
reuses the run afterwards. Its probabilities are ``(1 - w) * softmax(logits / T) + w * p_tfidf``:
``T`` minimizes the negative log-likelihood on the validation rows and ``w`` is the mix that scores
best there.

Out of scope: with a sentence encoder (the one that embeds the knowledge base), a message's scope is
the geometric mean of two percentiles against the in-scope validation messages — of its top
probability, and of its mean cosine similarity to its nearest training utterances — so a request
unlike anything the bot was trained on scores low even when the classifier is sure of some intent. The cut is the
``scope_share`` quantile of the validation messages' own scope (that share of in-scope messages
would be turned away).
"""

from __future__ import annotations

import csv
import json
import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmforge
import numpy as np
import yaml
from lmforge import artifacts
from lmforge.errors import DataError
from lmforge.evaluation.baselines import fit_tfidf_logreg
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp, softmax
from sklearn.model_selection import train_test_split

from lmforge_support.config import IntentsConfig, SupportConfig

log = logging.getLogger("lmforge.support")
CALIBRATION = "calibration.json"
TFIDF = "tfidf.pkl"
SCOPE = "scope.npz"


@dataclass(frozen=True)
class Splits:
    """The CSV files one training uses (columns ``text,category``)."""

    train: Path
    validation: Path
    test: Path


@dataclass(frozen=True)
class IntentResult:
    """The intent of one message: the likeliest labels with calibrated probabilities, best first."""

    top: list[tuple[str, float]]
    scope: float | None = None
    scope_cut: float = 0.0

    @property
    def label(self) -> str:
        """The likeliest intent."""
        return self.top[0][0]

    @property
    def confidence(self) -> float:
        """Its calibrated probability."""
        return self.top[0][1]

    @property
    def in_scope(self) -> bool:
        """False when the out-of-scope detector turns the message away (always True without one)."""
        return self.scope is None or self.scope >= self.scope_cut


def read_rows(path: str | Path, text_column: str = "text", label_column: str = "category") -> list[tuple[str, str]]:
    """(text, intent) rows of a BANKING77-format CSV.

    Raises:
        DataError: The file is missing or lacks one of the columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; point intents.data (or --test) at a BANKING77-format CSV")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (text_column, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} has no column {missing[0]!r}; it needs {text_column!r} and {label_column!r} columns")
        return [(row[text_column].strip(), row[label_column].strip()) for row in reader if row[text_column].strip()]


def write_rows(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    """Write ``text,category`` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


def split_rows(rows: list[tuple[str, str]], cfg: IntentsConfig) -> tuple[list, list, list]:
    """Stratified (train, validation, test) rows: ``test_share`` of all, then ``validation_share`` of the rest."""
    labels = [y for _, y in rows]
    rest, test = train_test_split(rows, test_size=cfg.test_share, random_state=cfg.seed, stratify=labels)
    train, val = train_test_split(rest, test_size=cfg.validation_share, random_state=cfg.seed, stratify=[y for _, y in rest])
    return list(train), list(val), list(test)


def held_out_intents(labels: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` intents, drawn with ``seed``, that the out-of-scope run never sees."""
    names = sorted(set(labels))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(names, size=min(count, len(names) - 2), replace=False).tolist())


def make_splits(cfg: IntentsConfig, folder: Path, exclude: Sequence[str] = ()) -> Splits:
    """Write the split files under ``folder``; rows of ``exclude`` intents are left out of train and validation."""
    train, val, test = split_rows(read_rows(cfg.data, cfg.text_column, cfg.label_column), cfg)
    drop = set(exclude)
    return Splits(write_rows(folder / "train.csv", [r for r in train if r[1] not in drop]),
                  write_rows(folder / "validation.csv", [r for r in val if r[1] not in drop]),
                  write_rows(folder / "test.csv", [r for r in test if r[1] not in drop]))


def recipe(cfg: IntentsConfig, splits: Splits, out: Path, epochs: float) -> dict[str, Any]:
    """The ``lmforge finetune`` config of the intent model."""
    return {
        "data": {"train": str(splits.train), "validation": str(splits.validation), "test": str(splits.test),
                 "label_column": "category", "max_length": cfg.max_length},
        "model": {"name": cfg.model},
        "train": {"epochs": epochs, "lr": cfg.lr, "batch_size": cfg.batch_size, "warmup_ratio": 0.1, "seed": cfg.seed,
                  "label_smoothing": cfg.label_smoothing},
        "output": {"dir": str(out), "name": out.name, "overwrite": True, "report": False, "tensorboard": False},
    }


def train(cfg: IntentsConfig, home: Path, name: str = "intents", exclude: Sequence[str] = (), epochs: float | None = None) -> Path:
    """Fine-tune the intent model into ``home/runs/name`` unless a finished run is there; the run folder."""
    out = home / "runs" / name
    if (out / "model" / "lmforge.json").is_file():
        log.info("using the trained intent run %s", out)
        return out
    splits = make_splits(cfg, home / "splits" / name, exclude)
    log.info("training the intent model into %s (first start; later starts reuse it)", out)
    lmforge.finetune(recipe(cfg, splits, out, epochs or cfg.epochs))
    return out


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature ``T`` that minimizes the mean negative log-likelihood of ``softmax(logits / T)``."""
    def nll(t: float) -> float:
        return float(-log_softmax(logits / t, axis=1)[np.arange(len(targets)), targets].mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def pick_weight(model_probs: np.ndarray, tfidf_probs: np.ndarray, targets: np.ndarray) -> float:
    """The TF-IDF share (0 to 0.6 by 0.05) of highest validation accuracy, the smallest among ties."""
    grid = np.round(np.arange(0.0, 0.61, 0.05), 2)
    scores = [float(((1 - w) * model_probs + w * tfidf_probs).argmax(1).__eq__(targets).mean()) for w in grid]
    return float(grid[int(np.argmax(scores))])


class IntentModel:
    """The calibrated intent classifier the dialogue asks.

    Args:
        artifact: The fine-tuned run (``lmforge.load``).
        temperature: Divides the logits before the softmax.
        tfidf: The TF-IDF + logistic regression pipeline fitted on the same training rows, or None.
        weight: Its share of the mixed probabilities.
    """

    def __init__(self, artifact: Any, temperature: float = 1.0, tfidf: Any = None, weight: float = 0.0,
                 embed: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self.artifact, self.temperature, self.tfidf, self.weight = artifact, temperature, tfidf, weight
        self.labels: list[str] = list(artifact.labels.names)
        self.embed = embed
        self.neighbors = 5
        # Out-of-scope detector: training utterances' unit embeddings, the validation messages' sorted top
        # probabilities and neighbour similarities, and the cut on the mean of the two percentiles.
        self.utterances: np.ndarray | None = None
        self.ref_prob: np.ndarray | None = None
        self.ref_near: np.ndarray | None = None
        self.scope_cut = 0.0

    @classmethod
    def open(cls, cfg: SupportConfig, run: str | Path | None = None, embed: Callable[[list[str]], np.ndarray] | None = None) -> IntentModel:
        """Load (training first when needed) and calibrate the intent model of ``cfg``; ``embed`` enables the scope detector."""
        folder = Path(run or cfg.intents.run or train(cfg.intents, cfg.home))
        artifact = lmforge.load(folder / "model" if (folder / "model").is_dir() else folder)
        model = cls(artifact, embed=embed)
        model.calibrate(folder, cfg.intents)
        return model

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits (N, labels)."""
        examples = artifacts.input_examples(self.artifact.data, list(texts))
        return np.asarray(self.artifact.scores(examples, None, 64), dtype=np.float64)

    def tfidf_probs(self, texts: Sequence[str]) -> np.ndarray:
        """TF-IDF probabilities (N, labels) in the model's label order (zeros without the pipeline)."""
        out = np.zeros((len(texts), len(self.labels)))
        if self.tfidf is None or not len(texts):
            return out
        cols = [self.labels.index(str(c)) for c in self.tfidf.classes_]
        out[:, cols] = self.tfidf.predict_proba(list(texts))
        return out

    def mix(self, logits: np.ndarray, tfidf: np.ndarray) -> np.ndarray:
        """The calibrated, mixed probabilities of raw ``logits`` and TF-IDF probabilities."""
        return (1 - self.weight) * softmax(logits / self.temperature, axis=1) + self.weight * tfidf

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities (N, labels)."""
        return self.mix(self.logits(texts), self.tfidf_probs(texts))

    def energy(self, texts: Sequence[str]) -> np.ndarray:
        """Negative free energy ``T * logsumexp(logits / T)`` per text (high = in scope)."""
        return self.temperature * logsumexp(self.logits(texts) / self.temperature, axis=1)

    def nearness(self, texts: Sequence[str]) -> np.ndarray:
        """Mean cosine similarity of each text to its ``neighbors`` nearest training utterances."""
        assert self.embed is not None and self.utterances is not None
        sims = np.asarray(self.embed(list(texts)), dtype=np.float32) @ self.utterances.T
        k = min(self.neighbors, sims.shape[1])
        return np.sort(sims, axis=1)[:, -k:].mean(1)

    def scope(self, texts: Sequence[str], probs: np.ndarray | None = None) -> np.ndarray | None:
        """Scope of each text (0-1, low = unlike the intents trained on), or None without the detector."""
        if self.ref_prob is None or self.ref_near is None:
            return None
        probs = self.probs(texts) if probs is None else probs
        # The geometric mean, so a message far from every training utterance scores low however sure the classifier is.
        return np.sqrt(_percentile(self.ref_prob, probs.max(1)) * _percentile(self.ref_near, self.nearness(texts)))

    def classify(self, text: str, k: int = 3) -> IntentResult:
        """The ``k`` likeliest intents of one message, and its scope when the detector is on."""
        p = self.probs([text])
        order = np.argsort(-p[0])[:k]
        scope = self.scope([text], p)
        return IntentResult([(self.labels[i], float(p[0][i])) for i in order], None if scope is None else float(scope[0]),
                            self.scope_cut)

    def calibrate(self, folder: Path, cfg: IntentsConfig) -> None:
        """Fit (or read back) the temperature and the TF-IDF mix on the run's validation rows.

        The run's ``config.yaml`` names its training and validation files; a run without a validation
        file keeps temperature 1 and no TF-IDF share.
        """
        saved, pipe_file = folder / CALIBRATION, folder / TFIDF
        if saved.is_file() and pipe_file.is_file():
            values = json.loads(saved.read_text(encoding="utf-8"))
            with pipe_file.open("rb") as f:
                self.tfidf = pickle.load(f)  # written by this class into the run folder, never user input
            self.temperature, self.weight = values["temperature"], values["weight"]
            self._scope_detector(folder, cfg)
            return
        files = _run_files(folder, "no temperature scaling and no TF-IDF mix")
        if files is None:
            return
        train_rows, val_rows = read_rows(files[0]), read_rows(files[1])
        val_rows = [r for r in val_rows if r[1] in self.labels]
        texts = [t for t, _ in val_rows]
        self.tfidf = fit_tfidf_logreg([t for t, _ in train_rows], [y for _, y in train_rows], seed=cfg.seed,
                                      validation=(texts, [y for _, y in val_rows]))
        targets = np.asarray([self.labels.index(y) for _, y in val_rows])
        logits = self.logits(texts)
        self.temperature = fit_temperature(logits, targets)
        tfidf = self.tfidf_probs(texts)
        auto = cfg.tfidf_weight == "auto"
        self.weight = pick_weight(softmax(logits / self.temperature, axis=1), tfidf, targets) if auto else float(cfg.tfidf_weight)
        saved.write_text(json.dumps({"temperature": self.temperature, "weight": self.weight, "validation_rows": len(texts)}),
                         encoding="utf-8")
        with pipe_file.open("wb") as f:
            pickle.dump(self.tfidf, f)
        log.info("calibrated: temperature %.3f, TF-IDF share %.2f (on %d validation rows)", self.temperature, self.weight, len(texts))
        self._scope_detector(folder, cfg)

    def _scope_detector(self, folder: Path, cfg: IntentsConfig) -> None:
        """Fit (or read back) the out-of-scope detector on the run's training and validation rows; off without ``embed``."""
        if self.embed is None:
            return
        self.neighbors, saved = cfg.scope_neighbors, folder / SCOPE
        if saved.is_file():
            with np.load(saved) as z:
                if int(z["neighbors"]) == cfg.scope_neighbors and float(z["share"]) == cfg.scope_share:
                    self.utterances, self.ref_prob, self.ref_near = z["utterances"], z["ref_prob"], z["ref_near"]
                    self.scope_cut = float(z["cut"])
                    return
        files = _run_files(folder, "no out-of-scope detector beyond the top probability")
        if files is None:
            return
        train_rows = read_rows(files[0])
        val_texts = [t for t, y in read_rows(files[1]) if y in self.labels]
        log.info("embedding %d training utterances for the out-of-scope detector (once per run)", len(train_rows))
        self.utterances = np.asarray(self.embed([t for t, _ in train_rows]), dtype=np.float32)
        # Each validation message's neighbours are training utterances, as a customer's will be.
        self.ref_prob, self.ref_near = np.sort(self.probs(val_texts).max(1)), np.sort(self.nearness(val_texts))
        own = self.scope(val_texts)
        assert own is not None
        self.scope_cut = float(np.quantile(own, cfg.scope_share))
        np.savez(saved, utterances=self.utterances, ref_prob=self.ref_prob, ref_near=self.ref_near, cut=self.scope_cut,
                 neighbors=cfg.scope_neighbors, share=cfg.scope_share)


def _run_files(folder: Path, without: str) -> tuple[str, str] | None:
    """The training and validation files the run's ``config.yaml`` names, or None (logging what goes ``without`` them)."""
    data = (yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}).get("data", {}) \
        if (folder / "config.yaml").is_file() else {}
    if not data.get("train") or not data.get("validation"):
        log.warning("%s names no training and validation files: %s", folder, without)
        return None
    return data["train"], data["validation"]


def _percentile(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of the sorted ``reference`` at or below each value."""
    return np.searchsorted(reference, values, side="right") / max(len(reference), 1)
