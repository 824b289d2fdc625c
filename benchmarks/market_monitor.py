"""Financial sentiment monitor (apps/monitor): sentiment accuracy, alert quality on injected bursts, ingest throughput.

    flock /tmp/lmforge-cpu.lock python benchmarks/market_monitor.py            # held-out 20% of the PhraseBank
    python benchmarks/market_monitor.py --test path/to/labeled.csv             # any file in the label,text format

Sentiment: the monitor's model (trained on first use, as ``lmforge app monitor train``) on the
held-out file, beside TF-IDF + logistic regression fitted on the same fitting part. Alerts: a stream
built from the held-out sentences (made-up timestamps over 30 days) with three synthetic negative
bursts, replayed as fast as possible through the configured rules; an alert is a true positive when
it names a burst's company between the burst's start and one rule window after its end; the delay is
event time from a burst's start to its first true alert. Throughput: items checked, scored, stored and
alert-checked per second over that replay (batches of 256). Results: benchmarks/results/market_monitor.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lmforge_monitor import sample, sentiment
from lmforge_monitor.cli import DEFAULT_CONFIG, build_monitor
from lmforge_monitor.config import load_config
from lmforge_monitor.entities import Watchlist
from lmforge_monitor.replay import replay
from sklearn.metrics import accuracy_score, f1_score

from lmforge.devices import cpu_has_fast_bf16
from lmforge.evaluation.baselines import tfidf_predict

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("market_monitor")


def machine() -> str:
    """The machine in words (cores, AMX, precision)."""
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), {precision} inference, torch {torch.__version__}, shared with other jobs"


def sentiment_scores(scorer: sentiment.Scorer, fit: list[tuple[str, str]], test: list[tuple[str, str]]) -> dict[str, float]:
    """Accuracy and macro-F1 of the model and of the TF-IDF baseline on ``test``."""
    gold = [label for label, _ in test]
    predicted = [s.label for s in scorer.score([text for _, text in test])]
    baseline = tfidf_predict([t for _, t in fit], [label for label, _ in fit], [t for _, t in test])
    return {"accuracy": accuracy_score(gold, predicted), "macro_f1": f1_score(gold, predicted, average="macro"),
            "tfidf_accuracy": accuracy_score(gold, baseline), "tfidf_macro_f1": f1_score(gold, baseline, average="macro")}


def alert_quality(alerts: list[dict[str, Any]], bursts: list[dict[str, Any]], slack_s: float) -> dict[str, Any]:
    """Precision, recall and mean delay of alerts against the injected bursts."""
    def hits(alert: dict[str, Any], burst: dict[str, Any]) -> bool:
        return alert["entity"] == burst["entity"] and burst["start"] <= alert["ts"] <= burst["end"] + slack_s

    true = [a for a in alerts if any(hits(a, b) for b in bursts)]
    delays = [min(a["ts"] for a in alerts if hits(a, b)) - b["start"] for b in bursts if any(hits(a, b) for a in alerts)]
    false = [{"entity": a["entity"], "rule": a["rule"], "ts": a["ts"]} for a in alerts if a not in true]
    return {"alert_precision": len(true) / len(alerts) if alerts else 0.0, "alert_recall": len(delays) / len(bursts),
            "alert_delay_s": sum(delays) / len(delays) if delays else None, "alerts": len(alerts), "false_alerts": false}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", default=None, help="labeled CSV (label,text) to score; default: the monitor's held-out 20%%")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="the monitor's config.yaml")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "market_monitor.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config)
    run = sentiment.ensure_model(cfg)
    fit_path, heldout_path = sentiment.prepare_split(cfg)
    fit, test = sentiment.read_labeled(fit_path), sentiment.read_labeled(Path(args.test) if args.test else heldout_path)
    scorer = sentiment.Scorer.from_run(run, cfg.model.batch, cfg.model.precision)
    result: dict[str, Any] = sentiment_scores(scorer, fit, test)
    log.info("sentiment on %s (%d sentences): %s", args.test or heldout_path, len(test), result)

    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "bench_stream.jsonl"
        watchlist = Watchlist.from_yaml(cfg.path(cfg.paths.watchlist))
        meta = sample.build_stream(sentiment.read_labeled(heldout_path), list(watchlist.entities.values()), stream, seed=1)
        bench_cfg = load_config(args.config, {"store": {"url": f"sqlite:///{Path(tmp) / 'bench.db'}"}})
        monitor = build_monitor(bench_cfg, scorer)
        started = time.perf_counter()
        replayed = replay(monitor, stream, batch=256)
        wall = time.perf_counter() - started
    slack = max(r.window_s for r in cfg.alerts.rules)
    quality = alert_quality(replayed.alerts, meta["bursts"], slack)
    log.info("replay: %s in %.1f s; alerts %s", replayed.summary(), wall, quality)
    out = {"accuracy": round(result["accuracy"], 4), "macro_f1": round(result["macro_f1"], 4),
           "tfidf_accuracy": round(result["tfidf_accuracy"], 4), "alert_precision": round(quality["alert_precision"], 4),
           "alert_recall": round(quality["alert_recall"], 4),
           "alert_delay_s": None if quality["alert_delay_s"] is None else round(quality["alert_delay_s"], 1),
           "ingest_items_per_s": round(replayed.stored / wall, 1), "machine": machine()}
    details = {**out, "tfidf_macro_f1": round(result["tfidf_macro_f1"], 4), "test_file": str(args.test or "held-out 20% (grouped, stratified)"),
               "test_sentences": len(test), "model": cfg.model.base, "stream_items": meta["items"], "bursts": len(meta["bursts"]),
               "alerts": quality["alerts"], "false_alerts": quality["false_alerts"], "replay_wall_s": round(wall, 1),
               "ingest": replayed.summary()}
    if not args.test:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(details, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
