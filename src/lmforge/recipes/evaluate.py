"""``lmforge evaluate``: metrics of a saved run on a labeled file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lmforge.artifacts import load
from lmforge.data.perturb import PERTURBATIONS
from lmforge.evaluation.perturb import write_perturbed


def evaluate(run: str | Path, data: str, text_column: str | None = None, label_column: str | None = None,
             text_pair_column: str | None = None, batch_size: int = 64, on_bad_rows: str = "error",
             perturb: list[str] | None = None, perturb_rate: float = 0.2, perturb_seed: int = 0) -> dict[str, Any]:
    """Evaluate the model of ``run`` on ``data`` and, with ``perturb``, on perturbed copies of it.

    Without ``perturb`` the result is the metrics dict; with it, ``{"clean": metrics, "<perturbation>": metrics, ...}``.

    Args:
        run: Run directory or model folder.
        data: A labeled file (CSV, TSV, JSONL, Parquet, TXT) or zoo dataset.
        text_column: Text column of ``data`` when it differs from training.
        label_column: Label column of ``data`` when it differs from training.
        text_pair_column: Second-text column for sentence pairs when it differs from training.
        batch_size: Examples per forward pass.
        on_bad_rows: ``error`` or ``skip``.
        perturb: Perturbations (``typos``, ``case``, ``swap``; see :mod:`lmforge.evaluation.perturb`).
        perturb_rate: Share of words each perturbation changes.
        perturb_seed: Seed of the perturbed copies.
    """
    for name in perturb or []:
        PERTURBATIONS.get(name)  # unknown names fail before any work
    predictor = load(run)
    overrides: dict[str, Any] = {"on_bad_rows": on_bad_rows}
    if text_pair_column:
        overrides["text_pair_column"] = text_pair_column
    clean = predictor.evaluate(data, text_column, label_column, batch_size, **overrides)
    if not perturb:
        return clean
    column = text_column or predictor.data.text_column
    results = {"clean": clean}
    with tempfile.TemporaryDirectory(prefix="lmforge-perturb-") as tmp:
        for name in perturb:
            copy = write_perturbed(data, Path(tmp) / f"{name}.jsonl", name, column, perturb_rate, perturb_seed)
            results[name] = predictor.evaluate(str(copy), column, label_column, batch_size, **overrides)
    return results
