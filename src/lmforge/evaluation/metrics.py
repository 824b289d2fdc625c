"""Task metrics computed with scikit-learn and scipy, returned as plain JSON-ready Python types."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from lmforge.errors import LmforgeError

NLL_EPS = 1e-12
LOSS_LIKE = ("loss", "mse", "rmse", "mae", "hamming_loss", "nll", "perplexity", "ppl")


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, label_names: Sequence[str]
) -> dict[str, Any]:
    """Single-label classification metrics from class probabilities.

    Predictions are ``argmax(probs, axis=1)``. Macro/weighted averages follow scikit-learn and
    cover the labels that occur in ``y_true`` or the predictions, while ``per_class`` and
    ``confusion_matrix`` list every label in ``label_names`` (absent ones get zeros).

    Args:
        y_true: Gold class indices, length N, each in ``[0, C)``.
        probs: Array of shape (N, C) with class probabilities.
        label_names: The C label names, in class-index order.

    Returns:
        A dict with ``accuracy``, ``macro_f1``, ``micro_f1``, ``weighted_f1``,
        ``macro_precision``, ``macro_recall``, ``nll``, ``per_class``, ``confusion_matrix``,
        ``labels`` and ``num_examples``; binary tasks also get ``roc_auc`` (None when
        ``y_true`` holds a single class).

    Raises:
        LmforgeError: If shapes disagree, the input is empty or a label is out of range.
    """
    labels = list(label_names)
    y, p = _check_classification(y_true, probs, len(labels))
    pred = p.argmax(axis=1)
    out: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "macro_f1": _f1(y, pred, "macro"),
        "micro_f1": _f1(y, pred, "micro"),
        "weighted_f1": _f1(y, pred, "weighted"),
        "macro_precision": float(skm.precision_score(y, pred, average="macro", zero_division=0)),
        "macro_recall": float(skm.recall_score(y, pred, average="macro", zero_division=0)),
        "nll": _nll(y, p),
    }
    if len(labels) == 2:
        out["roc_auc"] = _binary_auc(y, p[:, 1])
    class_ids = list(range(len(labels)))
    out["per_class"] = _per_class(y, pred, labels, class_ids)
    out["confusion_matrix"] = skm.confusion_matrix(y, pred, labels=class_ids).tolist()
    out["labels"] = labels
    out["num_examples"] = len(y)
    return out


def label_agreement(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 of predicted label ids, the macro average over all ``num_labels`` labels
    (a label absent from both gold and predictions counts as F1 0), for quick tables of many runs."""
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    f1 = skm.f1_score(y, pred, average="macro", labels=list(range(num_labels)), zero_division=0)
    return {"accuracy": float((pred == y).mean()) if len(y) else 0.0, "macro_f1": float(f1)}


def multilabel_metrics(
    y_true: np.ndarray, probs: np.ndarray, label_names: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Multi-label metrics, predicting a label wherever its probability reaches ``threshold``.

    Args:
        y_true: Array of shape (N, C) of 0/1 gold indicators.
        probs: Array of shape (N, C) of independent per-label probabilities.
        label_names: The C label names, in column order.
        threshold: Probability at or above which a label is predicted.

    Returns:
        A dict with ``accuracy`` (exact-match subset accuracy), ``micro_f1``, ``macro_f1``,
        ``samples_f1``, ``hamming_loss``, ``per_class`` (support = gold positives),
        ``labels`` and ``num_examples``.

    Raises:
        LmforgeError: If shapes disagree, the input is empty or ``y_true`` is not 0/1.
    """
    labels = list(label_names)
    y = np.asarray(y_true)
    p = _as_prob_matrix(probs, len(labels))
    if y.shape != p.shape:
        raise LmforgeError(f"multi-label targets have shape {y.shape} but probs have {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise LmforgeError("multi-label targets must contain only 0 and 1")
    y = y.astype(int)
    pred = (p >= threshold).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "micro_f1": _f1(y, pred, "micro"),
        "macro_f1": _f1(y, pred, "macro"),
        "samples_f1": _f1(y, pred, "samples"),
        "hamming_loss": float(skm.hamming_loss(y, pred)),
        "per_class": _per_class(y, pred, labels, None),
        "labels": labels,
        "num_examples": int(y.shape[0]),
    }


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, Any]:
    """Regression errors and correlations.

    ``r2``, ``pearson`` and ``spearman`` are None when undefined (fewer than two examples or a
    constant input) instead of NaN, and no warnings are emitted for those cases.

    Args:
        y_true: Gold values, length N.
        y_pred: Predicted values, length N.

    Returns:
        A dict with ``mse``, ``rmse``, ``mae``, ``r2``, ``pearson``, ``spearman`` and
        ``num_examples``.

    Raises:
        LmforgeError: If the lengths differ, the input is empty or contains NaN/inf.
    """
    t = np.asarray(y_true, dtype=float).reshape(-1)
    p = np.asarray(y_pred, dtype=float).reshape(-1)
    if t.shape != p.shape or t.size == 0:
        raise LmforgeError(f"regression needs equal, non-zero lengths; got {t.size} and {p.size}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise LmforgeError("regression targets and predictions must be finite numbers")
    mse = float(skm.mean_squared_error(t, p))
    varies = t.size >= 2 and np.ptp(t) > 0
    both_vary = varies and np.ptp(p) > 0
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(skm.mean_absolute_error(t, p)),
        "r2": _finite(skm.r2_score(t, p)) if varies else None,
        "pearson": _correlation(stats.pearsonr, t, p) if both_vary else None,
        "spearman": _correlation(stats.spearmanr, t, p) if both_vary else None,
        "num_examples": int(t.size),
    }


def metric_mode(name: str) -> str:
    """Whether a metric improves downwards (``"min"``) or upwards (``"max"``).

    Prefixed names such as ``eval_loss`` or ``validation/mse`` are recognised by their suffix.

    Args:
        name: Metric name.

    Returns:
        ``"min"`` for loss-like metrics, otherwise ``"max"``.
    """
    lowered = name.lower()
    for suffix in LOSS_LIKE:
        if lowered == suffix or lowered.endswith(("_" + suffix, "/" + suffix, "." + suffix)):
            return "min"
    return "max"


def format_table(metrics: dict[str, Any]) -> str:
    """Render scalar metrics and any per-class rows as an aligned plain-text table.

    Args:
        metrics: A dict as returned by the ``*_metrics`` functions (other keys are allowed;
            lists and nested dicts other than ``per_class`` are skipped).

    Returns:
        A multi-line string for terminal output.
    """
    scalars = {k: v for k, v in metrics.items() if _is_scalar(v)}
    lines: list[str] = []
    if scalars:
        width = max(len(k) for k in scalars)
        lines += [f"{k:<{width}}  {_fmt(v):>10}" for k, v in scalars.items()]
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        lines += ["", *_per_class_lines(per_class)]
    return "\n".join(lines)


def _per_class_lines(per_class: dict[str, dict[str, Any]]) -> list[str]:
    """Header plus one aligned row per label."""
    width = max(5, *(len(str(name)) for name in per_class))
    cols = ("precision", "recall", "f1", "support")
    header = f"{'label':<{width}}" + "".join(f"  {c:>10}" for c in cols)
    rows = [
        f"{str(name):<{width}}" + "".join(f"  {_fmt(row.get(c)):>10}" for c in cols)
        for name, row in per_class.items()
    ]
    return [header, "-" * len(header), *rows]


def _is_scalar(value: Any) -> bool:
    """True for numbers and None (bools excluded), the values a metrics table can show."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _fmt(value: Any) -> str:
    """Four decimals for floats, plain ints, ``n/a`` for missing values."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _check_classification(
    y_true: Sequence[int], probs: np.ndarray, num_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate single-label inputs and return them as arrays."""
    p = _as_prob_matrix(probs, num_labels)
    y = np.asarray(y_true).reshape(-1)
    if y.shape[0] != p.shape[0]:
        raise LmforgeError(f"got {y.shape[0]} labels but {p.shape[0]} rows of probabilities")
    if not np.issubdtype(y.dtype, np.integer):
        raise LmforgeError(f"class labels must be integers, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= num_labels:
        raise LmforgeError(f"class labels must lie in [0, {num_labels}), got {y.min()}..{y.max()}")
    return y.astype(int), p


def _as_prob_matrix(probs: np.ndarray, num_labels: int) -> np.ndarray:
    """Probabilities as a non-empty float (N, C) array matching the label count."""
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[0] == 0:
        raise LmforgeError(f"probs must be a non-empty (N, C) array, got shape {p.shape}")
    if p.shape[1] != num_labels:
        raise LmforgeError(f"probs have {p.shape[1]} columns but there are {num_labels} labels")
    return p


def _f1(y: np.ndarray, pred: np.ndarray, average: str) -> float:
    """F1 with the given averaging, 0 where undefined."""
    return float(skm.f1_score(y, pred, average=average, zero_division=0))


def _per_class(
    y: np.ndarray, pred: np.ndarray, labels: list[str], class_ids: list[int] | None
) -> dict[str, dict[str, float | int]]:
    """Precision/recall/F1/support for each label name."""
    p, r, f, s = skm.precision_recall_fscore_support(
        y, pred, labels=class_ids, average=None, zero_division=0
    )
    return {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(labels)
    }


def _nll(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-probability of the gold class, clipped so a zero costs ~27.6 nats."""
    gold = np.clip(p[np.arange(len(y)), y], NLL_EPS, 1.0)
    return float(-np.log(gold).mean())


def _binary_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of the positive-class scores, None when only one class is present."""
    if np.unique(y).size < 2:
        return None
    return float(skm.roc_auc_score(y, scores))


def _correlation(fn: Any, t: np.ndarray, p: np.ndarray) -> float | None:
    """A scipy correlation statistic, None if it comes out NaN."""
    with warnings.catch_warnings():
        # Near-constant inputs can still trip scipy precision warnings; NaN is handled below.
        warnings.simplefilter("ignore")
        return _finite(fn(t, p).statistic)


def _finite(value: Any) -> float | None:
    """``float(value)``, or None for NaN/inf."""
    result = float(value)
    return result if math.isfinite(result) else None
