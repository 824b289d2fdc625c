"""``lmforge bench``: what a run costs to serve and what it scores, measured the same way for every run.

Each run is measured in a fresh process (so load time and peak memory are its own): size on
disk, load time, latency of one text (p50/p99), sentences per second in length-sorted batches
of 32, peak resident memory, and the metric on labeled data. Runs are then compared with a
reference run (the first): how often their predicted labels agree. Language models report
tokens per second of greedy decoding at batch 1 and perplexity instead.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lmforge import artifacts
from lmforge.artifacts.base import folder_bytes
from lmforge.compression.source import Parent, open_any, validation_examples
from lmforge.data.examples import Examples
from lmforge.errors import LmforgeError
from lmforge.evaluation.report import save_figure

# Columns of the terminal table: key, heading, format.
COLUMNS = (("run", "run", "{}"), ("kind", "kind", "{}"), ("size_mb", "size MB", "{:.1f}"), ("load_s", "load s", "{:.2f}"),
           ("p50_ms", "p50 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"), ("sentences_per_s", "sent/s", "{:.1f}"),
           ("tokens_per_s", "tok/s", "{:.1f}"), ("peak_rss_mb", "RSS MB", "{:.0f}"), ("metric", "metric", "{}"),
           ("score", "score", "{:.4f}"), ("agreement", "agree", "{:.4f}"))
PROMPT = "Write a short story about a robot who learns to paint."


def _size(artifact: Any) -> int:
    members = getattr(artifact, "members", [])
    return folder_bytes(artifact.path) + sum(folder_bytes(m.path) for m in members)


def _labeled(run: str, artifact: Any, data: str | None, max_samples: int | None) -> tuple[Examples, np.ndarray]:
    if data:
        examples, targets = artifacts.labeled_examples(artifact.data, artifact.labels, data)
    else:
        parent: Parent = open_any(run)
        examples, targets = validation_examples(parent, None, None)
    if max_samples and max_samples < len(examples):
        keep = np.sort(np.random.default_rng(0).permutation(len(examples))[:max_samples])
        examples, targets = examples.subset(keep), targets[keep]
    return examples, targets


def _latencies(artifact: Any, texts: list[str], count: int) -> list[float]:
    rng = np.random.default_rng(0)
    picks = rng.choice(len(texts), size=min(count, len(texts)), replace=False)
    artifact.predict([texts[0]])
    times = []
    for i in picks:
        start = time.perf_counter()
        artifact.predict([texts[i]])
        times.append(1000 * (time.perf_counter() - start))
    return times


def _classifier(artifact: Any, run: str, data: str | None, batch_size: int, latency_samples: int,
                max_samples: int | None) -> dict[str, Any]:
    examples, targets = _labeled(run, artifact, data, max_samples)
    texts = examples.texts
    latencies = _latencies(artifact, texts, latency_samples)
    artifact.predict(texts[:batch_size], batch_size=batch_size)  # warm-up at the batch size measured
    start = time.perf_counter()
    scores = artifact.scores(examples, None, batch_size)
    seconds = time.perf_counter() - start
    metrics = artifact.task.metrics(scores, targets, artifact.labels)
    metric = "accuracy" if "accuracy" in metrics else artifact.task.default_metric
    return {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "sentences_per_s": len(texts) / seconds, "metric": metric, "score": float(metrics[metric]),
            "examples": len(texts), "predictions": scores.argmax(-1).tolist() if scores.ndim == 2 else scores.tolist()}


def _generator(artifact: Any, data: str | None, new_tokens: int) -> dict[str, Any]:
    artifact.generate(PROMPT, max_new_tokens=4)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        artifact.generate(PROMPT, max_new_tokens=new_tokens, chat=False)
        rates.append(new_tokens / (time.perf_counter() - start))
    out: dict[str, Any] = {"tokens_per_s": float(np.median(rates))}
    if data:
        out |= {"metric": "perplexity", "score": float(artifact.evaluate(data)["perplexity"])}
    return out


def measure(run: str, data: str | None = None, batch_size: int = 32, latency_samples: int = 100,
            max_samples: int | None = None, device: str | None = None, new_tokens: int = 64) -> dict[str, Any]:
    """Measure one run in this process (see the module docstring for what)."""
    start = time.perf_counter()
    artifact = artifacts.load(run, device=device)
    load_s = time.perf_counter() - start
    row: dict[str, Any] = {"run": str(run), "kind": artifact.kind, "method": artifact.meta.get("method"),
                           "size_mb": _size(artifact) / 1e6, "load_s": load_s}
    if "generate" in artifact.capabilities and not hasattr(artifact, "labels"):
        row |= _generator(artifact, data, new_tokens)
    elif hasattr(artifact, "scores") and hasattr(artifact, "labels"):
        row |= _classifier(artifact, str(run), data, batch_size, latency_samples, max_samples)
    else:
        raise LmforgeError(f"{run} is an artifact of kind {artifact.kind}; bench measures classifiers and language models")
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def bench(runs: list[str], isolate: bool = True, reference: str | None = None, **options: Any) -> list[dict[str, Any]]:
    """Measure every run (each in its own process when ``isolate``) and add their agreement with ``reference``."""
    rows = []
    for run in runs:
        if isolate:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                rows.append(pool.submit(measure, str(run), **options).result())
        else:
            rows.append(measure(str(run), **options))
    ref = next((r for r in rows if r["run"] == str(reference)), rows[0]) if rows else None
    for row in rows:
        theirs, ours = ref.get("predictions") if ref else None, row.get("predictions")
        row["agreement"] = float(np.mean(np.array(ours) == np.array(theirs))) if ours and theirs and len(ours) == len(theirs) else None
    for row in rows:
        row.pop("predictions", None)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (columns no run has are left out)."""
    columns = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([fmt.format(row[k]) if row.get(k) is not None else "-" for k, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def chart(rows: list[dict[str, Any]], path: Path) -> Path:
    """A bar chart PNG comparing the runs on speed, latency, size and score."""
    panels = [(k, t) for k, t in (("sentences_per_s", "sentences/s (batch 32)"), ("tokens_per_s", "tokens/s (batch 1)"),
                                  ("p50_ms", "p50 latency, ms (batch 1)"), ("size_mb", "size on disk, MB"), ("score", "score"))
              if any(r.get(k) is not None for r in rows)]
    fig = Figure(figsize=(4.0 * len(panels), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    names = [Path(r["run"]).name or r["run"] for r in rows]
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        values = [r.get(key) or 0.0 for r in rows]
        bars = ax.bar(range(len(rows)), values, color=[f"C{j}" for j in range(len(rows))])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3, linestyle="--")
    return save_figure(fig, path)
