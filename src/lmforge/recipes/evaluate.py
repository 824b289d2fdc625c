"""``lmforge evaluate``: metrics of a saved run on a labeled file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.artifact import load


def evaluate(run: str | Path, data: str, text_column: str | None = None, label_column: str | None = None,
             text_pair_column: str | None = None, batch_size: int = 64, on_bad_rows: str = "error") -> dict[str, Any]:
    """Evaluate the model of ``run`` on ``data``.

    Args:
        run: Run directory or model folder.
        data: A labeled file (CSV, TSV, JSONL, Parquet, TXT) or zoo dataset.
        text_column: Text column of ``data`` when it differs from training.
        label_column: Label column of ``data`` when it differs from training.
        text_pair_column: Second-text column for sentence pairs when it differs from training.
        batch_size: Examples per forward pass.
        on_bad_rows: ``error`` or ``skip``.
    """
    predictor = load(run)
    overrides: dict[str, Any] = {"on_bad_rows": on_bad_rows}
    if text_pair_column:
        overrides["text_pair_column"] = text_pair_column
    return predictor.evaluate(data, text_column, label_column, batch_size, **overrides)
