"""Span metrics: entity-level NER scores (seqeval, conlleval matching) and extractive QA scores (SQuAD, CMRC 2018).

Scores are fractions in [0, 1], like the other lmforge metrics (the official QA scripts print percentages).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lmforge.data.segment import is_chinese
from lmforge.data.tagging import bio_to_spans
from lmforge.errors import LmforgeError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SQUAD_PUNCT = set(string.punctuation)
_CJK_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _seqeval() -> Any:
    try:
        from seqeval import metrics  # optional: lmforge[spans]
    except ImportError:
        raise LmforgeError("entity-level NER metrics need seqeval: pip install 'lmforge[spans]'") from None
    return metrics


def _check_tag_lists(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise LmforgeError(f"got {len(gold)} gold sentences but {len(pred)} predicted ones")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise LmforgeError(f"sentence {i} has {len(g)} gold tags but {len(p)} predicted tags")


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level precision, recall and F1 of IOB2 tag sequences, per type, micro and macro.

    An entity counts only when its boundaries and type both match (conlleval; seqeval's default mode).

    Args:
        gold: Gold IOB2 tags per sentence.
        pred: Predicted IOB2 tags per sentence, same lengths.

    Returns:
        A dict with ``micro_precision``, ``micro_recall``, ``micro_f1``, ``macro_precision``, ``macro_recall``,
        ``macro_f1``, ``per_class`` (per entity type: precision, recall, f1, support), ``confusion`` (see
        :func:`entity_confusion`), ``num_entities`` (gold) and ``num_sentences``.

    Raises:
        LmforgeError: The lists differ in length.
    """
    _check_tag_lists(gold, pred)
    gold_lists, pred_lists = [list(g) for g in gold], [list(p) for p in pred]
    with warnings.catch_warnings():
        # seqeval warns about types with no gold or no predicted entity; zero_division=0 scores them 0.
        warnings.simplefilter("ignore")
        report = _seqeval().classification_report(gold_lists, pred_lists, output_dict=True, zero_division=0)
    averages = {name: report.pop(name, {}) for name in ("micro avg", "macro avg", "weighted avg")}
    out: dict[str, Any] = {}
    for average in ("micro", "macro"):
        row = averages[f"{average} avg"]
        for key, name in (("precision", "precision"), ("recall", "recall"), ("f1-score", "f1")):
            # With no entity at all seqeval's macro average is NaN; report it as undefined, like other lmforge metrics.
            value = float(row.get(key, 0.0))
            out[f"{average}_{name}"] = None if math.isnan(value) else value
    out["per_class"] = {kind: {"precision": float(row["precision"]), "recall": float(row["recall"]), "f1": float(row["f1-score"]),
                               "support": int(row["support"])} for kind, row in sorted(report.items())}
    out["confusion"] = entity_confusion(gold, pred)
    out["num_entities"] = sum(len(bio_to_spans(g)) for g in gold)
    out["num_sentences"] = len(gold)
    return out


def entity_confusion(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Where gold entities went: to a predicted span of the same boundaries (of which type), or missed; and spurious predictions.

    Returns:
        ``{"types": [...], "table": {gold_type: {pred_type: n, ..., "missed": n}}, "spurious": {pred_type: n}}``:
        ``table[g][p]`` counts gold ``g`` entities predicted with exactly their boundaries as type ``p``
        (the diagonal is the correct ones); ``missed`` counts gold entities no prediction has the boundaries
        of; ``spurious`` counts predicted entities whose boundaries match no gold entity.
    """
    _check_tag_lists(gold, pred)
    pairs: Counter[tuple[str, str]] = Counter()
    missed: Counter[str] = Counter()
    spurious: Counter[str] = Counter()
    for g, p in zip(gold, pred):
        gold_spans = {(s, e): t for s, e, t in bio_to_spans(g)}
        pred_spans = {(s, e): t for s, e, t in bio_to_spans(p)}
        for edges, kind in gold_spans.items():
            if edges in pred_spans:
                pairs[kind, pred_spans[edges]] += 1
            else:
                missed[kind] += 1
        spurious.update(kind for edges, kind in pred_spans.items() if edges not in gold_spans)
    types = sorted({t for pair in pairs for t in pair} | set(missed) | set(spurious))
    table = {g: {**{p: pairs[g, p] for p in types}, "missed": missed[g]} for g in types}
    return {"types": types, "table": table, "spurious": {t: spurious[t] for t in types}}


def normalize_squad(text: str) -> str:
    """SQuAD's answer normalization: lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(c for c in text.lower() if c not in _SQUAD_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _token_f1(pred: list[str], gold: list[str]) -> float:
    """F1 of the bag-of-tokens overlap; both empty scores 1 (SQuAD 2.0's no-answer agreement)."""
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _references(references: Sequence[str]) -> list[str]:
    """The references to score against: an unanswerable question's is the empty answer (SQuAD 2.0)."""
    return list(references) or [""]


def squad_exact(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalized prediction equals a normalized reference, else 0.0."""
    return max(float(normalize_squad(prediction) == normalize_squad(r)) for r in _references(references))


def squad_f1(prediction: str, references: Sequence[str]) -> float:
    """The best token F1 of the normalized prediction against any reference."""
    tokens = normalize_squad(prediction).split()
    return max(_token_f1(tokens, normalize_squad(r).split()) for r in _references(references))


def _is_punct(char: str) -> bool:
    return char in _SQUAD_PUNCT or unicodedata.category(char).startswith("P")


def cmrc_tokens(text: str) -> list[str]:
    """CMRC 2018 units of ``text``: each CJK character alone, runs of other letters and digits as whole words.

    Text is lowercased; punctuation (Chinese and English) and whitespace are dropped and end a word.
    """
    units, word = [], ""
    for char in text.lower():
        if char.isalnum() and not _CJK_IDEOGRAPH.match(char):
            word += char
            continue
        if word:
            units.append(word)
            word = ""
        if not (char.isspace() or _is_punct(char)):
            units.append(char)
    return units + [word] if word else units


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest common contiguous run of units, as the official CMRC script measures overlap."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_exact(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the prediction equals a reference after lowercasing and removing punctuation and whitespace."""
    strip = lambda t: "".join(cmrc_tokens(t))  # noqa: E731
    return max(float(strip(prediction) == strip(r)) for r in _references(references))


def cmrc_f1(prediction: str, references: Sequence[str]) -> float:
    """The best CMRC 2018 F1 against any reference: precision and recall of the longest common run of units."""
    pred = cmrc_tokens(prediction)
    scores = []
    for reference in _references(references):
        gold = cmrc_tokens(reference)
        if not pred or not gold:
            scores.append(float(pred == gold))
            continue
        common = _longest_common_run(gold, pred)
        scores.append(0.0 if not common else 2 * common / (len(pred) + len(gold)))
    return max(scores)


def qa_convention(language: str = "auto", sample: Sequence[str] = ()) -> str:
    """``squad`` or ``cmrc``: the scoring convention for ``language`` (``en``, ``zh`` or ``auto``, decided by ``sample``)."""
    lowered = language.lower()
    if lowered == "auto":
        return "cmrc" if is_chinese("".join(sample[:500])) else "squad"
    if lowered.startswith("zh") or lowered in ("chinese", "cmrc"):
        return "cmrc"
    return "squad"


def qa_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]], language: str = "auto") -> dict[str, Any]:
    """Exact match and F1 of predicted answers, each the best over the question's references, averaged.

    Args:
        predictions: One predicted answer text per question ("" for no answer).
        references: The reference answer texts of each question (empty for an unanswerable one).
        language: ``en`` (SQuAD normalization and token F1), ``zh`` (CMRC 2018 character F1) or ``auto``.

    Returns:
        ``{"exact_match", "f1", "num_examples", "convention"}``.

    Raises:
        LmforgeError: The lists differ in length or are empty.
    """
    if len(predictions) != len(references) or not predictions:
        raise LmforgeError(f"QA metrics need one prediction per question; got {len(predictions)} predictions for {len(references)} questions")
    convention = qa_convention(language, [r for refs in references[:200] for r in refs])
    exact, f1 = (cmrc_exact, cmrc_f1) if convention == "cmrc" else (squad_exact, squad_f1)
    n = len(predictions)
    return {"exact_match": sum(exact(p, r) for p, r in zip(predictions, references)) / n,
            "f1": sum(f1(p, r) for p, r in zip(predictions, references)) / n, "num_examples": n, "convention": convention}
