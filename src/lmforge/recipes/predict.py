"""``lmforge predict``: labels and probabilities for texts given inline or in a file (entities for ner runs,
answers for qa runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.artifacts import load
from lmforge.data.pipeline import read_examples


def predict_texts(run: str | Path, texts: list[str], top_k: int = 1, batch_size: int = 64,
                  pairs: list[str] | None = None) -> list[dict[str, Any]]:
    """Predictions for ``texts`` (and ``pairs``: second texts, or the contexts of questions for qa runs) in input order."""
    return load(run).predict(texts, pairs, top_k=top_k, batch_size=batch_size)


def _write(out: str | Path, rows: list[dict[str, Any]]) -> int:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def predict_file(run: str | Path, source: str, out: str | Path, text_column: str | None = None, top_k: int = 1,
                 batch_size: int = 64) -> int:
    """Predict every row of ``source`` and write one JSON object per line to ``out``; returns the row count."""
    predictor = load(run)
    cfg = predictor.data.model_copy(update={"on_bad_rows": "error", **({"text_column": text_column} if text_column else {})})
    reader = getattr(getattr(predictor, "task", None), "read_inputs", None)
    if reader is not None:
        # ner: CoNLL/JSONL sentences (or a text column); qa: SQuAD JSON or JSONL questions with their contexts.
        examples = reader(source, cfg)
        results = predictor.predict_examples(examples, top_k=top_k, batch_size=batch_size)
        lines = examples.lines or [None] * len(results)  # SQuAD JSON names questions by id, not line
        return _write(out, [result if line is None else {"line": line, **result} for line, result in zip(lines, results)])
    examples = read_examples(source, cfg, labeled=False, text_column=text_column)
    results = predictor.predict(examples.texts, examples.pairs, top_k=top_k, batch_size=batch_size)
    return _write(out, [{"line": line, **result} for line, result in zip(examples.lines, results)])
