"""Recommendation benchmark: popularity, item-kNN, ALS and EASE against the hybrid ranker on one split, and cold start.

Protocol (fixed, so numbers compare): fit on ``--train``; for each user of ``--test`` (MovieLens
``ua.test`` format) rank every item the user did not rate in training; all their test items are
relevant whatever the rating. NDCG@10 (binary gains, ideal DCG over min(10, #relevant)), HR@10 and
catalogue coverage of the top-10 lists. Every setting (baselines' grids, the recency half-life,
the ranker) is chosen on a validation carve-out of the training file, 10 ratings per user of the
same kind as the test part: the last 10 by time when the test ratings follow the training ones in
time, else 10 drawn at random (``--val auto`` decides from timestamps only; ``ua.test`` is cut in
``u.data``'s file order, not by time). Without ``--train``/``--test`` the split is built from the shared ``ua.base``:
each user's last 10 ratings by time (ties by item id) are the test part (``ua.test`` is held out).

Cold start: 10% of the rated items (seeded) lose all their ratings; they are ranked from text
alone and compared with a genre-popularity prior (see ``lmforge_recommend.evaluation``).

    PYTHONPATH=src python benchmarks/recommend.py                       # dev split from ua.base (~2 min on 2 cores)
    PYTHONPATH=src python benchmarks/recommend.py --dev-split random    # 10 random ratings per user as the test part
    PYTHONPATH=src python benchmarks/recommend.py --train ua.base --test ua.test --out official.json

Ends with one JSON line of the issue's keys; the dev-split run is stored in benchmarks/results/recommend.json,
every variant, chosen setting and timing in recommend_details.json, and the NDCG@k plot in
recommend_ndcg.png (``--dev-split random``: recommend_random_split*.*).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, SHARED, emit, log, setup_logging, timer

sys.path.insert(0, str(REPO / "apps" / "recommend" / "src"))

from _recommend_timing import http_latency_ms, latency_ms, scoring_backends  # noqa: E402
from lmforge_recommend import tuning  # noqa: E402
from lmforge_recommend.baselines import EASE  # noqa: E402
from lmforge_recommend.config import ALSConfig, ModelConfig, RecommendConfig  # noqa: E402
from lmforge_recommend.data import Catalogue, Ratings, load_genres, load_items, load_ratings  # noqa: E402
from lmforge_recommend.embeddings import embed_texts  # noqa: E402
from lmforge_recommend.evaluation import cold_start  # noqa: E402
from lmforge_recommend.features import FEATURES, METADATA_FEATURES, TEXT_FEATURES, SignalConfig, history_matrix  # noqa: E402
from lmforge_recommend.hybrid import HybridRanker, histories  # noqa: E402
from lmforge_recommend.matrix import build, targets  # noqa: E402
from lmforge_recommend.metrics import evaluate  # noqa: E402
from lmforge_recommend.recommender import Recommender  # noqa: E402
from lmforge_recommend.split import is_temporal, leave_last_n, leave_random_n  # noqa: E402
from lmforge_recommend.text import item_texts, text_scores  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BASELINES = ["popularity", "itemknn", "als", "ease"]
KEYS = ["popularity_ndcg10", "itemknn_ndcg10", "als_ndcg10", "ease_ndcg10", "hybrid_ndcg10", "hybrid_hr10", "best_baseline_ndcg10",
        "ratio_vs_best_baseline", "cold_start_ndcg10", "cold_start_popularity_ndcg10", "recommend_p99_ms", "machine"]
HALFLIVES = [0, 2, 5, 10, 20]


def load(args: argparse.Namespace) -> tuple[Catalogue, Ratings, Ratings]:
    """The catalogue and the (train, test) ratings: the given files, or the dev split of ``ua.base``."""
    folder = Path(args.data)
    catalogue = load_items(folder / "u.item", load_genres(folder / "u.genre"))
    known = set(catalogue.ids.tolist())
    if args.train and args.test:
        return catalogue, load_ratings(args.train, known), load_ratings(args.test, known)
    if args.train or args.test:
        sys.exit("give both --train and --test, or neither (the dev split of ua.base)")
    ratings = load_ratings(folder / "ua.base", known)
    train, test = leave_last_n(ratings, 10) if args.dev_split == "last" else leave_random_n(ratings, 10, seed=0)
    return catalogue, train, test


def baselines(train: Ratings, test: Ratings, catalogue: Catalogue, validation: str, threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each baseline tuned on the validation carve-out, refitted on ``train`` and scored on ``test``."""
    searches = tuning.tune_baselines(train, catalogue, BASELINES, validation, threads=threads)
    inter = build(train, catalogue)
    rows, relevant = targets(test, inter)
    results, chosen = {}, {}
    for name in BASELINES:
        params = searches[name].best
        with timer() as t:
            model = tuning.make(name, params, threads).fit(inter.seen)
        results[name] = evaluate(lambda r, m=model: m.score(inter.seen[r]), rows, relevant, inter.seen) | {"fit_s": t["s"]}
        chosen[name] = {"params": params, "validation_ndcg10": searches[name].best_ndcg, "grid_size": len(searches[name].trials)}
        log(f"{name}: NDCG@10 {results[name]['ndcg10']:.4f} with {params}")
    return results, chosen


def ablations(train: Ratings, test: Ratings, catalogue: Catalogue, vectors: np.ndarray, signals: SignalConfig) -> dict[str, Any]:
    """Single-signal rows: EASE on recency-weighted histories, and the text profile alone."""
    inter = build(train, catalogue)
    rows, relevant = targets(test, inter)
    ease = EASE(signals.ease_lambda).fit(inter.seen)
    weighted = history_matrix(histories(inter, np.arange(inter.shape[0])), inter.shape[1], signals.halflife)
    return {
        "ease_recency": evaluate(lambda r: ease.score(weighted[r]), rows, relevant, inter.seen),
        "text_profile": evaluate(lambda r: text_scores(vectors, weighted[r]), rows, relevant, inter.seen),
    }


def hybrids(train: Ratings, test: Ratings, catalogue: Catalogue, vectors: np.ndarray, titles: np.ndarray, signals: SignalConfig,
            windows: int, validation: str, seeds: list[int]) -> dict[str, Any]:
    """The hybrid and its feature ablations, each for every seed (the first seed's run is the reported one)."""
    inter = build(train, catalogue)
    rows, relevant = targets(test, inter)
    variants = {"hybrid": FEATURES, "hybrid_no_text": [f for f in FEATURES if f not in TEXT_FEATURES],
                "hybrid_cf_only": [f for f in FEATURES if f not in TEXT_FEATURES + METADATA_FEATURES]}
    out: dict[str, Any] = {}
    for name, features in variants.items():
        runs = []
        for seed in seeds:
            config = replace(signals, als={**signals.als, "seed": seed})
            with timer() as t:
                ranker = HybridRanker(catalogue, vectors, titles, config, features, windows=windows, validation=validation,
                                      seed=seed).fit(train)
            runs.append(evaluate(ranker.score_rows, rows, relevant, inter.seen) | {"fit_s": t["s"]})
        out[name] = runs[0] | {"seeds_ndcg10": [r["ndcg10"] for r in runs]}
        log(f"{name}: NDCG@10 {np.mean(out[name]['seeds_ndcg10']):.4f} over seeds {seeds}")
    return out


def plot(curves: dict[str, list[float]], path: Path, title: str) -> None:
    """NDCG@k for k = 1..20, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=name, linewidth=2.2 if name == "hybrid" else 1.2)
    ax.set(xlabel="k", ylabel="NDCG@k", title=title, xticks=range(1, 21))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> str:
    """CPU model and core count."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", help="training ratings (ua.base format); default: the dev split of the shared ua.base")
    parser.add_argument("--test", help="test ratings (ua.test format)")
    parser.add_argument("--data", default=str(SHARED / "ml-100k"), help="folder with u.item and u.genre (and ua.base for the dev split)")
    parser.add_argument("--dev-split", choices=["last", "random"], default="last",
                        help="without --train/--test: test on each user's last 10 ratings of ua.base, or on 10 random ones (seed 0)")
    parser.add_argument("--cold-fraction", type=float, default=0.1, help="share of items held out for cold start")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the hybrid runs (the first is reported)")
    parser.add_argument("--val", choices=["auto", "last", "random"], default="auto",
                        help="validation carve-out: each user's last 10 training ratings, 10 random ones, "
                             "or auto (last when the test follows training in time)")
    parser.add_argument("--threads", type=int, default=1, help="ALS fitting threads (1-2)")
    parser.add_argument("--out", type=Path, default=None, help="JSON result file (default: results/recommend.json for the dev split)")
    parser.add_argument("--plot", type=Path, default=None, help="NDCG@k plot (default: results/recommend_ndcg.png for the dev split)")
    args = parser.parse_args()
    setup_logging()
    dev = not args.train
    stem = "recommend" if args.dev_split == "last" else "recommend_random_split"
    out = args.out or (RESULTS / f"{stem}.json" if dev else None)
    png = args.plot or (RESULTS / f"{stem}_ndcg.png" if dev else None)
    start = time.perf_counter()
    catalogue, train, test = load(args)
    vectors, titles = embed_texts(item_texts(catalogue)), embed_texts(catalogue.titles)
    validation = args.val if args.val != "auto" else "last" if is_temporal(train, test) else "random"
    log(f"validation carve-out: {validation} 10 ratings per user")
    base, chosen = baselines(train, test, catalogue, validation, args.threads)
    halflife = tuning.tune_halflife(train, catalogue, chosen["ease"]["params"]["lam"], HALFLIVES, validation)
    als = chosen["als"]["params"] | {"threads": args.threads}
    signals = SignalConfig(chosen["ease"]["params"]["lam"], als, chosen["itemknn"]["params"]["neighbours"], halflife.best["halflife"])
    extra = ablations(train, test, catalogue, vectors, signals)
    hyb = hybrids(train, test, catalogue, vectors, titles, signals, windows=2, validation=validation, seeds=args.seeds)
    cold = cold_start(train, test, catalogue, vectors, als, args.cold_fraction, args.seeds[0])
    config = RecommendConfig(model=ModelConfig(ease_lambda=signals.ease_lambda, als=ALSConfig(**{k: als[k] for k in ALSConfig.model_fields}),
                                               knn_neighbours=signals.knn_neighbours, halflife=signals.halflife, validation=validation))
    recommender = Recommender(catalogue, train, config)
    timing = latency_ms(recommender) | scoring_backends(recommender, vectors) | http_latency_ms(recommender)
    result = summarize(base, extra, hyb, cold, chosen, halflife, timing, dev and args.dev_split, time.perf_counter() - start)
    result["validation"] = f"{validation} 10 ratings per user of the training file"
    if png is not None:
        curves = {name: base[name]["ndcg_curve"] for name in BASELINES} | {"ease+recency": extra["ease_recency"]["ndcg_curve"],
                                                                         "hybrid": hyb["hybrid"]["ndcg_curve"]}
        plot(curves, png, f"NDCG@k, dev split of ua.base ({args.dev_split} 10 ratings per user)" if dev else f"NDCG@k, {Path(args.test).name}")
    if out is not None:  # every variant, setting and timing beside the keys
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(f"{out.stem}_details.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    emit({key: result[key] for key in KEYS}, out)


def summarize(base: dict, extra: dict, hyb: dict, cold: dict, chosen: dict, halflife: Any, timing: dict, dev: str | bool, wall: float) -> dict:
    """The JSON line: the fixed keys first, then every variant, the chosen settings and the timings."""
    best = max(base[name]["ndcg10"] for name in BASELINES)
    r4 = lambda x: round(float(x), 4)
    result: dict[str, Any] = {f"{name}_ndcg10": r4(base[name]["ndcg10"]) for name in BASELINES}
    result |= {
        "hybrid_ndcg10": r4(hyb["hybrid"]["ndcg10"]), "hybrid_hr10": r4(hyb["hybrid"]["hr10"]), "best_baseline_ndcg10": r4(best),
        "ratio_vs_best_baseline": round(hyb["hybrid"]["ndcg10"] / best, 3),
        "cold_start_ndcg10": r4(cold["text"]["ndcg10"]), "cold_start_popularity_ndcg10": r4(cold["genre_popularity"]["ndcg10"]),
        "recommend_p99_ms": round(timing["http_recommend_p99_ms"], 2), "machine": machine(),
    }
    result["split"] = f"dev: {dev} 10 ratings per user of ua.base" if dev else "given --train/--test"
    rows = {name: base[name] for name in BASELINES} | extra | hyb
    result["hr10"] = {k: r4(v["hr10"]) for k, v in rows.items()}
    result["coverage10"] = {k: round(v["coverage"], 3) for k, v in rows.items()}
    result["variants_ndcg10"] = {k: r4(v["ndcg10"]) for k, v in extra.items()} | {k: [r4(x) for x in v["seeds_ndcg10"]] for k, v in hyb.items()}
    result["cold_start"] = {k: r4(cold[k]["ndcg10"]) for k in ("text", "text_profile", "genre_popularity", "genre_decade_popularity")}
    result["cold_start"] |= {"ratio_vs_genre_popularity": round(cold["text"]["ndcg10"] / cold["genre_popularity"]["ndcg10"], 2),
                             "ratio_vs_genre_decade_popularity": round(cold["text"]["ndcg10"] / cold["genre_decade_popularity"]["ndcg10"], 2),
                             "items": cold["items"], "users": cold["users"], "settings": cold["settings"]}
    by_halflife = {str(p["halflife"]): r4(score) for p, score in halflife.trials}
    result["chosen"] = chosen | {"halflife": halflife.best["halflife"], "halflife_validation": by_halflife}
    result["timing"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()}
    result["users"] = hyb["hybrid"]["users"]
    result["wall_s"] = round(wall, 1)
    return result


if __name__ == "__main__":
    logging.captureWarnings(True)
    main()
