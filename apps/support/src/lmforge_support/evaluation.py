"""Intent figures on a held-out file: accuracy and macro-F1 (model, TF-IDF baseline, mix) and out-of-scope AUROC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp, softmax
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from lmforge_support.intents import IntentModel


def _scores(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(accuracy_score(gold, pred)), "macro_f1": float(f1_score(gold, pred, average="macro"))}


def intent_figures(model: IntentModel, rows: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy and macro-F1 of the fine-tuned model alone, the TF-IDF baseline alone and their calibrated mix.

    Rows whose intent the model does not know are left out (and counted).
    """
    known = [(t, y) for t, y in rows if y in model.labels]
    texts, gold = [t for t, _ in known], np.asarray([model.labels.index(y) for _, y in known])
    logits, tfidf = model.logits(texts), model.tfidf_probs(texts)
    mixed = model.mix(logits, tfidf)
    nll = float(-np.log(np.clip(mixed[np.arange(len(gold)), gold], 1e-12, None)).mean())
    return {"rows": len(known), "unknown_intent_rows": len(rows) - len(known), "model": _scores(logits.argmax(1), gold),
            "tfidf": _scores(tfidf.argmax(1), gold), "mixed": _scores(mixed.argmax(1), gold),
            "temperature": model.temperature, "tfidf_weight": model.weight, "mixed_nll": nll,
            "ece": expected_calibration_error(mixed, gold)}


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top probability, ``bins`` equal-width bins."""
    conf, right = probs.max(1), probs.argmax(1) == gold
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - right[inside].mean())
    return float(total)


def oos_auroc(model: IntentModel, rows: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """AUROC of telling rows of intents the model never saw from rows of known intents (scope, max probability, energy).

    ``model`` must have been trained without some intents; ``rows`` hold both kinds.
    """
    texts = [t for t, _ in rows]
    unknown = np.asarray([y not in model.labels for _, y in rows], dtype=int)
    if unknown.all() or not unknown.any():
        return {"max_prob": float("nan"), "energy": float("nan"), "unknown_rows": int(unknown.sum())}
    logits = model.logits(texts)
    probs = model.mix(logits, model.tfidf_probs(texts))
    max_prob = probs.max(1)
    scope = model.scope(texts, probs)
    energy = model.temperature * logsumexp(logits / model.temperature, axis=1)  # (N,) high = in scope
    plain = softmax(logits, axis=1).max(1)
    # Low confidence or low energy means unknown: score = minus each.
    caught = {} if scope is None else {
        "scope": float(roc_auc_score(unknown, -scope)),
        "scope_unknown_turned_away": float((scope[unknown == 1] < model.scope_cut).mean()),
        "scope_known_turned_away": float((scope[unknown == 0] < model.scope_cut).mean())}
    return {**caught, "max_prob": float(roc_auc_score(unknown, -max_prob)), "energy": float(roc_auc_score(unknown, -energy)),
            "max_prob_uncalibrated": float(roc_auc_score(unknown, -plain)), "unknown_rows": int(unknown.sum()),
            "known_rows": int(len(unknown) - unknown.sum())}
