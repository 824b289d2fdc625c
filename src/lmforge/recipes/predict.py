"""``lmforge predict``: labels and probabilities for texts given inline or in a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.artifacts import load
from lmforge.data.pipeline import read_examples


def predict_texts(run: str | Path, texts: list[str], top_k: int = 1, batch_size: int = 64) -> list[dict[str, Any]]:
    """Predictions for ``texts`` in input order."""
    return load(run).predict(texts, top_k=top_k, batch_size=batch_size)


def predict_file(run: str | Path, source: str, out: str | Path, text_column: str | None = None, top_k: int = 1,
                 batch_size: int = 64) -> int:
    """Predict every row of ``source`` and write one JSON object per line to ``out``; returns the row count."""
    predictor = load(run)
    cfg = predictor.data.model_copy(update={"on_bad_rows": "error"})
    examples = read_examples(source, cfg, labeled=False, text_column=text_column)
    results = predictor.predict(examples.texts, examples.pairs, top_k=top_k, batch_size=batch_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for line, result in zip(examples.lines, results):
            f.write(json.dumps({"line": line, **result}, ensure_ascii=False) + "\n")
    return len(results)
