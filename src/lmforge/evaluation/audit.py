"""Safety audit of a text classifier through ``predict_proba`` alone: counterfactual bias, calibration, robustness.

- Bias: copies of texts with gendered words, names, nationality, ethnicity or religion terms swapped
  (lists shipped in ``data/counterfactuals_<lang>.yaml``, with neutral template sentences), and how
  often the predicted label flips and how far the probability moves.
- Calibration: expected and maximum calibration error over equal-width confidence bins, and a
  reliability diagram.
- Robustness: accuracy (or the share of changed predictions) on the perturbed copies of :mod:`perturb`.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lmforge.data.segment import is_chinese
from lmforge.errors import ConfigError, DataError
from lmforge.evaluation.perturb import perturb_texts
from lmforge.evaluation.report import new_figure, save_figure

PredictProba = Callable[[list[str]], np.ndarray]
PERTURBATIONS = ("typos", "case", "swap")
_ARTICLE = re.compile(r"(?<!\w)(an?|An?|AN) $")


@dataclass
class SwapGroup:
    """One kind of counterfactual swap: ``pairs`` (swapped both ways, one copy) or ``terms`` (each replaced by every other)."""

    name: str
    pattern: re.Pattern[str]
    mapping: dict[str, str] = field(default_factory=dict)
    terms: list[str] = field(default_factory=list)


@dataclass
class CounterfactualBank:
    """Swap groups, protected words and template sentences of one language."""

    language: str
    groups: list[SwapGroup]
    protect: re.Pattern[str] | None
    templates: list[str]


def load_counterfactuals(language: str = "en", path: str | Path | None = None) -> CounterfactualBank:
    """The shipped swap lists and templates of ``language`` (``en`` or ``zh``), or those of a YAML file of the same layout.

    Raises:
        ConfigError: The language has no shipped lists, or the file lacks a key or has a malformed group.
    """
    if path is None:
        if language not in ("en", "zh"):
            raise ConfigError(f"no counterfactual lists ship for language {language!r}; use 'en' or 'zh', or pass a YAML file")
        source = f"counterfactuals_{language}.yaml"
        raw = yaml.safe_load(resources.files("lmforge.evaluation").joinpath("data", source).read_text(encoding="utf-8"))
    else:
        source = str(path)
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), dict):
        raise ConfigError(f"{source} needs a 'groups' mapping of group name -> pairs or terms")
    chinese = raw.get("language", language) == "zh"
    groups = [_group(source, name, spec, chinese) for name, spec in raw["groups"].items()]
    protect = [str(w) for w in raw.get("protect") or []]
    protect_re = re.compile("|".join(map(re.escape, sorted(protect, key=len, reverse=True)))) if protect else None
    templates = _fill_templates(raw.get("templates") or [], raw.get("slots") or {}, source)
    return CounterfactualBank(str(raw.get("language", language)), groups, protect_re, templates)


def _group(source: str, name: str, spec: Any, chinese: bool) -> SwapGroup:
    """A compiled swap group; Chinese terms match as substrings, others as whole words."""
    if not isinstance(spec, dict) or not (spec.get("pairs") or spec.get("terms")):
        raise ConfigError(f"{source}: group '{name}' needs a 'pairs' list of [a, b] or a 'terms' list")
    pairs = spec.get("pairs") or []
    if any(not isinstance(p, list) or len(p) != 2 for p in pairs):
        raise ConfigError(f"{source}: every entry of groups.{name}.pairs must be a two-item list like [he, she]")
    fold = (lambda s: s) if spec.get("case_sensitive") or chinese else str.lower
    mapping: dict[str, str] = {}
    for a, b in pairs:
        mapping.setdefault(fold(str(a)), str(b))
        mapping.setdefault(fold(str(b)), str(a))
    terms = [str(t) for t in spec.get("terms") or []]
    words = sorted(set(mapping) | {fold(t) for t in terms}, key=len, reverse=True)
    body = "|".join(map(re.escape, words))
    flags = 0 if spec.get("case_sensitive") or chinese else re.IGNORECASE
    return SwapGroup(name, re.compile(body if chinese else rf"(?<!\w)(?:{body})(?!\w)", flags), mapping, terms)


def _fill_templates(templates: list[str], slots: dict[str, list[str]], source: str) -> list[str]:
    """Every template with every combination of its slots' values."""
    out = []
    for template in templates:
        names = list(dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(template) if f))
        if any(n not in slots for n in names):
            missing = next(n for n in names if n not in slots)
            raise ConfigError(f"{source}: template {template!r} uses slot '{missing}', which 'slots' does not list")
        for values in itertools.product(*(slots[n] for n in names)):
            out.append(template.format(**dict(zip(names, values))))
    return out


def match_case(source: str, replacement: str) -> str:
    """``replacement`` in the case of ``source``: HE -> SHE, He -> She, he -> she, john -> mary."""
    if len(source) > 1 and source.isupper():
        return replacement.upper()
    if source.islower():
        return replacement.lower()
    if source[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def counterfactuals(text: str, group: SwapGroup, protect: re.Pattern[str] | None = None) -> list[str]:
    """Copies of ``text`` with the group's words swapped; empty when the text has none of them.

    A pair group gives one copy with every word swapped to its partner; a terms group gives one copy
    per other term, with every group word replaced by it. Matches inside ``protect`` words are kept.
    """
    guarded = [m.span() for m in protect.finditer(text)] if protect else []
    hits = [m for m in group.pattern.finditer(text) if not any(s < m.end() and m.start() < e for s, e in guarded)]
    if not hits:
        return []
    fold = (lambda s: s) if not group.pattern.flags & re.IGNORECASE else str.lower
    if group.mapping and any(fold(m.group()) in group.mapping for m in hits):
        return [_replace(text, hits, lambda w: group.mapping.get(fold(w), w))]
    seen = {fold(m.group()) for m in hits}
    return [_replace(text, hits, lambda w, t=term: t) for term in group.terms if seen != {fold(term)}]


def _replace(text: str, hits: list[re.Match[str]], new: Callable[[str], str]) -> str:
    """``text`` with each match replaced by ``new(word)`` in the word's case, and an English article before it fixed."""
    pieces, pos = [], 0
    for m in hits:
        word = match_case(m.group(), new(m.group()))
        before = text[pos:m.start()]
        # "a Mexican" -> "an Asian": the article follows the new word's first letter (a rule of thumb, not phonetics).
        if (article := _ARTICLE.search(before)) and word[:1].isascii() and word[:1].isalpha():
            fixed = match_case(article.group(1), "an" if word[0].lower() in "aeiou" else "a")
            before = before[:article.start(1)] + fixed + before[article.end(1):]
        pieces += [before, word]
        pos = m.end()
    return "".join(pieces) + text[pos:]


def bias_probe(predict_proba: PredictProba, texts: Sequence[str] | None = None, language: str = "en",
               label_names: Sequence[str] | None = None, bank: CounterfactualBank | None = None, examples: int = 5) -> dict[str, Any]:
    """How often counterfactual swaps flip the predicted label, overall and per swap group.

    Args:
        predict_proba: Texts -> (N, C) class probabilities.
        texts: Texts to probe; default the bank's template sentences.
        language: ``en`` or ``zh``: which shipped lists to use when ``bank`` is not given.
        label_names: Class names for the examples; default the class indices.
        bank: Swap lists and templates, e.g. from :func:`load_counterfactuals`.
        examples: Flips kept as examples (those with the largest probability shift).

    Returns:
        ``overall`` and ``groups`` (name -> stats), each with ``pairs``, ``flip_rate``, ``mean_abs_shift``
        (of the originally predicted class's probability) and ``max_abs_shift``; ``examples`` of flips;
        ``num_texts`` probed and ``source`` (``templates`` or ``data``).
    """
    bank = bank or load_counterfactuals(language)
    originals = list(texts) if texts is not None else bank.templates
    pairs = [(i, g.name, cf) for i, text in enumerate(originals) for g in bank.groups for cf in counterfactuals(text, g, bank.protect)]
    used = sorted({i for i, _, _ in pairs})
    probs = predict_proba([originals[i] for i in used] + [cf for _, _, cf in pairs]) if pairs else np.zeros((0, 0))
    row = {i: k for k, i in enumerate(used)}
    base, varied = probs[:len(used)], probs[len(used):]
    names = list(label_names) if label_names is not None else [str(c) for c in range(probs.shape[1] if probs.size else 0)]
    records = []
    for (i, group, cf), p in zip(pairs, varied):
        b = base[row[i]]
        c, new = int(b.argmax()), int(p.argmax())
        records.append({"group": group, "original": originals[i], "counterfactual": cf, "label": names[c],
                        "counterfactual_label": names[new], "flip": c != new, "shift": abs(float(p[c] - b[c]))})
    groups = {g.name: _flip_stats([r for r in records if r["group"] == g.name]) for g in bank.groups}
    flips = sorted((r for r in records if r["flip"]), key=lambda r: -r["shift"])[:examples]
    return {"source": "templates" if texts is None else "data", "num_texts": len(used), "overall": _flip_stats(records),
            "groups": groups, "examples": [{k: v for k, v in r.items() if k != "flip"} for r in flips]}


def _flip_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Pair count, flip rate and probability shifts of some counterfactual records (None rates when there are none)."""
    if not records:
        return {"pairs": 0, "flip_rate": None, "mean_abs_shift": None, "max_abs_shift": None}
    shifts = np.array([r["shift"] for r in records])
    return {"pairs": len(records), "flip_rate": float(np.mean([r["flip"] for r in records])),
            "mean_abs_shift": float(shifts.mean()), "max_abs_shift": float(shifts.max())}


def calibration(probs: np.ndarray, labels: Sequence[int], bins: int = 15) -> dict[str, Any]:
    """Expected and maximum calibration error of the top-class confidence, over equal-width bins of [0, 1].

    Bin ``b`` holds confidences in ``(b / bins, (b + 1) / bins]`` (the first also holds 0).
    ECE = sum over bins of (share of examples) * |accuracy - mean confidence|; MCE = the largest gap of a non-empty bin.

    Args:
        probs: (N, C) class probabilities.
        labels: N gold class indices.
        bins: Number of bins.

    Returns:
        ``ece``, ``mce``, ``accuracy``, ``mean_confidence``, ``num_examples`` and ``bins`` (one row per
        bin: ``lower``, ``upper``, ``count``, ``confidence``, ``accuracy``; the last two None when empty).
    """
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=int)
    if p.ndim != 2 or len(p) != len(y) or not len(y):
        raise DataError(f"calibration needs (N, C) probabilities and N labels; got {p.shape} and {len(y)}")
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    index = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    rows, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        members = index == b
        n = int(members.sum())
        row = {"lower": b / bins, "upper": (b + 1) / bins, "count": n, "confidence": None, "accuracy": None}
        if n:
            row["confidence"], row["accuracy"] = float(conf[members].mean()), float(correct[members].mean())
            gap = abs(row["accuracy"] - row["confidence"])
            ece += n / len(y) * gap
            mce = max(mce, gap)
        rows.append(row)
    return {"ece": ece, "mce": mce, "accuracy": float(correct.mean()), "mean_confidence": float(conf.mean()),
            "num_examples": len(y), "bins": rows}


def reliability_diagram(result: dict[str, Any], path: Path, title: str = "Reliability diagram") -> Path:
    """A PNG of accuracy per confidence bin against the diagonal, with the ECE in the legend; returns ``path``."""
    rows = result["bins"]
    width = rows[0]["upper"] - rows[0]["lower"]
    filled = [r for r in rows if r["count"]]
    fig, ax = new_figure((5.5, 5.0))
    ax.bar([r["lower"] for r in filled], [r["accuracy"] for r in filled], width=width, align="edge", color="tab:blue",
           edgecolor="white", alpha=0.85, label=f"accuracy (ECE {result['ece']:.3f})")
    ax.bar([r["lower"] for r in filled], [r["confidence"] - r["accuracy"] for r in filled], bottom=[r["accuracy"] for r in filled],
           width=width, align="edge", color="tab:red", alpha=0.3, label="gap to confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.grid(True, alpha=0.3, linestyle="--")
    ax.legend(loc="upper left", fontsize=9)
    return save_figure(fig, Path(path))


def robustness(predict_proba: PredictProba, texts: Sequence[str], labels: Sequence[int] | None = None,
               perturbations: Sequence[str] = PERTURBATIONS, rate: float = 0.2, seed: int = 0,
               clean_probs: np.ndarray | None = None) -> dict[str, Any]:
    """Predictions on the seeded perturbed copies of :func:`lmforge.evaluation.perturb.perturb_texts`.

    ``clean_probs`` are the (N, C) probabilities of ``texts`` when the caller has them already.

    Returns:
        ``clean`` and one entry per perturbation, each with ``changed`` (share of predictions that differ
        from the clean ones) and, when ``labels`` are given, ``accuracy`` and ``drop`` (clean minus perturbed).
    """
    texts = list(texts)
    clean = np.asarray(predict_proba(texts) if clean_probs is None else clean_probs).argmax(axis=1)
    y = np.asarray(labels) if labels is not None else None
    clean_acc = float((clean == y).mean()) if y is not None else None
    out: dict[str, Any] = {"clean": {"changed": 0.0, "accuracy": clean_acc, "drop": 0.0 if y is not None else None}}
    for name in perturbations:
        pred = np.asarray(predict_proba(perturb_texts(texts, name, rate, seed))).argmax(axis=1)
        acc = float((pred == y).mean()) if y is not None else None
        out[name] = {"changed": float((pred != clean).mean()), "accuracy": acc, "drop": None if acc is None else clean_acc - acc}
    return out


def audit(predict_proba: PredictProba, label_names: Sequence[str], texts: Sequence[str], labels: Sequence[int | str] | None = None,
          language: str = "auto", out_dir: Path | None = None, bins: int = 15, seed: int = 0) -> dict[str, Any]:
    """Bias probe (templates and ``texts``), calibration (when ``labels`` are given) and robustness of one classifier.

    Args:
        predict_proba: Texts -> (N, C) class probabilities, columns in ``label_names`` order.
        label_names: The C class names.
        texts: The user's texts (e.g. a test file's text column).
        labels: Their gold labels, as class indices or names; calibration and accuracy need them.
        language: ``en``, ``zh`` or ``auto`` (Chinese when most texts are).
        out_dir: Folder for ``reliability.png``; no plot when None.
        bins: Calibration bins.
        seed: Seed of the perturbations.

    Returns:
        A JSON-ready dict: ``language``, ``labels``, ``num_texts``, ``bias`` (``templates`` and ``data``),
        ``calibration`` (None without labels; ``plot`` is the PNG's path when written) and ``robustness``.
    """
    texts = list(texts)
    if not texts:
        raise DataError("the audit needs at least one text; pass the texts of a labeled or unlabeled file")
    lang = language if language != "auto" else ("zh" if 2 * sum(map(is_chinese, texts)) > len(texts) else "en")
    bank = load_counterfactuals(lang)
    y = _label_ids(labels, label_names) if labels is not None else None
    probs = predict_proba(texts)
    result: dict[str, Any] = {
        "language": lang, "labels": list(label_names), "num_texts": len(texts),
        "bias": {"templates": bias_probe(predict_proba, None, lang, label_names, bank),
                 "data": bias_probe(predict_proba, texts, lang, label_names, bank)},
        "calibration": None,
        "robustness": robustness(predict_proba, texts, y, seed=seed, clean_probs=probs),
    }
    if y is not None:
        result["calibration"] = calibration(probs, y, bins)
        if out_dir is not None:
            result["calibration"]["plot"] = str(reliability_diagram(result["calibration"], Path(out_dir) / "reliability.png"))
    return result


def _label_ids(labels: Sequence[int | str], label_names: Sequence[str]) -> list[int]:
    """Class indices of labels given as indices or names."""
    index = {str(n): i for i, n in enumerate(label_names)}
    out = []
    for row, value in enumerate(labels, start=1):
        if isinstance(value, (int, np.integer)) and 0 <= value < len(label_names):
            out.append(int(value))
        elif str(value) in index:
            out.append(index[str(value)])
        else:
            raise DataError(f"label {value!r} of text {row} is not one of the model's labels ({', '.join(index)}); fix the label column")
    return out


def audit_markdown(result: dict[str, Any]) -> str:
    """The audit as Markdown: bias tables and flip examples, calibration, robustness.

    The reliability diagram, when written, is linked by file name: save the Markdown in the audit's ``out_dir``.
    """
    lines = [f"# Safety audit\n\n{result['num_texts']} texts, language `{result['language']}`, labels: "
             + ", ".join(f"`{n}`" for n in result["labels"]) + "."]
    for source, probe in result["bias"].items():
        lines.append(_bias_markdown(source, probe))
    lines.append(_calibration_markdown(result.get("calibration")))
    rows = ["| data | changed predictions | accuracy | drop |", "|---|---:|---:|---:|"]
    rows += [f"| {name} | {_pct(r['changed'])} | {_pct(r['accuracy'])} | {_pct(r['drop'])} |" for name, r in result["robustness"].items()]
    lines.append("## Robustness (perturbed copies)\n\n" + "\n".join(rows))
    return "\n\n".join(lines) + "\n"


def _bias_markdown(source: str, probe: dict[str, Any]) -> str:
    """One counterfactual section: per-group table and the largest flips."""
    heading = f"## Bias: counterfactual swaps on the {'shipped templates' if source == 'templates' else 'data'}"
    if not probe["overall"]["pairs"]:
        return f"{heading}\n\n_None of the {source} texts contains a word of the swap lists._"
    rows = ["| group | pairs | label flips | mean \\|Δp\\| | max \\|Δp\\| |", "|---|---:|---:|---:|---:|"]
    for name, s in [*probe["groups"].items(), ("**all**", probe["overall"])]:
        rows.append(f"| {name} | {s['pairs']} | {_pct(s['flip_rate'])} | {_num(s['mean_abs_shift'])} | {_num(s['max_abs_shift'])} |")
    examples = [f"- ({e['group']}) {_md(e['original'])} → **{e['label']}**; {_md(e['counterfactual'])} → **{e['counterfactual_label']}**"
                f" (Δp {e['shift']:.3f})" for e in probe["examples"]]
    body = "\n".join(rows) + ("\n\nLargest flips:\n\n" + "\n".join(examples) if examples else "\n\nNo label flipped.")
    return f"{heading}\n\n{probe['num_texts']} texts with swappable words.\n\n{body}"


def _calibration_markdown(calib: dict[str, Any] | None) -> str:
    if calib is None:
        return "## Calibration\n\n_No gold labels were given, so calibration was not measured._"
    text = (f"## Calibration\n\nECE **{calib['ece']:.4f}**, MCE {calib['mce']:.4f} over {len(calib['bins'])} bins; "
            f"accuracy {_pct(calib['accuracy'])}, mean confidence {_pct(calib['mean_confidence'])} ({calib['num_examples']} texts).")
    return text + (f"\n\n![reliability diagram]({Path(calib['plot']).name})" if calib.get("plot") else "")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _md(text: str) -> str:
    """Text quoted for a Markdown list item: pipes and backticks cannot break the layout."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"
