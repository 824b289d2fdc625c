"""Verbalizers: label -> readable name and words; token mapping; contextual calibration.

A label is scored through its words: a masked LM's probability of each word at the mask, a
decoder's probability of each word after the prompt. Words of several tokens are scored by the
**mean** of their tokens' log-probabilities (default) or by their **first** token only. A label
with several words gets the log of their mean probability.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.special import logsumexp

from lmforge.errors import ConfigError

log = logging.getLogger("lmforge.prompting")
MultiToken = Literal["mean", "first"]
# Zhao et al. (2021) average over these content-free inputs to measure a prompt's label bias.
CONTENT_FREE = ("N/A", "", "[MASK]")

# (task, language) -> label alias (casefolded) -> (readable name, words).
# Several words per label let each template find its natural one ("It was great." / "Sentiment: positive").
_SENTIMENT_EN = {"positive": ("positive", ["positive", "great", "good"]),
                 "negative": ("negative", ["negative", "terrible", "bad"]),
                 "neutral": ("neutral", ["okay"])}
_SENTIMENT_ZH = {"positive": ("正面", ["正面", "好", "棒"]), "negative": ("负面", ["负面", "差", "糟"]),
                 "neutral": ("中性", ["一般"])}
_SENTIMENT_ALIASES = {"pos": "positive", "fresh": "positive", "good": "positive", "正面": "positive", "积极": "positive",
                      "neg": "negative", "rotten": "negative", "bad": "negative", "负面": "negative", "消极": "negative",
                      "中性": "neutral"}
_ENTAILMENT_EN = {"entailment": ("yes", ["Yes"]), "neutral": ("maybe", ["Maybe"]), "contradiction": ("no", ["No"]),
                  "not_entailment": ("no", ["No"])}
_ENTAILMENT_ZH = {"entailment": ("是", ["是"]), "neutral": ("也许", ["也许"]), "contradiction": ("否", ["否"]),
                  "not_entailment": ("否", ["否"])}
_TOPIC_EN = {"world": ("world", ["world", "politics"]), "sports": ("sports", ["sports"]), "business": ("business", ["business"]),
             "sci/tech": ("science and technology", ["technology", "science"])}
_TOPIC_ZH = {"world": ("国际", ["国际"]), "sports": ("体育", ["体育"]), "business": ("财经", ["财经"]),
             "sci/tech": ("科技", ["科技"])}
BUILTIN_WORDS: dict[tuple[str, str], dict[str, tuple[str, list[str]]]] = {
    ("sentiment", "en"): _SENTIMENT_EN, ("sentiment", "zh"): _SENTIMENT_ZH,
    ("entailment", "en"): _ENTAILMENT_EN, ("entailment", "zh"): _ENTAILMENT_ZH,
    ("topic", "en"): _TOPIC_EN, ("topic", "zh"): _TOPIC_ZH,
}
_ALIASES = {"sentiment": _SENTIMENT_ALIASES, "topic": {"sci_tech": "sci/tech", "scitech": "sci/tech", "science": "sci/tech"},
            "entailment": {"not entailment": "not_entailment"}}
# Star ratings and 0/1 polarity are read in the usual order: low = negative.
_SCALES = {2: ["negative", "positive"], 3: ["negative", "neutral", "positive"]}
_STARS_EN = ["terrible", "bad", "okay", "good", "great"]
_STARS_ZH = ["很差", "差", "一般", "好", "很好"]


def readable(label: str) -> str:
    """A label name as words: ``card_arrival`` -> ``card arrival``."""
    return re.sub(r"[_\-]+", " ", label).strip() or label


@dataclass
class Verbalizer:
    """The words of each label.

    Attributes:
        labels: Label names in id order.
        names: A readable name per label (the choices an instruct model is offered).
        words: One or more words per label.
        multi_token: ``mean`` or ``first``: how a word of several tokens is scored.
    """

    labels: list[str]
    names: list[str]
    words: list[list[str]]
    multi_token: MultiToken = "mean"

    def describe(self, limit: int = 6) -> str:
        """One line: ``label: word, word | ...`` for the first ``limit`` labels."""
        shown = [f"{label}: {', '.join(words)}" for label, words in zip(self.labels[:limit], self.words[:limit], strict=True)]
        more = len(self.labels) - limit
        return " | ".join(shown) + (f" | ... ({more} more labels)" if more > 0 else "")

    def flat(self) -> tuple[list[str], np.ndarray]:
        """All words in label order, and the label id of each."""
        words = [w for ws in self.words for w in ws]
        owner = np.asarray([i for i, ws in enumerate(self.words) for _ in ws], dtype=np.int64)
        return words, owner

    def token_ids(self, tokenizer: Any, leading_space: bool) -> list[list[int]]:
        """Token ids of every word of :meth:`flat`, tokenized as they follow the prompt.

        Args:
            tokenizer: The model's tokenizer.
            leading_space: The word follows a space in the template, so it is tokenized with one
                (byte-level BPE and SentencePiece vocabularies mark word starts).
        """
        words, owner = self.flat()
        out = []
        for word, label in zip(words, owner, strict=True):
            ids = tokenizer((" " + word) if leading_space else word, add_special_tokens=False)["input_ids"]
            ids = [i for i in ids if i != getattr(tokenizer, "unk_token_id", None)] or ids
            if not ids:
                raise ConfigError(f"prompt.verbalizer: the word {word!r} of label {self.labels[label]!r} has no tokens "
                                  "in this model's vocabulary; choose another word")
            out.append(ids if self.multi_token == "mean" else ids[:1])
        return out

    def label_scores(self, word_scores: torch.Tensor) -> torch.Tensor:
        """Label log-scores (N, C) from word log-probabilities (N, W): log of the mean word probability.

        Differentiable, so prompt-based fine-tuning trains through it.
        """
        _, owner = self.flat()
        cols = []
        for c in range(len(self.labels)):
            idx = torch.from_numpy(np.flatnonzero(owner == c)).to(word_scores.device)
            cols.append(torch.logsumexp(word_scores.index_select(1, idx), dim=1) - math.log(len(idx)))
        return torch.stack(cols, dim=1)


def word_scores_at(log_probs: torch.Tensor, token_ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """Word log-scores (N, W) read from one position's token log-probs (N, V).

    A word of several tokens gets the mean of its tokens' log-probs at that position (its
    token list is cut to the first token already when the policy is ``first``).
    """
    width = max(len(t) for t in token_ids)
    index = torch.zeros(len(token_ids), width, dtype=torch.long)
    weight = torch.zeros(len(token_ids), width, dtype=log_probs.dtype)
    for w, ids in enumerate(token_ids):
        index[w, :len(ids)] = torch.tensor(ids)
        weight[w, :len(ids)] = 1.0 / len(ids)
    index, weight = index.to(log_probs.device), weight.to(log_probs.device)
    return (log_probs[:, index] * weight).sum(-1)  # (N, W, L) -> (N, W)


def _builtin_entry(task: str, language: str, labels: list[str]) -> list[tuple[str, list[str]] | None]:
    table = BUILTIN_WORDS.get((task, language), {})
    aliases = _ALIASES.get(task, {})
    ints = [t.lstrip("-").isdigit() for t in labels]
    if task == "sentiment" and labels and all(ints):
        order = sorted(labels, key=int)
        if len(order) in _SCALES:
            return [table[_SCALES[len(order)][order.index(label)]] for label in labels]
        if len(order) == 5:
            stars = _STARS_EN if language == "en" else _STARS_ZH
            return [(stars[order.index(label)], [stars[order.index(label)]]) for label in labels]
    out = []
    for label in labels:
        key = label.casefold().strip()
        out.append(table.get(aliases.get(key, key)))
    return out


def _check_keys(option: str, given: dict[str, Any], labels: list[str]) -> None:
    unknown = sorted(set(given) - set(labels))
    if unknown:
        shown = ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else "")
        raise ConfigError(f"{option} names labels {unknown} that are not in the data (labels: {shown}); fix the keys")


def build_verbalizer(labels: list[str], task: str, language: str, user: dict[str, list[str] | str] | None = None,
                     multi_token: MultiToken = "mean", user_names: dict[str, str] | None = None) -> Verbalizer:
    """The verbalizer of ``labels``: the user's words where given, else built-in lists, else the readable label name.

    Args:
        labels: Label names in id order.
        task: ``sentiment``, ``topic``, ``intent`` or ``entailment`` (picks the built-in lists).
        language: ``en`` or ``zh``.
        user: Label -> word(s) from ``prompt.verbalizer``.
        multi_token: ``mean`` or ``first``.
        user_names: Label -> readable name from ``prompt.names``.

    Raises:
        ConfigError: The user's words or names refer to a label that does not exist.
    """
    user = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in (user or {}).items()}
    user_names = {str(k): str(v) for k, v in (user_names or {}).items()}
    _check_keys("prompt.verbalizer", user, labels)
    _check_keys("prompt.names", user_names, labels)
    builtin = _builtin_entry(task, language, labels)
    names, words = [], []
    for label, entry in zip(labels, builtin, strict=True):
        name, default = entry if entry else (readable(label), [readable(label)])
        names.append(user_names.get(label, name))
        chosen = user.get(label) or default
        if any(not w.strip() for w in chosen):
            raise ConfigError(f"prompt.verbalizer: label {label!r} has an empty word; give each label one or more words")
        words.append(chosen)
    if any(entry and label.lstrip("-").isdigit() and label not in user for label, entry in zip(labels, builtin, strict=True)):
        log.info("verbalizer: numeric labels read as %s", ", ".join(f"{lb}={n}" for lb, n in zip(labels, names, strict=True)))
    return Verbalizer(labels, names, words, multi_token)


def content_free_probs(label_scores: np.ndarray) -> np.ndarray:
    """The mean label distribution (C,) of the content-free inputs' label log-scores (M, C)."""
    probs = np.exp(label_scores - logsumexp(label_scores, axis=1, keepdims=True))
    return probs.mean(axis=0)


def calibrate(label_scores: np.ndarray, p_cf: np.ndarray) -> np.ndarray:
    """Contextual calibration (Zhao et al. 2021): q ∝ p / p_cf, returned as log-probabilities (N, C).

    This is their ``W = diag(p_cf)^-1, b = 0`` correction, renormalized so each row is a distribution.
    """
    logp = label_scores - logsumexp(label_scores, axis=1, keepdims=True)
    q = logp - np.log(np.clip(p_cf, 1e-12, None))[None, :]
    return q - logsumexp(q, axis=1, keepdims=True)
