"""Why a classifier predicted what it did: per-word attributions, their faithfulness, and views of them.

Two attribution methods share one unit, the *word* of :func:`word_spans` (a run of letters or digits,
a run of punctuation, or one CJK character), so their scores are comparable and have character
offsets into the original text:

- :func:`occlusion` needs only black-box access (``predict_proba``), so every lmforge artifact can
  be explained by it;
- :func:`integrated_gradients` needs the Hugging Face model and its fast tokenizer (Captum's
  ``LayerIntegratedGradients``); sub-token scores are summed into words by their offsets.

:func:`comprehensiveness` measures how faithful attributions are, :func:`top_words` aggregates them
per class, and :func:`to_html` / :func:`to_table` render one.
"""

from __future__ import annotations

import bisect
import html
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.errors import LmforgeError

PredictProba = Callable[[list[str]], np.ndarray]
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# One CJK ideograph, a word of letters/digits (with inner apostrophes: "don't", "n't"), or a punctuation run.
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*|[^\w\s]+")
_PROBA_CHUNK = 1024


@dataclass
class Explanation:
    """Per-word attributions of one prediction.

    Attributes:
        text: The explained text.
        words: The words, in text order.
        offsets: (start, end) character offsets of each word in ``text``.
        scores: One score per word; positive scores support ``label``, negative ones speak against it.
        target: Class index the scores explain.
        label: Name of that class.
        probability: The model's probability of ``label`` for ``text``.
        method: ``integrated_gradients`` or ``occlusion``.
        delta: Integrated gradients' completeness gap (sum of attributions minus the output change
            from baseline to input); None for occlusion.
    """

    text: str
    words: list[str]
    offsets: list[tuple[int, int]]
    scores: list[float]
    target: int
    label: str
    probability: float
    method: str
    delta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the words of ``text``: letter/digit runs, punctuation runs, single CJK characters."""
    return [m.span() for m in _WORD.finditer(text)]


def delete_words(text: str, spans: Sequence[tuple[int, int]], drop: set[int], replacement: str | None = None) -> str:
    """``text`` without the words whose indices are in ``drop`` (or with ``replacement`` in their place).

    A deleted word takes the whitespace after it along, so "a b c" without "b" reads "a c".
    """
    pieces, pos = [], 0
    for i, (start, end) in enumerate(spans):
        if i not in drop:
            continue
        pieces.append(text[pos:start])
        if replacement is not None:
            pieces.append(replacement)
            pos = end
        else:
            pos = end + len(text[end:]) - len(text[end:].lstrip())
    pieces.append(text[pos:])
    return "".join(pieces)


def model_predict_proba(model: nn.Module, tokenizer: Any, batch_size: int = 64, max_length: int | None = None) -> PredictProba:
    """A ``predict_proba`` over a Hugging Face sequence-classification model: texts -> (N, C) softmax probabilities.

    Texts are sorted by length inside so that batches carry little padding; rows come back in input order.
    """
    device = next(model.parameters()).device
    limit = max_length or min(getattr(tokenizer, "model_max_length", 512), 512)

    def predict_proba(texts: list[str]) -> np.ndarray:
        model.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=limit, return_tensors="pt")
                logits = _logits(model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)))
                probs = logits.float().softmax(-1).cpu().numpy()  # (B, C)
                for i, p in zip(rows, probs):
                    out[i] = p
        return np.stack(out) if texts else np.zeros((0, 0))

    return predict_proba


def predictor_proba(predict: Callable[[list[str]], list[dict[str, Any]]], label_names: Sequence[str]) -> PredictProba:
    """A ``predict_proba`` over any artifact's ``predict`` (rows with a ``probabilities`` dict), columns in ``label_names`` order."""
    names = list(label_names)

    def predict_proba(texts: list[str]) -> np.ndarray:
        rows = predict(list(texts))
        return np.array([[row["probabilities"][n] for n in names] for row in rows], dtype=float).reshape(len(rows), len(names))

    return predict_proba


def occlusion(predict_proba: PredictProba, texts: Sequence[str], target: int | Sequence[int] | None = None,
              label_names: Sequence[str] | None = None, replacement: str | None = None) -> list[Explanation]:
    """Per-word scores as the drop of the target class probability when the word is deleted (or replaced).

    Captum's ``Occlusion`` slides a window over a fixed-shape tensor; here the unit is a variable-length
    word of raw text and the model may be a black box, so every one-word-less copy of every text is
    built as a string and all of them go through ``predict_proba`` in large batches.

    Args:
        predict_proba: Texts -> (N, C) class probabilities.
        texts: Texts to explain.
        target: Class index to explain, one for all or one per text; default the predicted class.
        label_names: Class names for the explanations; default the class indices as strings.
        replacement: Put this (e.g. ``"[MASK]"``) in place of the word instead of deleting it.

    Returns:
        One :class:`Explanation` per text.
    """
    texts = list(texts)
    spans = [word_spans(t) for t in texts]
    variants = [delete_words(t, s, {i}, replacement) for t, s in zip(texts, spans) for i in range(len(s))]
    probs = _proba(predict_proba, texts + variants)
    base, varied = probs[:len(texts)], probs[len(texts):]
    targets = _targets(target, base)
    out, pos = [], 0
    for i, (text, span) in enumerate(zip(texts, spans)):
        drops = base[i, targets[i]] - varied[pos:pos + len(span), targets[i]]  # (words,)
        pos += len(span)
        out.append(_explanation(text, span, drops.tolist(), targets[i], float(base[i, targets[i]]), label_names, "occlusion"))
    return out


def integrated_gradients(model: nn.Module, tokenizer: Any, texts: Sequence[str], target: int | Sequence[int] | None = None,
                         label_names: Sequence[str] | None = None, n_steps: int = 50, baseline: str = "pad",
                         layer: str = "word", output: str = "probability", batch_size: int = 8,
                         internal_batch_size: int = 128, max_length: int | None = None) -> list[Explanation]:
    """Integrated gradients of the target class on the input embeddings (Captum), summed from sub-tokens to words.

    Args:
        model: A Hugging Face sequence-classification model (``model(input_ids, attention_mask).logits``).
        tokenizer: Its fast tokenizer (offsets are needed to map sub-tokens to words).
        texts: Texts to explain.
        target: Class index, one for all or one per text; default the predicted class.
        label_names: Class names; default the model config's ``id2label``.
        n_steps: Riemann steps of the path integral.
        baseline: Token every non-special token becomes on the baseline path: ``pad`` or ``mask``.
        layer: ``word`` (the word-embedding table) or ``embeddings`` (the embedding block's output:
            words, positions, token types, normalisation).
        output: Explain the target's ``probability`` (attributions sum to its change) or its ``logit``.
        batch_size: Texts attributed together.
        internal_batch_size: Rows (texts x steps) per forward pass, which bounds memory.
        max_length: Token limit; words past it get score 0. Default the tokenizer's limit (at most 512).

    Returns:
        One :class:`Explanation` per text, ``delta`` set to the completeness gap.

    Raises:
        LmforgeError: Captum is missing, the tokenizer is not fast, or an option is unknown.
    """
    try:
        from captum.attr import LayerIntegratedGradients  # optional: lmforge[explain]
    except ImportError:
        raise LmforgeError("integrated gradients need Captum: pip install 'lmforge[explain]'") from None
    _check_ig_options(tokenizer, baseline, output)
    names = list(label_names) if label_names is not None else _model_label_names(model)
    device = next(model.parameters()).device
    model.eval()

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = _logits(model(input_ids=ids, attention_mask=mask)).float()  # (B, C)
        return logits.softmax(-1) if output == "probability" else logits

    lig = LayerIntegratedGradients(forward, _ig_layer(model, layer))
    base_id = tokenizer.pad_token_id if baseline == "pad" else tokenizer.mask_token_id
    limit = max_length or min(getattr(tokenizer, "model_max_length", 512), 512)
    texts, out = list(texts), []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=limit, return_tensors="pt",
                        return_offsets_mapping=True, return_special_tokens_mask=True)
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)  # (B, T)
        base = torch.where(enc["special_tokens_mask"].bool().to(device), ids, torch.full_like(ids, base_id))
        with torch.no_grad():
            probs = _logits(model(input_ids=ids, attention_mask=mask)).float().softmax(-1).cpu().numpy()  # (B, C)
        targets = _targets(target if target is None or isinstance(target, int) else target[start:start + len(chunk)], probs)
        attr, delta = lig.attribute(ids, baselines=base, target=targets, additional_forward_args=(mask,), n_steps=n_steps,
                                    internal_batch_size=max(internal_batch_size, 2 * len(chunk)), return_convergence_delta=True)
        token_scores = attr.sum(-1).detach().cpu().numpy()  # (B, T, H) -> (B, T)
        for b, text in enumerate(chunk):
            spans = word_spans(text)
            scores = _to_words(token_scores[b], enc["offset_mapping"][b].tolist(), enc["special_tokens_mask"][b].tolist(), spans)
            out.append(_explanation(text, spans, scores, targets[b], float(probs[b, targets[b]]), names,
                                    "integrated_gradients", float(delta[b])))
    return out


def comprehensiveness(predict_proba: PredictProba, texts: Sequence[str], attributions: Sequence[Explanation], share: float = 0.2,
                      seed: int = 0, draws: int = 5, absolute: bool = False) -> dict[str, float]:
    """How much deleting the top-attributed words hurts the prediction, beyond deleting random words.

    For each text, the ``share`` of its words with the highest scores (at least one) is deleted and
    the drop of the explained class's probability is measured; the same number of random words is
    deleted ``draws`` times for the reference. A faithful attribution gives a large positive ``gap``.

    Args:
        predict_proba: Texts -> (N, C) class probabilities.
        texts: The explained texts.
        attributions: Their explanations (same order), e.g. from :func:`occlusion`.
        share: Fraction of words deleted.
        seed: Seed of the random deletions.
        draws: Random deletions per text.
        absolute: Rank words by absolute score instead of signed score (signed: words that support the class).

    Returns:
        ``top_drop`` and ``random_drop`` (mean probability drops), ``gap`` (their difference) and ``num_texts``.

    Raises:
        LmforgeError: ``texts`` and ``attributions`` do not match.
    """
    texts = list(texts)
    if len(texts) != len(attributions) or any(t != a.text for t, a in zip(texts, attributions)):
        raise LmforgeError("comprehensiveness needs one explanation per text, in the same order; explain exactly these texts")
    rng = np.random.default_rng(seed)
    kept = [(t, a) for t, a in zip(texts, attributions) if a.offsets]
    if not kept:
        return {"top_drop": 0.0, "random_drop": 0.0, "gap": 0.0, "share": share, "num_texts": 0}
    top, rand = [], []
    for text, expl in kept:
        n = len(expl.offsets)
        k = max(1, round(share * n))
        ranking = np.abs(expl.scores) if absolute else np.asarray(expl.scores)
        top.append(delete_words(text, expl.offsets, set(np.argsort(-ranking, kind="stable")[:k].tolist())))
        rand += [delete_words(text, expl.offsets, set(rng.choice(n, k, replace=False).tolist())) for _ in range(draws)]
    probs = _proba(predict_proba, [t for t, _ in kept] + top + rand)  # (m + m + m * draws, C)
    m, targets = len(kept), np.array([a.target for _, a in kept], dtype=int)
    base = probs[np.arange(m), targets]
    top_mean = float((base - probs[m + np.arange(m), targets]).mean())
    rand_mean = float((np.repeat(base, draws) - probs[2 * m + np.arange(m * draws), np.repeat(targets, draws)]).mean())
    return {"top_drop": top_mean, "random_drop": rand_mean, "gap": top_mean - rand_mean, "share": share, "num_texts": m}


def top_words(explanations: Sequence[Explanation], k: int = 10, min_count: int = 3, lowercase: bool = True) -> dict[str, Any]:
    """The most influential words per explained class, over many explanations.

    Args:
        explanations: Explanations of a sample of texts (any method).
        k: Words kept per class and direction.
        min_count: Words seen fewer times under a class are left out (rare words have noisy means).
        lowercase: Count "Good" and "good" as one word.

    Returns:
        ``{label: {"for": [...], "against": [...], "num_texts": n}}``: each list holds ``{"word", "mean", "count"}``
        rows, ``for`` by highest mean score (the word pushes towards the class), ``against`` by lowest.
    """
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    texts: dict[str, int] = defaultdict(int)
    for expl in explanations:
        texts[expl.label] += 1
        for word, score in zip(expl.words, expl.scores):
            cell = sums[expl.label][word.lower() if lowercase else word]
            cell[0] += score
            cell[1] += 1
    out: dict[str, Any] = {}
    for label, words in sums.items():
        rows = [{"word": w, "mean": s / c, "count": int(c)} for w, (s, c) in words.items() if c >= min_count]
        rows.sort(key=lambda r: (-r["mean"], r["word"]))
        against = [r for r in reversed(rows) if r["mean"] < 0][:k]
        out[label] = {"for": [r for r in rows if r["mean"] > 0][:k], "against": against, "num_texts": texts[label]}
    return out


def to_html(explanation: Explanation | Sequence[Explanation]) -> str:
    """Self-contained HTML (inline styles only) with each word shaded green (supports the label) or red (against it)."""
    items = [explanation] if isinstance(explanation, Explanation) else list(explanation)
    blocks = "".join(_html_block(e) for e in items)
    return f'<div class="lmforge-explanation" style="font-family:system-ui,sans-serif;line-height:1.9;max-width:60em">{blocks}</div>'


def to_table(explanation: Explanation, top: int | None = None) -> str:
    """Aligned plain-text rows (word, start, end, score): text order, or the ``top`` words by absolute score."""
    rows = list(zip(explanation.words, explanation.offsets, explanation.scores))
    if top is not None:
        rows = sorted(rows, key=lambda r: -abs(r[2]))[:top]
    width = max([4, *(len(w) for w, _, _ in rows)])
    head = f"{explanation.label} (p={explanation.probability:.3f}, {explanation.method})"
    lines = [head, f"{'word':<{width}}  {'start':>5}  {'end':>5}  {'score':>9}", "-" * (width + 27)]
    lines += [f"{w:<{width}}  {s:>5}  {e:>5}  {v:>+9.4f}" for w, (s, e), v in rows]
    return "\n".join(lines)


def _html_block(expl: Explanation) -> str:
    """One explanation: a caption line and the text with shaded word spans; everything else copied verbatim, escaped."""
    peak = max((abs(s) for s in expl.scores), default=0.0) or 1.0
    parts, pos = [], 0
    for (start, end), score in zip(expl.offsets, expl.scores):
        alpha = 0.08 + 0.72 * abs(score) / peak if score else 0.0
        rgb = "22,163,74" if score > 0 else "220,38,38"
        parts.append(html.escape(expl.text[pos:start]))
        parts.append(f'<span title="{score:+.4f}" style="background:rgba({rgb},{alpha:.3f});border-radius:3px;padding:0 1px">'
                     f"{html.escape(expl.text[start:end])}</span>")
        pos = end
    parts.append(html.escape(expl.text[pos:]))
    caption = f"{html.escape(expl.label)} · p={expl.probability:.3f} · {html.escape(expl.method)}"
    return (f'<div style="margin:0.6em 0"><div style="font-size:0.8em;color:#555">{caption}</div>'
            f'<div style="white-space:pre-wrap">{"".join(parts)}</div></div>')


def _explanation(text: str, spans: list[tuple[int, int]], scores: list[float], target: int, probability: float,
                 label_names: Sequence[str] | None, method: str, delta: float | None = None) -> Explanation:
    label = str(label_names[target]) if label_names is not None and target < len(label_names) else str(target)
    return Explanation(text, [text[s:e] for s, e in spans], [tuple(s) for s in spans], [float(v) for v in scores],
                       int(target), label, probability, method, delta)


def _to_words(token_scores: np.ndarray, offsets: list[list[int]], special: list[int], spans: list[tuple[int, int]]) -> list[float]:
    """Sum token scores (T,) into the words they overlap; special and empty tokens are skipped."""
    ends = [e for _, e in spans]
    scores = [0.0] * len(spans)
    for score, (start, end), is_special in zip(token_scores, offsets, special):
        if is_special or end <= start:
            continue
        # The first word ending after the token's start; a leading-space token ("▁x") still lands on x.
        i = bisect.bisect_right(ends, start)
        if i < len(spans) and spans[i][0] < end:
            scores[i] += float(score)
    return scores


def _proba(predict_proba: PredictProba, texts: list[str]) -> np.ndarray:
    """``predict_proba`` in chunks, so that thousands of variants never go through in one call."""
    parts = [np.asarray(predict_proba(texts[i:i + _PROBA_CHUNK]), dtype=float) for i in range(0, len(texts), _PROBA_CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def _targets(target: int | Sequence[int] | None, probs: np.ndarray) -> list[int]:
    """Per-row class indices: the given one(s), or the argmax of ``probs`` (N, C)."""
    if target is None:
        return probs.argmax(axis=1).tolist()
    if isinstance(target, int):
        targets = [target] * len(probs)
    else:
        targets = [int(t) for t in target]
    if len(targets) != len(probs) or any(not 0 <= t < probs.shape[1] for t in targets):
        raise LmforgeError(f"target must be one class index in [0, {probs.shape[1]}) or one per text; got {target!r}")
    return targets


def _logits(output: Any) -> torch.Tensor:
    """The logits of a model output object or tuple."""
    return output.logits if hasattr(output, "logits") else output[0]


def _model_label_names(model: nn.Module) -> list[str] | None:
    """Class names from the model config's ``id2label``, when it has one."""
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    return [str(id2label[i]) for i in range(len(id2label))] if id2label else None


def _ig_layer(model: nn.Module, layer: str) -> nn.Module:
    """The module whose output integrated gradients interpolate."""
    if layer == "word":
        return model.get_input_embeddings()
    block = getattr(getattr(model, "base_model", model), "embeddings", None)
    if layer == "embeddings" and isinstance(block, nn.Module):
        return block
    raise LmforgeError(f"layer must be 'word' or 'embeddings' (a model with an embeddings block); got {layer!r}")


def _check_ig_options(tokenizer: Any, baseline: str, output: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise LmforgeError("integrated gradients map sub-tokens to words by offsets, which needs a fast tokenizer; load it with use_fast=True")
    if baseline not in ("pad", "mask") or getattr(tokenizer, f"{baseline}_token_id", None) is None:
        raise LmforgeError(f"baseline must be 'pad' or 'mask', a token the tokenizer has; got {baseline!r}")
    if output not in ("probability", "logit"):
        raise LmforgeError(f"output must be 'probability' or 'logit'; got {output!r}")
