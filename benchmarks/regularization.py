"""Regularization on low-data SST-2: baseline vs each technique alone vs the best combination.

minilm-l6 is fine-tuned on a fixed 1,000-example sample of ../shared/data/sst2/train.tsv with 5
seeds per setting and scored on sst2/dev.tsv (all 6,735 texts, clean) and on a typo-perturbed copy
of a fixed 2,000-text subset of it (``lmforge.evaluation.perturb.typos``, rate 0.2, seed 0). The
baseline is the default recipe (lr 5e-5, 4 epochs, 10% warmup, weight decay 0.01, dropout 0.1);
each technique adds one switch (TECHNIQUES). One of them, "search", takes the best values of an
``lmforge search`` (Optuna TPE, 16 trials over lr, head_lr and epochs) run on an 800/200 split of
the same 1,000 examples, so no dev text is seen while choosing them. The combinations join the
techniques whose mean clean accuracy beat the baseline's by 0.1 point or more (at most one
adversarial method, one augmentation and one hyperparameter change): the best two, then all. A
combination of one adversarial method with settings X is also compared with the row X, for the
typo drop within one recipe. The 5 baseline runs also form a 5-member ensemble (logit averaging)
saved as one artifact and scored through it; the seeds of the best setting are ensembled too. A
TF-IDF + logistic-regression baseline trained on the same sample is reported beside.

Each finished run is cached under .bench/regularization/, so an interrupted benchmark resumes.
Usage: python benchmarks/regularization.py [--quick] [--seeds N] [--only a,b] [--combos a+b,c+d].
Ends with one JSON line.
A partial run (--only a,b) writes benchmarks/results/regularization_a_b.json, not over the full run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning threads
# take CPU time from the threads doing the work.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from _common import REPO as ROOT  # noqa: E402
from _common import SHARED, write_rows  # noqa: E402

SST2 = SHARED / "sst2"
WORK = ROOT / ".bench" / "regularization"
TYPO_SUBSET, SAMPLE_SEED = 2000, 0

BASE: dict[str, Any] = {
    "data": {"train": str(SST2 / "train.tsv"), "text_column": "sentence", "max_train_samples": 1000,
             "split": {"validation": 0.0, "seed": SAMPLE_SEED}, "max_length": 64},
    "model": {"name": "minilm-l6"},
    "train": {"epochs": 4, "batch_size": 32, "lr": 5e-5, "warmup_ratio": 0.1, "weight_decay": 0.01, "threads": 2},
    "output": {"overwrite": True, "tensorboard": False, "report": False},
}
# Each technique alone: the sections it changes.
TECHNIQUES: dict[str, dict[str, Any]] = {
    # Not a regularizer: the new head trained at the body's rate instead of the default head_lr (2e-3).
    "head_lr_body": {"train": {"head_lr": None}},
    "label_smoothing": {"train": {"label_smoothing": 0.1}},
    "ema": {"train": {"ema_decay": 0.98}},
    "augment": {"data": {"augment": {"ops": ["synonym", "swap", "delete", "insert", "typo"], "factor": 1.0, "rate": 0.1}}},
    "augment_x4": {"data": {"augment": {"ops": ["synonym", "swap", "delete", "insert", "typo"], "factor": 4.0, "rate": 0.1}}},
    "rdrop": {"train": {"rdrop_alpha": 1.0}},
    "fgm": {"train": {"adversarial": {"method": "fgm", "epsilon": 1.0}}},
    "freelb": {"train": {"adversarial": {"method": "freelb", "epsilon": 1.0, "alpha": 0.3, "steps": 2}}},
    "pgd": {"train": {"adversarial": {"method": "pgd", "epsilon": 1.0, "alpha": 0.3, "steps": 2}}},
    "text_adversarial": {"train": {"adversarial": {"method": "text", "perturbation": "typos", "candidates": 4, "rate": 0.2}}},
    "text_adversarial_n8": {"train": {"adversarial": {"method": "text", "perturbation": "typos", "candidates": 8, "rate": 0.2}}},
    "text_adversarial_r3": {"train": {"adversarial": {"method": "text", "perturbation": "typos", "candidates": 4, "rate": 0.3}}},
    "text_adversarial_kl": {"train": {"adversarial": {"method": "text", "perturbation": "typos", "candidates": 4, "rate": 0.2,
                                                       "consistency": 1.0}}},
    # The same with the consistency term weighted 3 and 6 (TRADES' beta; its paper uses 1 to 6).
    "text_adversarial_kl3": {"train": {"adversarial": {"method": "text", "perturbation": "typos", "candidates": 4, "rate": 0.2,
                                                        "consistency": 3.0}}},
    "text_adversarial_kl6": {"train": {"adversarial": {"method": "text", "perturbation": "typos", "candidates": 4, "rate": 0.2,
                                                        "consistency": 6.0}}},
}
# Hyperparameter search (``lmforge search``, Optuna TPE with median pruning) on a split of the same
# 1,000 examples: 800 train, 200 validate; the dev set is never seen. Its best values become the
# "search" technique, trained on all 1,000 like every other row. Not a regularizer either.
SEARCH_SPACE: dict[str, Any] = {
    "train.lr": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True},
    "train.head_lr": [None, 5e-4, 2e-3, 5e-3],
    "train.epochs": {"type": "int", "low": 3, "high": 8},
}
SEARCH_TRIALS, SEARCH_VALIDATION = 16, 0.2
TECHNIQUES["search"] = {}  # filled in from the search's best trial before any run uses it
# A second base model, for ensembles whose members disagree more than fine-tunes of one checkpoint:
# SmolLM2-135M with a classification head and LoRA (r 16) at LoRA's usual rate. Not a regularizer,
# and never put into a combination.
TECHNIQUES["smollm2_lora"] = {"model": {"name": "smollm2-135m"}, "tuning": {"method": "lora", "r": 16},
                              "train": {"lr": 2e-3, "head_lr": None}}
OTHER_MODELS = ("smollm2_lora",)
# The groups a combination takes at most one of: the techniques that set train.adversarial, data.augment,
# and the two that set the recipe's hyperparameters.
ADVERSARIAL = tuple(n for n, t in TECHNIQUES.items() if "adversarial" in t.get("train", {}))
AUGMENT = tuple(n for n, t in TECHNIQUES.items() if "augment" in t.get("data", {}))
HYPERPARAMETERS = ("head_lr_body", "search")
GROUPS = (ADVERSARIAL, AUGMENT, HYPERPARAMETERS)
MIN_GAIN = 0.001  # a technique "helped" when its mean clean accuracy beats the baseline's by this much


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, section by section (nested dicts merged, the rest replaced)."""
    out = json.loads(json.dumps(base))
    for key, value in extra.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def combine(names: list[str]) -> dict[str, Any]:
    """The sections of several techniques together (at most one adversarial method, one augmentation,
    one hyperparameter change)."""
    if any(n in OTHER_MODELS for n in names):
        raise ValueError(f"{'+'.join(names)}: {', '.join(OTHER_MODELS)} is another base model, for ensembles, not combinations")
    if any(sum(n in group for n in names) > 1 for group in GROUPS):
        raise ValueError(f"{'+'.join(names)} takes more than one adversarial method, augmentation or hyperparameter change")
    out: dict[str, Any] = {}
    for name in names:
        out = merge(out, TECHNIQUES[name])
    return out


def read(path: Path) -> tuple[list[str], np.ndarray]:
    """Sentences and labels of an SST-2 TSV file."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["sentence"].strip() for r in rows], np.array([int(r["label"]) for r in rows])


class Scorer:
    """Dev logits (clean, and typo-perturbed on a fixed subset) of a saved run."""

    def __init__(self, dev_size: int | None) -> None:
        from lmforge.evaluation.perturb import perturb_texts

        texts, gold = read(SST2 / "dev.tsv")
        if dev_size:
            texts, gold = texts[:dev_size], gold[:dev_size]
        self.texts, self.gold = texts, gold
        pick = np.sort(np.random.default_rng(SAMPLE_SEED).permutation(len(texts))[:min(TYPO_SUBSET, len(texts))])
        self.typo_index = pick
        self.typo_texts = perturb_texts([texts[i] for i in pick], "typos", 0.2, SAMPLE_SEED)

    @staticmethod
    def logits(predictor: Any, texts: list[str]) -> np.ndarray:
        """Log-probabilities (N, 2) through the artifact's public ``predict``, so any artifact kind scores alike."""
        rows = predictor.predict(texts, batch_size=256)
        return np.log(np.array([[r["probabilities"]["0"], r["probabilities"]["1"]] for r in rows]) + 1e-9)

    def score(self, run_dir: Path) -> dict[str, Any]:
        import lmforge

        predictor = lmforge.load(run_dir, device="cpu")
        clean, typo = self.logits(predictor, self.texts), self.logits(predictor, self.typo_texts)
        return {"clean": clean, "typo": typo}

    def accuracy(self, logits: dict[str, np.ndarray]) -> dict[str, float]:
        clean = float((logits["clean"].argmax(1) == self.gold).mean())
        typo = float((logits["typo"].argmax(1) == self.gold[self.typo_index]).mean())
        clean_sub = float((logits["clean"][self.typo_index].argmax(1) == self.gold[self.typo_index]).mean())
        return {"clean": clean, "typo": typo, "drop": clean_sub - typo}


def run_once(name: str, sections: dict[str, Any], seed: int, scorer: Scorer, quick: dict[str, Any], keep: bool) -> dict[str, Any]:
    """Train one setting with one seed (or reuse its cached result) and score it."""
    import lmforge

    out = WORK / f"{name}-s{seed}"
    done = out / "scores.npz"
    if done.is_file():
        z = np.load(done)
        return {"logits": {"clean": z["clean"], "typo": z["typo"]}, "seconds": float(z["seconds"]), "run_dir": out / "run"}
    cfg = merge(merge(BASE, sections), quick)
    cfg = merge(cfg, {"train": {"seed": seed}, "output": {"dir": str(out / "run"), "name": f"{name}-s{seed}"}})
    if "augment" in cfg["data"]:
        cfg["data"]["augment"]["seed"] = seed
    start = time.perf_counter()
    result = lmforge.finetune(cfg)
    seconds = time.perf_counter() - start
    logits = scorer.score(result.run_dir)
    np.savez(done, clean=logits["clean"], typo=logits["typo"], seconds=seconds)
    if not keep:
        shutil.rmtree(out / "run" / "model", ignore_errors=True)
    shutil.rmtree(out / "run" / "checkpoints", ignore_errors=True)
    return {"logits": logits, "seconds": seconds, "run_dir": out / "run"}


def summarize(name: str, runs: list[dict[str, Any]], scorer: Scorer) -> dict[str, Any]:
    scores = [scorer.accuracy(r["logits"]) for r in runs]
    row: dict[str, Any] = {"technique": name, "seeds": len(runs)}
    for key in ("clean", "typo", "drop"):
        values = np.array([s[key] for s in scores])
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        row[f"{key}_mean"], row[f"{key}_std"] = round(float(values.mean()), 4), round(float(std), 4)
    row["seconds_per_run"] = round(float(np.mean([r["seconds"] for r in runs])), 1)
    return row


def train_sample(n: int) -> tuple[list[str], np.ndarray]:
    """The ``n`` training examples every run sees: the pick ``data.max_train_samples`` makes (same seed)."""
    texts, gold = read(SST2 / "train.tsv")
    index = np.sort(np.random.default_rng(SAMPLE_SEED).permutation(len(texts))[:n])
    return [texts[i] for i in index], gold[index]


def sample_data(n: int) -> dict[str, Any]:
    """``data`` settings that read exactly the ``n``-example training sample (written once as a CSV), so that a
    split (k-fold, validation) divides those examples and no others."""
    sample = write_rows(WORK / f"sample-{n}.csv", list(zip(*train_sample(n), strict=True)))
    return {"train": str(sample), "text_column": "text", "max_train_samples": None}


def hyperparameter_search(quick: dict[str, Any], n_train: int) -> dict[str, Any]:
    """Run (or reopen) ``lmforge search`` over SEARCH_SPACE on a split of the training sample and make its
    best values the "search" technique. The study lives in .bench/regularization/search/, so a rerun
    reuses its finished trials."""
    from lmforge.config import set_key
    from lmforge.recipes.search import search

    cfg = merge(merge(BASE, quick), {
        "data": {**sample_data(n_train), "split": {"validation": SEARCH_VALIDATION, "seed": SAMPLE_SEED}},
        "train": {"seed": 0},
        "search": {"trials": 3 if quick else SEARCH_TRIALS, "pruner": "median", "space": SEARCH_SPACE},
        "output": {"dir": str(WORK / "search"), "name": "search", "overwrite": False}})
    start = time.perf_counter()
    result = search(cfg, jobs=1)
    sections: dict[str, Any] = {}
    for key, value in result.best_params.items():
        set_key(sections, key, value)
    TECHNIQUES["search"] = sections
    finished = [r for r in result.rows if r["state"] in ("complete", "pruned")]
    return {"trials": len(finished), "pruned": sum(r["state"] == "pruned" for r in finished),
            "validation_examples": round(SEARCH_VALIDATION * n_train), "metric": result.metric,
            "best_value": result.best_value, "best_params": result.best_params, "space": SEARCH_SPACE,
            "trial_seconds": round(sum(r["seconds"] or 0 for r in finished), 1),
            "seconds_this_invocation": round(time.perf_counter() - start, 1),
            "study": str((WORK / "search").relative_to(ROOT))}


def tfidf_baseline(scorer: Scorer, n: int) -> float:
    """lmforge's TF-IDF + logistic regression on the same training sample, accuracy on the clean dev texts."""
    from lmforge.evaluation.baselines import tfidf_predict

    texts, gold = train_sample(n)
    return float((np.asarray(tfidf_predict(texts, gold, scorer.texts)) == scorer.gold).mean())


def mean_logits(members: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The members' clean and typo logits averaged (logit averaging, as ``lmforge ensemble`` does)."""
    from lmforge.training.ensembles import combine_logits

    return {k: combine_logits([m[k] for m in members], "mean") for k in ("clean", "typo")}


def versus_members(logits: dict[str, np.ndarray], members: list[dict[str, np.ndarray]], scorer: Scorer) -> dict[str, Any]:
    """An ensemble's accuracy beside its members' (best and mean) and its gain over the best one."""
    accs = [scorer.accuracy(m)["clean"] for m in members]
    acc = scorer.accuracy(logits)
    return {"members": len(members), "accuracy": round(acc["clean"], 4), "typo_accuracy": round(acc["typo"], 4),
            "best_member": round(max(accs), 4), "mean_member": round(float(np.mean(accs)), 4),
            "gain_over_best_member": round(acc["clean"] - max(accs), 4)}


def ensemble_of(runs: list[dict[str, Any]], scorer: Scorer) -> dict[str, Any]:
    """The baseline seeds as one ensemble artifact (logit averaging), scored like a single run (cached)."""
    from lmforge.artifacts import assemble

    cache = WORK / "ensemble" / "scores.npz"
    if cache.is_file():
        z = np.load(cache)
        logits = {"clean": z["clean"], "typo": z["typo"]}
    else:
        path = assemble([r["run_dir"] for r in runs], WORK / "ensemble", combine="mean", overwrite=True)
        logits = scorer.score(path)
        np.savez(cache, **logits)
    return {"combine": "mean", **versus_members(logits, [r["logits"] for r in runs], scorer), "artifact": str((WORK / "ensemble").relative_to(ROOT))}


def logit_ensemble(name: str, runs: list[dict[str, Any]], scorer: Scorer) -> dict[str, Any]:
    """The seeds of one setting averaged (logit averaging, from the cached logits), against its best member."""
    members = [r["logits"] for r in runs]
    return {"setting": name, **versus_members(mean_logits(members), members, scorer)}


def kfold_ensemble(scorer: Scorer, quick: dict[str, Any], n_train: int, baseline: float, folds: int = 5) -> dict[str, Any]:
    """A k-fold ensemble of the same training sample: member i trains on the other folds (and picks its
    best epoch on fold i), the members' logits are averaged. Members see different data, so they
    disagree more than seeds; each also sees a fifth less of it."""
    runs = [run_once(f"kfold{fold}", {"data": {**sample_data(n_train), "split": {"folds": folds, "fold": fold, "seed": SAMPLE_SEED}}},
                     0, scorer, quick, keep=False) for fold in range(folds)]
    members = [r["logits"] for r in runs]
    out = versus_members(mean_logits(members), members, scorer)
    return {**out, "gain_over_baseline_mean": round(out["accuracy"] - baseline, 4)}


def technique_ensemble(names: list[str], results: dict[str, list], scorer: Scorer, baseline: float) -> dict[str, Any]:
    """Ensembles of different settings: per seed, the logits of the runs of ``names`` averaged.

    Members trained with different techniques (or from different base models) disagree more than
    seeds of one setting, which is what averaging needs. Reported per seed against that seed's best
    member, and as mean over seeds.
    """
    seeds = min(len(results[n]) for n in names)
    per_seed = [versus_members(mean_logits(m), m, scorer) for m in ([results[n][s]["logits"] for n in names] for s in range(seeds))]
    accuracy = float(np.mean([e["accuracy"] for e in per_seed]))
    return {"members": len(names), "settings": names, "seeds": seeds, "accuracy_mean": round(accuracy, 4),
            "best_member_mean": round(float(np.mean([e["best_member"] for e in per_seed])), 4),
            "gain_over_best_member_mean": round(float(np.mean([e["gain_over_best_member"] for e in per_seed])), 4),
            "gain_over_baseline_mean": round(accuracy - baseline, 4)}


def best_settings(table: list[dict[str, Any]], size: int, models: bool = True) -> list[str]:
    """The ``size`` settings with the best mean clean accuracy (``models=False``: minilm-l6 ones only)."""
    rows = [r for r in table if models or r["technique"] not in OTHER_MODELS]
    return [r["technique"] for r in sorted(rows, key=lambda r: -r["clean_mean"])[:size]]


# The machine this invocation timed its runs on: the cores, and the load average when it began.
# (Rows whose runs came from the cache were timed by the invocation that trained them.)
CPU_AT_START = {"cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 examples, 1 epoch, 2 seeds, 500 dev texts")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", help="comma-separated techniques to run (default: all)")
    parser.add_argument("--combos", help="comma-separated combinations to run instead of the automatic ones, "
                                         "each of techniques joined by '+' (e.g. pgd+rdrop,text_adversarial+rdrop)")
    args = parser.parse_args()
    combos = [c.split("+") for c in args.combos.split(",")] if args.combos else None
    for combo in combos or []:
        unknown = [n for n in combo if n not in TECHNIQUES]
        if unknown or len(combo) < 2:
            sys.exit(f"--combos: {'+'.join(combo)} needs two or more of {', '.join(TECHNIQUES)}")
        try:
            combine(combo)
        except ValueError as e:
            sys.exit(f"--combos: {e}")
    if not SST2.is_dir():
        sys.exit(f"{SST2} not found: this benchmark needs ../shared/data/sst2")
    from lmforge.logs import setup_logging

    setup_logging(True)
    global WORK
    quick: dict[str, Any] = {}
    seeds = list(range(args.seeds))
    if args.quick:
        WORK = WORK.parent / "regularization-quick"
        quick = {"data": {"max_train_samples": 200}, "train": {"epochs": 1}}
        seeds = seeds[:2]
    WORK.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(500 if args.quick else None)
    names = args.only.split(",") if args.only else list(TECHNIQUES)
    n_train = 200 if args.quick else 1000
    searched = None
    if "search" in names or any("search" in c for c in combos or []):
        searched = hyperparameter_search(quick, n_train)
    results = {"baseline": [run_once("baseline", {}, s, scorer, quick, keep=True) for s in seeds]}
    table = [summarize("baseline", results["baseline"], scorer)]
    extras = {"ensemble": ensemble_of(results["baseline"], scorer), "tfidf": round(tfidf_baseline(scorer, n_train), 4),
              "search": searched}
    for name in names:
        results[name] = [run_once(name, TECHNIQUES[name], s, scorer, quick, keep=False) for s in seeds]
        table.append(summarize(name, results[name], scorer))
        report(table, extras, scorer, n_train, final=False)
    table += run_combinations(table, scorer, seeds, quick, results, combos)
    best = max(table[1:], key=lambda r: r["clean_mean"]) if len(table) > 1 else table[0]
    extras["ensemble_best"] = logit_ensemble(best["technique"], results[best["technique"]], scorer)
    extras["ensemble_techniques"] = technique_ensemble(best_settings(table, 5), results, scorer, table[0]["clean_mean"])
    # The 4 best minilm-l6 settings and the second base model, when it ran: members from two checkpoints.
    other = [n for n in OTHER_MODELS if n in results]
    extras["ensemble_two_models"] = (technique_ensemble(best_settings(table, 5 - len(other), models=False) + other, results,
                                                        scorer, table[0]["clean_mean"]) if other else None)
    extras["ensemble_kfold"] = kfold_ensemble(scorer, quick, n_train, table[0]["clean_mean"])
    # A partial run (--only) writes beside the full run's results instead of over them.
    report(table, extras, scorer, n_train, final=True,
           out_name=f"regularization_{'_'.join(names)}.json" if args.only else "regularization.json")


def run_combinations(table: list[dict[str, Any]], scorer: Scorer, seeds: list[int], quick: dict[str, Any],
                     results: dict[str, list], combos: list[list[str]] | None = None) -> list[dict[str, Any]]:
    """Combinations of the techniques that beat the baseline alone (by 0.1 point or more): the best two, then all
    (``combos``, when given, replaces them)."""
    if combos is None:
        base = table[0]["clean_mean"]
        helped = sorted((r for r in table[1:] if r["clean_mean"] >= base + MIN_GAIN and r["technique"] not in OTHER_MODELS),
                        key=lambda r: -r["clean_mean"])
        names: list[str] = []
        for row in helped:  # one adversarial method, augmentation, hyperparameter change at most: the best of each
            group = next((g for g in GROUPS if row["technique"] in g), None)
            if group is None or not any(n in group for n in names):
                names.append(row["technique"])
        combos = [names[:2]] + ([names] if len(names) > 2 else [])
    rows = []
    for combo in (c for c in combos if len(c) >= 2):
        label = "+".join(combo)
        results[label] = [run_once(label, combine(combo), s, scorer, quick, keep=False) for s in seeds]
        rows.append(summarize(label, results[label], scorer))
    return rows


def report(table: list[dict[str, Any]], extras: dict[str, Any], scorer: Scorer, n_train: int, final: bool,
           out_name: str = "regularization.json") -> None:
    """Print the table so far; at the end, the JSON line (saved for full runs)."""
    base, ensemble = table[0], extras["ensemble"]
    best = max(table[1:], key=lambda r: r["clean_mean"]) if len(table) > 1 else base
    adversarial = [r for r in table[1:] if r["technique"] in ADVERSARIAL]
    reductions = {r["technique"]: round(1 - r["drop_mean"] / base["drop_mean"], 4) for r in adversarial if base["drop_mean"] > 0}
    # Adversarial training measured within one recipe: a combination X+adv against the row X, when both ran.
    rows = {r["technique"]: r for r in table}
    same_recipe = {}
    for r in table:
        parts = r["technique"].split("+")
        if len(parts) > 1 and sum(p in ADVERSARIAL for p in parts) == 1:
            partner = rows.get("+".join(p for p in parts if p not in ADVERSARIAL))
            if partner and partner["drop_mean"] > 0:
                same_recipe[r["technique"]] = {"against": partner["technique"],
                                               "reduction": round(1 - r["drop_mean"] / partner["drop_mean"], 4)}
    print(f"{'technique':<34}{'clean':>16}{'typos':>16}{'drop':>9}{'s/run':>8}", file=sys.stderr)
    for r in table:
        print(f"{r['technique']:<34}{r['clean_mean']:>9.4f} ±{r['clean_std']:.4f}{r['typo_mean']:>9.4f} ±{r['typo_std']:.4f}"
              f"{r['drop_mean']:>9.4f}{r['seconds_per_run']:>8.0f}", file=sys.stderr)
    if not final:
        return
    print(f"ensemble of the {ensemble['members']} baseline seeds: {ensemble['accuracy']:.4f} "
          f"(best member {ensemble['best_member']:.4f}); TF-IDF + LR on the same {n_train} examples: {extras['tfidf']:.4f}")
    # The target is for 5-member ensembles; a partial run may have fewer settings to average.
    # Seed and k-fold ensembles are one ensemble (gain_over_best_member); per-seed ones a mean over seeds.
    kinds = {"seeds": ensemble, "kfold": extras["ensemble_kfold"], "settings": extras["ensemble_techniques"],
             "two_models": extras["ensemble_two_models"]}
    gains = {kind: e.get("gain_over_best_member", e.get("gain_over_best_member_mean"))
             for kind, e in kinds.items() if e and e["members"] == 5}
    out = {
        "baseline_accuracy": base["clean_mean"],
        "baseline_std": base["clean_std"],
        "best_combo_accuracy": best["clean_mean"],
        "best_combo_std": best["clean_std"],
        "best_combo": best["technique"],
        "best_combo_gain": round(best["clean_mean"] - base["clean_mean"], 4),
        "adversarial_drop_reduction": max(reductions.values()) if reductions else None,
        "adversarial_drop_reduction_by_method": reductions,
        # The same cut with a tuned recipe: X+adversarial against X itself (not against the default baseline).
        "adversarial_drop_reduction_same_recipe": max((v["reduction"] for v in same_recipe.values()), default=None),
        "adversarial_drop_reduction_same_recipe_by_combo": same_recipe,
        "search": extras["search"],
        # The 5-member ensemble with the largest gain over its own best member (seeds, k-fold, or settings).
        "ensemble_gain": max(gains.values(), default=None),
        "ensemble_gain_kind": max(gains, key=gains.get, default=None),
        "ensemble": ensemble,
        "ensemble_of_best_setting": extras["ensemble_best"],
        "ensemble_of_settings": extras["ensemble_techniques"],
        "ensemble_kfold": extras["ensemble_kfold"],
        "ensemble_two_models": extras["ensemble_two_models"],
        "tfidf_logreg_accuracy": extras["tfidf"],
        "table": table,
        "setup": {"train_examples": n_train, "dev_texts": len(scorer.texts), "typo_subset": len(scorer.typo_texts),
                  "seeds": base["seeds"], "model": "minilm-l6", "techniques": TECHNIQUES,
                  "cpu": CPU_AT_START},
    }
    if base["seeds"] >= 5 and n_train == 1000:
        results_dir = ROOT / "benchmarks" / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / out_name).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
