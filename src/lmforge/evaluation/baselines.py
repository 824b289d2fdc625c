"""The strongest simple baseline for text classification: TF-IDF n-grams + logistic regression.

Every accuracy lmforge reports can sit beside this one; a transformer that loses to it has not
earned its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from lmforge.data.segment import is_chinese
from lmforge.evaluation.metrics import classification_metrics


def tfidf_vectorizer(texts: Sequence[str]) -> Any:
    """Word 1-2-grams for spaced languages, character 1-3-grams for Chinese and Japanese."""
    if is_chinese("".join(texts[:200])):  # a sample decides: no spaces between words
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)


GRID = (1.0, 4.0, 16.0)  # logistic-regression C values tried


def _pick_c(features: Any, labels: np.ndarray, grid: Sequence[float], seed: int) -> float:
    """Regularization strength by 3-fold cross-validation on the training data only."""
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    scores = [cross_val_score(LogisticRegression(C=c, max_iter=2000), features, labels, cv=folds).mean() for c in grid]
    return float(grid[int(np.argmax(scores))])


def _pick_c_on(features: Any, labels: np.ndarray, val_features: Any, val_labels: np.ndarray, grid: Sequence[float]) -> float:
    """Regularization strength by accuracy on a validation split (what the model is selected on too)."""
    scores = [LogisticRegression(C=c, max_iter=2000).fit(features, labels).score(val_features, val_labels) for c in grid]
    return float(grid[int(np.argmax(scores))])


def fit_tfidf_logreg(texts: Sequence[str], labels: Sequence[Any], tune: bool = True, seed: int = 0,
                     validation: tuple[Sequence[str], Sequence[Any]] | None = None) -> Pipeline:
    """A fitted scikit-learn pipeline: TF-IDF features, then logistic regression.

    Args:
        texts: Training texts.
        labels: Their labels (ids or names).
        tune: Choose the regularization strength C (else C=4): on ``validation`` when given, else by
            3-fold cross-validation on the training data.
        seed: Seed of the cross-validation folds.
        validation: Validation texts and labels to choose C on.
    """
    vectorizer = tfidf_vectorizer(texts)
    features = vectorizer.fit_transform(texts)
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    c = 4.0
    if tune and validation is not None:
        c = _pick_c_on(features, y, vectorizer.transform(validation[0]), np.asarray(validation[1]), GRID)
    elif tune and counts.min() >= 3:
        c = _pick_c(features, y, GRID, seed)
    clf = LogisticRegression(C=c, max_iter=2000).fit(features, y)
    return Pipeline([("tfidf", vectorizer), ("logreg", clf)])


def baseline_metrics(pipe: Pipeline, texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str]) -> dict[str, Any]:
    """:func:`classification_metrics` of a fitted baseline on labeled texts, plus its ``C``."""
    clf = pipe.named_steps["logreg"]
    probs = np.zeros((len(texts), len(label_names)))
    probs[:, clf.classes_] = pipe.predict_proba(list(texts))
    return {**classification_metrics(list(labels), probs, list(label_names)), "C": float(clf.C)}


def tfidf_logreg(train_texts: Sequence[str], train_labels: Sequence[int], eval_texts: Sequence[str],
                 eval_labels: Sequence[int], label_names: Sequence[str], tune: bool = True, seed: int = 0) -> dict[str, Any]:
    """Fit :func:`fit_tfidf_logreg` on the training texts and score it on the evaluation texts."""
    return baseline_metrics(fit_tfidf_logreg(train_texts, train_labels, tune, seed), eval_texts, eval_labels, label_names)


def tfidf_predict(train_texts: Sequence[str], train_labels: Sequence[Any], texts: Sequence[str], seed: int = 0) -> list[Any]:
    """Labels the tuned baseline predicts for ``texts`` (labels may be names): what benchmarks put beside a model."""
    return fit_tfidf_logreg(train_texts, train_labels, seed=seed).predict(list(texts)).tolist()
