"""Training-run report: PNG curves from ``metrics.jsonl`` plus a Markdown summary."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lmforge.evaluation.metrics import metric_mode

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

DPI = 110
ANNOTATE_MAX_LABELS = 30
NON_METRIC_KEYS = {"split", "step", "epoch", "loss", "lr", "samples_per_s", "num_examples"}
Series = tuple[list[float], list[float]]


def write_report(
    run_dir: Path, final_metrics: dict[str, dict], title: str, config_text: str | None = None
) -> Path:
    """Plot the run's curves and write ``report.md`` next to them.

    Args:
        run_dir: Run directory; ``metrics.jsonl`` is read from it (missing or empty is fine)
            and ``plots/`` plus ``report.md`` are written into it.
        final_metrics: Split name -> metrics dict, e.g. ``{"validation": {...}, "test": {...}}``.
        title: Report heading.
        config_text: Resolved config as YAML, embedded verbatim when given.

    Returns:
        Path of the written ``report.md``.
    """
    run_dir = Path(run_dir)
    rows = read_metrics_log(run_dir / "metrics.jsonl")
    train = [r for r in rows if r.get("split") == "train"]
    evals = [r for r in rows if r.get("split") == "eval"]
    plots = _make_plots(run_dir / "plots", train, evals, final_metrics)
    sections = [
        f"# {title}",
        _summary(train, evals),
        _final_table(final_metrics),
        *_per_class_tables(final_metrics),
        *_entity_confusion_tables(final_metrics),
        _images_section(plots),
    ]
    if config_text is not None:
        sections.append(f"## Config\n\n```yaml\n{config_text.rstrip()}\n```")
    path = run_dir / "report.md"
    path.write_text("\n\n".join(s for s in sections if s) + "\n", encoding="utf-8")
    return path


def read_metrics_log(path: Path) -> list[dict[str, Any]]:
    """Parse a JSON-lines metrics log, skipping blank and unreadable lines.

    Args:
        path: The ``metrics.jsonl`` file; a missing file yields no rows.

    Returns:
        The decoded JSON objects, in file order.
    """
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            # A run killed mid-write leaves a truncated last line; it should not cost the report.
            log.warning("%s:%d is not valid JSON; skipped", path, number)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _make_plots(
    plot_dir: Path, train: list[dict], evals: list[dict], final_metrics: dict[str, dict]
) -> dict[str, Path]:
    """Draw every plot the data allows; returns caption -> file path."""
    candidates: dict[str, Figure | None] = {
        "loss": _loss_figure(_series(train, "loss"), _series(evals, "loss")),
        "metrics": _metrics_figure(evals),
        "lr": _lr_figure(_series(train, "lr")),
    }
    for split, metrics in final_metrics.items():
        if metrics.get("confusion_matrix") and metrics.get("labels"):
            fig = _confusion_figure(metrics["confusion_matrix"], metrics["labels"], split)
            candidates["confusion_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", split)] = fig
        if _entity_table(metrics) and metrics.get("per_class"):
            candidates["per_type_f1_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", split)] = _per_type_figure(metrics["per_class"], split)
    written: dict[str, Path] = {}
    for name, fig in candidates.items():
        if fig is not None:
            plot_dir.mkdir(parents=True, exist_ok=True)
            written[name] = plot_dir / f"{name}.png"
            fig.savefig(written[name], dpi=DPI, bbox_inches="tight")
    return written


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` (folders made), tightly cropped; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def new_figure(size: tuple[float, float] = (8.0, 4.5)) -> tuple[Figure, Axes]:
    """A pyplot-free figure on the Agg canvas, so plotting needs no display or global backend."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _style(ax: Axes, title: str, ylabel: str) -> None:
    """Shared title, step x axis, y label and grid."""
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.set(xlabel="step", ylabel=ylabel)
    ax.grid(True, alpha=0.3, linestyle="--")


def _loss_figure(train: Series, evals: Series) -> Figure | None:
    """Train loss (raw + smoothed) and eval loss against step."""
    if not train[0] and not evals[0]:
        return None
    fig, ax = new_figure()
    if train[0]:
        smooth = _ema(train[1])
        if smooth != train[1]:
            ax.plot(*train, color="tab:blue", alpha=0.25, linewidth=1, label="train (raw)")
        ax.plot(train[0], smooth, color="tab:blue", linewidth=2, label="train (smoothed)")
    if evals[0]:
        ax.plot(*evals, color="tab:orange", marker="o", linewidth=1.5, label="eval")
    values = train[1] + evals[1]
    if min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    _style(ax, "Loss", "loss")
    ax.legend()
    return fig


def _metrics_figure(evals: list[dict]) -> Figure | None:
    """Every scalar eval metric other than loss against step."""
    names = _eval_metric_names(evals)
    if not names:
        return None
    fig, ax = new_figure()
    for name in names:
        steps, values = _series(evals, name)
        arrow = "↓" if metric_mode(name) == "min" else "↑"
        ax.plot(steps, values, marker="o", markersize=4, linewidth=1.5, label=f"{name} {arrow}")
    _style(ax, "Evaluation metrics", "value")
    ax.legend(fontsize=9, ncol=1 + len(names) // 6)
    return fig


def _lr_figure(lr: Series) -> Figure | None:
    """Learning-rate schedule against step."""
    if not lr[0]:
        return None
    fig, ax = new_figure((8.0, 3.5))
    ax.plot(*lr, color="tab:green", linewidth=2)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    _style(ax, "Learning rate", "learning rate")
    return fig


def _confusion_figure(matrix: list[list[int]], labels: list[str], split: str) -> Figure:
    """Counts annotated on a row-normalised heat map; dense label sets drop the numbers."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    normed = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    n = len(labels)
    side = min(max(5.0, 0.45 * n + 2.5), 16.0)
    fig, ax = new_figure((side + 1.0, side))
    image = ax.imshow(normed, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true label")
    font = 9 if n <= ANNOTATE_MAX_LABELS else max(4, 9 - n // 20)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    if n <= ANNOTATE_MAX_LABELS:
        for (i, j), count in np.ndenumerate(counts):
            colour = "white" if normed[i, j] > 0.5 else "black"
            ax.text(j, i, f"{int(count)}", ha="center", va="center", color=colour, fontsize=font)
    ax.set_title(f"Confusion matrix ({split})", fontsize=12, fontweight="bold")
    ax.set(xlabel="predicted label", ylabel="true label")
    return fig


def _per_type_figure(per_class: dict[str, dict[str, Any]], split: str) -> Figure:
    """Horizontal bars of the F1 of each entity type, with precision and recall as ticks and the support in the label."""
    names = list(per_class)
    fig, ax = new_figure((7.0, max(2.5, 0.45 * len(names) + 1.2)))
    y = np.arange(len(names))
    ax.barh(y, [per_class[n]["f1"] for n in names], color="tab:blue", alpha=0.8, label="F1")
    ax.scatter([per_class[n]["precision"] for n in names], y, marker="|", s=200, color="tab:orange", label="precision", zorder=3)
    ax.scatter([per_class[n]["recall"] for n in names], y, marker="|", s=200, color="tab:green", label="recall", zorder=3)
    ax.set_yticks(y, [f"{n} ({per_class[n].get('support', 0)})" for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_title(f"Entity F1 per type ({split})", fontsize=12, fontweight="bold")
    ax.set(xlabel="score", ylabel="type (gold entities)")
    ax.grid(True, axis="x", alpha=0.3, linestyle="--")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def _entity_table(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The entity-type confusion of NER metrics (``{"types", "table", "spurious"}``), or None."""
    confusion = metrics.get("confusion")
    return confusion if isinstance(confusion, dict) and isinstance(confusion.get("table"), dict) else None


def _entity_confusion_tables(final_metrics: dict[str, dict]) -> list[str]:
    """Per split with NER metrics: gold entity types (rows) against the type predicted on the same span, missed and spurious."""
    tables = []
    for split, metrics in final_metrics.items():
        confusion = _entity_table(metrics)
        if not confusion or not confusion.get("types"):
            continue
        types = confusion["types"]
        lines = ["| gold \\ predicted | " + " | ".join(_cell(t) for t in types) + " | missed |", "|---|" + "---:|" * (len(types) + 1)]
        for gold in types:
            row = confusion["table"].get(gold, {})
            lines.append(f"| {_cell(gold)} | " + " | ".join(str(row.get(t, 0)) for t in [*types, "missed"]) + " |")
        lines.append("| spurious | " + " | ".join(str(confusion["spurious"].get(t, 0)) for t in types) + " | |")
        tables.append(f"### Entity confusion ({_cell(split)})\n\nGold entities by the type predicted with the same boundaries; "
                      "missed: no prediction with those boundaries; spurious: predictions that match no gold span.\n\n"
                      + "\n".join(lines))
    return tables


def _ema(values: list[float]) -> list[float]:
    """Bias-corrected exponential moving average; short series are returned unchanged."""
    weight = min(0.9, max(0.0, 1.0 - 10.0 / len(values)))
    if weight == 0.0:
        return list(values)
    smoothed, running = [], 0.0
    for i, value in enumerate(values, start=1):
        running = weight * running + (1.0 - weight) * value
        smoothed.append(running / (1.0 - weight**i))
    return smoothed


def _series(rows: list[dict], key: str) -> Series:
    """(steps, values) for rows with a finite ``key``; rows without a step use their position."""
    steps: list[float] = []
    values: list[float] = []
    for index, row in enumerate(rows):
        if _is_finite(row.get(key)):
            steps.append(row["step"] if _is_finite(row.get("step")) else index)
            values.append(float(row[key]))
    return steps, values


def _is_finite(value: Any) -> bool:
    """True for finite ints and floats; bools, NaN and inf are not plottable values."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _eval_metric_names(evals: list[dict]) -> list[str]:
    """Scalar metric keys of eval rows, in first-seen order, minus bookkeeping keys."""
    names: dict[str, None] = {}
    for row in evals:
        for key, value in row.items():
            if key not in NON_METRIC_KEYS and _is_finite(value):
                names.setdefault(key)
    return list(names)


def _summary(train: list[dict], evals: list[dict]) -> str:
    """One line: steps, epochs, final train loss and the best eval score."""
    if not train and not evals:
        return "_No training log (metrics.jsonl) was found; only final metrics are shown._"
    last = (train or evals)[-1]
    parts = [f"**{last.get('step', len(train))}** steps"]
    if _is_finite(last.get("epoch")):
        parts.append(f"**{last['epoch']:g}** epochs")
    losses = _series(train, "loss")[1]
    if losses:
        parts.append(f"final train loss **{losses[-1]:.4f}**")
    names = _eval_metric_names(evals)
    if names:
        steps, values = _series(evals, names[0])
        pick = min if metric_mode(names[0]) == "min" else max
        best = pick(range(len(values)), key=values.__getitem__)
        parts.append(f"best eval {names[0]} **{values[best]:.4f}** (step {steps[best]:g})")
    return "Trained for " + ", ".join(parts) + "."


def _final_table(final_metrics: dict[str, dict]) -> str:
    """Markdown table of scalar final metrics: rows = metric names, columns = splits."""
    splits = list(final_metrics)
    names: dict[str, None] = {}
    for metrics in final_metrics.values():
        for key, value in metrics.items():
            if value is None or isinstance(value, float) or _is_finite(value):
                names.setdefault(key)
    if not names:
        return "## Final metrics\n\n_No final metrics were recorded._"
    lines = [
        "| metric | " + " | ".join(_cell(s) for s in splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    for name in names:
        cells = [_cell(final_metrics[s].get(name, "")) for s in splits]
        lines.append(f"| {_cell(name)} | " + " | ".join(cells) + " |")
    return "## Final metrics\n\n" + "\n".join(lines)


def _per_class_tables(final_metrics: dict[str, dict]) -> list[str]:
    """One Markdown precision/recall/F1/support table per split that has ``per_class``."""
    tables = []
    for split, metrics in final_metrics.items():
        per_class = metrics.get("per_class")
        if not isinstance(per_class, dict) or not per_class:
            continue
        lines = ["| label | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|"]
        for label, row in per_class.items():
            cells = [_cell(row.get(k)) for k in ("precision", "recall", "f1", "support")]
            lines.append(f"| {_cell(label)} | " + " | ".join(cells) + " |")
        tables.append(f"### Per-class metrics ({_cell(split)})\n\n" + "\n".join(lines))
    return tables


def _images_section(plots: dict[str, Path]) -> str:
    """Relative image links, curves and confusion matrices under separate headings."""
    confusion = [name for name in plots if name.startswith("confusion_")]
    per_type = [name for name in plots if name.startswith("per_type_f1_")]
    groups = {
        "Training curves": [name for name in plots if name not in confusion + per_type],
        "Confusion matrices": confusion,
        "Entity scores per type": per_type,
    }
    blocks = [
        f"## {heading}\n\n" + "\n\n".join(f"![{n}](plots/{plots[n].name})" for n in names)
        for heading, names in groups.items()
        if names
    ]
    return "\n\n".join(blocks)


def _cell(value: Any) -> str:
    """Markdown table cell text: four-decimal floats, ``n/a`` for None, pipes escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")
