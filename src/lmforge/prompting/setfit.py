"""SetFit-style few-shot learning: contrastive fine-tuning of a sentence encoder, then logistic regression.

From k labeled examples per class, pairs are generated (Tunstall et al. 2022): each round gives
every example one partner of its own label (target cosine 1) and one of another label (target 0).
The encoder is trained on them with the cosine-similarity loss in the project's training loop;
a logistic-regression head is then fitted on the tuned embeddings of the same examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression
from torch import nn

from lmforge.prompting.encoders import SentenceEncoder, pool


def make_pairs(targets: np.ndarray, iterations: int, seed: int, max_pairs: int | None = None) -> np.ndarray:
    """Pairs (P, 3) of ``(i, j, same)``: per round, each example with one same-label and one other-label partner.

    A class with one example pairs it with itself; with a single class there are no negative pairs.
    """
    rng = np.random.default_rng(seed)
    by_label = {c: np.flatnonzero(targets == c) for c in np.unique(targets)}
    # Each class's partners are found once, not once per example and round.
    others = {c: np.flatnonzero(targets != c) for c in by_label}
    pairs = []
    for _ in range(iterations):
        for i, c in enumerate(targets):
            pairs.append((i, int(rng.choice(by_label[c])), 1))
            if len(others[c]):
                pairs.append((i, int(rng.choice(others[c])), 0))
    out = np.asarray(pairs, dtype=np.int64).reshape(-1, 3)
    out = out[rng.permutation(len(out))]
    return out[:max_pairs] if max_pairs else out


def pair_batch(encoder: SentenceEncoder, texts: list[str], pairs: np.ndarray) -> dict[str, torch.Tensor]:
    """Both sides of ``pairs`` (P, 3) tokenized (keys ``a_*`` and ``b_*``), with their target similarity as ``labels``."""
    a = encoder.batch([texts[i] for i in pairs[:, 0]])
    b = encoder.batch([texts[j] for j in pairs[:, 1]])
    batch = {f"a_{k}": v for k, v in a.items()} | {f"b_{k}": v for k, v in b.items()}
    batch["labels"] = torch.from_numpy(pairs[:, 2].astype(np.float32))
    return batch


def cosine_loss(encoder: SentenceEncoder) -> Any:
    """Mean squared error between the pair's cosine similarity and its target (1 same label, 0 not)."""

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        sides = []
        for side in ("a_", "b_"):
            inputs = {k[2:]: v for k, v in batch.items() if k.startswith(side)}
            hidden = model(**inputs).last_hidden_state  # (B, T, D)
            sides.append(pool(hidden, inputs["attention_mask"], encoder.mode))
        cos = (sides[0] * sides[1]).sum(-1)
        return ((cos - batch["labels"]) ** 2).mean(), cos

    return loss


class LinearHead:
    """Multinomial logistic regression on unit embeddings, stored as plain arrays.

    Attributes:
        weight: (C, D) weights.
        bias: (C,) biases.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight, self.bias = weight.astype(np.float32), bias.astype(np.float32)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, num_labels: int, c: float = 1.0, seed: int = 0) -> LinearHead:
        """Fit on embeddings ``x`` (N, D) and labels ``y``; labels absent from ``y`` get a weight row that never wins."""
        present = np.unique(y)
        weight = np.zeros((num_labels, x.shape[1]), dtype=np.float32)
        bias = np.full(num_labels, -1e4, dtype=np.float32)
        if len(present) == 1:
            bias[present[0]] = 0.0
            return cls(weight, bias)
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
        coef, intercept = clf.coef_, clf.intercept_
        if len(present) == 2:  # sklearn keeps one row for two classes: the logit of the second
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        weight[clf.classes_] = coef
        bias[clf.classes_] = intercept
        return cls(weight, bias)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Scores (N, C) whose softmax is the label distribution."""
        return x @ self.weight.T + self.bias

    def save(self, path: Path) -> None:
        """Write the head as safetensors."""
        save_file({"weight": self.weight, "bias": self.bias}, str(path))

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        """Read a head written by :meth:`save`."""
        arrays = load_file(str(path))
        return cls(arrays["weight"], arrays["bias"])
