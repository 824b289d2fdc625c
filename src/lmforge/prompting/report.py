"""``report.md`` of ``lmforge prompt``: the comparison table and a plot of accuracy against k."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from lmforge.evaluation.report import new_figure, save_figure
from lmforge.prompting.protocol import Cell


def plot_accuracy(cells: list[Cell], path: Path) -> Path | None:
    """Mean accuracy (± std as error bars) per method against k; zero-shot methods as dashed lines.

    Returns:
        ``path``, or None when there is nothing to plot.
    """
    if not cells:
        return None
    fig, ax = new_figure((7.5, 4.5))
    few = sorted({c.k for c in cells if c.k > 0})
    names = list(dict.fromkeys(c.method for c in cells))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(names) > len(colors):  # one colour per method: the default cycle has 10
        colors = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab20"].colors]
    for i, name in enumerate(names):
        color = colors[i % len(colors)]
        mine = sorted((c for c in cells if c.method == name), key=lambda c: c.k)
        if mine[0].k == 0 and few:
            ax.axhline(100 * mine[0].stat()[0], linestyle="--", linewidth=1, color=color, label=f"{name} (zero-shot)")
            continue
        means, stds = zip(*(c.stat() for c in mine), strict=True)
        ax.errorbar([c.k for c in mine], [100 * m for m in means], yerr=[100 * s for s in stds], marker="o", capsize=3,
                    color=color, label=name)
    ax.set_xlabel("labeled examples per class (k)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("prompting methods on the same k-shot draws")
    if few:
        ax.set_xticks(few)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: many methods hide lines
    return save_figure(fig, path)


def write_prompt_report(run_dir: Path, cells: list[Cell], table: str, config_text: str) -> Path:
    """Write ``report.md`` (table, plot, config) into ``run_dir``."""
    plot = plot_accuracy(cells, run_dir / "plots" / "accuracy_vs_k.png")
    parts = ["# lmforge prompt", "Accuracy in percent, mean ± std over seeds (one run for zero-shot methods).",
             f"```\n{table}\n```"]
    if plot is not None:
        parts.append(f"![accuracy against k](plots/{plot.name})")
    parts.append(f"## Config\n\n```yaml\n{config_text.rstrip()}\n```")
    path = run_dir / "report.md"
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path
