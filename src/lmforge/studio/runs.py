"""What the studio knows about runs: it finds run directories under its roots and reads their files.

A run directory holds ``model/lmforge.json`` once it is complete, and ``config.yaml``,
``metrics.jsonl``, ``eval_results.json``, ``report.md`` and ``plots/`` as its recipe wrote them.
A folder with ``metrics.jsonl`` or ``config.yaml`` but no ``lmforge.json`` yet is a run in progress
(or one that stopped). Nothing here loads a model: listing a hundred runs reads only small files.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmforge.artifacts.base import META_FILE, folder_bytes, legacy_kind
from lmforge.evaluation import metric_mode
from lmforge.evaluation.report import read_metrics_log

# Folders that hold a run's internals, never another run.
_SKIP = {"model", "checkpoints", "plots", "tensorboard", "__pycache__", ".git"}
# Metrics shown first in the runs table, when a run has them.
HEADLINE = ("accuracy", "macro_f1", "f1", "exact_match", "micro_f1", "pearson", "perplexity", "loss")
MAX_DEPTH = 4


@dataclass
class RunInfo:
    """One run as the runs table shows it.

    Attributes:
        id: The run's name in URLs: its path under its root (``reviews``, ``sweeps/trial-3``).
        path: The run directory.
        status: ``complete`` (a model was saved) or ``incomplete`` (training, stopped or failed).
        kind: The artifact kind from ``lmforge.json`` (empty while incomplete).
        task: The task name.
        base_model: The model the run started from.
        method: The tuning method (``full``, ``lora``...), the compression method, or the prompt method.
        parent: The run a compressed run was made from.
        metrics: Headline metrics of the last evaluated split (test, else validation).
        split: The split ``metrics`` come from.
        date: When the run last changed (ISO 8601, UTC).
        size_bytes: The saved model's size on disk.
    """

    id: str
    path: Path
    status: str
    kind: str = ""
    task: str = ""
    base_model: str = ""
    method: str = ""
    parent: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    split: str = ""
    date: str = ""
    size_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {**asdict(self), "path": str(self.path)}


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable (a run being written)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_config(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """The resolved ``config.yaml`` of a run as text and as a mapping (empty when absent or unreadable)."""
    try:
        text = (run_dir / "config.yaml").read_text(encoding="utf-8")
        tree = yaml.safe_load(text)
    except (OSError, yaml.YAMLError):
        return "", {}
    return text, tree if isinstance(tree, dict) else {}


def _is_run(folder: Path) -> bool:
    return ((folder / "model" / META_FILE).is_file() or (folder / META_FILE).is_file() or (folder / "metrics.jsonl").is_file()
            or ((folder / "config.yaml").is_file() and (folder / "train.log").is_file()))


def _walk(root: Path, depth: int = 0) -> list[Path]:
    """Run directories under ``root`` (itself included), not descending into a run's own folders."""
    if not root.is_dir():
        return []
    found = [root] if _is_run(root) else []
    if depth >= MAX_DEPTH:
        return found
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _SKIP and not p.name.startswith("."))
    except OSError:
        return found
    for child in children:
        found += _walk(child, depth + 1)
    return found


def scalar_metrics(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of one split's metrics (per-class tables, matrices and counts left out)."""
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("num_examples", "fit_seconds", "share_of_run") and math.isfinite(float(v))}


def final_metrics(results: Any) -> tuple[str, dict[str, float]]:
    """The split (test, else validation, else the first) of ``eval_results.json`` and its scalar metrics."""
    if not isinstance(results, dict):
        return "", {}
    own = {k: v for k, v in results.items() if isinstance(v, dict) and "baseline" not in k}
    for name in ("test", "validation", *own):
        if name in own:
            return name, scalar_metrics(own[name])
    return "", {}


def _method(meta: dict[str, Any], config: dict[str, Any]) -> str:
    if meta.get("kind") == "compressed":
        return str(meta.get("method", "compressed"))
    tuning = config.get("tuning")
    if isinstance(tuning, dict) and tuning.get("method"):
        return str(tuning["method"])
    for source in (config.get("method"), meta.get("method")):
        if isinstance(source, dict):
            return str(source.get("name", ""))
        if isinstance(source, str):
            return source
    return ""


def _meta(run_dir: Path) -> tuple[Path | None, dict[str, Any]]:
    for folder in (run_dir / "model", run_dir):
        meta = read_json(folder / META_FILE)
        if isinstance(meta, dict) and "kind" in meta:
            return folder, meta
    return None, {}


def run_info(run_id: str, run_dir: Path) -> RunInfo:
    """The runs-table row of one run directory."""
    folder, meta = _meta(run_dir)
    _, config = read_config(run_dir)
    split, metrics = final_metrics(read_json(run_dir / "eval_results.json"))
    if not metrics and isinstance(meta.get("metrics"), dict):
        split, metrics = "saved", scalar_metrics(meta["metrics"])
    stamps = [p.stat().st_mtime for p in (run_dir / "metrics.jsonl", run_dir / "train.log", run_dir / "config.yaml") if p.is_file()]
    if folder is not None:
        stamps.append((folder / META_FILE).stat().st_mtime)
    task = meta.get("task") if isinstance(meta.get("task"), dict) else config.get("task") or {}
    return RunInfo(
        id=run_id, path=run_dir, status="complete" if folder is not None else "incomplete",
        kind=legacy_kind(meta) if meta else "", task=str(task.get("name", "")) if isinstance(task, dict) else "",
        base_model=str(meta.get("base_model") or (config.get("model") or {}).get("name", "")), method=_method(meta, config),
        parent=str(meta.get("parent", "")), metrics=metrics, split=split,
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(stamps))) if stamps else "",
        size_bytes=folder_bytes(folder) if folder is not None else 0,
    )


class RunIndex:
    """The runs under one or more root folders, found afresh on every :meth:`scan` (runs come and go while the studio runs).

    Args:
        roots: Folders to look in (``runs/`` by default); each may hold runs nested a few levels deep.
    """

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(r).expanduser().resolve() for r in roots]

    def _ids(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for root in self.roots:
            for run_dir in _walk(root):
                rel = run_dir.relative_to(root).as_posix()
                name = root.name if rel == "." else rel
                if name in out or len(self.roots) > 1:
                    name = f"{root.name}/{rel}".removesuffix("/.")
                out[name] = run_dir
        return out

    def scan(self) -> list[RunInfo]:
        """Every run, newest first."""
        rows = [run_info(run_id, path) for run_id, path in self._ids().items()]
        return sorted(rows, key=lambda r: r.date, reverse=True)

    def path(self, run_id: str) -> Path | None:
        """The directory of run ``run_id``, or None when there is no such run."""
        return self._ids().get(run_id)


def curves(run_dir: Path) -> dict[str, dict[str, list[list[float]]]]:
    """``metrics.jsonl`` as chart series: split -> metric -> [[step, value], ...]."""
    out: dict[str, dict[str, list[list[float]]]] = {}
    for row in read_metrics_log(run_dir / "metrics.jsonl"):
        split, step = str(row.get("split", "train")), row.get("step")
        if not isinstance(step, (int, float)):
            continue
        for key, value in scalar_metrics(row).items():
            if key not in ("step", "epoch"):
                out.setdefault(split, {}).setdefault(key, []).append([float(step), value])
    return out


def confusion(results: Any) -> dict[str, Any] | None:
    """The confusion matrix of the reported split: ``{"rows", "cols", "matrix", "split"}`` (rows gold, columns predicted), or None.

    Classifiers save a square ``confusion_matrix``; NER runs save entity types with ``missed`` and
    ``spurious`` counts, which become an extra column and row.
    """
    split, _ = final_metrics(results)
    values = results.get(split) if split and isinstance(results, dict) else None
    if not isinstance(values, dict):
        return None
    if isinstance(values.get("confusion_matrix"), list):
        labels = [str(x) for x in values.get("labels") or range(len(values["confusion_matrix"]))]
        return {"rows": labels, "cols": labels, "matrix": values["confusion_matrix"], "split": split}
    entity = values.get("confusion")
    if isinstance(entity, dict) and isinstance(entity.get("table"), dict):
        types = [str(t) for t in entity["table"]]
        cols = types + ["missed"]
        matrix = [[int(entity["table"][t].get(c, 0)) for c in cols] for t in types]
        spurious = entity.get("spurious") or {}
        matrix.append([int(spurious.get(c, 0)) for c in types] + [0])
        return {"rows": types + ["spurious"], "cols": cols, "matrix": matrix, "split": split}
    return None


def run_detail(info: RunInfo) -> dict[str, Any]:
    """Everything the run page shows: the row, curves, config, final metrics, confusion matrix, report, plots, model card."""
    run_dir = info.path
    config_text, _ = read_config(run_dir)
    results = read_json(run_dir / "eval_results.json")
    report = run_dir / "report.md"
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png")) if (run_dir / "plots").is_dir() else []
    _, meta = _meta(run_dir)
    results = results if isinstance(results, dict) else {}
    keys = list(dict.fromkeys(k for values in results.values() if isinstance(values, dict) for k in scalar_metrics(values)))
    matrix = confusion(results)
    peak = max((max(row, default=0) for row in matrix["matrix"]), default=0) if matrix else 0
    return {"run": info.to_dict(), "curves": curves(run_dir), "config": config_text, "results": results, "metric_keys": keys,
            "confusion": matrix, "confusion_peak": peak or 1,
            "report": report.read_text(encoding="utf-8") if report.is_file() else "", "plots": plots, "meta": meta}


def human_size(size: int) -> str:
    """``1.2 MB``-style sizes for the runs table."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def compare_table(details: list[dict[str, Any]]) -> tuple[list[str], dict[str, float]]:
    """The metrics shown when comparing runs (headline ones first) and the best value of each (lowest for losses)."""
    seen = list(dict.fromkeys(k for d in details for k in d["run"]["metrics"]))
    keys = [k for k in HEADLINE if k in seen] + [k for k in seen if k not in HEADLINE]
    best = {}
    for key in keys:
        values = [d["run"]["metrics"][key] for d in details if key in d["run"]["metrics"]]
        if len(values) > 1:
            best[key] = min(values) if metric_mode(key) == "min" else max(values)
    return keys, best
