"""``lmforge explain`` and ``lmforge audit``: why a run predicts what it does, and how safe its predictions are."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from lmforge.artifacts import load
from lmforge.data.sources import read_texts
from lmforge.evaluation.audit import audit, audit_markdown
from lmforge.evaluation.explain import Explanation, to_html, top_words
from lmforge.evaluation.explainer import Explainer, TokenLogprobs, html_page, logprob_html


def explain_texts(run: str | Path, texts: list[str], method: str = "ig", target: str | None = None, n_steps: int = 50,
                  html: str | Path | None = None) -> list[Explanation] | list[TokenLogprobs]:
    """Word attributions (classifier) or per-token log-probabilities (language model) of ``texts``.

    Args:
        run: Run directory, model folder or zoo name.
        texts: Texts to explain.
        method: ``ig`` or ``occlusion`` (classifiers).
        target: Class to explain; the predicted one when None.
        n_steps: Integrated gradients' path steps.
        html: Also write a highlighted HTML page here.
    """
    explainer = Explainer(load(run))
    if explainer.mode == "generator":
        rows: Any = explainer.logprobs(texts)
        body = logprob_html(rows)
    else:
        rows = explainer.explain(texts, method, target, n_steps)
        body = to_html(rows)
    if html is not None:
        Path(html).parent.mkdir(parents=True, exist_ok=True)
        Path(html).write_text(html_page(body, f"lmforge explain: {Path(str(run)).name}"), encoding="utf-8")
    return rows


def explain_global(run: str | Path, data: str | Path, top: int = 10, method: str = "occlusion", sample: int = 200,
                   text_column: str | None = None, seed: int = 0, min_count: int = 3) -> dict[str, Any]:
    """The most influential words per predicted class over a seeded sample of a file's texts.

    Returns:
        What :func:`lmforge.evaluation.explain.top_words` returns, plus ``method`` and ``num_texts``.
    """
    artifact = load(run)
    explainer = Explainer(artifact)
    texts, _ = read_texts(data, text_column or getattr(getattr(artifact, "data", None), "text_column", None))
    if len(texts) > sample:
        texts = random.Random(seed).sample(texts, sample)
    words = top_words(explainer.explain(texts, method), k=top, min_count=min_count)
    return {"method": method, "num_texts": len(texts), "classes": words}


def audit_run(run: str | Path, data: str | Path, out: str | Path | None = None, text_column: str | None = None,
              label_column: str | None = None, language: str = "auto", sample: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Bias probe, calibration and robustness of a classifier run on a file; writes audit.md, audit.json and reliability.png.

    Args:
        run: Run directory, model folder or zoo name (a single-label classifier).
        data: A file with the run's text column (and its label column for calibration).
        out: Folder for the report; nothing is written when None.
        text_column: Text column when it differs from training.
        label_column: Label column when it differs from training.
        language: ``en``, ``zh`` or ``auto`` (which shipped swap lists to use).
        sample: Audit a seeded sample of this many texts.
        seed: Seed of the sample and of the perturbations.
    """
    artifact = load(run)
    explainer = Explainer(artifact)
    data_cfg = getattr(artifact, "data", None)
    texts, labels = read_texts(data, text_column or getattr(data_cfg, "text_column", None),
                               label_column or getattr(data_cfg, "label_column", None))
    if sample is not None and len(texts) > sample:
        rows = random.Random(seed).sample(range(len(texts)), sample)
        texts, labels = [texts[i] for i in rows], [labels[i] for i in rows] if labels is not None else None
    folder = Path(out) if out is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    result = audit(explainer.predict_proba, explainer.label_names, texts, labels, language, folder, seed=seed)
    if folder is not None:
        (folder / "audit.md").write_text(audit_markdown(result), encoding="utf-8")
        (folder / "audit.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return result
