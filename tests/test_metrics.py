"""Metric functions checked against hand-computed values."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest

from lmforge.errors import LmforgeError
from lmforge.evaluation import (
    classification_metrics,
    format_table,
    metric_mode,
    multilabel_metrics,
    regression_metrics,
)


def one_hot_probs(preds: list[int], num_classes: int, confidence: float = 0.7) -> np.ndarray:
    """Probabilities whose argmax is ``preds``, with the remaining mass spread evenly."""
    rest = (1.0 - confidence) / (num_classes - 1)
    probs = np.full((len(preds), num_classes), rest)
    probs[np.arange(len(preds)), preds] = confidence
    return probs


def assert_plain(value: Any) -> None:
    """Fail on numpy scalars or arrays anywhere inside a result."""
    if isinstance(value, dict):
        for item in value.values():
            assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain(item)
    else:
        assert value is None or type(value) in (int, float, str), type(value)


# y_true = [0,0,0,1,1,2], preds = [0,0,1,1,2,2]
#   class a: tp=2 fp=0 fn=1 -> P=1,   R=2/3, F1=0.8
#   class b: tp=1 fp=1 fn=1 -> P=1/2, R=1/2, F1=1/2
#   class c: tp=1 fp=1 fn=0 -> P=1/2, R=1,   F1=2/3
Y_TRUE = [0, 0, 0, 1, 1, 2]
PREDS = [0, 0, 1, 1, 2, 2]
LABELS = ["a", "b", "c"]


def test_multiclass_by_hand() -> None:
    m = classification_metrics(Y_TRUE, one_hot_probs(PREDS, 3), LABELS)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert m["per_class"]["c"]["support"] == 1
    assert m["nll"] == pytest.approx(-(4 * math.log(0.7) + 2 * math.log(0.15)) / 6)
    assert m["labels"] == LABELS
    assert m["num_examples"] == 6
    assert "roc_auc" not in m


def test_result_is_plain_json() -> None:
    m = classification_metrics(np.array(Y_TRUE), one_hot_probs(PREDS, 3), LABELS)
    assert_plain(m)
    assert json.loads(json.dumps(m)) == m


def test_absent_class_still_gets_rows() -> None:
    m = classification_metrics(Y_TRUE, one_hot_probs(PREDS, 4), [*LABELS, "unused"])
    assert m["per_class"]["unused"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert len(m["confusion_matrix"]) == 4
    assert m["confusion_matrix"][3] == [0, 0, 0, 0]
    assert [row[3] for row in m["confusion_matrix"]] == [0, 0, 0, 0]
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_binary_roc_auc() -> None:
    # Positive scores 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered correctly.
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    probs = np.stack([1 - scores, scores], axis=1)
    m = classification_metrics([0, 0, 1, 1], probs, ["neg", "pos"])
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)  # predictions [0, 0, 0, 1]
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]


def test_binary_roc_auc_single_class_is_none() -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics([1, 1], probs, ["neg", "pos"])
    assert m["roc_auc"] is None


def test_nll_is_clipped() -> None:
    m = classification_metrics([0], np.array([[0.0, 1.0]]), ["x", "y"])
    assert math.isfinite(m["nll"])
    assert m["nll"] == pytest.approx(-math.log(1e-12))


@pytest.mark.parametrize(
    ("y_true", "probs"),
    [
        ([0, 1], np.ones((3, 2)) / 2),
        ([0, 2], np.ones((2, 2)) / 2),
        ([0, -1], np.ones((2, 2)) / 2),
        ([], np.zeros((0, 2))),
        ([0, 1], np.ones((2, 3)) / 3),
    ],
)
def test_classification_rejects_bad_input(y_true: list[int], probs: np.ndarray) -> None:
    with pytest.raises(LmforgeError):
        classification_metrics(y_true, probs, ["x", "y"])


def test_multilabel_by_hand() -> None:
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    # Predictions [[1,0,1],[0,1,1],[1,0,0]]; 0.5 itself counts as positive.
    probs = np.array([[0.9, 0.1, 0.5], [0.2, 0.7, 0.6], [0.8, 0.3, 0.4]])
    m = multilabel_metrics(y, probs, ["x", "y", "z"])
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["micro_f1"] == pytest.approx(0.8)  # tp=4, fp=1, fn=1
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m["samples_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m["per_class"]["y"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert m["num_examples"] == 3
    assert_plain(m)


def test_multilabel_threshold_and_validation() -> None:
    y = np.array([[1, 0], [0, 1]])
    probs = np.array([[0.3, 0.1], [0.1, 0.3]])
    assert multilabel_metrics(y, probs, ["x", "y"], threshold=0.25)["accuracy"] == 1.0
    assert multilabel_metrics(y, probs, ["x", "y"])["accuracy"] == 0.0
    with pytest.raises(LmforgeError):
        multilabel_metrics(np.array([[2, 0], [0, 1]]), probs, ["x", "y"])
    with pytest.raises(LmforgeError):
        multilabel_metrics(y, probs[:1], ["x", "y"])


def test_regression_by_hand() -> None:
    # Errors 0, 1, -1, 6; Pearson = 13 / sqrt(5 * 50); ranks match those of y_true but one swap.
    m = regression_metrics([1, 2, 3, 4], [1, 3, 2, 10])
    assert m["mse"] == pytest.approx(9.5)
    assert m["rmse"] == pytest.approx(math.sqrt(9.5))
    assert m["mae"] == pytest.approx(2.0)
    assert m["r2"] == pytest.approx(1 - 38 / 5)
    assert m["pearson"] == pytest.approx(13 / math.sqrt(250))
    assert m["spearman"] == pytest.approx(0.8)
    assert m["num_examples"] == 4
    assert_plain(m)


def test_regression_constant_input_gives_none_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        constant_pred = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
        constant_true = regression_metrics([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
        single = regression_metrics([1.0], [1.5])
    assert constant_pred["spearman"] is None
    assert constant_pred["pearson"] is None
    assert constant_pred["r2"] == pytest.approx(0.0)
    assert constant_true["r2"] is None
    assert constant_true["spearman"] is None
    assert single["pearson"] is None
    assert single["mse"] == pytest.approx(0.25)


def test_regression_rejects_bad_input() -> None:
    with pytest.raises(LmforgeError):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(LmforgeError):
        regression_metrics([], [])
    with pytest.raises(LmforgeError):
        regression_metrics([1.0, float("nan")], [1.0, 2.0])


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("loss", "min"),
        ("mse", "min"),
        ("rmse", "min"),
        ("mae", "min"),
        ("hamming_loss", "min"),
        ("nll", "min"),
        ("perplexity", "min"),
        ("eval_loss", "min"),
        ("validation/mse", "min"),
        ("accuracy", "max"),
        ("macro_f1", "max"),
        ("roc_auc", "max"),
        ("spearman", "max"),
        ("r2", "max"),
    ],
)
def test_metric_mode(name: str, mode: str) -> None:
    assert metric_mode(name) == mode


def test_format_table() -> None:
    m = classification_metrics(Y_TRUE, one_hot_probs(PREDS, 3), LABELS)
    text = format_table(m)
    lines = text.splitlines()
    assert any(line.startswith("accuracy") and line.endswith("0.6667") for line in lines)
    assert "confusion_matrix" not in text
    header = next(line for line in lines if line.startswith("label"))
    assert header.split() == ["label", "precision", "recall", "f1", "support"]
    assert any(line.split() == ["a", "1.0000", "0.6667", "0.8000", "3"] for line in lines)


def test_format_table_shows_missing_values() -> None:
    text = format_table(regression_metrics([1.0, 2.0], [3.0, 3.0]))
    assert "spearman" in text and "n/a" in text
    assert "label" not in text


def test_tfidf_baseline_and_script_detection() -> None:
    from lmforge.evaluation.baselines import tfidf_logreg, tfidf_vectorizer

    assert tfidf_vectorizer(["这家酒店很好", "房间太小了"]).analyzer == "char"
    assert tfidf_vectorizer(["a good hotel", "tiny room"]).analyzer == "word"
    train = ["good fun", "great film", "nice story", "bad plot", "awful film", "poor story"] * 3
    labels = [1, 1, 1, 0, 0, 0] * 3
    result = tfidf_logreg(train, labels, ["good story", "awful plot"], [1, 0], ["neg", "pos"])
    assert result["accuracy"] == 1.0 and result["C"] in (1.0, 4.0, 16.0)
