"""The k-shot protocol: for each k and seed, draw k examples per class, build every method, score all on the same data.

Zero-shot methods (k = 0) do not depend on a draw and run once. Few-shot methods run once per
seed on that seed's draw, which every few-shot method shares. Decoder methods are scored on a
seeded subset of the evaluation set (``shots.decoder_eval_samples``); the others on all of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lmforge.data.examples import Examples
from lmforge.errors import ConfigError
from lmforge.evaluation.metrics import label_agreement
from lmforge.prompting.classifiers import Calibrated
from lmforge.prompting.methods import METHODS, Context, Method, build_variants
from lmforge.prompting.sampling import draw_k_shot, eval_subset
from lmforge.prompting.verbalizers import calibrate

log = logging.getLogger("lmforge.prompting")


@dataclass
class Cell:
    """The runs of one method at one k.

    Attributes:
        method: Method name.
        k: Examples per class.
        runs: One dict per seed: seed, accuracy, macro_f1, n_eval, seconds.
    """

    method: str
    k: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    def stat(self, key: str = "accuracy") -> tuple[float, float]:
        """Mean and (population) standard deviation of ``key`` over seeds."""
        values = np.asarray([r[key] for r in self.runs], dtype=np.float64)
        return float(values.mean()), float(values.std())

    def summary(self) -> dict[str, Any]:
        """JSON-ready mean ± std of accuracy and macro-F1, with the evaluation size."""
        acc, acc_std = self.stat("accuracy")
        f1, f1_std = self.stat("macro_f1")
        return {"method": self.method, "k": self.k, "accuracy_mean": round(acc, 4), "accuracy_std": round(acc_std, 4),
                "macro_f1_mean": round(f1, 4), "macro_f1_std": round(f1_std, 4), "seeds": len(self.runs),
                "n_eval": self.runs[0]["n_eval"], "seconds_mean": round(float(np.mean([r["seconds"] for r in self.runs])), 1),
                "runs": self.runs}


def metrics(scores: np.ndarray, gold: np.ndarray, num_labels: int) -> dict[str, Any]:
    """Accuracy and macro-F1 of label scores (N, C) against gold label ids."""
    agreement = label_agreement(gold, np.asarray(scores).argmax(axis=1), num_labels)
    return {"accuracy": round(agreement["accuracy"], 4), "macro_f1": round(agreement["macro_f1"], 4), "n_eval": int(len(gold))}


def score(clf: Any, examples: Examples, targets: np.ndarray, index: np.ndarray, num_labels: int) -> dict[str, Any]:
    """Accuracy and macro-F1 of ``clf`` on the examples at ``index``."""
    sub = examples.subset(index)
    return metrics(clf.label_scores(sub.texts, sub.pairs), targets[index], num_labels)


def score_variants(variants: list[tuple[str, Any]], examples: Examples, targets: np.ndarray, index: np.ndarray,
                   num_labels: int) -> dict[str, dict[str, Any]]:
    """Scores of each variant; a calibrated variant reuses its inner classifier's scores (no second pass)."""
    sub = examples.subset(index)
    raw: dict[int, np.ndarray] = {}
    out = {}
    for name, clf in variants:
        inner = getattr(clf, "inner", None)
        if isinstance(clf, Calibrated) and id(inner) in raw:
            scores = calibrate(raw[id(inner)], clf.p_cf)
        else:
            scores = raw[id(clf)] = clf.label_scores(sub.texts, sub.pairs)
        out[name] = metrics(scores, targets[index], num_labels)
    return out


# save(classifier, method, variant name, k, seed)
Saver = Callable[[Any, Method, str, int, int], None]


def run(ctx: Context, pool: tuple[Examples, np.ndarray], evaluation: tuple[Examples, np.ndarray], methods: list[str],
        ks: list[int], seeds: list[int], save: Saver | None = None) -> list[Cell]:
    """Run every method at every k over ``seeds``; ``save`` is called with each classifier of the first seed.

    Args:
        ctx: Models, templates and settings.
        pool: Labeled examples the k-shot draws come from.
        evaluation: Labeled examples every method is scored on.
        methods: Method names, in table order.
        ks: Examples per class; 0 for zero-shot.
        seeds: One draw per seed.
        save: Called with the classifier of each (method variant, k) built from the first seed.
    """
    plan = [(k, METHODS.get(name)) for k in ks for name in methods if METHODS.get(name).few_shot == (k > 0)]
    if not plan:
        raise ConfigError(f"nothing to run: methods {', '.join(methods)} at k={ks}; zero-shot methods need k=0 in "
                          "shots.k, few-shot methods a k > 0")
    cells = []
    with tqdm(total=sum(len(seeds) if k > 0 else 1 for k, _ in plan), desc="prompt runs", unit="run") as bar:
        for k, method in plan:
            by_name: dict[str, Cell] = {}
            for seed in (seeds if k > 0 else seeds[:1]):
                for name, result, clf in _one_run(ctx, pool, evaluation, method, k, seed):
                    by_name.setdefault(name, Cell(name, k)).runs.append(result)
                    if save is not None and seed == seeds[0]:
                        save(clf, method, name, k, seed)
                bar.update(1)
            cells += by_name.values()
    return cells


def _one_run(ctx: Context, pool: tuple[Examples, np.ndarray], evaluation: tuple[Examples, np.ndarray], method: Method,
             k: int, seed: int) -> list[tuple[str, dict[str, Any], Any]]:
    """Build ``method`` from this seed's draw and score each of its variants: ``(name, result, classifier)``."""
    (examples, targets), (eval_examples, eval_targets) = pool, evaluation
    num_labels = len(ctx.labels.names)
    limit = ctx.cfg.shots.decoder_eval_samples if method.decoder else None
    index = eval_subset(len(eval_examples), limit, ctx.cfg.shots.eval_seed)
    draw = draw_k_shot(targets, k, seed, num_labels) if k > 0 else None
    start = time.perf_counter()
    variants = build_variants(method, ctx, examples.subset(draw) if draw is not None else None,
                              targets[draw] if draw is not None else None, seed)
    scored = score_variants(variants, eval_examples, eval_targets, index, num_labels)
    seconds = round(time.perf_counter() - start, 1)
    out = []
    for name, clf in variants:
        result = {"seed": seed, **scored[name], "seconds": seconds}
        log.info("%s k=%d seed=%d: accuracy %.4f, macro-F1 %.4f (%d examples, %.0fs)", name, k, seed,
                 result["accuracy"], result["macro_f1"], result["n_eval"], seconds)
        out.append((name, result, clf))
    return out


def format_cells(cells: list[Cell], ks: list[int]) -> str:
    """One table: a row per method, a column per k, cells ``mean ± std`` accuracy in percent."""
    methods = list(dict.fromkeys(c.method for c in cells))
    by_key = {(c.method, c.k): c for c in cells}
    header = ["method"] + [f"k={k}" for k in ks] + ["eval n"]
    rows = [header]
    for name in methods:
        row = [name]
        for k in ks:
            cell = by_key.get((name, k))
            if cell is None:
                row.append("-")
                continue
            mean, std = cell.stat()
            row.append(f"{100 * mean:.1f}" if len(cell.runs) == 1 else f"{100 * mean:.1f} ± {100 * std:.1f}")
        row.append(str(next(c.runs[0]["n_eval"] for c in cells if c.method == name)))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def best(cells: list[Cell], k: int) -> tuple[str, float] | None:
    """The method with the highest mean accuracy at ``k``, and that mean."""
    at_k = [c for c in cells if c.k == k]
    if not at_k:
        return None
    top = max(at_k, key=lambda c: c.stat()[0])
    return top.method, top.stat()[0]
