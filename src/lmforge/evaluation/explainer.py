"""Explanations of a loaded run: word attributions for a classifier, per-token log-probabilities for a generator.

:class:`Explainer` wraps any loaded model (what :func:`lmforge.artifacts.load` returns) and picks
what can be explained about it: a single-label classifier gets :func:`~lmforge.evaluation.explain.occlusion`
(black-box) or :func:`~lmforge.evaluation.explain.integrated_gradients` (needs the PyTorch model and a
fast tokenizer); a language model gets the log-probability of each of its tokens. The command line,
the service's ``/v1/explain`` and the studio all go through it, so they show the same numbers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import nn

from lmforge.errors import LmforgeError
from lmforge.evaluation.explain import Explanation, integrated_gradients, occlusion, predictor_proba

METHODS = ("ig", "occlusion")


@dataclass
class TokenLogprobs:
    """Per-token log-probabilities of one text under a language model.

    Attributes:
        text: The scored text.
        tokens: Its tokens, as the tokenizer writes them.
        logprobs: ``log p(token | tokens before it)``; None for the first token, which has no context.
        mean_logprob: Mean over the tokens that have one (its negative is the loss; exp of that the perplexity).
    """

    text: str
    tokens: list[str]
    logprobs: list[float | None]
    mean_logprob: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


class Explainer:
    """What can be explained about one loaded run.

    Args:
        artifact: A loaded run: a single-label classifier (``predict`` with ``labels``) or a language model (``score``).

    Raises:
        LmforgeError: The run is neither (a tagger, a regression, an embedding model...).
    """

    def __init__(self, artifact: Any) -> None:
        self.artifact = artifact
        labels = getattr(artifact, "labels_or_none", None) or getattr(artifact, "labels", None)
        caps = set(getattr(artifact, "capabilities", ()))
        if labels is not None and getattr(labels, "kind", None) == "single" and "predict" in caps:
            self.mode, self.label_names = "classifier", list(labels.names)
        elif labels is None and "score" in caps and "generate" in caps:
            self.mode, self.label_names = "generator", []
        else:
            kind = getattr(artifact, "kind", type(artifact).__name__)
            raise LmforgeError(f"a {kind} run cannot be explained; explain a single-label classifier (word attributions) "
                               "or a language model (token log-probabilities)")

    @property
    def methods(self) -> tuple[str, ...]:
        """Attribution methods this run supports (integrated gradients need the PyTorch model and a fast tokenizer)."""
        if self.mode != "classifier":
            return ()
        return METHODS if self._gradient_ready() else ("occlusion",)

    def _gradient_ready(self) -> bool:
        model, tokenizer = getattr(self.artifact, "model", None), getattr(self.artifact, "tokenizer", None)
        return isinstance(model, nn.Module) and getattr(tokenizer, "is_fast", False) and hasattr(model, "get_input_embeddings")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """(N, C) class probabilities of ``texts`` through the run's own ``predict`` (its text cleaning included)."""
        self._need_classifier()
        return predictor_proba(self.artifact.predict, self.label_names)(texts)

    def explain(self, texts: Sequence[str], method: str = "ig", target: int | str | None = None, n_steps: int = 50,
                batch_size: int = 8) -> list[Explanation]:
        """Word attributions of the classifier's prediction (or of ``target``) for each text.

        Args:
            texts: Texts to explain.
            method: ``ig`` (integrated gradients) or ``occlusion``.
            target: Class to explain, as name or index; default the predicted class of each text.
            n_steps: Integrated gradients' path steps.
            batch_size: Texts attributed together by integrated gradients.

        Raises:
            LmforgeError: Not a classifier, an unknown method or class, or ``ig`` on a run without a PyTorch model.
        """
        self._need_classifier()
        if method not in METHODS:
            raise LmforgeError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if method not in self.methods:
            raise LmforgeError(f"this {self.artifact.kind} run has no PyTorch model with a fast tokenizer for integrated gradients; "
                               "use --method occlusion")
        index = self._target(target)
        if method == "occlusion":
            return occlusion(self.predict_proba, list(texts), index, self.label_names)
        limit = getattr(getattr(self.artifact, "data", None), "max_length", None)
        return integrated_gradients(self.artifact.model, self.artifact.tokenizer, list(texts), index, self.label_names,
                                    n_steps=n_steps, batch_size=batch_size, max_length=limit)

    def logprobs(self, texts: Sequence[str]) -> list[TokenLogprobs]:
        """Per-token log-probabilities of each text under the language model.

        Raises:
            LmforgeError: The run is not a language model.
        """
        if self.mode != "generator":
            raise LmforgeError("token log-probabilities need a language model run; this run is a classifier (explain its words)")
        out = []
        for row in self.artifact.score(list(texts)):
            values = [v for v in row["logprobs"] if v is not None]
            mean = float(np.mean(values)) if values else None
            out.append(TokenLogprobs(row["text"], list(row["tokens"]), list(row["logprobs"]), mean))
        return out

    def _need_classifier(self) -> None:
        if self.mode != "classifier":
            raise LmforgeError("word attributions need a single-label classifier; for a language model ask for token log-probabilities")

    def _target(self, target: int | str | None) -> int | None:
        if target is None:
            return None
        if isinstance(target, str) and target in self.label_names:
            return self.label_names.index(target)
        if isinstance(target, int) and 0 <= target < len(self.label_names):
            return target
        raise LmforgeError(f"target {target!r} is not a class of this run; choose one of {', '.join(self.label_names)}")


def logprob_table(row: TokenLogprobs) -> str:
    """Aligned plain-text rows (position, token, log-probability, probability) of one scored text."""
    width = max([5, *(len(t) for t in row.tokens)])
    mean = "n/a" if row.mean_logprob is None else f"{row.mean_logprob:.4f}"
    lines = [f"mean log-probability {mean}", f"{'#':>3}  {'token':<{width}}  {'logprob':>9}  {'prob':>7}", "-" * (width + 26)]
    for i, (token, value) in enumerate(zip(row.tokens, row.logprobs)):
        cells = (f"{value:>+9.4f}", f"{math.exp(value):>7.4f}") if value is not None else (f"{'-':>9}", f"{'-':>7}")
        lines.append(f"{i:>3}  {token:<{width}}  {cells[0]}  {cells[1]}")
    return "\n".join(lines)


def logprob_html(rows: TokenLogprobs | Sequence[TokenLogprobs]) -> str:
    """Self-contained HTML (inline styles only): each token shaded red the less likely the model found it."""
    items = [rows] if isinstance(rows, TokenLogprobs) else list(rows)
    blocks = []
    for row in items:
        spans = []
        for token, value in zip(row.tokens, row.logprobs):
            # Probability 1 is unshaded, probability near 0 fully red: the surprising tokens stand out.
            alpha = 0.0 if value is None else 0.8 * (1.0 - math.exp(value))
            tip = "no context" if value is None else f"logprob {value:+.4f}"
            spans.append(f'<span title="{tip}" style="background:rgba(220,38,38,{alpha:.3f});border-radius:3px;padding:0 2px;'
                         f'margin:0 1px">{html.escape(token)}</span>')
        mean = "n/a" if row.mean_logprob is None else f"{row.mean_logprob:.3f}"
        blocks.append(f'<div style="margin:0.6em 0"><div style="font-size:0.8em;color:#555">mean log-probability {mean}</div>'
                      f'<div style="font-family:ui-monospace,monospace">{"".join(spans)}</div></div>')
    return f'<div class="lmforge-logprobs" style="font-family:system-ui,sans-serif;line-height:1.9;max-width:60em">{"".join(blocks)}</div>'


def html_page(body: str, title: str) -> str:
    """A whole HTML document around a fragment from :func:`~lmforge.evaluation.explain.to_html` or :func:`logprob_html`."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
            f'<body style="margin:2em">\n<h1 style="font-family:system-ui,sans-serif;font-size:1.2em">{html.escape(title)}</h1>\n'
            f"{body}\n</body></html>\n")
