"""The artifact seam: what a saved run is, the one reader and writer of ``lmforge.json``, and :func:`load`.

A run's model folder holds the ecosystem's own files (a transformers model, a peft adapter, an
ONNX graph...) plus ``lmforge.json``, which names the artifact ``kind`` and everything lmforge
needs to use it (task, labels, text settings, the base model). ``lmforge.json`` is written last and
atomically, so a folder without it is not a run and a half-written one is never accepted.

Each kind lives in its own module of this package and registers a loader in :data:`ARTIFACTS`;
:func:`load` reads the metadata, checks it, and dispatches on the kind.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from transformers import AutoConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from lmforge import __version__, zoo
from lmforge.config import DataConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.normalize import make_normalizer
from lmforge.data.pipeline import encode_labels, read_examples
from lmforge.devices import default_device, describe_precision
from lmforge.errors import LmforgeError
from lmforge.models.build import from_pretrained
from lmforge.registry import Registry
from lmforge.tasks.base import Task

log = logging.getLogger("lmforge")
META_FILE = "lmforge.json"

# Data settings a saved model needs to read and clean new inputs the way it was trained.
DATA_KEYS = {"normalize", "lowercase", "fullwidth_to_halfwidth", "max_length", "text_column", "text_pair_column",
             "label_column", "label_separator"}

# What an artifact can do; the service, the studio and the command line offer what a run has.
CAPABILITIES = ("predict", "evaluate", "generate", "embed", "fill_mask", "score")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def write_meta(out: Path, kind: str, base_model: str, labels: LabelSpace | None = None,
               data: DataConfig | dict[str, Any] | None = None, **fields: Any) -> Path:
    """Write ``out/lmforge.json`` of an artifact of ``kind``: the one writer of that file.

    The file is written to a temporary name and renamed, so a reader sees either no run or a
    complete one. ``data`` keeps only the settings that reading new inputs needs.

    Args:
        out: The model folder (created when missing).
        kind: The artifact kind, a name registered in :data:`ARTIFACTS`.
        base_model: The model the run started from (a zoo name, folder or run).
        labels: The label space, for kinds that predict labels.
        data: The data settings (or their dict) the run read its text with.
        fields: Kind-specific entries.
    """
    meta: dict[str, Any] = {"kind": kind, "lmforge_version": __version__, "base_model": base_model, **fields}
    if labels is not None:
        meta["labels"] = labels.to_dict()
    if data is not None:
        dumped = data.model_dump(mode="json") if isinstance(data, DataConfig) else dict(data)
        meta["data"] = {k: v for k, v in dumped.items() if k in DATA_KEYS}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{META_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out / META_FILE)
    return out


def read_meta(path: Path) -> dict[str, Any]:
    """The ``lmforge.json`` of the model folder ``path``, checked to be one this lmforge can read."""
    file = path / META_FILE
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LmforgeError(f"{file} cannot be read ({str(exc).splitlines()[0]}); the run was not saved completely, "
                           "train or save it again") from None
    if not isinstance(meta, dict) or "kind" not in meta:
        raise LmforgeError(f"{file} has no artifact kind; it was not written by lmforge")
    saved = str(meta.get("lmforge_version", "0"))
    if _version_tuple(saved)[:2] > _version_tuple(__version__)[:2]:
        raise LmforgeError(f"{path} was saved by lmforge {saved}, newer than this lmforge {__version__}; "
                           "upgrade lmforge (pip install -U lmforge) to load it")
    return meta


def model_dir(run: str | Path) -> Path:
    """The model folder of a run directory (or the folder itself)."""
    path = Path(run)
    for candidate in (path / "model", path):
        if (candidate / META_FILE).is_file():
            return candidate
    if not path.exists():
        raise LmforgeError(f"{path} does not exist; give a run directory (runs/NAME), its model folder or a zoo model name")
    raise LmforgeError(f"{path} is not an lmforge run or model folder (no {META_FILE} in it or in {path / 'model'}); "
                       "give the directory a recipe wrote (runs/NAME)")


def legacy_kind(meta: dict[str, Any]) -> str:
    """The kind a run saved by an earlier lmforge is now: ``model`` and ``pretrained`` became more specific kinds."""
    kind = meta["kind"]
    if kind == "model":
        return "generator" if meta.get("task", {}).get("name") == "instruct" else "classifier"
    if kind == "pretrained":
        return "generator" if "clm" in meta.get("objectives", []) else "encoder"
    return kind


class Artifact(Protocol):
    """What :func:`load` returns for every kind.

    Attributes:
        kind: The artifact kind (``classifier``, ``adapter``, ``prompt``, ``setfit``, ``ensemble``,
            ``generator``, ``encoder``...).
        path: The model folder.
        meta: Its ``lmforge.json``.
        capabilities: What the artifact can do, a subset of :data:`CAPABILITIES`; calling a method it
            lacks raises an :class:`LmforgeError` that says what the run is for.
    """

    kind: str
    path: Path
    meta: dict[str, Any]
    capabilities: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        """Kind, task, labels, base model, inputs and capabilities, JSON-ready."""


class ArtifactBase:
    """Shared behaviour of the kinds: ``describe``, the input schema, and clear refusals."""

    kind: str = ""
    path: Path
    meta: dict[str, Any]
    capabilities: ClassVar[tuple[str, ...]] = ()

    @property
    def labels_or_none(self) -> LabelSpace | None:
        """The label space when the artifact predicts labels."""
        labels = getattr(self, "labels", None)
        return labels if isinstance(labels, LabelSpace) else None

    def input_schema(self) -> dict[str, Any]:
        """What a request may hold: texts, and second texts for sentence-pair runs, with the longest input in tokens."""
        data = self.meta.get("data") or {}
        return {"text": "string", "pair": "string" if data.get("text_pair_column") else None,
                "max_length": data.get("max_length")}

    def describe(self) -> dict[str, Any]:
        """Kind, task, labels, base model, inputs and capabilities, JSON-ready."""
        labels = self.labels_or_none
        return {"kind": self.kind, "path": str(self.path), "task": (self.meta.get("task") or {}).get("name"),
                "base_model": self.meta.get("base_model"), "labels": labels.names if labels else None,
                "capabilities": list(self.capabilities), "inputs": self.input_schema(),
                "lmforge_version": self.meta.get("lmforge_version"), "size_bytes": folder_bytes(self.path)}

    def refuse(self, what: str) -> LmforgeError:
        """The error for a capability this kind lacks."""
        can = ", ".join(self.capabilities) or "nothing"
        hint = " (generation needs a causal LM, e.g. smollm2-135m or a decoder run)" if what == "generate" else ""
        return LmforgeError(f"{self.path} is an artifact of kind {self.kind}: it can {can}, not {what}{hint}")

    def generate(self, prompts: Any, options: Any = None, **overrides: Any) -> Any:
        """Refused unless the kind generates text."""
        raise self.refuse("generate")

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Refused unless the kind embeds text."""
        raise self.refuse("embed")


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (the artifact's size on disk)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def input_examples(data: DataConfig, texts: list[str], pairs: list[str] | None = None) -> Examples:
    """Raw input texts cleaned the way the saved model's training data was."""
    norm = make_normalizer(data.normalize, data.lowercase, data.fullwidth_to_halfwidth)
    clean = [norm(t) or " " for t in texts]
    clean_pairs = [norm(p) or " " for p in pairs] if pairs is not None else None
    return Examples(Path("<input>"), clean, clean_pairs, None, list(range(1, len(texts) + 1)))


def labeled_examples(data: DataConfig, labels: LabelSpace, source: str | Path, text_column: str | None = None,
                     label_column: str | None = None, **data_overrides: Any) -> tuple[Examples, np.ndarray]:
    """A labeled file read with the saved data settings, its labels matched to the saved label names."""
    cfg = data.model_copy(update=data_overrides)
    examples = read_examples(str(source), cfg, text_column=text_column, label_column=label_column)
    return encode_labels(examples, labels, cfg)


class Scorer(Protocol):
    """An artifact that scores cleaned examples; :class:`Scored` does predict and evaluate from that."""

    task: Task
    labels: LabelSpace
    data: DataConfig

    def scores(self, examples: Examples, targets: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray: ...


class Scored(ArtifactBase):
    """``predict`` and ``evaluate`` for a kind that has ``task``, ``labels``, ``data`` and ``scores``."""

    capabilities: ClassVar[tuple[str, ...]] = ("predict", "evaluate", "score")

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, top_k: int = 1,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Predictions for ``texts`` (and ``pairs``), in input order: inputs cleaned as in training, scored, post-processed."""
        texts = [texts] if isinstance(texts, str) else texts
        if not texts:
            return []
        scores = self.scores(input_examples(self.data, texts, pairs), None, batch_size)  # type: ignore[attr-defined]
        results = self.task.postprocess(scores, self.labels, top_k)  # type: ignore[attr-defined]
        return [{"text": t, **r} for t, r in zip(texts, results, strict=True)]

    def evaluate(self, source: str | Path, text_column: str | None = None, label_column: str | None = None,
                 batch_size: int = 64, **data_overrides: Any) -> dict[str, Any]:
        """Metrics on a labeled file, whose label values are matched to the saved label names."""
        examples, targets = labeled_examples(self.data, self.labels, source, text_column, label_column,  # type: ignore[attr-defined]
                                             **data_overrides)
        return self.task.metrics(self.scores(examples, targets, batch_size), targets, self.labels)  # type: ignore[attr-defined]


# Artifact kinds (``"kind"`` in lmforge.json) -> loader(path, meta, device). Each kind's module registers itself.
Loader = Callable[[Path, dict[str, Any], str], Any]
ARTIFACTS: Registry[Loader] = Registry("artifact kind")


def _plain_model_kind(source: str) -> str:
    """``generator`` for a causal LM folder, ``encoder`` for any other transformers model."""
    config = from_pretrained(AutoConfig, source)
    return "encoder" if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "generator"


def _locate(run: str | Path) -> tuple[Path, dict[str, Any]]:
    """The model folder and metadata of a run, or of a zoo model / plain transformers folder (metadata made up)."""
    path = Path(run)
    if (path / META_FILE).is_file() or (path / "model" / META_FILE).is_file():
        folder = model_dir(path)
        return folder, read_meta(folder)
    name = str(run)
    if name in zoo.ZOO or (path / "config.json").is_file():
        source = zoo.resolve_model(name)
        return Path(source), {"kind": _plain_model_kind(source), "base_model": name, "lmforge_version": __version__,
                              "plain": True}
    raise AssertionError(model_dir(path))  # model_dir raises the error that says what is wrong


def load(run: str | Path, device: str | None = None) -> Any:
    """Load a run directory, model folder or zoo model, whatever its kind.

    Args:
        run: A run directory (or its ``model`` folder), a plain transformers folder, or a zoo name.
        device: ``cpu``, ``cuda``...; the GPU when there is one.

    Raises:
        LmforgeError: One sentence on what is wrong (not a run, an unknown kind, a newer format, a
            missing base model) and what to do.
    """
    path, meta = _locate(run)
    kind = legacy_kind(meta)
    if kind not in ARTIFACTS:
        known = ", ".join(ARTIFACTS.names())
        raise LmforgeError(f"{path}/{META_FILE} names the artifact kind {meta['kind']!r}, which this lmforge does not know "
                           f"(known: {known}); upgrade lmforge or check the file")
    device = default_device(device)
    artifact = ARTIFACTS.get(kind)(path, meta, device)
    artifact.kind, artifact.meta = kind, meta
    log.info("loaded %s (%s) on %s, inference in %s", path, kind, device, describe_precision(device))
    return artifact
