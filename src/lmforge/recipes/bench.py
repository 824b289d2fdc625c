"""``lmforge bench``: size, load time, latency, throughput, memory and accuracy of runs, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.compression.bench import bench as measure_runs
from lmforge.compression.bench import chart, table


def bench(runs: list[str], data: str | None = None, reference: str | None = None, batch_size: int = 32,
          latency_samples: int = 100, max_samples: int | None = None, plot: str | Path | None = "bench.png",
          isolate: bool = True, device: str | None = None) -> list[dict[str, Any]]:
    """Measure ``runs`` on ``data`` (each run's own validation data when absent) and draw the comparison.

    Args:
        runs: Run directories, model folders or zoo models.
        data: Labeled file the classifiers are scored on (text for perplexity, for language models).
        reference: The run the others' predictions are compared with; the first when absent.
        batch_size: Batch of the throughput measurement (texts sorted by length).
        latency_samples: Single texts timed for the latency percentiles.
        max_samples: Use a seeded subset of this many examples of ``data``.
        plot: PNG bar chart comparing the runs; none when None.
        isolate: Measure each run in a fresh process (its own load time and memory).
        device: ``cpu``, ``cuda``...; the GPU when there is one.
    """
    rows = measure_runs(list(runs), isolate, reference, data=data, batch_size=batch_size, latency_samples=latency_samples,
                        max_samples=max_samples, device=device)
    if plot:
        chart(rows, Path(plot))
    return rows


def render(rows: list[dict[str, Any]], as_json: bool) -> str:
    """The terminal table, or one JSON line per run."""
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) if as_json else table(rows)
