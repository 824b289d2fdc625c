"""Robustness evaluation: perturbed copies of a labeled file, and the clean-versus-perturbed table.

The perturbations themselves (typos, case, swap) live in :mod:`lmforge.data.perturb`, where
augmentation and the text adversary use them too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge import zoo
from lmforge.data.perturb import PERTURBATIONS, Perturbation, perturb_texts, typo_word, typos
from lmforge.data.sources import read_table
from lmforge.errors import DataError

__all__ = ["PERTURBATIONS", "Perturbation", "perturb_texts", "robustness_table", "typo_word", "typos", "write_perturbed"]


def write_perturbed(source: str | Path, out: Path, name: str, text_column: str, rate: float = 0.2, seed: int = 0,
                    fmt: str = "auto", encoding: str = "utf-8") -> Path:
    """A JSON-lines copy of the labeled file ``source`` with ``text_column`` perturbed by ``name``.

    Every other column is copied as is, so any artifact's ``evaluate`` reads the copy like the original.
    """
    table = read_table(zoo.resolve_dataset(str(source)), fmt, encoding, "skip")
    if text_column not in table.columns:
        raise DataError(f"{table.path} has no column '{text_column}' to perturb; pass --text-column")
    texts = [str(row.get(text_column) or "") for row in table.rows]
    perturbed = perturb_texts(texts, name, rate, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row, text in zip(table.rows, perturbed, strict=False):
            f.write(json.dumps({**row, text_column: text}, ensure_ascii=False, default=str) + "\n")
    return out


def robustness_table(results: dict[str, dict[str, Any]], metric: str) -> str:
    """Aligned rows of ``metric`` per perturbation, with the drop from the clean score."""
    clean = results["clean"].get(metric)
    lines = [f"{'data':<10}{metric:>12}{'drop':>10}", "-" * 32]
    for name, values in results.items():
        value = values.get(metric)
        drop = "" if name == "clean" or value is None or clean is None else f"{clean - value:+.4f}"
        lines.append(f"{name:<10}{value if value is None else f'{value:.4f}':>12}{drop:>10}")
    return "\n".join(lines)
