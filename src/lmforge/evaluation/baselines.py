"""The strongest simple baseline for text classification: TF-IDF n-grams + logistic regression.

Every accuracy lmforge reports can sit beside this one; a transformer that loses to it has not
earned its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lmforge.data.segment import is_chinese
from lmforge.evaluation.metrics import classification_metrics


def tfidf_vectorizer(texts: Sequence[str]) -> Any:
    """Word 1-2-grams for spaced languages, character 1-3-grams for Chinese and Japanese."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if is_chinese("".join(texts[:200])):  # a sample decides: no spaces between words
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)


def _pick_c(features: Any, labels: np.ndarray, grid: Sequence[float], seed: int) -> float:
    """Regularization strength by 3-fold cross-validation on the training data only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    scores = [cross_val_score(LogisticRegression(C=c, max_iter=2000), features, labels, cv=folds).mean() for c in grid]
    return float(grid[int(np.argmax(scores))])


def fit_tfidf_logreg(texts: Sequence[str], labels: Sequence[int], tune: bool = True, seed: int = 0) -> Any:
    """A fitted scikit-learn pipeline: TF-IDF features, then logistic regression.

    Args:
        texts: Training texts.
        labels: Their label ids.
        tune: Choose the regularization strength C by 3-fold cross-validation on the training data (else C=4).
        seed: Seed of the cross-validation folds.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    vectorizer = tfidf_vectorizer(texts)
    features = vectorizer.fit_transform(texts)
    y = np.asarray(labels)
    counts = np.bincount(y)
    c = _pick_c(features, y, (1.0, 4.0, 16.0), seed) if tune and counts[counts > 0].min() >= 3 else 4.0
    clf = LogisticRegression(C=c, max_iter=2000).fit(features, y)
    return Pipeline([("tfidf", vectorizer), ("logreg", clf)])


def tfidf_logreg(train_texts: Sequence[str], train_labels: Sequence[int], eval_texts: Sequence[str],
                 eval_labels: Sequence[int], label_names: Sequence[str], tune: bool = True, seed: int = 0) -> dict[str, Any]:
    """Fit :func:`fit_tfidf_logreg` on the training texts and score it on the evaluation texts.

    Returns:
        :func:`classification_metrics` of the baseline, plus ``C``.
    """
    pipe = fit_tfidf_logreg(train_texts, train_labels, tune, seed)
    clf = pipe.named_steps["logreg"]
    probs = np.zeros((len(eval_texts), len(label_names)))
    probs[:, clf.classes_] = pipe.predict_proba(list(eval_texts))
    return {**classification_metrics(list(eval_labels), probs, list(label_names)), "C": float(clf.C)}
